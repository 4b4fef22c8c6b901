"""loose_ct's description of an alert is remembered (issue 16): a live engine describes each open
alert again at every step that brings its meter readings, and an alert whose span got no new
readings is described from memory. The memory must never change what is said: every description
given from memory while a stream is judged piece by piece is what describing afresh gives, and the
stream's alerts are still those of the whole history judged at once."""

from __future__ import annotations

import pandas as pd

from wattwatch.detect import core, registry
from wattwatch.detect.engine import profile
from wattwatch.detect.frame import prepare, seg_bounds
from wattwatch.detect.rules import loosect
from wattwatch.detect.stitch import Stitcher

from tests.detect.test_core import ENGINE, PROFILE_DAYS, _alert_mismatches, _sim


def test_remembered_descriptions_are_what_describing_afresh_gives(monkeypatch):
    frame = _sim(meters=3, days=PROFILE_DAYS + 1.0, step="5min", seed=16, fault_share=1.0, faults=("loose_ct",),
                 profile_days=PROFILE_DAYS)
    dets = registry.build_all(["supply_outage", "packet_loss", "loose_ct"])
    profile(prepare(frame), dets, ENGINE)
    whole = core.run(frame, dets)
    assert any(a.detector == "loose_ct" for a in whole.alerts), "the fleet should raise loose_ct alerts"

    seen = {"hits": 0, "calls": 0}
    real = loosect.LooseCT.describe

    def checked(self, df, rows, scores, ctx=None):
        seg = df["_seg"].to_numpy()
        starts, ends = seg_bounds(seg)
        a, b = int(starts[seg[rows[0]]]), int(ends[seg[rows[0]]])
        hit = self._describe_key(df, rows, ctx, a, b) in self.__dict__.get("_described", {})
        got = real(self, df, rows, scores, ctx)
        seen["calls"] += 1
        if hit:
            seen["hits"] += 1
            fresh = self._describe(df, rows, ctx, seg, a, b)
            assert (got.severity, got.message, got.evidence, got.action) == \
                (fresh.severity, fresh.message, fresh.evidence, fresh.action)
        return got

    monkeypatch.setattr(loosect.LooseCT, "describe", checked)
    t = frame["ts"]
    t0 = t.min().floor("1D") + pd.Timedelta(days=PROFILE_DAYS)
    due = ((t - t0) // pd.Timedelta(hours=2)).clip(lower=-1)
    st = Stitcher(dets)
    steps = [st.feed(frame[due == d]) for d in sorted(due.unique())]
    steps.append(st.flush())
    assert seen["hits"] >= 3, f"open alerts that did not grow should be described from memory ({seen})"
    problems = _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])
