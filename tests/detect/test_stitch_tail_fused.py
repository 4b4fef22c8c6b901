"""tail (issue 16): a fast step's tail is put together without a frame per pass. The cut tail's
columns, the meters not judged put back (``stitch._merge_sides``) and the compaction are one
dict built into one frame at the end (``stitch.FUSED_TAIL``), and a merge of many runs (every
meter in the piece) gathers both sides' rows by one index instead of per-row masks.

Random pieces (uneven lengths; now and then meters held back to the next piece, so that some
meters are not judged and their tails are put back; now and then a reading held back two pieces,
so that it arrives after its meter's later readings: a late reading, the sorted path) at three
cadences, fed to the stream's fast-tier stitchers twice: the way before (a frame after each pass,
merges by slices) and the fast way (fused, every merge by one gather). Every step must give the
same alerts (JSON), open ids, and tails: columns, their forms (dtype) and values bit for bit."""

from __future__ import annotations

import gc
import json

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import registry, stitch
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitchers
from wattwatch.sim import SimConfig, simulate

# The stream's fast tier at these cadences (short reach; supply_outage, harmonic_noise and
# loose_ct share a stitcher; frozen_readings and channel_invalid another).
FAST = ["supply_outage", "harmonic_noise", "loose_ct", "packet_loss", "frozen_readings", "channel_invalid"]


def _view(a) -> str:
    return json.dumps(json.loads(a.to_json()), sort_keys=True)


