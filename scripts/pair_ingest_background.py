"""Two stores of the same 3 h history (200 meters at 1 min) take the same 60 steps of 200 readings
through ingest_live, one with background=False (the whole ingest in the caller, as main) and one with
background=True (the caller's part; the writes and COMMIT in the worker, waited for after the call,
as the step's judging would overlap them), alternating which goes first. Thread CPU and wall of the
call, and the worker's CPU. (ovl, issue 16)

    PYTHONPATH=src python scripts/pair_ingest_background.py
"""
import sys, time, tempfile
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store_step import fleet
from wattwatch.ingest.pipeline import ingest_frame, ingest_live
from wattwatch.store import Store
start = pd.Timestamp("2026-01-01", tz="UTC"); n = 180
hist = fleet(200, start, n, 60, 1)
live = fleet(200, start + pd.Timedelta(seconds=n * 60), 70, 60, 2); live["e_kwh"] += n * 0.08
st = {}
for k in (False, True):
    s = Store(Path(tempfile.mkdtemp()) / "s.duckdb"); ingest_frame(s, hist, source="history"); st[k] = (s, {})
res = {k: ([], [], []) for k in st}
for i in range(65):
    piece = live.iloc[i * 200:(i + 1) * 200]
    for k in ((False, True) if i % 2 else (True, False)):
        s, cache = st[k]
        b0 = s.live_bg_cpu_s
        c, w = time.thread_time(), time.perf_counter()
        ingest_live(s, piece, source="watch", cache=cache, background=k)
        c, w = time.thread_time() - c, time.perf_counter() - w
        s.settle()
        if i >= 5:
            res[k][0].append(1e3 * c); res[k][1].append(1e3 * w); res[k][2].append(1e3 * (s.live_bg_cpu_s - b0))
for k, (c, w, b) in res.items():
    print(f"background={k!s:5}: caller CPU p50 {np.median(c):5.2f} mean {np.mean(c):5.2f} | caller wall p50 {np.median(w):5.2f} "
          f"mean {np.mean(w):5.2f} p90 {np.percentile(w, 90):5.2f} | worker CPU p50 {np.median(b):5.2f} ms")
a, b = (st[k][0].query().sort_values(["meter_id", "ts"]).reset_index(drop=True) for k in (False, True))
pd.testing.assert_frame_equal(a, b); print("stores equal:", len(a), "readings")
