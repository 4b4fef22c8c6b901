"""Alerts formed from memory (issue 16): a live engine forms every open alert again at every step
that brings its meter readings, and the core forms an alert whose description digest
(``Detector.describe_key``: packet_loss, frozen_readings, loose_ct), meter, first and last time
and peak score it has seen from memory (``core._alert``). The memory must never change what is
said: every alert given from memory while a stream is judged piece by piece is the alert formed
afresh, and the stream's alerts are still those of the whole history judged at once. (Was
loose_ct's own memory of its descriptions; the core's replaced it.)"""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import core, registry
from wattwatch.detect.engine import profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitcher

from tests.detect.test_core import ENGINE, PROFILE_DAYS, _alert_mismatches, _sim

KEYED = ("loose_ct", "packet_loss", "frozen_readings")


@pytest.fixture(scope="module")
def fleet():
    """4 meters at 5 min with loose_ct, packet_loss and frozen faults, profiled; the whole
    history judged at once, and the alerts it formed: (detector, judgement, rows) each."""
    frame = _sim(meters=4, days=PROFILE_DAYS + 1.5, step="5min", seed=16, fault_share=1.0,
                 faults=("loose_ct", "packet_loss", "frozen_register"), profile_days=PROFILE_DAYS)
    dets = registry.build_all(["supply_outage", "packet_loss", "frozen_readings", "loose_ct"])
    profile(prepare(frame), dets, ENGINE)
    formed, real = [], core._alert

    def kept(d, j, rows, per_judged=None):
        formed.append((d, j, rows))
        return real(d, j, rows, per_judged)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "_alert", kept)
        whole = core.run(frame, dets)
    assert {a.detector for a in whole.alerts} >= set(KEYED), "the fleet should raise alerts of every keyed detector"
    return frame, dets, whole, formed


def test_alerts_from_memory_are_what_forming_afresh_gives(fleet, monkeypatch):
    frame, dets, whole, _ = fleet

    hits = {n: 0 for n in KEYED}
    real = core._alert

    def checked(d, j, rows, per_judged=None):
        known = (per_judged or {}).get("alerts")
        n = None if known is None else len(known)
        got = real(d, j, rows, per_judged)
        if known is not None and len(known) == n:   # nothing remembered anew: formed from memory
            hits[d.name] += 1
            fresh = real(d, j, rows, {})   # no memory
            assert got.to_dict() == fresh.to_dict(), f"{d.name}: from memory {got.to_dict()} != afresh {fresh.to_dict()}"
        return got

    monkeypatch.setattr(core, "_alert", checked)
    t = frame["ts"]
    t0 = t.min().floor("1D") + pd.Timedelta(days=PROFILE_DAYS)
    due = ((t - t0) // pd.Timedelta(hours=1)).clip(lower=-1)
    st = Stitcher(dets)
    steps = [st.feed(frame[due == d]) for d in sorted(due.unique())]
    steps.append(st.flush())
    assert all(v >= 1 for v in hits.values()), f"alerts that did not change should be formed from memory ({hits})"
    problems = _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])


def test_no_memory_for_a_describe_its_digest_was_not_written_for():
    """A subclass (or an instance patch) that replaces ``describe`` alone inherits a digest written
    for another description: such a detector is described every time."""
    from wattwatch.detect.rules.packets import PacketLoss

    class Reworded(PacketLoss):
        def describe(self, df, rows, scores, ctx=None):
            return super().describe(df, rows, scores, ctx)

    class Rekeyed(Reworded):
        def describe_key(self, df, rows, scores, ctx=None):
            return super().describe_key(df, rows, scores, ctx)

    patched = PacketLoss()
    patched.describe = Reworded.describe.__get__(patched)
    assert core._alerts_memo(PacketLoss()) is not None
    assert core._alerts_memo(Reworded()) is None
    assert core._alerts_memo(patched) is None
    assert core._alerts_memo(Rekeyed()) is not None
    assert core._alerts_memo(registry.build_all(["harmonic_noise"])[0]) is None   # no digest at all


