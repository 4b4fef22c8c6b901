"""How much tail each stitcher of a warm stream carries and how much of it its detectors reach back
to (issue 16, tl): 200 meters at 1 min (seed 7), a profiling day then ``HOURS`` h live, the engine
fed in 5,000-reading steps then ``STEPS`` steps of one reading per meter. Per stitcher (the fast
tier's groups and the slow tier's full stitcher), per meter: rows, hours, bytes held (as held:
compact columns as they are), per column; per detector its own and its effective reach (back s,
back n: :func:`core.reaches`) and the rows its cut keeps from its clean / pending point
(:meth:`Stitcher._first_kept` with that detector alone counted), i.e. which detector sets the
tail's length.

    PYTHONPATH=src python scripts/tail_needs.py [HOURS] [STEPS] [CADENCE_S] [METERS]
"""
import sys

import numpy as np
import pandas as pd

import fast_fleet

HOURS = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
CADENCE = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
M = int(sys.argv[4]) if len(sys.argv) > 4 else fast_fleet.M


def main():
    from wattwatch.detect import core
    from wattwatch.detect.frame import prepare, seg_bounds
    from wattwatch.runners.stream import _held_bytes

    eng, live, cut = fast_fleet.warm_engine(STEPS, "ww-tailneeds-", HOURS, CADENCE, M)
    for k in range(STEPS):
        eng.add(live.iloc[cut + k * M: cut + (k + 1) * M])
        eng.step()
    eng.settle()
    parts = [("fast:" + "+".join(d.name for d in p.detectors), p) for p in eng.fast.parts]
    parts.append(("slow (full stitcher): %d detectors" % len(eng.stitcher.detectors), eng.stitcher))
    print("live hours %.1f, %d meters at %g s, %d fast steps at the end" % (HOURS, M, CADENCE, STEPS))
    # Do the fast tails' readings lie inside the slow tail (per meter, from its first stamp on; its
    # channels among the slow tail's)? The rows after the slow tail's last one are the readings the
    # slow tier has not judged yet.
    slow = eng.stitcher.tail
    if slow is not None:
        s_first = slow.groupby("meter_id", observed=True)["ts"].min()
        s_last = slow.groupby("meter_id", observed=True)["ts"].max()
        for p in eng.fast.parts:
            if p.tail is None:
                continue
            f_first = p.tail.groupby("meter_id", observed=True)["ts"].min()
            f_last = p.tail.groupby("meter_id", observed=True)["ts"].max()
            ms = f_first.index.intersection(s_first.index)
            inside = (f_first[ms] >= s_first[ms])
            newer = (f_last[ms] - s_last[ms]).dt.total_seconds()
            chans = [c for c in p.tail.columns if not str(c).startswith(("_c:", "_k:"))]
            print("fast %s: meters whose fast tail starts inside the slow tail %d of %d; channels inside %s; "
                  "fast tail newer than the slow tail by p50 %.0f s max %.0f s"
                  % (p.detectors[0].name, int(inside.sum()), len(ms), set(chans) <= set(slow.columns),
                     newer.median(), newer.max()))
    for label, p in parts:
        tail = p.tail
        if tail is None:
            print(label, "no tail")
            continue
        frame = prepare(tail)
        names = [str(m) for m in tail["meter_id"].cat.categories]
        seg, t = frame["_seg"].to_numpy(), frame["_t"].to_numpy()
        starts, ends = seg_bounds(seg)
        lens = ends - starts
        hours = (t[ends - 1] - t[starts]) / 3600.0
        held = _held_bytes(tail)
        per_col = {c: v / len(names) for c, v in held.items()}
        total = sum(held.values()) / len(names)
        reading_cols = [c for c in tail.columns if not str(c).startswith(("_c:", "_k:"))]
        f64 = sum(tail[c].to_numpy().nbytes if c not in ("meter_id", "ts") else held[c] for c in reading_cols) / len(names)
        print("\n== %s" % label)
        print("  rows/meter p50 %.0f max %d, hours p50 %.2f max %.2f; bytes held/meter %.0f (readings %.0f, "
              "as float64 %.0f); columns %d" % (np.median(lens), lens.max(), np.median(hours), hours.max(), total,
                                                 sum(per_col[c] for c in reading_cols), f64, len(tail.columns)))
        print("  per column B/meter:", {c: round(v) for c, v in sorted(per_col.items(), key=lambda x: -x[1])})
        st = core.SegTimes(t, seg, starts, ends)
        eff = core.reaches(p.detectors, names)
        raw = core.reaches(p.detectors, names, set(p.hours)) if p.hours else None
        saved = p.hours
        p.hours = {n: dict(v) for n, v in saved.items()}   # (_cut_bins replaces carries: on a copy)
        needs = {}
        blk = core.blockers(p.detectors, names)
        for d in p.detectors:
            bl = ", ".join("%s %.0f s" % (b, np.nanmedian(np.asarray(h, float))) for b, h in blk[d.name])
            if bl:
                print("  %-22s blanked by (horizon p50): %s" % (d.name, bl))
        for d in p.detectors:
            own = d.reach(names)
            r = eff[d.name]
            since = np.array([p.since[d.name].get(m, -np.inf) for m in names], float)
            done = np.array([p.emitted[d.name].get(m, -np.inf) for m in names], float)
            pend = st.search(st.ks, core.SegTimes.to_us(done), "right")
            t_pend = np.where(pend < lens, t[starts + np.minimum(pend, lens - 1)], np.inf)
            ref = np.minimum(since, t_pend)
            if d.name in p.hours:   # its closed bins carried: its raw readings from its bins' reach (as the cut)
                r, ref, _ = p._cut_bins(d, names, ref, r, raw[d.name])
            back = np.asarray(r.back_s, float)
            ok = np.isfinite(back) & np.isfinite(ref)
            j = np.where(ok, st.search(st.ks, core.SegTimes.to_us(np.where(ok, ref - back, 0.0)), "left"), 0)
            first = np.maximum(0, j - np.maximum(np.asarray(r.back_n).astype(np.int64), 1))
            first = np.where(ref == -np.inf, 0, np.where(np.isfinite(ref), first, lens))
            need = lens - first
            needs[d.name] = need
            pend_h = (t[ends - 1] - np.where(np.isfinite(ref), ref, t[ends - 1])) / 3600.0
            print("  %-22s own back %.0f s/%d n, effective back %.0f s/%d n (p50); ref before last p50 %.2f h "
                  "max %.2f h; rows it needs p50 %.0f max %d (%.0f%% of the tail p50)"
                  % (d.name, np.nanmedian(np.asarray(own.back_s, float)), int(np.median(own.back_n)),
                     np.nanmedian(back), int(np.median(r.back_n)), np.nanmedian(pend_h), np.nanmax(pend_h),
                     np.median(need), need.max(), 100 * np.median(need / np.maximum(lens, 1))))
        p.hours = saved
        # Per column: the rows the detectors that read it need (the longest of theirs, effective
        # reach: an upper bound on what a column read by few detectors needs); its bytes at 8 a row.
        longest = np.max(np.stack(list(needs.values())), axis=0)
        print("  longest need rows/meter p50 %.0f (of %.0f kept)" % (np.median(longest), np.median(lens)))
        need_b = 0.0
        for c in reading_cols:
            if c == "meter_id":
                continue
            rd = [d for d in p.detectors if c == "ts" or d.reads() is None or c in d.reads()]
            nc = np.max(np.stack([needs[d.name] for d in rd]), axis=0) if rd else np.zeros(len(names))
            need_b += 8 * nc.mean()
        print("  bytes/meter if each reading column kept only for its readers' need (float64, mean): %.0f; "
              "kept now (float64): %.0f" % (need_b, sum(8 * lens.mean() for c in reading_cols if c != "meter_id")))


if __name__ == "__main__":
    main()
