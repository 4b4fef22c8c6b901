"""Motor starts caught by the power readings are not an energy register that under-registers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import HEALTHY, run
from wattwatch.sim import SimConfig, simulate


def _home(seed: int) -> pd.DataFrame:
    """A healthy home read every 5 minutes, with 20 motor starts a day (a fridge, a heat pump, a
    well pump): each start is caught by one reading at 3-6x the current and a power factor of
    0.35-0.45, while the register counts the running motor (the simulator's inrush)."""
    cfg = SimConfig(meters=1, days=12, seed=seed, commercial_share=0.0, **{**HEALTHY, "motor_starts_per_day": 20.0})
    return simulate(cfg)["frame"]


@pytest.mark.parametrize("seed", [3, 6])
def test_motor_starts_in_the_power_readings_are_not_firmware_drift(seed):
    """The trapezoid of the power readings took each start's snapshot for half of the two
    intervals beside it; the register did not count it, so hours with a start read low and, on
    these two homes (seeds 3 and 6 of six; main: 3 and 1 alerts), a day's median hour fell 7 %
    under the profiled calibration: "energy register under-registers by 7 %". The intervals beside
    a reading that caught a start (``inrush``) are left out."""
    alerts = run(_home(seed), ["firmware_drift"])
    assert alerts == [], [(a.start, a.end, a.message) for a in alerts]


@pytest.mark.parametrize("seed", [3, 6])
def test_a_register_drift_among_motor_starts_is_still_found(seed):
    """The same home's register counting 85 % of the energy from day 6 on is found."""
    f = _home(seed).sort_values("ts").reset_index(drop=True)
    e = f["e_kwh"].to_numpy()
    inc = np.diff(e, prepend=e[0])
    late = (f["ts"] >= pd.Timestamp("2025-01-12", tz="UTC")).to_numpy()
    inc[late] *= 0.85
    f["e_kwh"] = e[0] + np.cumsum(inc)
    alerts = run(f, ["firmware_drift"])
    assert alerts and all(pd.Timestamp(a.end) >= pd.Timestamp("2025-01-12", tz="UTC") for a in alerts)
    assert any("under-registers" in a.message for a in alerts)
