"""Motor starts caught by the power readings are not an energy register that under-registers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import HEALTHY, run
from tests.detect.test_core import _alert_mismatches, _clean, _fitted, _score_mismatches, _stitched
from wattwatch.detect import core
from wattwatch.detect.frame import prepare
from wattwatch.detect.rules._common import inrush
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


def test_stitched_equals_whole_where_a_start_is_judged_by_readings_after_a_gap():
    """Whether a reading caught a motor start (``inrush``) depends on the two readings after it,
    which after a lost stretch may lie days later, beyond the rule's reach in seconds. An hourly
    home offline for three days: the last reading before the gap and the first after it caught a
    start each. A stream that has the first reading after the gap but not the second judged the
    readings before the gap (final by then: their reach in seconds has passed) with the interval
    before the gap kept; the whole run leaves it out (q17 declared no readings of reach ahead:
    17 scores differed by up to 0.16). ``lookahead_n`` 2, as the other rules that read ``inrush``."""
    cfg = SimConfig(meters=1, days=14, seed=4, commercial_share=0.0, step="60min", **HEALTHY)
    f = _clean(simulate(cfg)["frame"]).sort_values(["meter_id", "ts"]).reset_index(drop=True)
    t = ((f["ts"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(float)
    gap = (t >= t[0] + 9 * 86400) & (t < t[0] + 12 * 86400)
    f, t = f[~gap].reset_index(drop=True), t[~gap]
    j = int(np.searchsorted(t, t[0] + 9 * 86400)) - 1
    for k in (j, j + 1):
        f.loc[k, "i_l1_a"] = f.loc[k, "i_l1_a"] * 5 + 5
        f.loc[k, "pf"] = 0.4
    assert list(np.flatnonzero(inrush(prepare(f)))) == [j, j + 1]
    dets = _fitted(["firmware_drift"], f)
    whole = core.run(f, dets)
    steps = _stitched(f, dets, np.array([t[j + 1] + 1]))
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:5])
