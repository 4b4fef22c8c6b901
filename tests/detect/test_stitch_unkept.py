"""lat65 (issue 16): a detector whose known scores saved nothing (``Stitcher._unkept``: it scores
most of the tail anyway, packet_loss with its 6 h reach each way) has its known-score columns
(``_c:`` and ``_k:``) dropped from the carried tail while its scores are not kept, instead of
carried, merged, gathered, prepared and cut at every piece (at 200 meters two columns of ~150,000
rows a fast step). Dropped, the detector scores those rows afresh, as after a checkpoint: the
same alerts at every piece as a stitcher that never keeps known scores, and in the end the whole
history's alerts."""

from __future__ import annotations

import pandas as pd

from wattwatch.detect import core
from wattwatch.detect.stitch import KNOWN, Stitcher, latest, read_channels
from tests.detect.test_stitch_calm import _fleet, _view


def test_known_scores_that_saved_nothing_are_not_carried_and_change_no_alert():
    frame, dets = _fleet("5min", 6501)   # seed not used by the tests this one borrows from
    frame = frame[frame["ts"] < frame["ts"].min() + pd.Timedelta(hours=40)].reset_index(drop=True)
    cols = read_channels(dets)
    name = dets[0].name
    kept = Stitcher(dets, keep_scores=False, columns=cols)
    fresh = Stitcher(dets, keep_scores=False, columns=cols, known_scores=False)
    t = frame["ts"]
    edges = [t.min() - pd.Timedelta(seconds=1), t.min() + pd.Timedelta(days=1)]
    while edges[-1] < t.max():
        edges.append(edges[-1] + pd.Timedelta(minutes=20))
    got, carried_unkept, unkept_pieces = [], 0, 0
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        p = frame[(t > lo) & (t <= hi)]
        unkept = kept._unkept.get(name, 0) > 0   # at the start of the piece
        a, b = kept.feed(p), fresh.feed(p)
        assert sorted(map(_view, a.alerts)) == sorted(map(_view, b.alerts)), f"piece {k}: alert versions differ"
        assert a.open_ids == b.open_ids, f"piece {k}: open alerts differ"
        got += a.alerts
        if unkept and kept._unkept.get(name, 0) > 0:
            unkept_pieces += 1
            carried_unkept += int(kept.tail is not None and (f"_c:{name}" in kept.tail.columns
                                                              or KNOWN + name in kept.tail.columns))
    a, b = kept.flush(), fresh.flush()
    assert sorted(map(_view, a.alerts)) == sorted(map(_view, b.alerts))
    got += a.alerts
    assert unkept_pieces >= 20, "the known scores were never found to save nothing: nothing tested"
    # Before lat65 the columns stayed in the tail for good once written (every such piece here).
    assert carried_unkept == 0, f"{carried_unkept} of {unkept_pieces} pieces carried unkept known scores"
    want = core.run(frame, dets).alerts
    assert len(want) >= 2, "the fleet lost too few packets to alert"
    assert {i: _view(x) for i, x in latest(got).items()} == {x.id: _view(x) for x in want}
