"""rev28: the cost of one `detect` (default set) on a compacted store: 200 simulated meters x 35
days at 5 min, judged once (state kept), compacted up to day 19; then timed twice on copies, with
the time spent in ``api._compacted_hours``. Run it with PYTHONPATH at the src/ to measure.
Usage: compact_bench.py WORKDIR"""
import os, shutil, sys, time

import pandas as pd

import wattwatch.api as A
from wattwatch import api
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

work = sys.argv[1]
os.makedirs(work, exist_ok=True)
db0 = os.path.join(work, "bench0.duckdb")
if not os.path.exists(db0):
    frame = simulate(SimConfig(meters=200, days=35, seed=7, step="5min", fault_share=0.8, outage_share=0.4))["frame"]
    api.ingest(frame, db0)
    api.detect(db0)
    with Store(db0) as s:
        print(s.compact(older_than_days=0, as_of=frame.ts.min() + pd.Timedelta(days=19)))
spent = [0.0]
if hasattr(A, "_compacted_hours"):
    f = A._compacted_hours

    def timed(*a, **k):
        t = time.perf_counter()
        r = f(*a, **k)
        spent[0] += time.perf_counter() - t
        return r
    A._compacted_hours = timed
for i in range(2):
    db = os.path.join(work, "bench.duckdb")
    shutil.copy(db0, db)
    spent[0] = 0.0
    r = api.detect(db)
    print(f"run {i}: {r.seconds:.1f} s, {len(r.alerts)} alerts, withdrawn {r.stored.get('withdrawn')}, "
          f"_compacted_hours {spent[0]:.2f} s", flush=True)
