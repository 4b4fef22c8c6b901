"""JSON has no NaN: one helper that makes documents strict JSON before they are written."""

from __future__ import annotations

import math


def finite(x):
    """``x`` with every NaN or infinity as None, recursively; dict keys as strings; numpy scalars
    as Python numbers."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return finite(x.item())
    return x
