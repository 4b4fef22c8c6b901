"""(lq) The loose-CT group's core.run inputs of N consecutive fast steps of fast_fleet (200 meters at 1 min,
seed 7), pickled to $CAP (default /tmp/loose_steps.pkl) with the group's detectors as they were before the
first of them, for scripts/bench_loose_steps.py (a carry across steps needs the steps in order):
    PYTHONPATH=src:scripts python scripts/capture_loose_steps.py [N] [R]
(R: readings a step, default M: one a meter; (lx) fewer, e.g. 1 or 40: each step the next R readings)"""
import copy, os, sys, pickle
from fast_fleet import M, warm_engine
from wattwatch.detect import core
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10
R = int(sys.argv[2]) if len(sys.argv) > 2 else M
eng, live, cut = warm_engine(-(-N * R // M), "ww-lq-")
orun = core.run
cap, dets0 = [], []
def run(frame, detectors, **k):
    if any(d.name == "loose_ct" for d in detectors):
        if not dets0:
            dets0.append(pickle.dumps(detectors))
        cap.append((frame, k))
    return orun(frame, detectors, **k)
core.run = run
for k in range(N):
    eng.add(live.iloc[cut + k * R: cut + (k + 1) * R]); eng.step()
pickle.dump((dets0[0], cap), open(os.environ.get("CAP", "/tmp/loose_steps.pkl"), "wb"))
print(len(cap), [len(f) for f, _ in cap])
