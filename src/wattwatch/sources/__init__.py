"""Live inputs for ``wattwatch watch``: see :mod:`wattwatch.sources.base` for the interface.

A kind is registered in :data:`KINDS` as ``"module:function"``; the function takes
``(name, spec, root)`` — the ``[[sources]]`` table without ``type`` and ``name``, and the config
file's folder for relative paths — and returns a :class:`Source` (ValueError naming the key).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from wattwatch.sources.base import Batch, Poller, Source

# type -> "module:function(name, spec, root) -> Source"
KINDS: dict[str, str] = {
    "replay": "wattwatch.sources.replay:from_spec",
    "mqtt": "wattwatch.sources.mqtt:from_spec",
    "snmp": "wattwatch.sources.snmp:from_spec",
    "tamper": "wattwatch.sources.tamper:from_spec",
    "modbus": "wattwatch.sources.modbus:from_spec",
}


def build(spec: dict, where: str = "[[sources]]", root: Path | None = None) -> Source:
    """A source from one ``[[sources]]`` table of a site config (ValueError naming the key)."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a table, got {type(spec).__name__}")
    spec = dict(spec)
    kind = spec.pop("type", None)
    name = spec.pop("name", None) or kind
    if kind not in KINDS:
        raise ValueError(f"{where}: type must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: name must be text")
    module, func = KINDS[kind].split(":")
    try:
        return getattr(importlib.import_module(module), func)(name, spec, root)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} {name!r}: {exc}") from None


def only(spec: dict, keys: set) -> None:
    """ValueError when ``spec`` has a key outside ``keys``."""
    unknown = set(spec) - keys
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(keys))}")


def resolve(path: str, root: Path | None) -> Path:
    """``path`` relative to the config file's folder (``root``) unless absolute."""
    p = Path(path)
    return root / p if root is not None and not p.is_absolute() else p


__all__ = ["Batch", "Poller", "Source", "build", "KINDS", "only", "resolve"]
