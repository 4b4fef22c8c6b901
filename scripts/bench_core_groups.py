"""(fc) core.run on the captured group frames (scripts/capture_core_groups.py), N times each: thread CPU per run and a digest of
every alert, open id, score, exact/final mask, clean point and notice. Run on two checkouts' src alternately to pair them:
    CAP=/tmp/core_groups.pkl PYTHONPATH=src python scripts/bench_core_groups.py [N] [GROUPS e.g. 0,1,2]"""
import os, sys, pickle, time, hashlib
import numpy as np
from wattwatch.detect import core
cap = pickle.load(open(os.environ.get("CAP", "/tmp/core_groups.pkl"), "rb"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
which = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0, 1, 2]
def digest(res):
    h = hashlib.sha256()
    for a in res.alerts: h.update(a.to_json().encode())
    h.update(repr(sorted(res.open_ids)).encode())
    for j in res.judged:
        h.update(np.ascontiguousarray(j.scores).tobytes()); h.update(j.exact.tobytes()); h.update(j.final.tobytes())
    for k, v in sorted(res.clean.items()): h.update(k.encode()); h.update(np.asarray(v).tobytes())
    h.update(repr((res.skipped, res.failed, res.notices, [a.to_json() for a in res.provisional], sorted(res.provisional_open), sorted(res.provisional_near))).encode())
    return h.hexdigest()[:16]
def loop():
    out = {}
    for g in which:
        frame, dets, kw = cap[g]
        ts = []
        for _ in range(N):
            c0 = time.thread_time(); r = core.run(frame, dets, **kw); ts.append(1e3 * (time.thread_time() - c0))
        out[g] = (np.median(ts), np.mean(ts), digest(r), len(r.alerts))
    return out
o = loop()
for g, v in o.items(): print(g, [d.name for d in cap[g][1]], "p50 %.2f mean %.2f ms" % v[:2], "digest", v[2], "alerts", v[3])
