"""Live sources: what every input of ``wattwatch watch`` shares.

A source produces *batches*: canonical readings (``meter_id``, ``ts`` as UTC timestamps, channel
columns in SPEC units) that arrived together — one poll cycle of a poller, the messages an MQTT
subscription received since the last batch, one cycle of a replayed file. Each batch carries the
monotonic time it arrived (for latency) and a *token* the source gets back through
:meth:`Source.committed` once the batch's readings and alerts are in the store and the step's
outputs had them (an MQTT source acknowledges the messages then, so a crash before makes the broker
deliver them again).

Two shapes of source:

- :class:`Source`: pushes batches as they come (MQTT);
- :class:`Poller`: asks its devices once per ``interval_s`` (a replayed file here; Modbus/TCP and
  SNMPv3 pollers are the same shape): :meth:`Poller.poll` returns one cycle's readings, the base
  class keeps the cadence, the deadline and the counters (polls, timeouts, errors, response time).

A source never raises into the engine: what it cannot use is counted (``counters``) and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import numpy as np
import pandas as pd

from wattwatch.schema import CHANNEL_NAMES

log = logging.getLogger("wattwatch.watch")


@dataclass
class Batch:
    """Readings that arrived together."""

    source: str
    frame: pd.DataFrame                 # canonical: meter_id, ts (UTC), channels
    arrived: float = field(default_factory=time.monotonic)
    token: Any = None                   # handed back to the source once the batch is stored
    alerts: list = field(default_factory=list)   # event alerts (signed tamper reports) to store as they are


# The engine's inbox: waits while too many batches are pending (a replay at full speed is paced
# by the engine; a push source calls it from its own thread through the event loop).
Emit = Callable[[Batch], Awaitable[None]]


class Source:
    """A live input. Subclasses implement :meth:`run` and may keep a checkpointable position."""

    kind = "source"

    def __init__(self, name: str):
        self.name = name
        self.counters: Counter = Counter()
        self.status = "starting"
        self.done = False                # no batch will follow (a replay at its end)

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def polled_meters(self) -> list[str]:
        """The meter ids the config gives this source (its polled devices; none for a source whose
        meters come with its messages): a site refuses one meter read by two sources."""
        return []

    def position(self) -> dict:
        """What to save in the checkpoint so that a restart resumes here (JSON)."""
        return {}

    def poll_paced(self):
        """(lc) ``(interval_s, meters)`` for a poller whose readings take its poll's time (``meters``
        None: all of them; a set: only those): the store takes the interval as such a meter's
        cadence where lost polls made the observed one longer. None: the readings' times are their
        own (a push source, a replay)."""
        return None

    def restore(self, position: dict) -> None:
        """Resume from a checkpointed :meth:`position`."""

    def committed(self, token) -> None:
        """The readings and alerts of a batch with ``token`` are in the store and the outputs had
        them (the end of its step)."""

    def close(self) -> None:
        """Release connections (called once, after :meth:`run` returned)."""

    def view(self) -> dict:
        """One row of the live console: name, kind, status and the counters."""
        return {"name": self.name, "kind": self.kind, "status": self.status, **self.counters}


class Poller(Source):
    """A source that polls its devices every ``interval_s`` (aligned to the interval). A poll
    that overruns the interval is counted as ``late``; a poll that raises is counted as an
    ``error`` and logged, and the next cycle goes on. Subclasses implement :meth:`poll`."""

    kind = "poller"
    # The silence watch (wattwatch.runners.silence) reads ``silence``: per meter (its configured
    # ones, :meth:`polled_meters`, and every one a cycle gave) the polls lost in a row, the wall
    # time (epoch s) of the first of them and of its last answer. A replay sets it off (a file's
    # gaps are data, judged by the core).
    watch_silence = True

    def __init__(self, name: str, interval_s: float, timeout_s: float | None = None):
        super().__init__(name)
        if not interval_s >= 0:
            raise ValueError(f"source {name}: interval_s must be >= 0, got {interval_s}")
        self.interval_s = float(interval_s)
        self.timeout_s = float(timeout_s) if timeout_s else (self.interval_s or None)
        self.response_ms: list[float] = []
        self.silence: dict[str, tuple[int, float | None, float | None]] = {}

    async def poll(self) -> pd.DataFrame | None:  # pragma: no cover - interface
        """One cycle's readings (None: nothing more will come)."""
        raise NotImplementedError

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        self.status = "polling"
        next_t = time.monotonic()
        while not stop.is_set() and not self.done:
            t0 = time.monotonic()
            wall = time.time()
            try:
                frame = await asyncio.wait_for(self.poll(), self.timeout_s)
            except asyncio.TimeoutError:
                self.counters["timeouts"] += 1
                frame = pd.DataFrame()
            except Exception as exc:  # noqa: BLE001 - a failing poll is counted, the next one runs
                self.counters["errors"] += 1
                log.warning("%s: poll failed: %s: %s", self.name, type(exc).__name__, exc)
                frame = pd.DataFrame()
            took = time.monotonic() - t0
            self.counters["polls"] += 1
            self.response_ms.append(took * 1000.0)
            del self.response_ms[:-256]
            if frame is None:
                self.done = True
                self.status = "finished"
                break
            if self.watch_silence:
                self._answered(frame, wall)
            if len(frame):
                self.counters["readings"] += len(frame)
                await emit(Batch(self.name, frame, arrived=time.monotonic(), token=self.token()))
            next_t += self.interval_s
            now = time.monotonic()
            if self.interval_s == 0:  # as fast as the engine takes it
                next_t = now
                await asyncio.sleep(0)
                continue
            if next_t < now:
                self.counters["late"] += 1
                next_t = now
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, next_t - now))
            except asyncio.TimeoutError:
                pass
        if not self.done:
            self.status = "stopped"

    def _answered(self, frame: pd.DataFrame, wall: float) -> None:
        """One cycle's outcome per meter for the silence watch: a meter that gave a reading answered
        at ``wall``; every other one it polls (configured, or heard before) lost one more poll."""
        heard = set(frame["meter_id"].astype(str).unique()) if len(frame) and "meter_id" in frame else set()
        table = self.silence
        for m in heard:
            table[m] = (0, None, wall)
        for m in set(self.polled_meters()) | set(table):
            if m not in heard:
                lost, since, last = table.get(m, (0, None, None))
                table[m] = (lost + 1, wall if since is None else since, last)

    def poll_paced(self):
        if self.watch_silence and self.interval_s > 0:   # (a replay's times are its file's)
            return (self.interval_s, None)
        return None

    def token(self):
        """The token of the batch just polled (default: the position after it)."""
        return self.position()

    def view(self) -> dict:
        v = super().view()
        if self.response_ms:
            v["p50_ms"] = round(float(np.median(self.response_ms)), 2)
        return v


def canonical(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """``frame`` with ``meter_id`` as text, ``ts`` as UTC timestamps and the canonical channels it
    has as floats (other numeric columns kept as extra channels)."""
    out = frame.copy()
    out["meter_id"] = out["meter_id"].astype(str)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    for c in CHANNEL_NAMES:
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    return out
