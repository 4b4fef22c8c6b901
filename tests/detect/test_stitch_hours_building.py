"""Review: the carried closed hours of baseline_macd against the building floor veto (the veto
reads the floor of a building whose night is most of its load). Streamed in random pieces past
the old reach (> 48 days), with a checkpoint round trip on the way, a school working harder for
days with its night unchanged (the veto fires) and a school with a bypass left on to the end (its
alert stays open for many days) must give the scores and alerts the whole history gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitcher

from tests.detect.test_core import _alert_mismatches, _epoch, _score_mismatches
from tests.detect.test_macd_building_floor import school
from tests.detect.test_stitch_hours import _resumed

DETECTORS = ["supply_outage", "sensor_fault", "frozen_readings", "baseline_macd"]
PROFILE_DAYS = 30.0
DAYS = 56


def _fleet(step: str) -> pd.DataFrame:
    a = school(days=DAYS, seed=1)
    h = a.ts.dt.hour + a.ts.dt.minute / 60
    work = 100 * np.exp(-0.5 * ((h - 13) / 3.0) ** 2)
    for lo, hi in (("2025-02-10", "2025-02-15"), ("2025-02-24", "2025-03-01")):   # term weeks: days busier
        busy = ((a.ts >= lo) & (a.ts < hi)).to_numpy()
        a.loc[busy, "p_kw"] += 1.2 * work[busy]
    b = school(days=DAYS, seed=2).assign(meter_id="bypassed")
    b.loc[(b.ts >= "2025-02-17 10:00").to_numpy(), "p_kw"] *= 0.5   # to the end: an alert open for weeks
    df = pd.concat([a, b], ignore_index=True)
    df = df[(df.ts.astype("int64") // 10**9) % pd.Timedelta(step).total_seconds() == 0]
    return df.assign(ts=df.ts.dt.tz_localize("UTC")).reset_index(drop=True)


def _dets(frame, params=None):
    dets = registry.build_all(DETECTORS, {"baseline_macd": params} if params else None)
    profile(prepare(frame), dets, EngineConfig(profile_days=PROFILE_DAYS, profile_max_share=0.6, workers=1))
    return dets


def _assert_streamed_alike(frame, dets, whole, seed: int, cuts: int, resume_at: tuple[int, ...]) -> None:
    """Feed ``frame`` in ``cuts`` + 1 seeded random pieces past the profile (the first piece holds
    it whole), resuming from a checkpoint before the pieces numbered ``resume_at``; every score and
    alert must be the whole history's."""
    t = _epoch(frame["ts"])
    rng = np.random.default_rng(seed)
    t_prof = t.min() + PROFILE_DAYS * 86400
    edges = [-np.inf, *np.sort(np.concatenate([[t_prof], rng.uniform(t_prof, t.max(), cuts)])), np.inf]
    st = Stitcher(dets)
    steps = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        if k in resume_at:
            st = _resumed(st, dets)
        steps.append(st.feed(frame[(t > lo) & (t <= hi)]))
    steps.append(st.flush())
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])


@pytest.mark.parametrize("step,seed", [("5min", 1), ("15min", 2), ("60min", 3)])
def test_building_floor_veto_streamed_in_random_pieces_equals_the_whole_history(step, seed):
    frame = _fleet(step)
    dets = _dets(frame)
    macd = dets[-1]
    for m, st in macd.state_.items():   # a building: the floor learned above floor_max_share of the mean
        assert np.isfinite(st["floor_kw"]) and st["floor_kw"] > macd.config.floor_max_share * st["mean_kw"], m
        assert st["history_days"] >= macd.config.recal_min_profile_days
    whole = core.run(frame, dets)
    # The veto fires: without it the busy weeks score higher.
    nov = core.run(frame, _dets(frame, {"floor_fault_rise": 1e-6, "floor_fault_drop": 1e-6}))
    wf = whole.frame
    busy = ((wf.meter_id.astype(str) == "school") & (wf.ts >= pd.Timestamp("2025-02-10", tz="UTC"))).to_numpy()
    s_v, s_n = whole.judged[-1].scores[busy], nov.judged[-1].scores[busy]
    with np.errstate(invalid="ignore"):
        halved = (s_v < 0.6 * s_n) & (s_n > 0.8)
    assert halved.sum() > 0, (np.nanmax(s_n), np.nanmax(s_v))
    assert any(a.meter_id == "bypassed" and a.detector == "baseline_macd" for a in whole.alerts)

    _assert_streamed_alike(frame, dets, whole, seed, cuts=30, resume_at=(12, 25))


@pytest.mark.parametrize("step,seed", [("15min", 4), ("60min", 5)])
def test_a_meter_offline_for_days_with_an_energy_register_streamed_equals_the_whole_history(step, seed):
    """The same fleet with an energy register (its hours' energy from the register's steps) and the
    school offline for four days past the profile (its carried hours run into the gap)."""
    frame = _fleet(step)
    frame = frame.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
    dt_h = pd.Timedelta(step).total_seconds() / 3600.0
    frame["e_kwh"] = frame.groupby("meter_id")["p_kw"].transform(lambda p: (p * dt_h).cumsum()).round(3)
    off = ((frame.meter_id == "school") & (frame.ts >= pd.Timestamp("2025-02-17 07:20", tz="UTC"))
           & (frame.ts < pd.Timestamp("2025-02-21 13:40", tz="UTC"))).to_numpy()
    frame = frame[~off].reset_index(drop=True)
    dets = _dets(frame)
    whole = core.run(frame, dets)
    _assert_streamed_alike(frame, dets, whole, seed, cuts=40, resume_at=(7, 21, 33))
