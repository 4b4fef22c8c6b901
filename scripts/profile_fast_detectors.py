"""Where the stream's fast step goes per *detector* (not per group: profile_stream_groups.py), and
why each group's tail is as long as it is: the fleet and engine of scripts/profile_fast_step.py
(200 meters at 1 min, seed 7, one reading a meter a step), then ``TIMED`` fast steps with thread CPU
per detector of its scoring (``Detector.scored``), of building the subset of rows it scores
(``core._rows_read``; the rows it scores against the frame's), and of forming its alerts
(``core._alert``), and the post-rules' grouping (all detectors). Printed first: per stitcher its
detectors, their own reach and their effective reach (``core.reaches``: through the blockers'
blanking horizons), the blockers, the tail's rows per meter, and how far each detector's clean
point lags its last final reading (open alerts keep the tail from there).

    PYTHONPATH=src python scripts/profile_fast_detectors.py [TIMED] [--ceiling]

``--ceiling``: then loose_ct scored on its whole tail against its last 16 / 30 / 70 readings a meter.

(run, 2026-12-07: supply_outage's own work is ~1.5-2 ms of its group's ~30-50 ms; docs/live-log.md)
"""
import collections
import sys
import time

import numpy as np

from fast_fleet import M, warm_engine
from wattwatch.detect import core

TIMED = int(sys.argv[1]) if len(sys.argv) > 1 else 20
eng, live, cut = warm_engine(TIMED, "ww-fd-")


def u(a):
    return np.unique(np.asarray(a, float)).tolist()


for p in eng.fast.parts:
    names = [str(m) for m in p.tail["meter_id"].cat.categories]
    eff = core.reaches(p.detectors, names)
    per = p.tail["meter_id"].value_counts()
    print(f"stitcher {[d.name for d in p.detectors]}: tail {len(p.tail)} rows, per meter median "
          f"{per.median():.0f} (min {per.min()}, max {per.max()}); open alerts {sum(len(v) for v in p.open.values())}")
    blk = core.blockers(p.detectors, names)
    for d in p.detectors:
        r, e = d.reach(names), eff[d.name]
        lag = [p.emitted[d.name].get(m, np.nan) - p.since[d.name].get(m, np.nan) for m in names]
        print(f"  {d.name}: own back {u(r.back_s)} s / {u(r.back_n)} rd, ahead {u(r.ahead_s)} s / {u(r.ahead_n)} rd; "
              f"effective back {u(e.back_s)} / {u(e.back_n)}, ahead {u(e.ahead_s)} / {u(e.ahead_n)}; "
              f"blockers {[(b, u(h)) for b, h in blk[d.name]]}; clean point behind final: median "
              f"{np.nanmedian(lag):.0f} s, max {np.nanmax(lag):.0f} s")

cur = collections.defaultdict(float)
rows = collections.defaultdict(lambda: [0, 0])


def wrap(obj, attr, key):
    f = getattr(obj, attr)

    def w(*a, **k):
        c0 = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            cur[key(*a, **k)] += time.thread_time() - c0
    setattr(obj, attr, w)


rr = core._rows_read
orig = (core._scored, core._rows_read, core._alert, core.group)


def rows_read(d, src, r):
    rows[d.name][0] += int(np.count_nonzero(r))
    rows[d.name][1] += len(src)
    return rr(d, src, r)


core._rows_read = rows_read
wrap(core, "_scored", lambda d, *a, **k: f"score {d.name}")          # (inside _score_rows too: not twice)
wrap(core, "_rows_read", lambda d, *a, **k: f"subset {d.name}")
wrap(core, "_alert", lambda d, *a, **k: f"alerts {d.name}")
wrap(core, "group", lambda *a, **k: "post-rules' grouping (all)")
step = []
for k in range(TIMED):
    c0 = time.thread_time()
    eng.add(live.iloc[cut + k * M: cut + (k + 1) * M])
    eng.step()
    step.append(time.thread_time() - c0)
print(f"{TIMED} steps, thread CPU p50 {1e3 * np.median(step):.1f} ms; per step:")
for key, v in sorted(cur.items(), key=lambda x: -x[1]):
    print(f"  {key:40s} {1e3 * v / TIMED:6.2f} ms")
for name, (a, b) in rows.items():
    print(f"  {name}: scores {a / TIMED:.0f} of its frame's {b / TIMED:.0f} rows a step (when not whole)")

# The ceiling of carrying loose_ct's raw scores (docs/live-log.md, run): loose_ct scored on its
# group's whole tail as the fast step scores it now, against the subset path on the last K readings
# a meter (what it would score with its raw scores carried: its own reach of 5 back and 4 ahead
# plus the new readings), 15 calls each, thread CPU median.
if "--ceiling" in sys.argv:
    core._scored, core._rows_read, core._alert, core.group = orig   # the timers off
    from wattwatch.detect import stitch
    from wattwatch.detect.frame import prepare, seg_bounds
    p = next(q for q in eng.fast.parts if any(d.name == "loose_ct" for d in q.detectors))
    frame = prepare(stitch._plain(p.tail), shared_nan=True)
    d = next(x for x in p.detectors if x.name == "loose_ct")
    seg = frame["_seg"].to_numpy()
    st, en = seg_bounds(seg)
    within, lens = np.arange(len(seg)) - st[seg], (en - st)[seg]
    for keep in (None, 16, 30, 70):
        sel = None if keep is None else within >= lens - keep
        ts = []
        for _ in range(15):
            c0 = time.thread_time()
            core._scored(d, frame, None) if sel is None else core._score_rows(d, frame, sel, None)
            ts.append(time.thread_time() - c0)
        print(f"loose_ct scored on {'the whole tail (%d rows)' % len(frame) if keep is None else 'its last %d readings a meter' % keep}: "
              f"{1e3 * np.median(ts):.2f} ms")
