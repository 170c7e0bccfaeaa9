"""Plain JSON from what experiments and the bench record: tensors, numpy values and non-finite floats."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` with dict keys as strings, tuples as lists, tensors and numpy values as Python numbers, and
    NaN and ±∞ as None (JSON has no such numbers; readers take None as "not a number" or "never reached")."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # torch tensors, numpy arrays and scalars
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
