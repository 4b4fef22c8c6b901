"""Scores depend on the readings given, never on which object held them before (the engine once
memoised by (id(frame), len(frame)) and gave a micro-batch the previous batch's scores)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from wattwatch.detect import registry
from wattwatch.sim import SimConfig, simulate


@pytest.fixture(scope="module")
def frame():
    sim = simulate(SimConfig(meters=3, days=3, seed=2, fault_share=1.0, commercial_share=0.7, jitter_s=0,
                             duplicate_rate=0, disorder_rate=0, nan_rate=0))
    return sim["frame"].sort_values(["meter_id", "ts"]).reset_index(drop=True)


@pytest.mark.parametrize("name", ["neutral_tamper", "phase_imbalance", "firmware_drift", "packet_loss", "sensor_fault", "loose_ct",
                                  "thermal_drift"])
def test_equal_sized_micro_batches_each_get_their_own_scores(name, frame):
    pristine = registry.build(name).fit(frame)
    det = copy.deepcopy(pristine)
    n = 24
    for k in range(0, min(len(frame) - n, 150 * n), n):
        batch = frame.iloc[k:k + n].reset_index(drop=True)  # a new frame each time, same size
        got = det.score(batch).to_numpy()
        want = copy.deepcopy(pristine).score(batch.copy()).to_numpy()  # one that never saw another batch
        np.testing.assert_array_equal(got, want, err_msg=f"batch at row {k}")
        del batch  # frees the address for the next one, as a stream loop does
