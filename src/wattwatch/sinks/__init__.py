"""Outputs of ``wattwatch watch``: where committed readings and alert changes go besides the store.

The DuckDB store is always written first (:mod:`wattwatch.runners.stream`); an *output* sees what
the store has committed, after it has: the readings of a step and the alerts that step opened,
changed or ended. Time-series sinks (``[[sinks]]`` in a site config) and actions (``[[actions]]``)
are outputs. An output never raises into the engine: :func:`deliver` counts and logs a failure,
and the engine goes on (an output that must not lose anything buffers on its own, e.g. on disk).

A kind is registered in :data:`KINDS` as ``"module:function"``; the function takes
``(name, spec, root)`` — the table without ``type`` and ``name``, the config file's folder for
relative paths — and returns an :class:`Output` (ValueError naming the key when the table is wrong).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd

log = logging.getLogger("wattwatch.watch")

# type -> "module:function(name, spec, root) -> Output"
KINDS: dict[str, str] = {
    "influx": "wattwatch.sinks.influx:from_spec",
    "status": "wattwatch.dashboard.status:from_spec",   # the dashboard's Live page follows it
}


class Output:
    """Receives what the store committed. Subclasses override what they use."""

    kind = "output"

    def __init__(self, name: str):
        self.name = name
        self.counters: Counter = Counter()
        self.status = "ready"

    def readings(self, frame: pd.DataFrame) -> None:
        """Canonical readings (``meter_id``, ``ts`` UTC, channels) just committed to the store."""

    def alerts(self, report, engine) -> None:
        """A step's :class:`~wattwatch.runners.stream.StepReport` (``alerts`` new or changed,
        ``new`` ids first seen, ``ended`` ids that can no longer grow) and the engine."""

    def close(self) -> None:
        """Flush and release connections (called once, when the watcher stops)."""

    def view(self) -> dict:
        """One row of the live console: name, kind, status and the counters."""
        return {"name": self.name, "kind": self.kind, "status": self.status, **self.counters}


def build(spec: dict, where: str, root: Path | None = None, kinds: dict[str, str] | None = None) -> Output:
    """An output from one table of a site config (ValueError naming the table and key)."""
    from wattwatch.plugins import build as _build

    return _build(spec, where, root, KINDS if kinds is None else kinds)


def deliver(outputs, method: str, *args) -> None:
    """Call ``method`` on every output; a failure is counted (``failures``) and logged, never raised."""
    for o in outputs:
        try:
            getattr(o, method)(*args)
        except Exception as exc:  # noqa: BLE001 - an output never stops the engine
            o.counters["failures"] += 1
            log.warning("%s: %s failed: %s: %s", o.name, method, type(exc).__name__, exc)


__all__ = ["Output", "KINDS", "build", "deliver"]
