"""The stream engine's carry per meter in steady state, past every detector's reach: a simulated
1-minute fleet (full default set, learned detectors' fleet model included) is profiled on its first
``--profile-days``, streamed a day per step through a StreamEngine up to its last day, then that
day's last ``--timed-steps`` minutes one reading per meter per step (timed, CPU). Prints the
carry per meter (the checkpointed tail of readings and closed hours as Parquet, the in-memory
known scores, the tails' columns as held in memory), the tail's readings per meter, and CPU per
step (p50 / p99; with the tiered engine also apart for steps where only the fast tier judged and
those where the slow tier did too) as JSON; the alerts' digest is taken after a flush (every pending reading judged).

    python scripts/measure_stream_carry.py --meters 10 --days 60 [--profile-days 7] [--timed-steps 20]

(At 1 minute baseline_macd's reach was 1,152 h, 48 days: the tail held a meter's whole history
until then. Streaming 60 days takes minutes on the branch, longer on a tree without the carried
hours, whose steps re-judge the whole growing tail.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=10)
    ap.add_argument("--days", type=float, default=60.0)
    ap.add_argument("--profile-days", type=float, default=7.0)
    ap.add_argument("--timed-steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    from wattwatch.app.benchstream import profiled_engine, simulated_stream
    from wattwatch.runners.stream import StreamConfig

    prof, live = simulated_stream(a.meters, a.days, a.profile_days, 60.0, a.seed)
    db = Path(tempfile.mkdtemp(prefix="ww-carry-")) / "s.duckdb"
    cfg = {"engine": {"profile_days": a.profile_days}}
    fitted, store, eng = profiled_engine(db, prof, cfg, a.profile_days, StreamConfig(checkpoint_s=1e9))
    eng.step()
    n_timed = a.timed_steps * a.meters
    day = pd.Timedelta(days=1)
    t_end = live["ts"].iloc[len(live) - n_timed]
    lo = live["ts"].iloc[0]
    wall0, cpu0, steps = time.perf_counter(), time.process_time(), 0
    while lo < t_end:
        hi = min(lo + day, t_end)
        eng.add(live[(live["ts"] >= lo) & (live["ts"] < hi)])
        eng.step()
        steps += 1
        lo = hi
    stream_s, stream_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    cpu, slow = [], []
    rest = live[live["ts"] >= t_end].reset_index(drop=True)
    for k in range(0, len(rest), a.meters):
        c0 = time.process_time()
        eng.add(rest.iloc[k:k + a.meters])
        rep = eng.step()
        cpu.append(time.process_time() - c0)
        slow.append(bool(getattr(rep, "slow", False)))   # the tiered engine's slow tier judged in it
    st = eng.carry_bytes()
    tail = eng.stitcher.tail
    rows = tail.groupby("meter_id", observed=True).size() if tail is not None else pd.Series(dtype=int)
    out = {"meters": a.meters, "days": a.days, "profile_days": a.profile_days, "readings": len(prof) + len(live),
           "fit_notices": fitted.notices[:3],
           "daily_steps": steps, "daily_steps_wall_s": round(stream_s, 1), "daily_steps_cpu_s": round(stream_cpu, 1),
           "timed_step_cpu_ms": {"p50": round(1e3 * float(np.median(cpu)), 1),
                                 "p99": round(1e3 * float(np.percentile(cpu, 99)), 1), "steps": len(cpu),
                                 "readings_per_step": a.meters},
           # Tiered engine: steps where only the fast tier judged, and those where the slow tier did too.
           "timed_fast_steps_cpu_ms": _pct([c for c, sl in zip(cpu, slow) if not sl]),
           "timed_slow_steps_cpu_ms": _pct([c for c, sl in zip(cpu, slow) if sl]),
           "fast_tail_readings_per_meter": round(st.get("fast_tail_rows", 0) / a.meters, 1),
           "per_meter_bytes": {"learned_state": round(st["state_bytes_per_meter"]),
                               "tail": round(st["tail_bytes_per_meter"]),
                               "closed_hours": round(st.get("hours_bytes_per_meter", 0)),
                               "known_scores_in_memory": round(st["known_bytes_per_meter"]),
                               # The tails' columns as held in memory: the full stitcher's readings
                               # (without its known scores) and the fast tier's whole tail.
                               "tail_in_memory": round(st.get("tail_memory_bytes_per_meter", 0)),
                               "fast_tail_in_memory": round(st.get("fast_tail_memory_bytes_per_meter", 0))},
           "tail_readings_per_meter": {"max": int(rows.max()) if len(rows) else 0,
                                       "median": float(rows.median()) if len(rows) else 0.0},
           "alerts_new": int(eng.counters["alerts_new"])}
    eng.flush()   # caught up (the tiered engine's slow tier judges what queued): alerts comparable
    rows = store.con.execute('SELECT id, start, "end", score, message FROM alerts ORDER BY id').fetchall()
    out["alerts_digest"] = hashlib.sha256(repr(rows).encode()).hexdigest()[:16]   # the same alerts before/after
    store.close()
    print(json.dumps(out, indent=1))


def _pct(x: list[float]) -> dict:
    if not x:
        return {"steps": 0}
    return {"p50": round(1e3 * float(np.median(x)), 1), "p99": round(1e3 * float(np.percentile(x, 99)), 1),
            "steps": len(x)}


if __name__ == "__main__":
    main()
