"""Calm meters by their own scores (issue 16, live26): a stitcher that gives no scores does not
judge a meter whose detectors' own scores, on the readings within their own reach of the
readings its post-rules would use, stay under the threshold, while nothing of it is open. Fleets
with supply outages, harmonic noise, loose CT clamps and frozen registers at 1 and 5 minutes,
streamed in uneven pieces: at every piece the same alert versions, open alerts, clean and final
points and carried readings as judging every meter, and in the end every alert of the whole
history judged at once."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.detect.test_stitch_calm import _assert_same_step, _pieces, _view
from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitcher, latest, read_channels
from wattwatch.sim import SimConfig, simulate


def _fleet(step: str, seed: int, names: list[str]):
    sim = simulate(SimConfig(meters=10, days=2.5, step=step, seed=seed, fault_share=0.7,
                             faults=("harmonic_noise", "loose_ct", "frozen_register"), outage_share=0.5,
                             profile_days=1.0))
    frame = sim["frame"].drop_duplicates(["meter_id", "ts"]).reset_index(drop=True)
    dets = registry.build_all(names)
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    return frame, dets


@pytest.mark.parametrize("names", [["supply_outage", "harmonic_noise", "loose_ct"], ["frozen_readings"]])
# (5 minutes in pieces of about one reading a meter, as a live stream's steps: a newly final
# reading is then next to the readings its own reach needs before the clean point)
@pytest.mark.parametrize("step,piece_s,seed", [("1min", 300.0, 3), ("5min", 1800.0, 5), ("5min", 300.0, 7)])
def test_calm_by_scores_carried_as_judging_them_would(names, step, piece_s, seed):
    frame, dets = _fleet(step, seed, names)
    whole = core.run(frame, dets)
    assert whole.alerts
    cols = read_channels(dets)
    calm = Stitcher(dets, keep_scores=False, columns=cols)
    every = Stitcher(dets, keep_scores=False, columns=cols, calm=False)
    got = []
    for k, p in enumerate(_pieces(frame, piece_s, seed)):
        a, b = calm.feed(p), every.feed(p)
        got += a.alerts
        _assert_same_step(k, a, b, calm, every)
    a, b = calm.flush(), every.flush()
    assert sorted(map(_view, a.alerts)) == sorted(map(_view, b.alerts))
    got += a.alerts
    assert {i: _view(x) for i, x in latest(got).items()} == {x.id: _view(x) for x in whole.alerts}
    fed = sum(len(p) for p in _pieces(frame, piece_s, seed)) - int((frame["ts"] < frame["ts"].min()
                                                                     + pd.Timedelta(days=1)).sum())
    print(names, step, calm.calm_fed, fed, len(whole.alerts))
    assert 0.2 * fed < calm.calm_fed < fed
