"""One meter at the edge: samples → :class:`~wattwatch.edge.metrology.Metrology` → cycles →
:class:`~wattwatch.edge.tamper.TamperMachine` → events handed to ``on_event`` (the publisher)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from wattwatch.edge.metrology import Metrology
from wattwatch.edge.tamper import TamperConfig, TamperMachine


class EdgeMeter:
    def __init__(self, meter_id: str, channels, fs: float, cfg: TamperConfig | None = None, *,
                 f_nominal: float = 50.0, t0: float | None = None, on_event: Callable[[dict], None] | None = None):
        self.meter_id = meter_id
        self.metro = Metrology(channels, fs, f_nominal)
        self.machine = TamperMachine(cfg or TamperConfig(), self.metro.cycle_s,
                                     time.time() if t0 is None else t0, self.metro.three)
        self.on_event = on_event
        self.events: list[dict] = []
        self.samples = 0

    def feed(self, samples: np.ndarray) -> list[dict]:
        """Measure and judge a block of samples; events are handed to ``on_event`` as they come."""
        self.samples += len(samples)
        cyc = self.metro.feed(samples)
        events = self.machine.step(cyc)
        for ev in events:
            ev["meter_id"] = self.meter_id
            self.events.append(ev)
            if self.on_event is not None:
                self.on_event(ev)
        return events

    def status(self) -> dict:
        return {"meter_id": self.meter_id, **self.machine.status(), "samples": self.samples}
