"""fs (issue 16): a stitcher's cut of the tail takes the detectors' reaches and blockers from the
core's run of the same meters (``Result.reach``, ``Result.blockers``), which found them already,
rather than computing them again each step. What it is handed must be what it would compute:
:func:`core.reaches` and :func:`core.blockers` of the stitcher's detectors on the frame's meters,
bit for bit, also where the run gives provisional alerts (whose reaches leave the long blockers
out) and where a meter is not judged. Every cut of a stream at 5 min with the fast tier's
value rules (loose_ct blanked by supply_outage and harmonic_noise) is checked."""

from __future__ import annotations

import numpy as np

from wattwatch.detect import core, registry, stitch
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.sim import SimConfig, simulate


def _same_reach(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(np.asarray(getattr(a[k], f)), np.asarray(getattr(b[k], f)))
        and np.asarray(getattr(a[k], f)).dtype == np.asarray(getattr(b[k], f)).dtype
        for k in a for f in ("back_s", "back_n", "ahead_s", "ahead_n"))


def _same_blockers(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        [n for n, _ in a[k]] == [n for n, _ in b[k]]
        and all(np.array_equal(np.asarray(x), np.asarray(y)) for (_, x), (_, y) in zip(a[k], b[k])) for k in a)


def test_the_cut_is_handed_the_reaches_and_blockers_it_would_compute(monkeypatch):
    sim = simulate(SimConfig(meters=4, days=1.6, step="5min", seed=5111, fault_share=0.8, profile_days=1.0,
                             outage_share=0.5, faults=("harmonic_noise", "loose_ct", "open_ct")))
    frame = sim["frame"].drop_duplicates(["meter_id", "ts"]).sort_values(["ts", "meter_id"]).reset_index(drop=True)
    dets = registry.build_all(["supply_outage", "harmonic_noise", "loose_ct"])
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    # (provisional: as the stream's fast tier, so that the run also finds reaches without its
    # long blockers, which must not be the ones handed on)
    st = stitch.Stitcher(dets, keep_scores=False, provisional=3600.0)
    checked = []
    # (the cut's two halves, which the tail as a frame (_cut_tail) and held with room both call: ly)
    rows, known = stitch.Stitcher._cut_rows, stitch.Stitcher._cut_known

    def cut_rows(self, frame, names, starts, ends, t, whole=None, reach=None):
        if reach is not None:
            assert _same_reach(reach, core.reaches(self.detectors, names)), "reaches handed differ"
        checked.append([reach is not None, None, len(names)])
        return rows(self, frame, names, starts, ends, t, whole, reach)

    def cut_known(self, cols, names, cut, t, keep, blk=None):
        if blk is not None:
            assert _same_blockers(blk, core.blockers(self.detectors, names)), "blockers handed differ"
        checked[-1][1] = blk is not None
        return known(self, cols, names, cut, t, keep, blk)

    monkeypatch.setattr(stitch.Stitcher, "_cut_rows", cut_rows)
    monkeypatch.setattr(stitch.Stitcher, "_cut_known", cut_known)
    ts = np.sort(frame["ts"].unique())
    meters = sorted(frame["meter_id"].astype(str).unique())
    st.feed(frame[frame["ts"] < ts[290]])
    for k, lo in enumerate(range(290, len(ts), 24)):
        piece = frame[(frame["ts"] >= ts[lo]) & (frame["ts"] < ts[min(lo + 24, len(ts) - 1)])]
        if k % 3 == 1:   # a meter left out: its tail is put back, the others judged
            piece = piece[piece["meter_id"].astype(str) != meters[k % len(meters)]]
        st.feed(piece)
    st.flush()
    handed = [c for c in checked if c[0] and c[1]]
    assert len(handed) >= 5, checked                     # the run's reaches were handed on
    assert any(n < len(meters) for _, _, n in handed)     # also with a meter not judged
