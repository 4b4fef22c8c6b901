"""JSON has no NaN: one helper that makes documents strict JSON before they are written."""

from __future__ import annotations

import math


def finite(x, *, str_keys: bool = True, arrays: bool = False):
    """``x`` with every NaN or infinity as None, recursively; tuples as lists; numpy scalars as
    Python numbers.

    *str_keys*: dict keys as strings (``str(k)``); False keeps them, for ``json.dumps`` to write as
    it does (``true``/``null`` for a bool/None key, where ``str`` gives ``True``/``None``).
    *arrays*: numpy arrays (anything with ``tolist`` and ``ndim >= 1``) as lists, their NaN as None
    too; otherwise they are left for the caller's ``default``."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        if str_keys:
            return {str(k): finite(v, str_keys=True, arrays=arrays) for k, v in x.items()}
        return {k: finite(v, str_keys=False, arrays=arrays) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v, str_keys=str_keys, arrays=arrays) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return finite(x.item())
    if arrays and hasattr(x, "tolist") and getattr(x, "ndim", 0) >= 1:
        return finite(x.tolist(), str_keys=str_keys, arrays=arrays)
    return x
