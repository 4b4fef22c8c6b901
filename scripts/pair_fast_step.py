"""(np, 2026-12-07) Whole fast steps (``add`` + ``step``, thread CPU) of two engines warmed alike in one
process, one whose fast tier runs an older stitch.py (its classes; the rest this checkout's), the
timed steps fed to both alternately (which goes first alternates): the paired before/after of a change
to the stitching. The fleet of scripts/fast_fleet.py (seed 7, 1 min) with METERS meters.

    PYTHONPATH=src python scripts/pair_fast_step.py OLD_STITCH_PY [METERS] [TIMED]
"""
import hashlib
import json
import sys
import time

import numpy as np

import fast_fleet
from replay_fast_feeds import _as_old, _old_module

old_py = sys.argv[1]
fast_fleet.M = int(sys.argv[2]) if len(sys.argv) > 2 else 200
TIMED = int(sys.argv[3]) if len(sys.argv) > 3 else 40
M = fast_fleet.M
mod = _old_module(old_py)
new, live, cut = fast_fleet.warm_engine(TIMED, "ww-pair-new-")
old, _, _ = fast_fleet.warm_engine(TIMED, "ww-pair-old-")
old.fast = _as_old(old.fast, mod)
cpu = {"old": [], "new": []}
for k in range(TIMED):
    b = live.iloc[cut + k * M: cut + (k + 1) * M]
    for mode in (("old", "new") if k % 2 == 0 else ("new", "old")):
        eng = old if mode == "old" else new
        slow0 = eng.counters["slow_steps"]
        c0 = time.thread_time()
        eng.add(b)
        eng.step()
        if eng.counters["slow_steps"] == slow0:
            cpu[mode].append(1e3 * (time.thread_time() - c0))
for m, v in cpu.items():
    print(f"{m}: {len(v)} fast steps, CPU ms p50 {np.median(v):.1f} mean {np.mean(v):.1f} p99 {np.percentile(v, 99):.1f}")
n = min(len(cpu["old"]), len(cpu["new"]))
r = np.array(cpu["new"][:n]) / np.array(cpu["old"][:n])
print(f"median paired new/old {np.median(r):.3f}; ratio of sums {sum(cpu['new']) / sum(cpu['old']):.3f}")
dig = {}
for mode, eng in (("old", old), ("new", new)):
    eng.flush()
    al = sorted(json.dumps(json.loads(a.to_json()), sort_keys=True) for a in eng.alerts.values())
    dig[mode] = (len(al), hashlib.sha256("\n".join(al).encode()).hexdigest()[:16])
print("alerts", dig, "same" if dig["old"] == dig["new"] else "DIFFER")
