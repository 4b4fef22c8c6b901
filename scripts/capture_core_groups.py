"""(fc) The three fast-tier groups' core.run inputs of the 3rd timed step of fast_fleet (200 meters at 1 min, seed 7), pickled to $CAP
(default /tmp/core_groups.pkl) for scripts/bench_core_groups.py:  PYTHONPATH=src:scripts python scripts/capture_core_groups.py"""
import os, sys, pickle
from fast_fleet import M, warm_engine
from wattwatch.detect import core
eng, live, cut = warm_engine(3, "ww-fc-")
orun = core.run
cap = []
def run(frame, detectors, **k):
    r = orun(frame, detectors, **k)
    cap.append((frame, detectors, k))
    return r
core.run = run
for k in range(3):
    eng.add(live.iloc[cut + k * M: cut + (k + 1) * M]); eng.step()
pickle.dump(cap[-3:], open(os.environ.get("CAP", "/tmp/core_groups.pkl"), "wb"))
print([ (len(f), [d.name for d in ds]) for f, ds, k in cap[-3:]])
