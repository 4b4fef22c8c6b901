"""rnp: a detector that fails on the whole group once (a transient error: memory for the group at
once) is judged meter by meter (``core._isolate``), then on the group again; when no meter fails
alone, no meter is reported failed. Before, its entry in ``Result.failed`` was an empty dict of
meters, and ``failed_notices`` (every stitcher's feed, every group run) raised IndexError on it:
the live step that met it failed. Three meters at 15 min (seed 5121), frozen_readings."""

from __future__ import annotations

import numpy as np

from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.sim import SimConfig, simulate


def test_a_detector_that_fails_once_on_the_group_and_on_no_meter_is_not_reported_failed():
    sim = simulate(SimConfig(meters=3, days=2.0, step="15min", seed=5121, fault_share=0.0, profile_days=1.0))
    frame = prepare(sim["frame"].drop_duplicates(["meter_id", "ts"]))
    dets = registry.build_all(["frozen_readings"])
    profile(frame, dets, EngineConfig(profile_days=1.0, workers=1))
    want = core.run(frame, dets)
    d, calls = dets[0], []
    scored = d.scored

    def once_failing(df, **kw):
        calls.append(len(df))
        if len(calls) == 1:
            raise MemoryError("the whole group at once")
        return scored(df, **kw)

    d.scored = once_failing
    got = core.run(frame, dets)
    assert len(calls) > 3 and calls[0] == len(frame)   # the group, each meter alone, the group again
    assert got.failed == {} and core.failed_notices(got.failed) == []
    assert [a.to_json() for a in got.alerts] == [a.to_json() for a in want.alerts]
    np.testing.assert_array_equal(got.judged[0].scores, want.judged[0].scores)
