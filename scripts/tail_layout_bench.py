"""(tl, issue 16) What a tail held with room per meter would save of the fast step's data movement,
measured on real feeds before it is built into the stitcher.

    PYTHONPATH=src python scripts/replay_fast_feeds.py dump /tmp/tl/feeds12.pkl 12
    PYTHONPATH=src python scripts/tail_layout_bench.py /tmp/tl/feeds12.pkl [REPS] [SPARE]

``SPARE``: room per meter as a share of its live rows when the layout is built (0.5; 0: every
block full, so every step compacts and grows the blocks that take rows: the worst case, and the
check of that path).

Each recorded piece is fed to the pickled fast tier (``Stitchers``) as the stream does; per group
(stitcher) the thread CPU of its feed's data-movement sections is taken as it runs (the merges,
the cut, the calm meters' tail, the put-back and compaction: ``_merge``, ``_merge_sides``,
``_cut_tail``, ``_calm_tail``, ``_put_tail``; ``prepare`` and ``core.run`` apart). Then the same step
is done on :class:`Room`, a prototype of the layout (per meter a block of storage with room after
its live rows; a piece's rows written after them, the front cut by moving a start index, the
storage compacted and grown geometrically only when a meter's block is full), from the group's
tail before the feed to its tail after: the piece appended, the frame the core reads gathered
(every meter the feed judged; all of them for the loose-CT group), the cut, the known scores
written back. The layout's tail after the step is checked equal, bit for bit, to the stitcher's
(its dense columns): the prototype does every move the real step does, no fewer. Old and new are
alternated per piece (the stitcher's feed first, then the prototype on the same data). Not
modelled (docs/live-log.md, tl): late readings, new meters or columns (such a step is skipped), the
calm meters' known-score flags cleared (their rows' score columns are taken as the stitcher left
them in the comparison), ``_without_copies`` and ``_calm`` reading the storage.
"""
from __future__ import annotations

import collections
import pickle
import sys
import time

import numpy as np
import pandas as pd

from wattwatch.detect import core, stitch


class Room:
    """A tail by meter with room after each meter's live rows (numpy columns; ``ts`` as int64)."""

    def __init__(self, tail: pd.DataFrame, spare: float = 0.5):
        d = stitch.dense_columns(tail)
        self.unit = d["ts"].array.unit
        self.cats = d["meter_id"].cat.categories
        lo, hi = stitch._blocks(d, self.cats, None)
        n = hi - lo
        self.cap = np.maximum(np.ceil(n * (1 + spare)).astype(np.int64), 8)
        self.base = np.cumsum(self.cap) - self.cap
        self.start = self.base.copy()
        self.end = self.base + n
        rows = stitch._ranges(self.base, n)
        size = int(self.cap.sum())
        self.cols = {}
        for c in d.columns:
            if c == "meter_id":
                continue
            v = d["ts"].array.asi8 if c == "ts" else d[c].to_numpy()
            s = np.zeros(size, v.dtype) if v.dtype == bool else np.full(size, np.nan if v.dtype.kind == "f" else 0, v.dtype)
            s[rows] = v
            self.cols[c] = s
        self.grown = 0

    def append(self, piece: pd.DataFrame) -> None:
        """A piece's rows (by meter, time-ordered after each meter's live rows) after its meters'."""
        lo, hi = stitch._blocks(piece, self.cats, None)
        n = hi - lo
        if np.any(self.end + n > self.base + self.cap):
            self._grow(n)
        at = stitch._ranges(self.end, n)
        src = stitch._ranges(lo, n)
        for c, s in self.cols.items():
            if c == "ts":
                s[at] = piece["ts"].array.as_unit(self.unit).asi8[src]
            elif c in piece.columns:
                s[at] = piece[c].to_numpy()[src]
            else:
                s[at] = False if s.dtype == bool else np.nan
        self.end = self.end + n

    def _grow(self, more: np.ndarray) -> None:
        """Every block compacted (live rows to its base) and the full ones' room doubled."""
        n = self.end - self.start
        cap = np.where(n + more > self.cap, np.maximum(2 * self.cap, n + more), self.cap)
        base = np.cumsum(cap) - cap
        src, dst = stitch._ranges(self.start, n), stitch._ranges(base, n)
        for c, s in self.cols.items():
            t = np.zeros(int(cap.sum()), s.dtype)
            t[dst] = s[src]
            self.cols[c] = t
        self.cap, self.base, self.start, self.end = cap, base, base.copy(), base + n
        self.grown += 1

    def rows(self, meters: np.ndarray | None = None) -> np.ndarray:
        """Storage rows of the live readings (of ``meters``: per category, None all), in frame order."""
        n = self.end - self.start
        if meters is not None:
            n = np.where(meters, n, 0)
        return stitch._ranges(self.start, n)

    def frame(self, rows: np.ndarray, meters: np.ndarray | None = None) -> pd.DataFrame:
        """The frame of those rows (gathered once) as the core is given it: ``meter_id`` a
        Categorical of the meters that have rows, ``ts`` tz-aware UTC in the tail's unit."""
        n = self.end - self.start
        if meters is not None:
            n = np.where(meters, n, 0)
        used = n > 0
        out = {"meter_id": pd.Categorical.from_codes(np.repeat(np.arange(int(used.sum())), n[used]),
                                                     categories=self.cats[used])}
        for c, s in self.cols.items():
            v = s.take(rows)
            out[c] = pd.DatetimeIndex(v.view(f"M8[{self.unit}]")).tz_localize("UTC").array if c == "ts" else v
        return pd.DataFrame(out, copy=False)

    def cut(self, drop: np.ndarray) -> None:
        self.start = self.start + drop

    def dense(self) -> dict:
        r = self.rows()
        return {c: s[r] for c, s in self.cols.items()}


