"""What a run was measured on: versions and device of this process, recorded with every results file."""

from __future__ import annotations

import os
import platform
from typing import Any

__all__ = ["environment"]


def environment() -> dict[str, Any]:
    """Versions of the numerical stack and the device of this process."""
    import matplotlib
    import numpy
    import scipy
    import torch

    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()})"
    )
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "matplotlib": matplotlib.__version__,
        "device": device,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
