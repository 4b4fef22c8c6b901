"""One way to build a configured thing from a table naming its ``type``: sources and sinks/actions
of ``wattwatch watch``, simulated devices of ``wattwatch devices``.

A registry maps a kind to ``"module:function"``; the function takes ``(name, spec, root)`` — the
table without ``type`` and ``name``, and the config file's folder for relative paths.
"""

from __future__ import annotations

import importlib
from pathlib import Path


def build(spec, where: str, root: Path | None, kinds: dict[str, str], errors: tuple = (TypeError, ValueError)):
    """What ``kinds[spec["type"]]`` builds from ``spec``; ValueError naming ``where`` (and the
    name) for a table that is not one, an unknown type, a kind that cannot be imported here, or
    one of ``errors`` raised by the builder."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a table, got {type(spec).__name__}")
    spec = dict(spec)
    kind = spec.pop("type", None)
    name = spec.pop("name", None) or kind
    if kind not in kinds:
        raise ValueError(f"{where}: type must be one of {', '.join(kinds) or 'none available'}, got {kind!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: name must be text")
    module, func = kinds[kind].split(":")
    try:
        make = getattr(importlib.import_module(module), func)
    except ImportError as exc:
        raise ValueError(f"{where} {name!r}: kind {kind} is not available here ({exc})") from None
    try:
        return make(name, spec, root)
    except errors as exc:
        raise ValueError(f"{where} {name!r}: {exc}") from None
