"""Simulated field devices for ``wattwatch devices`` and ``wattwatch watch --demo``.

A device kind is a module ``wattwatch.devices.<kind>`` with ``start(name, spec, root) -> Running``;
``Running`` has ``.endpoint`` (host, port and what a client needs), ``.inject(fault, **params)``
(faults changed at run time), ``.view() -> dict`` (counters) and ``.stop()``. Devices listen on
127.0.0.1 only.

A devices file (TOML) has one ``[[devices]]`` table per device: ``type`` (a kind), ``name`` and
the kind's own keys; relative paths are relative to the file.
"""

from __future__ import annotations

import importlib
from wattwatch.tomlfile import read_toml
from pathlib import Path

# kind -> "module:start(name, spec, root)"
KINDS: dict[str, str] = {
    "modbus": "wattwatch.devices.modbus:start",
    "mqtt": "wattwatch.devices.mqtt:start",
    "snmp": "wattwatch.devices.snmp:start",
}


def available(kind: str) -> bool:
    """Whether the module of ``kind`` can be imported (the SNMP agent is another module's)."""
    try:
        importlib.import_module(KINDS[kind].split(":")[0])
        return True
    except ImportError:
        return False


def start(spec: dict, where: str = "[[devices]]", root: Path | None = None):
    """Start one device from its table (ValueError naming the table and key)."""
    from wattwatch.plugins import build

    return build(spec, where, root, KINDS, errors=(TypeError, ValueError, KeyError))


def load(path: str | Path) -> tuple[list[dict], Path]:
    """The ``[[devices]]`` tables of a devices file, and its folder."""
    p = Path(path)
    doc = read_toml(p, "devices file", ValueError)
    specs = doc.get("devices")
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"{p}: give at least one [[devices]] table")
    unknown = set(doc) - {"devices", "models"}
    if unknown:
        raise ValueError(f"{p}: unknown key(s) {sorted(unknown)}; known: devices, models")
    if "models" in doc:   # shared register maps: [models.NAME] at the top
        specs = [dict(s, models=s.get("models", doc["models"])) if isinstance(s, dict) and s.get("type") == "modbus"
                 else s for s in specs]
    return specs, p.resolve().parent


def start_all(path: str | Path) -> list:
    """Start every device of a devices file (stopping those started when one fails)."""
    specs, root = load(path)
    running = []
    try:
        for k, spec in enumerate(specs):
            running.append(start(spec, f"{path}: [[devices]] #{k + 1}", root))
    except BaseException:
        for r in running:
            r.stop()
        raise
    return running


__all__ = ["KINDS", "available", "start", "start_all", "load"]
