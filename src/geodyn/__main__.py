"""``python -m geodyn``: the same command as ``geodyn``."""

from geodyn.cli import app

if __name__ == "__main__":  # pragma: no cover
    app(prog_name="geodyn")
