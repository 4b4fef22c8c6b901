"""Replay a telemetry file as a live source: one poll cycle of readings at a time, at a chosen speed.

The file is read like ``wattwatch ingest`` reads it (any format and mapping the readers know; its
readings de-duplicated as the store keeps them) and played in time order: each cycle emits the
readings with ``cycle start <= ts < cycle start + cycle_s``. ``speed`` is data seconds per wall
second (``speed = 60``: an hour of 5-minute data in a minute); ``speed = 0`` plays as fast as the
engine takes it. The position (the time up to which readings are in the store) is checkpointed,
so a restarted watcher resumes after the last stored cycle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.sources.base import Poller


class ReplaySource(Poller):
    kind = "replay"
    watch_silence = False   # a file's gaps are data (the core judges them), not a silent device

    def __init__(self, name: str, path: str | Path | pd.DataFrame, *, cycle_s: float | None = None,
                 speed: float = 0.0, mapping=None, loop: bool = False):
        if speed < 0:
            raise ValueError(f"source {name}: speed must be >= 0 (0: as fast as possible), got {speed}")
        from wattwatch import api

        frame = path if isinstance(path, pd.DataFrame) else api.read_frame(Path(path), mapping=mapping)
        frame = frame.copy()
        frame["meter_id"] = frame["meter_id"].astype(str)
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        frame = frame.sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)
        self.frame = frame
        self._t = frame["ts"].to_numpy("datetime64[us]").astype(np.int64)
        if cycle_s is None:  # the fleet's typical cadence
            gaps = frame.groupby("meter_id", observed=True)["ts"].diff().dt.total_seconds()
            cycle_s = float(np.nanmedian(gaps)) if gaps.notna().any() else 60.0
        if not cycle_s > 0:
            raise ValueError(f"source {name}: cycle_s must be > 0, got {cycle_s}")
        self.cycle_us = int(round(cycle_s * 1e6))
        super().__init__(name, interval_s=cycle_s / speed if speed > 0 else 0.0)
        self.path = str(path) if not isinstance(path, pd.DataFrame) else "<frame>"
        self.upto = int(self._t[0]) - 1 if len(self._t) else 0    # readings with ts <= upto were emitted
        self.stored = self.upto                                  # ... and are in the store
        self._next = 0

    def restore(self, position: dict) -> None:
        if "upto_us" in position:
            self.upto = self.stored = int(position["upto_us"])
            self._next = int(np.searchsorted(self._t, self.upto, side="right"))
            self.counters["resumed_at"] = self._next

    def position(self) -> dict:
        return {"upto_us": int(self.stored), "file": self.path}

    def token(self):
        return self.upto

    def committed(self, token) -> None:
        self.stored = max(self.stored, int(token))

    async def poll(self) -> pd.DataFrame | None:
        i = self._next
        if i >= len(self._t):
            return None
        lo = self._t[i] - (self._t[i] - self._t[0]) % self.cycle_us  # the cycle grid of the file
        j = int(np.searchsorted(self._t, lo + self.cycle_us, side="left"))
        self._next = j
        self.upto = int(self._t[j - 1])
        self.status = f"at {pd.Timestamp(self.upto, unit='us', tz='UTC'):%Y-%m-%d %H:%M}"
        return self.frame.iloc[i:j]


def from_spec(name: str, spec: dict, root=None) -> ReplaySource:
    """A replay source from its ``[[sources]]`` table (``path``, ``speed``, ``cycle_s``, ``mapping``)."""
    from wattwatch.sources import only, resolve

    path = spec.get("path")
    if not isinstance(path, str):
        raise ValueError("path (the telemetry file to replay) is required")
    p = resolve(path, root)
    if not p.exists():
        raise ValueError(f"path {p}: no such file")
    only(spec, {"path", "speed", "cycle_s", "mapping"})
    mapping = spec.get("mapping")
    if mapping:
        mapping = str(resolve(mapping, root))
    return ReplaySource(name, p, speed=float(spec.get("speed", 0.0)), cycle_s=spec.get("cycle_s"), mapping=mapping)
