"""Cost of RateLimiter.fail() with a shared sign-in state file (rev54): 200 live locks seeded, then
100 failures that only count and 100 that set a lock; p50 / p90 in ms.

    env PYTHONPATH=src python scripts/bench_signin_state.py
"""
import tempfile, pathlib, time, statistics, sys
from wattwatch.dashboard.auth import RateLimiter
d = pathlib.Path(tempfile.mkdtemp()); st = d / "s.json"
r = RateLimiter(limit=1, window_s=900, lock_s=60, path=st)
now = time.time()
for k in range(200):
    r.fail(f"client:seed{k}", now=now)
r2 = RateLimiter(limit=5, window_s=900, lock_s=60, path=st)
def run(lim, prefix):
    ts = []
    for k in range(100):
        t0 = time.perf_counter(); lim.fail(f"{prefix}{k}", now=time.time()); ts.append(time.perf_counter() - t0)
    ts.sort(); return ts[50] * 1e3, ts[90] * 1e3
print("count-only fail p50/p90 ms: %.2f / %.2f" % run(r2, "client:c"))
print("lock fail p50/p90 ms: %.2f / %.2f" % run(r, "client:l"))
import shutil; shutil.rmtree(d)
