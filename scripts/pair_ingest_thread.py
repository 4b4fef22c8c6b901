"""(ovl, issue 16) The stream's fast step with the store's writes in its worker thread
(``StreamConfig.ingest_thread``, the default) and without (the whole ingest before the judging, as
before), paired in one process: two engines on two stores of the same fleet (200 meters at 1 min,
seed 7, the fleet and engine of scripts/profile_fast_step.py), the same ``TIMED`` pieces of one
reading per meter, the two engines' steps alternated (which goes first alternates too). Per step:
the latency from the piece's arrival (``add`` called) to its fast-tier alerts committed
(``rep.written``; steps that wrote none: to the step's return), the wall of add + step, the calling
thread's CPU and the process's (the worker's too). Steps where the slow tier ran are left out.
``--digest``: after a final flush, both engines' alerts digested (they must be the same).

    PYTHONPATH=src python scripts/pair_ingest_thread.py 40 --digest
"""
import sys, tempfile, time
from pathlib import Path

import numpy as np

from wattwatch.app.benchstream import profiled_engine, simulated_stream
from wattwatch.runners.stream import StreamConfig

M, H, TIMED, SEED = 200, 3.0, int(sys.argv[1]) if len(sys.argv) > 1 else 30, 7
prof, live = simulated_stream(M, 1 + H / 24, 1, 60.0, SEED)
live = live.sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)
engines = {}
for on in (False, True):
    db = Path(tempfile.mkdtemp(prefix="ww-pair-")) / "s.duckdb"
    _, _, eng = profiled_engine(db, prof, {"engine": {"profile_days": 1}}, 1,
                                StreamConfig(checkpoint_s=1e9, slow_thread=False, ingest_thread=on))
    eng.step()
    engines[on] = eng
n, per = len(live), M
cut = n - TIMED * per
for i in range(0, cut, 5000):
    for eng in engines.values():
        eng.add(live.iloc[i:min(i + 5000, cut)])
        eng.step()
res = {on: {"lat": [], "wall": [], "cpu": [], "pcpu": []} for on in engines}
for k in range(TIMED):
    b = live.iloc[cut + k * per: cut + (k + 1) * per]
    reps = {}
    for on in ((False, True) if k % 2 else (True, False)):
        eng = engines[on]
        slow0 = eng.counters["slow_steps"]
        c0, p0, t0, m0 = time.thread_time(), time.process_time(), time.perf_counter(), time.monotonic()
        eng.add(b)
        rep = eng.step()
        c, p, w = time.thread_time() - c0, time.process_time() - p0, time.perf_counter() - t0
        reps[on] = (eng.counters["slow_steps"] == slow0, rep, c, p, w, m0)
    if not all(r[0] for r in reps.values()):
        continue
    for on, (_, rep, c, p, w, m0) in reps.items():
        r = res[on]
        r["lat"].append(1e3 * (rep.written.get("fast", m0 + w) - m0))
        r["wall"].append(1e3 * w)
        r["cpu"].append(1e3 * c)
        r["pcpu"].append(1e3 * p)
for on, r in res.items():
    lat = np.array(r["lat"])
    print(f"ingest_thread={on!s:5} steps {len(lat)}: arrival->alerts written p50 {np.median(lat):6.1f} p90 "
          f"{np.percentile(lat, 90):6.1f} max {lat.max():6.1f} | add+step wall p50 {np.median(r['wall']):6.1f} | "
          f"thread CPU p50 {np.median(r['cpu']):6.1f} | process CPU p50 {np.median(r['pcpu']):6.1f} ms")
d = np.array(res[True]["lat"]) - np.array(res[False]["lat"])
print(f"paired latency difference (thread - inline): median {np.median(d):+.1f} ms, "
      f"{int((d < 0).sum())} of {len(d)} steps faster")
if "--digest" in sys.argv:
    import hashlib, json
    for on, eng in engines.items():
        eng.flush()
        al = sorted(json.dumps(json.loads(a.to_json()), sort_keys=True) for a in eng.alerts.values())
        print(f"ingest_thread={on}: alerts", len(al), hashlib.sha256("\n".join(al).encode()).hexdigest()[:16])