def _pieces(frame: pd.DataFrame, piece_s: float, rng):
    t = ((frame["ts"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    meters = frame["meter_id"].astype(str).to_numpy()
    names = sorted(set(meters))
    edges = [-np.inf, t.min() + 86400.0]
    while edges[-1] < t.max():
        edges.append(edges[-1] + piece_s * rng.uniform(0.3, 2.0))
    held = np.zeros(len(frame), bool)      # meters' readings held back to the next piece
    later = np.zeros(len(frame), bool)     # single readings held back two pieces (late)
    prev_late = np.zeros(len(frame), bool)
    for lo, hi in zip(edges[:-1], edges[1:]):
        now = (t > lo) & (t <= hi)
        wait = now & np.isin(meters, list(rng.choice(names, 2, replace=False)) if rng.random() < 0.5 else [])
        late = np.zeros(len(frame), bool)
        if np.isfinite(lo) and rng.random() < 0.3:
            cand = np.flatnonzero(now & ~wait)
            if len(cand) > 2:
                late[rng.choice(cand[:-1], 1)] = True
        yield frame[(now & ~wait & ~late) | held | prev_late]
        held, prev_late, later = wait, later, late


def _same_tail(a: pd.DataFrame | None, b: pd.DataFrame | None, where: str) -> None:
    assert (a is None) == (b is None), where
    if a is None:
        return
    assert list(a.columns) == list(b.columns), where
    assert [str(d) for d in a.dtypes] == [str(d) for d in b.dtypes], where
    assert list(a["meter_id"].cat.categories) == list(b["meter_id"].cat.categories), where
    assert np.array_equal(a["meter_id"].array.codes, b["meter_id"].array.codes), where
    assert np.array_equal(a["ts"].array.asi8, b["ts"].array.asi8) and a["ts"].dtype == b["ts"].dtype, where
    for c in a.columns[2:]:
        x, y = stitch._values(a[c]), stitch._values(b[c])
        assert x.dtype == y.dtype, (where, c)
        if x.dtype.kind == "f":
            x, y = x.view(np.int64), y.view(np.int64)   # bit for bit (NaN, -0.0)
        assert np.array_equal(x, y), (where, c)


@pytest.mark.parametrize("step,seed,piece_min", [("1min", 5101, 45), ("5min", 5102, 120), ("15min", 5103, 300)])
def test_fused_tail_and_gathered_merges_give_the_tail_and_alerts_of_the_way_before(step, seed, piece_min, monkeypatch):
    sim = simulate(SimConfig(meters=5, days=1.6 if step == "1min" else 2.5, step=step, seed=seed, fault_share=0.8,
                             profile_days=1.0, background_loss=0.004, outage_share=0.5,
                             faults=("packet_loss", "harmonic_noise", "loose_ct", "open_ct")))
    frame = sim["frame"].drop_duplicates(["meter_id", "ts"]).sort_values(["ts", "meter_id"]).reset_index(drop=True)
    dets = registry.build_all(FAST)
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    before, fast = Stitchers(dets, keep_scores=False), Stitchers(dets, keep_scores=False)
    ways = {id(before): (10 ** 9, False), id(fast): (0, True)}   # (RUNS_AS_SLICES, FUSED_TAIL)

    monkeypatch.setattr(stitch, "ROOM", False)   # (the tail as a frame: the paths compared here; ly)

    def feed(s, piece, final=False):
        runs, fused = ways[id(s)]
        monkeypatch.setattr(stitch, "RUNS_AS_SLICES", runs)
        monkeypatch.setattr(stitch, "FUSED_TAIL", fused)
        return s.flush() if final else s.feed(piece)

    rng = np.random.default_rng(seed)
    n_alerts = put_back = late = 0
    for k, piece in enumerate(_pieces(frame, 60.0 * piece_min, rng)):
        tail = fast.parts[0].tail
        if tail is not None and len(piece) and len(tail):   # a reading before its meter's last in the tail
            last = tail.groupby("meter_id", observed=True)["ts"].max()
            first = piece.groupby(piece["meter_id"].astype(str))["ts"].min()
            last.index = last.index.astype(str)
            late += bool((first.reindex(last.index) < last).any())
        put_back += tail is not None and piece["meter_id"].nunique() < frame["meter_id"].nunique()
        a, b = feed(before, piece), feed(fast, piece)
        assert [_view(x) for x in a.alerts] == [_view(x) for x in b.alerts], f"piece {k}: alerts differ"
        assert a.open_ids == b.open_ids, f"piece {k}: open ids differ"
        for i, (p, q) in enumerate(zip(before.parts, fast.parts)):
            _same_tail(p.tail, q.tail, f"piece {k}, stitcher {i}")
        n_alerts += len(b.alerts)
    a, b = feed(before, None, True), feed(fast, None, True)
    assert [_view(x) for x in a.alerts] == [_view(x) for x in b.alerts], "flush: alerts differ"
    n_alerts += len(b.alerts)
    # The paths this is about were taken (else the comparison proves nothing about them).
    assert n_alerts >= 5, "too few alerts to compare"
    assert put_back >= 3, "no piece left meters out: no tail was put back"
    assert late >= 2, "no late reading: the sorted path was not taken"


def test_the_tail_is_not_held_decoded_through_the_core(monkeypatch):
    """rtail: a merge side of the tail does not keep its compact columns decoded (a dense copy of
    the tail, held from the piece's merge through ``core.run`` to the put-back of the meters not
    judged): with the slow tier's compact readings that raised a feed's peak memory 13-30 %
    (28.7 -> 32.6 MB, 12.5 -> 16.4 MB) and saved no CPU one could measure. Both pieces: every
    meter judged, then one meter left out (its tail put back after the core)."""
    sim = simulate(SimConfig(meters=4, days=1.5, step="15min", seed=5104, fault_share=0.5))
    frame = sim["frame"].drop_duplicates(["meter_id", "ts"]).sort_values(["ts", "meter_id"]).reset_index(drop=True)
    dets = registry.build_all(["supply_outage", "frozen_readings"])
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    st = stitch.Stitcher(dets, keep_scores=False, compact_readings=True)
    ts = np.sort(frame["ts"].unique())
    st.feed(frame[frame["ts"] < ts[-12]])
    sides, held = [], []
    of, run = stitch._Side.of, stitch.core.run

    def side_of(df, *a, **k):
        sides.append(of(df, *a, **k))
        return sides[-1]

    def core_run(*a, **k):   # arrays the sides made so far hold in a dict of their own (a memo)
        held.append(sum(v.nbytes for s in sides for d in gc.get_referents(s) if isinstance(d, dict)
                        for v in d.values() if isinstance(v, np.ndarray)))
        return run(*a, **k)

    monkeypatch.setattr(stitch._Side, "of", staticmethod(side_of))
    monkeypatch.setattr(stitch.core, "run", core_run)
    now = frame[(frame["ts"] >= ts[-12]) & (frame["ts"] < ts[-6])]
    assert now["meter_id"].nunique() == frame["meter_id"].nunique()
    st.feed(now)
    one = frame["meter_id"].astype(str).sort_values().iloc[0]
    tail = st.tail
    st.feed(frame[(frame["ts"] >= ts[-6]) & (frame["meter_id"].astype(str) != one)])
    assert one in set(st.tail["meter_id"].astype(str)) and len(sides) >= 2 and tail is not st.tail   # put back
    assert held == [0, 0], "the tail held decoded through core.run"
