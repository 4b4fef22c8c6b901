"""Live inputs for ``wattwatch watch``: see :mod:`wattwatch.sources.base` for the interface.

A kind is registered in :data:`KINDS` as ``"module:function"``; the function takes
``(name, spec, root)`` — the ``[[sources]]`` table without ``type`` and ``name``, and the config
file's folder for relative paths — and returns a :class:`Source` (ValueError naming the key).
"""

from __future__ import annotations

from pathlib import Path

from wattwatch.sources.base import Batch, Poller, Source
from wattwatch.tomlfile import only

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
    from wattwatch.plugins import build as _build

    return _build(spec, where, root, KINDS)


def resolve(path: str, root: Path | None) -> Path:
    """``path`` relative to the config file's folder (``root``) unless absolute."""
    p = Path(path)
    return root / p if root is not None and not p.is_absolute() else p


__all__ = ["Batch", "Poller", "Source", "build", "KINDS", "only", "resolve"]
