"""A detector whose state says it gives a meter no score (seasonal_profile on a cadence it does not
judge) is not computed on that meter: the core scores the other meters only, and every score,
alert and notice is what scoring the whole frame gave."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect import core
from wattwatch.detect.baseline.seasonal import SeasonalProfile
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import meter_names, prepare
from wattwatch.detect.registry import build_all
from wattwatch.sim import SimConfig, simulate


def _mixed():
    """6 meters x 10 days: three at 5 min (not judged by seasonal_profile), three at 15 min."""
    f = simulate(SimConfig(meters=6, days=10, seed=3, fault_share=0.5, profile_days=4.0))["frame"]
    f = f.sort_values(["meter_id", "ts"], kind="stable")
    ids = sorted(f["meter_id"].astype(str).unique())
    k = f.groupby("meter_id", observed=True).cumcount()
    coarse = f["meter_id"].astype(str).isin(ids[::2])
    return prepare(f[~coarse | (k % 3 == 0)].reset_index(drop=True)), set(ids[::2])


def test_idle_meters_are_not_computed_and_scores_are_unchanged(monkeypatch):
    full, coarse = _mixed()
    dets = build_all(["seasonal_profile", "supply_outage", "baseline_macd"])
    profile(full, dets, EngineConfig(profile_days=4.0))
    seasonal = next(d for d in dets if isinstance(d, SeasonalProfile))
    idle = {m for m, st in seasonal.state_.items() if seasonal.idle(st)}
    assert idle and idle == set(meter_names(full)) - coarse  # the 5-min meters

    seen: list[set] = []
    parts = SeasonalProfile._parts

    def spy(self, df):
        seen.append({str(m) for m in meter_names(df)})
        return parts(self, df)

    monkeypatch.setattr(SeasonalProfile, "_parts", spy)
    res = core.run(full, core.order(dets))
    assert seen and all(s <= coarse for s in seen), seen  # never computed on an idle meter

    got = next(j for j in res.judged if j.det is seasonal).scores
    want = np.asarray(seasonal.scored(full).values, float)  # the whole frame, as before
    assert np.isfinite(want).any() and np.array_equal(got, want, equal_nan=True)

    monkeypatch.setattr(SeasonalProfile, "idle", lambda self, st: False)
    again = core.run(full, core.order(dets))
    assert [a.to_json() for a in again.alerts] == [a.to_json() for a in res.alerts]
    assert again.notices == res.notices