def main(path: str, reps: int, spare: float) -> None:
    d = pickle.load(open(path, "rb"))
    cpu = collections.defaultdict(list)
    parts_ms = collections.defaultdict(lambda: collections.defaultdict(list))
    bad = 0
    for rep in range(reps):
        st = pickle.loads(d["state"])
        for k, (piece, final) in enumerate(d["pieces"]):
            piece = stitch._by_meter(stitch._plain(piece))
            for gi, p in enumerate(st.parts):
                label = p.detectors[0].name
                before = p.tail
                secs = collections.defaultdict(float)
                wrapped = {}
                for nm in ("_merge", "_merge_sides", "_calm_tail", "_compact_cols", "_gather"):
                    f = getattr(stitch, nm)

                    def w(*a, _f=f, _n=nm, **kw):
                        c0 = time.thread_time()
                        try:
                            return _f(*a, **kw)
                        finally:
                            secs[_n] += time.thread_time() - c0
                    wrapped[nm] = f
                    setattr(stitch, nm, w)
                cut0 = p._cut_tail

                inside = [False]

                def cw(*a, **kw):
                    c0 = time.thread_time()
                    inside[0] = True
                    try:
                        return cut0(*a, **kw)
                    finally:
                        inside[0] = False
                        secs["_cut_tail"] += time.thread_time() - c0
                p._cut_tail = cw
                for nm in ("_first_kept", "_needed"):   # (the layout runs them too: counted on its side)
                    def mw(*a, _f=getattr(p, nm), _n=nm, **kw):
                        c0 = time.thread_time()
                        try:
                            return _f(*a, **kw)
                        finally:
                            if inside[0]:   # (only the cut's: _calm calls _first_kept too)
                                secs[_n] += time.thread_time() - c0
                    setattr(p, nm, mw)
                c0 = time.thread_time()
                step = p.feed(piece, final=final)
                feed = time.thread_time() - c0
                del p._cut_tail, p._first_kept, p._needed
                for nm, f in wrapped.items():
                    setattr(stitch, nm, f)
                # (nested: _merge calls _merge_sides; _calm_tail calls _gather)
                old = secs["_merge_sides"] + secs["_cut_tail"] + secs["_calm_tail"] + secs["_compact_cols"] \
                    + (secs["_gather"] if secs["_calm_tail"] == 0 else 0)
                for nm in ("_merge_sides", "_cut_tail", "_first_kept", "_needed", "_calm_tail", "_compact_cols"):
                    parts_ms[label][nm].append(1e3 * secs[nm])
                if before is None or p.tail is None:
                    continue
                after = stitch.dense_columns(p.tail)
                own = stitch._by_meter(p._own(piece))
                own = stitch._without_copies(own, stitch._by_meter(before))
                room = Room(before, spare)
                if not room.cats.equals(after["meter_id"].cat.categories) or not own["meter_id"].cat.categories.isin(room.cats).all():
                    continue   # (a new meter: not in the prototype)
                judged = step.judged
                c0 = time.thread_time()
                room.append(own)
                jm = np.asarray([str(m) in judged for m in room.cats]) if judged else np.zeros(len(room.cats), bool)
                rows = room.rows(jm)
                fr = room.frame(rows, jm)   # the core's frame (of the judged meters)
                lo, hi = stitch._blocks(after, room.cats, None)
                drop = (room.end - room.start) - (hi - lo)
                room.cut(drop)
                # the known scores the judged meters' rows keep, written back at their storage rows
                kept = stitch._ranges(room.start, np.where(jm, hi - lo, 0))
                at = stitch._ranges(lo, np.where(jm, hi - lo, 0))
                for c in after.columns:
                    if stitch._cached(c) and c in room.cols:
                        room.cols[c][kept] = after[c].to_numpy()[at]
                new = time.thread_time() - c0 + secs["_first_kept"] + secs["_needed"]
                # the calm meters' rows of the piece hold no known score (as _calm_tail)
                dn = room.dense()
                same = True
                for c in after.columns:
                    if c == "meter_id":
                        continue
                    a = after["ts"].array.as_unit(room.unit).asi8 if c == "ts" else after[c].to_numpy()
                    b = dn.get(c)
                    if b is None:
                        continue
                    if stitch._cached(c):
                        calm_rows = ~np.repeat(jm, hi - lo)
                        b = b.copy()
                        b[calm_rows] = a[calm_rows]   # (unjudged meters: their flags as the stitcher left them)
                    if a.dtype.kind == "f":
                        ok = np.array_equal(a.view(np.int64), np.asarray(b, float).view(np.int64))
                    else:
                        ok = np.array_equal(a, b)
                    same &= ok
                bad += not same
                held = sum(int(p.tail[c].array.nbytes) for c in p.tail.columns)
                mine = sum(v.nbytes for v in room.cols.values()) + 4 * 8 * len(room.cats)
                cpu[label].append((1e3 * feed, 1e3 * old, 1e3 * new, len(fr), room.grown,
                                   held / len(room.cats), mine / len(room.cats)))
    for label, xs in cpu.items():
        x = np.array(xs, float)
        print("%-20s feeds %d: feed p50 %.2f ms; its data movement (merges, cut, calm tail, compaction) p50 %.2f "
              "mean %.2f ms; the layout's (append, frame, cut, scores; the cut's _first_kept and _needed as the stitcher's) p50 %.2f mean %.2f ms; frame rows p50 %.0f"
              % (label, len(x), np.median(x[:, 0]), np.median(x[:, 1]), x[:, 1].mean(), np.median(x[:, 2]),
                 x[:, 2].mean(), np.median(x[:, 3])))
        print("%-20s   compactions %d in %d feeds; bytes/meter held: the stitcher's tail %.0f, the layout's "
              "storage %.0f (room and dense known scores included)" % ("", int(x[:, 4].sum()), len(x),
                                                                    np.median(x[:, 5]), np.median(x[:, 6])))
        print("%-20s   the stitcher's sections, mean ms: %s" % ("", ", ".join(
            "%s %.2f" % (nm, np.mean(v)) for nm, v in parts_ms[label].items())))
    print("tails differing from the stitcher's:", bad)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1, float(sys.argv[3]) if len(sys.argv) > 3 else 0.5)
