"""(lx) loose_ct's part of a live fast step at R readings a step: the fleet and engine of scripts/fast_fleet.py
(200 meters at 1 min, seed 7), then STEPS fast steps each fed the next R readings (in time, then meter order),
thread CPU of loose_ct's scoring (``core._scored``) and of forming its alerts (``core._alert``; describe_key and
describe apart), with how many alerts were formed and how many described afresh; ``--cprofile``: a cProfile of
loose_ct's two parts, the top functions by own time.
    PYTHONPATH=src:scripts python scripts/profile_loose_part.py R [STEPS] [--cprofile]"""
import collections, cProfile, pstats, sys, time
import numpy as np
import fast_fleet
from wattwatch.detect import core
from wattwatch.detect.rules import loosect

R = int(sys.argv[1]) if len(sys.argv) > 1 else 200
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else 20
M = fast_fleet.M
need = -(-R * STEPS // M)           # whole-meter steps of readings the timed steps take
eng, live, cut = fast_fleet.warm_engine(need, "ww-lx-")
cpu = collections.Counter()
n = collections.Counter()
prof = cProfile.Profile() if "--cprofile" in sys.argv else None


def timed(name, f):
    def w(d, *a, **k):
        if d.name != "loose_ct":
            return f(d, *a, **k)
        n[name] += 1
        if prof is not None:
            prof.enable()
        c0 = time.thread_time()
        try:
            return f(d, *a, **k)
        finally:
            cpu[name] += time.thread_time() - c0
            if prof is not None:
                prof.disable()
    return w


core._scored = timed("score", core._scored)
core._alert = timed("alerts", core._alert)
loosect.LooseCT.describe_key = timed("  describe_key", loosect.LooseCT.describe_key)
loosect.LooseCT.describe = timed("  describe", loosect.LooseCT.describe)
step = []
for k in range(STEPS):
    b = live.iloc[cut + k * R: cut + (k + 1) * R]
    slow0 = eng.counters["slow_steps"]
    c0 = time.thread_time()
    eng.add(b)
    eng.step()
    if eng.counters["slow_steps"] == slow0:
        step.append(time.thread_time() - c0)
print(f"R={R}: {len(step)} fast steps of {STEPS}, step thread CPU p50 {1e3 * np.median(step):.1f} ms "
      f"mean {1e3 * np.mean(step):.1f}")
for key in ("score", "alerts", "  describe_key", "  describe"):
    print(f"  loose_ct {key:16s} {1e3 * cpu[key] / STEPS:7.2f} ms a step  ({n[key] / STEPS:.1f} calls a step)")
if prof is not None:
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
