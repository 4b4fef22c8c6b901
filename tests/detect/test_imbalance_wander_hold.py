"""Phase imbalance on commercial meters whose phases' shares wander twice the simulator's default
(5 %, two-hour correlation): a profiled week's spread must carry the tail of the weeks after it.

The learned level limit was median + 2 x (p90 - median) of the profiled imbalance (+ 5 points):
on such meters three weeks of healthy wander crossed it for 20-105 minutes at a time (q17's
``phase_wander`` sweep: 13 false alerts over two 120-meter fleets). It is now median + 3 x
(p90 - median), the factor the share allowance uses (3 x the 90th percentile of the share's
distance); a step that lifts one phase's current by 40-50 % for hours is still found.

A lasting step near the share allowance scores around 1 as the phases wander: it was cut into
pieces an hour or two apart (a +16 % step on L2 for two days: nine alerts); the alert is now held
open until the score falls under half the threshold (``hold``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import HEALTHY, healthy, run, window
from wattwatch.detect.engine import EngineConfig, detect
from wattwatch.detect.registry import build_all
from wattwatch.sim import SimConfig, simulate
from wattwatch.sim.fleet import SimKnobs

ENGINE = EngineConfig(profile_days=7.0)


def _fleet(seed: int, step: str = "5min") -> pd.DataFrame:
    cfg = SimConfig(meters=8, days=28, seed=seed, step=step, commercial_share=1.0,
                    knobs=SimKnobs(phase_wander=0.05), **HEALTHY)
    return simulate(cfg)["frame"]


@pytest.mark.parametrize("seed", [5, 6])
def test_healthy_wandering_phase_shares_raise_no_imbalance(seed):
    alerts = detect(_fleet(seed), build_all(["phase_imbalance"]), ENGINE).alerts
    assert alerts == [], [(a.meter_id, a.start, a.message) for a in alerts]


@pytest.mark.parametrize("step", ["5min", "60min"])
def test_a_phase_step_on_wandering_meters_is_still_found(step):
    f = _fleet(6, step)
    rng = np.random.default_rng(6)
    spans = {}
    for m in f.meter_id.unique():
        t0 = f.ts.min() + pd.Timedelta(days=float(rng.uniform(9, 25)))
        w = (f.meter_id == m) & (f.ts >= t0) & (f.ts < t0 + pd.Timedelta(hours=6))
        f.loc[w, f"i_l{int(rng.integers(1, 4))}_a"] *= 1.45
        spans[m] = (t0, t0 + pd.Timedelta(hours=6))
    alerts = detect(f, build_all(["phase_imbalance"]), ENGINE).alerts
    for m, (a, b) in spans.items():
        hit = [x for x in alerts if x.meter_id == m and pd.Timestamp(x.start) < b and pd.Timestamp(x.end) > a]
        assert len(hit) == 1, (m, a, [(x.meter_id, x.start, x.end) for x in alerts])
    assert len(alerts) == len(spans)


def test_a_lasting_step_near_its_allowance_is_one_alert():
    f = healthy("commercial", days=10, seed=8)
    w = window(f, "2025-01-10T06:00:00Z", 48)
    f.loc[w, "i_l2_a"] *= 1.16
    alerts = run(f, ["phase_imbalance"])
    spans = [(a.start, a.end) for a in alerts]
    assert len(alerts) == 1, spans
    a = alerts[0]
    assert a.evidence["phase"] == "L2" and a.evidence["step"] > a.evidence["allowed_step"]
    ts = f.ts[w]
    assert pd.Timestamp(a.start) <= ts.min() + pd.Timedelta(hours=1) and pd.Timestamp(a.end) >= ts.max() - pd.Timedelta(minutes=10), spans
