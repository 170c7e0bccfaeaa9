"""geodyn: geometric learning dynamics — metric g = f(noise covariance κ) for optimizers, simulators and analysis."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geodyn")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