def test_a_meter_learned_again_is_described_afresh(fleet):
    """A running watcher re-learns a meter (``alerts ack``) on the same detector, config and
    memory: an alert whose readings did not change but whose learned normal did (the normal
    loose_ct's evidence and message quote) is described again, not given from memory."""
    _, _, _, formed = fleet
    d, j, rows = next(f for f in formed if f[0].name == "loose_ct")
    det = d.clone()   # (the fixture's detectors keep their state)
    per_judged = {"alerts": core._alerts_memo(det)}
    before = core._alert(det, j, rows, per_judged)
    st = det.state_[before.meter_id]
    det.state_[before.meter_id] = {**st, "erratic_normal": 2 * st["erratic_normal"] + 0.01,
                                   "erratic_normal_any": 2 * st["erratic_normal_any"] + 0.01}
    fresh = core._alert(det, j, rows, {})
    assert fresh.to_dict() != before.to_dict(), "the change should be one the description reads"
    assert core._alert(det, j, rows, per_judged).to_dict() == fresh.to_dict()


def test_memory_is_not_carried_by_a_copy_a_pickle_or_another_config(fleet):
    """The memory is the instance's cache: a detector pickled to Spark's executors or copied for a
    group of meters (``runners.spark``) carries none of it and shares none of it; a detector given
    another config starts afresh."""
    _, _, _, formed = fleet
    d, j, rows = next(f for f in formed if f[0].name == "packet_loss")
    det = d.clone()
    core._alert(det, j, rows, {"alerts": core._alerts_memo(det)})
    memo = core._alerts_memo(det)
    assert len(memo) == 1
    for other in (pickle.loads(pickle.dumps(det)), copy.copy(det), copy.deepcopy(det)):
        assert "_alerts_memo" not in other.__dict__ and other.state_ == det.state_
        assert len(core._alerts_memo(other)) == 0 and len(memo) == 1
    assert len(pickle.dumps(det)) == len(pickle.dumps(d.clone()))
    det.config = dataclasses.replace(det.config)
    assert core._alerts_memo(det) is not memo and len(core._alerts_memo(det)) == 0


def test_readings_before_an_alert_that_its_description_reads_are_in_its_digest(fleet):
    """Late readings re-judged (``runners.rejudge``) can change what a description reads before
    the alert's first reading while its own readings stay as they were: packet_loss's search for
    where the loss began (the window behind the first reading), loose_ct's rolling medians (their
    half window back). Such an alert is described again, not given from memory."""
    _, _, _, formed = fleet
    done = set()
    for d, j, rows in formed:
        if d.name in done or d.name not in ("packet_loss", "loose_ct"):
            continue
        r0 = int(rows[0])
        m0 = int(np.searchsorted(j.input["_seg"].to_numpy(), j.input["_seg"].iat[r0]))
        if d.name == "packet_loss":   # nothing lost before the alert's first reading
            lost = np.array(j.ctx[1], float)
            lost[m0:r0] = 0.0
            other = dataclasses.replace(j, ctx=(j.ctx[0], lost, *j.ctx[2:]))
        else:   # the currents of the readings before it a half larger
            df = j.input.copy()
            for c in ("i_l1_a", "i_l2_a", "i_l3_a"):
                df[c] = np.where((np.arange(len(df)) >= m0) & (np.arange(len(df)) < r0), 1.5, 1.0) * df[c]
            other = dataclasses.replace(j, input=df)
        fresh = core._alert(d, other, rows, {})
        if fresh.to_dict() == core._alert(d, j, rows, {}).to_dict():
            continue   # (this alert's description does not read them)
        det = d.clone()
        known = core._alerts_memo(det)
        core._alert(det, j, rows, {"alerts": known})
        assert core._alert(det, other, rows, {"alerts": known}).to_dict() == fresh.to_dict(), d.name
        done.add(d.name)
    assert done == {"packet_loss", "loose_ct"}, f"no alert of {set(('packet_loss', 'loose_ct')) - done} read them"
