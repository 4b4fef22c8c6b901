"""Issue 16 (ly): the tail held with room per meter (``stitch._Room``: a piece's readings written
after their meters', the front cut by moving a start, the arrays made again only when a block is
full) gives the tail, alerts and open ids the tail as a frame gives (``stitch.ROOM = False``:
merged, cut and put back at every piece), bit for bit.

Random pieces of the stream's fast tier at 15 min: uneven lengths, now and then meters held back
(not judged: their blocks stay), a reading held back two pieces (a late reading: the frame's
sorted merge that piece), a meter whose readings start only later (a new meter), a meter that
leaves (forgotten, then fed again later), pieces without readings; with known scores dropped and taken up again (a detector
whose known scores saved nothing, ``UNKEPT_PIECES``); with little room (``ROOM_SPARE``, ``ROOM_LEAST``
0: the arrays made again every few pieces, and trimmed), so that every move is taken."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from wattwatch.detect import registry, stitch
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitchers
from wattwatch.sim import SimConfig, simulate

FAST = ["supply_outage", "harmonic_noise", "loose_ct", "packet_loss", "frozen_readings", "channel_invalid"]


def _view(a) -> str:
    return json.dumps(json.loads(a.to_json()), sort_keys=True)


def _same_tail(ref: pd.DataFrame | None, got: pd.DataFrame | None, where: str) -> None:
    """The same readings and known scores per meter, every column bit for bit (the room holds its
    columns dense: compared as dense_columns gives the frame's)."""
    ref = None if ref is None or not len(ref) else ref
    got = None if got is None or not len(got) else got
    assert (ref is None) == (got is None), where
    if ref is None:
        return
    ref = stitch.dense_columns(ref)
    assert sorted(ref.columns) == sorted(got.columns), where   # (the order of the columns: not compared)
    assert list(ref["meter_id"].astype(str)) == list(got["meter_id"].astype(str)), where
    assert np.array_equal(ref["ts"].array.asi8, got["ts"].array.asi8) and ref["ts"].dtype == got["ts"].dtype, where
    for c in ref.columns[2:]:   # (by name)
        x, y = stitch._values(ref[c]), stitch._values(got[c])
        assert x.dtype == y.dtype, (where, c)
        if x.dtype.kind == "f":
            x, y = x.view(np.int64), y.view(np.int64)   # bit for bit (NaN, -0.0)
        assert np.array_equal(x, y), (where, c)


def test_room_gives_the_tail_and_alerts_of_the_frame(monkeypatch):
    # (a detector's known scores not kept for 2 pieces after they saved nothing, not 32: columns
    # dropped and taken up again often, and kept often enough for the calm meters' to be cleared)
    monkeypatch.setattr(stitch, "UNKEPT_PIECES", 2)
    sim = simulate(SimConfig(meters=4, days=2.0, step="15min", seed=1609, fault_share=0.8, profile_days=1.0,
                             background_loss=0.004, outage_share=0.5,
                             faults=("packet_loss", "harmonic_noise", "loose_ct", "open_ct")))
    frame = sim["frame"].drop_duplicates(["meter_id", "ts"]).sort_values(["ts", "meter_id"]).reset_index(drop=True)
    names = sorted(frame["meter_id"].astype(str).unique())
    dets = registry.build_all(FAST)
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    ref, room = Stitchers(dets, keep_scores=False), Stitchers(dets, keep_scores=False)
    # Little room (a third of a block's readings, none at least): pieces written into the room
    # and pieces that make the arrays again, both often.
    monkeypatch.setattr(stitch, "ROOM_SPARE", 0.34)
    monkeypatch.setattr(stitch, "ROOM_LEAST", 0)
    took, grown, into = [0], [0], [0]
    feed_room, append = stitch.Stitcher._feed_room, stitch._Room.append

    def counted(self, r, piece):
        out = feed_room(self, r, piece)
        took[0] += out is not None
        return out

    def appended(self, piece, lo, hi):
        g = self.grown
        append(self, piece, lo, hi)
        grown[0] += self.grown > g
        into[0] += self.grown == g and bool((hi > lo).any())

    monkeypatch.setattr(stitch.Stitcher, "_feed_room", counted)
    monkeypatch.setattr(stitch._Room, "append", appended)

    def feed(s, piece, final=False):
        monkeypatch.setattr(stitch, "ROOM", s is room)
        return s.flush() if final else s.feed(piece)

    rng = np.random.default_rng(1609)
    t = ((frame["ts"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    meters = frame["meter_id"].astype(str).to_numpy()
    newcomer, leaver = names[-1], names[0]
    edges = [-np.inf, t.min() + 86400.0]
    while edges[-1] < t.max():
        edges.append(edges[-1] + 3600.0 * rng.uniform(0.25, 1.5))
    held = later = prev_late = np.zeros(len(frame), bool)
    n_alerts = late = 0
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        now = (t > lo) & (t <= hi)
        if k < 4:
            now &= meters != newcomer   # a meter the tail does not hold yet
        if k == 12:
            for s in (ref, room):   # a meter leaves (its carry forgotten); fed again 4 pieces later
                for p in s.parts:
                    p.forget([leaver])
        if 12 <= k < 16:
            now &= meters != leaver
        if k in (11, 12, 23, 24):   # gaps in a calm meter's readings (judged again after: by the room)
            now &= meters != names[2]
        wait = now & np.isin(meters, list(rng.choice(names, 2, replace=False)) if rng.random() < 0.4 else [])
        lt = np.zeros(len(frame), bool)
        if k % 4 == 0 and k > 1 and rng.random() < 0.7:   # (fed two pieces later: the frame's, that piece)
            cand = np.flatnonzero(now & ~wait)
            if len(cand) > 2:
                lt[rng.choice(cand[:-1], 1)] = True
        piece = frame[(now & ~wait & ~lt) | held | prev_late]
        late += bool(prev_late.any())
        held, prev_late, later = wait, later, lt
        if k % 3 == 1:   # a piece without readings first (nothing judged: the tail kept as it was)
            a, b = feed(ref, piece.iloc[:0]), feed(room, piece.iloc[:0])
            assert a.open_ids == b.open_ids and not a.alerts and not b.alerts, f"piece {k}: empty"
            for i, (p, q) in enumerate(zip(ref.parts, room.parts)):
                _same_tail(p.tail, q.tail, f"empty piece before {k}, stitcher {i}")
        a, b = feed(ref, piece), feed(room, piece)
        assert [_view(x) for x in a.alerts] == [_view(x) for x in b.alerts], f"piece {k}: alerts differ"
        assert a.open_ids == b.open_ids, f"piece {k}: open ids differ"
        for i, (p, q) in enumerate(zip(ref.parts, room.parts)):
            _same_tail(p.tail, q.tail, f"piece {k}, stitcher {i}")
        n_alerts += len(b.alerts)
    a, b = feed(ref, None, True), feed(room, None, True)
    assert [_view(x) for x in a.alerts] == [_view(x) for x in b.alerts], "flush: alerts differ"
    n_alerts += len(b.alerts)
    # The paths this is about were taken (else the comparison proves nothing about them).
    assert n_alerts >= 5, "too few alerts to compare"
    assert late >= 2, "no late reading"
    assert took[0] >= 50, f"the room took {took[0]} feeds"
    assert grown[0] >= 10, f"the room's arrays were made again at {grown[0]} pieces"
    assert into[0] >= 10, f"{into[0]} pieces written into the room"
