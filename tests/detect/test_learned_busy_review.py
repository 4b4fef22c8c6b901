"""Review of learned_ensemble's busy-day withdrawal (``Baseline._busy_day``,
``FeatureConfig.busy_lifted_share``): a meter's bins are judged against its busiest profiled day,
or not, whatever other meters are judged with it (plants whose long shift started early, sites
with a load added after an unjudged weekend, a meter whose data starts a week later than the
others), and the same twice."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect import registry
from wattwatch.detect.frame import meter_names, prepare, profile_mask
from wattwatch.detect.learned.features import Baseline

from tests.detect.test_learned import _plant, _rest_sites


def _sites() -> pd.DataFrame:
    """Plants that ran a profiled Tuesday and Tuesday 14th on to 23:00 (the 14th starting 20
    minutes early on the even ones), a load added on Thursday-Friday 16th-17th; sites resting
    02:00-06:00 with a load added on Monday 20th; one plant whose data starts a week later."""
    rows = []
    for s in range(10, 16):
        p = _plant(s, days=16, stop_day=None, theft_day=None, spread=0.05, late_days=(1, 8),
                   early_days=(8,) if s % 2 == 0 else (), end_h=17.0)
        p.loc[np.isin(np.arange(len(p)) // 288, (10, 11)), "p_kw"] += 0.8 * p["p_kw"].iloc[: 7 * 288].mean()
        rows.append(p.assign(meter_id=f"P{s}"))
    late = _plant(30, days=23, stop_day=None, theft_day=None, spread=0.05, late_days=(8, 15), end_h=17.0)
    rows.append(late[late.ts >= "2025-01-13"].assign(meter_id="P_late"))
    rows += _rest_sites()
    return pd.concat(rows, ignore_index=True)


def test_busy_day_scores_of_a_meter_do_not_depend_on_the_meters_judged_with_it():
    df = prepare(_sites())
    train = prepare(pd.concat([_plant(s, days=7, stop_day=None, theft_day=None, spread=0.05, end_h=17.0)
                               for s in range(10)], ignore_index=True))
    fleet = registry.build("isolation_forest").train(train).fleets_[300.0]
    base = Baseline(fleet.config.features()).fit(prepare(df[profile_mask(df, 7)]))

    def judged(frame):
        gf = base.features(frame)
        scores, _ = fleet.grid_scores(gf)
        names = [str(m) for m in meter_names(frame)]
        busy = gf.busy.expected if gf.busy is not None else np.full(gf.expected.shape, np.nan)
        return {m: (scores[i][gf.valid[i]], busy[i][gf.valid[i]]) for i, m in enumerate(names)}

    whole = judged(df)
    # the rule is at work in this fleet: the busy day explains some bins of every plant, not all
    assert all(np.isfinite(whole[m][1]).any() for m in whole if m.startswith("P"))
    again = judged(df)
    for m, (s, b) in whole.items():
        np.testing.assert_array_equal(again[m][0], s, err_msg=m)
        for group in ([m], [m, "S0"], [m, "P_late"]):
            alone = judged(prepare(df[df.meter_id.astype(str).isin(group)]))
            np.testing.assert_array_equal(alone[m][0], s, err_msg=f"{m} with {group}")
            np.testing.assert_array_equal(alone[m][1], b, err_msg=f"{m} with {group}")


def test_busy_day_withdrawal_streamed_in_pieces_equals_the_whole_history():
    """The same fleet (the ensemble trained on its first week) streamed in pieces cut at the early
    start of Tuesday 14th, its late evening, the load added on Thursday 16th and the sites' Monday
    20th: every score and alert is the whole history's (the lifted share is a trailing day of the
    meter's own bins, which the stream carries)."""
    from wattwatch.detect import core
    from wattwatch.detect.engine import EngineConfig, profile

    from tests.detect.test_core import _alert_mismatches, _epoch, _score_mismatches, _stitched

    frame = _sites()
    dets = [registry.build("learned_ensemble")]
    profile(prepare(frame), dets, EngineConfig(profile_days=7.0, workers=1))
    whole = core.run(frame, dets)
    assert {a.meter_id for a in whole.alerts} >= {"S0", "S1", "S2"}
    at = ["2025-01-14 07:42", "2025-01-14 17:07", "2025-01-14 23:01", "2025-01-16 00:03", "2025-01-20 02:10",
          "2025-01-20 08:00"]
    cuts = np.sort(_epoch(pd.Series(pd.to_datetime(at)).dt.tz_localize("UTC")))
    steps = _stitched(frame, dets, cuts)
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:8])
