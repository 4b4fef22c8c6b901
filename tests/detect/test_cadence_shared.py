"""The stretch's cadence is worked out once per judged frame (cad49): packet_loss, firmware_drift
and neutral_tamper follow it, and each asked for it on its own (three passes over the windows of
gaps per judging: 2.8 s per 864,000 jittery 1-s readings each, rev43).
The windows' verdict is kept in the frame's scratch space under a key holding everything it
depends on (the arrays of gaps and meter codes, the learned cadences, the gaps per side and the
share), handed to a frame whose channels a detector's blockers blanked (it reads no channel), and
each detector's scores are the ones it gives judging alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import ENGINE
from tests.detect.test_cadence_change import T0, _home, _reconfigured, _three_phase
from wattwatch.detect import cadence, core, registry
from wattwatch.detect.engine import profile
from wattwatch.detect.frame import prepare, times_cache

NAMES = ["packet_loss", "firmware_drift", "neutral_tamper"]


@pytest.fixture(scope="module")
def fleet():
    home = _reconfigured(_home("1min", 7), "1min", "5min", 4)
    three, _ = _three_phase("1min", 5)
    three = _reconfigured(three[pd.to_datetime(three["ts"], utc=True) < T0 + pd.Timedelta(days=7)], "1min", "5min", 4)
    return pd.concat([home, three.assign(meter_id="T")], ignore_index=True)


def _counted(monkeypatch):
    calls = []
    orig = cadence.run_cadence

    def counted(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    monkeypatch.setattr(cadence, "run_cadence", counted)
    return calls


@pytest.mark.parametrize("packets", [{}, {"cadence_share": 0.7}], ids=["default", "packets-own-share"])
def test_one_verdict_per_frame_and_every_detector_scores_as_alone(fleet, monkeypatch, packets):
    dets = [registry.build(n, packets if n == "packet_loss" else None) for n in NAMES]
    profile(prepare(fleet), dets, ENGINE)
    alone = {d.name: {j.det.name: j for j in core.run(fleet, [d]).judged}[d.name].scores for d in dets}
    calls = _counted(monkeypatch)
    res = core.run(fleet, dets)
    # One pass for the three (two where packet_loss asks for another share: its own key).
    assert len(calls) == (2 if packets else 1)
    for j in res.judged:
        assert np.array_equal(j.scores, alone[j.det.name], equal_nan=True), j.det.name
    # The new stretch runs at 5 minutes (the verdict shared is not the learned cadence throughout).
    p = res.frame
    c, _ = cadence.stretch_cadence(p["_seg"].to_numpy(), p["_dt"].to_numpy(float),
                                   np.array([dets[1].state_[m]["cadence_s"] for m in ("M-00001", "T")]))
    assert (c[(p["ts"] >= T0 + pd.Timedelta(days=5)).to_numpy()] == 300.0).all()


def test_a_blanked_frame_shares_the_verdict_whatever_channels_it_blanks(fleet, monkeypatch):
    p = prepare(fleet)
    seg, dt = p["_seg"].to_numpy(), p["_dt"].to_numpy(float)
    cad_m = np.array([60.0, 60.0])
    calls = _counted(monkeypatch)
    blanked = [core._blanked(p, np.ones(len(p), bool), channels)
               for channels in (("i_n_a",), ("p_kw", "e_kwh"), ("i_l1_a", "i_l2_a", "i_l3_a"))]
    # Worked out on one blanked frame first (a blocked detector judging before the others):
    # the frame it came from and its siblings find it.
    b0 = blanked[0]
    c0, _ = cadence.stretch_cadence(b0["_seg"].to_numpy(), b0["_dt"].to_numpy(float), cad_m, memo=times_cache(b0))
    for f in (p, *blanked):
        c, _ = cadence.stretch_cadence(f["_seg"].to_numpy(), f["_dt"].to_numpy(float), cad_m, memo=times_cache(f))
        assert np.array_equal(c, c0, equal_nan=True)
    assert len(calls) == 1
    # ... and it is the verdict without a memo.
    c1, _ = cadence.stretch_cadence(seg, dt, cad_m)
    assert np.array_equal(c0, c1, equal_nan=True) and len(calls) == 2
    # Another learned cadence, other gaps per side: not the entry kept.
    cadence.stretch_cadence(seg, dt, np.array([60.0, 300.0]), memo=times_cache(p))
    cadence.stretch_cadence(seg, dt, cad_m, np.array([12, 12]), memo=times_cache(p))
    cadence.stretch_cadence(seg, dt, cad_m, memo=times_cache(p))
    assert len(calls) == 4
