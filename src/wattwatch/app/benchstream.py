"""``wattwatch bench stream``: the stream engine at a stated offered rate, against river's
HalfSpaceTrees on the same readings in the same run.

A simulated fleet (``meters`` at ``cadence_s``) is split into a profiling period (``profile_days``,
learned once with ``fit`` into a fresh store, the learned detectors' fleet model included when
the period holds enough meter-days) and a stream. The stream is offered to a
:class:`~wattwatch.runners.stream.StreamEngine` with the full default rule set at ``rate``
readings per second of wall time: reading *i* arrives at ``t0 + i / rate``; at each step the
engine takes every reading that has arrived (a micro-batch; a ``tick_s`` at least between steps),
stores it, judges it and writes the alerts. Figures:

- throughput: readings judged per wall second and per CPU second (per core), and whether the
  engine kept up with the offered rate (it lags when a step takes longer than the readings it
  holds took to arrive);
- latency of a reading: from its arrival to the commit of the step that judged it (p50, p99);
- latency of an alert: from the arrival of the reading its first version ends on to the commit
  that wrote it (p50, p99; this includes the wait for the later readings the post-rules need);
- state per meter: the learned state (JSON) and the carried tail of readings (Parquet);
- CPU time of a step (p50, p99, and per reading): what the engine itself costs in the caller's
  thread, apart from the waits that a shared machine adds to the wall-clock latencies; the slow
  tier judges in a worker thread (``StreamConfig.slow_thread``), its CPU counted in the totals and
  in ``slow_part_cpu_ms``. The slow tier's reading latency runs to the step that wrote the alerts
  of the judgement that took the reading.

Baseline: one river ``MinMaxScaler | HalfSpaceTrees`` per meter over the same channels,
``learn_one`` + ``score_one`` per reading, on the same readings (CPU-bound, no pacing).
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ("p_kw", "q_kvar", "v_l1_v", "i_l1_a", "i_n_a", "pf", "temp_c", "e_kwh")


def simulated_stream(meters: int, days: float, profile_days: float, cadence_s: float = 60.0,
                     seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simulated fleet (fault share 0.5) in arrival order, each reading once: its first
    ``profile_days`` (to profile on) and the rest (to stream), as the bench and the stream
    scripts (scripts/measure_stream_carry.py, profile_stream_*.py) use it."""
    from wattwatch.sim import SimConfig, simulate

    sim = simulate(SimConfig(meters=meters, days=days, step=f"{int(cadence_s)}s", seed=seed, fault_share=0.5,
                             profile_days=profile_days))
    frame = sim["frame"]
    frame = frame.drop_duplicates(["meter_id", "ts"]).sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)
    split = frame["ts"].min() + pd.Timedelta(days=profile_days)
    return frame[frame["ts"] < split], frame[frame["ts"] >= split].reset_index(drop=True)


def profiled_engine(db: Path, prof: pd.DataFrame, cfg: dict, profile_days: float, scfg):
    """``prof`` ingested into the store ``db`` and fitted there on ``profile_days`` with the
    detector config ``cfg``; returns the fit's result, the store and a StreamEngine on it."""
    from wattwatch import api
    from wattwatch.runners.stream import StreamEngine
    from wattwatch.store import Store

    api.ingest(prof, db)
    fitted = api.fit(db, days=profile_days, config=cfg)
    store = Store(db)
    return fitted, store, StreamEngine(store, api.build_detectors(None, cfg), api._engine(cfg), scfg)


def stream_benchmark(meters: int = 200, cadence_s: float = 60.0, stream_hours: float = 6.0, profile_days: float = 1.0,
                     rate: float = 20_000.0, tick_s: float = 0.25, seed: int = 7, river_readings: int = 50_000,
                     workdir: Path | None = None, detectors: list[str] | None = None, log=print,
                     slow_every_s: float | None = None) -> dict:
    from wattwatch import api
    from wattwatch.runners.stream import StepReport, StreamConfig, StreamEngine, freeze_heap
    from wattwatch.store import Store

    days = profile_days + stream_hours / 24.0
    log(f"simulating {meters} meters x {days:.2f} days at {cadence_s:g} s ...")
    prof, live = simulated_stream(meters, days, profile_days, cadence_s, seed)
    work = Path(workdir or tempfile.mkdtemp(prefix="ww-bench-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "stream.duckdb"
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    cfg = {"engine": {"profile_days": profile_days}}
    if detectors:
        cfg["detectors"] = list(detectors)
    log(f"learning state on {len(prof):,} readings (first {profile_days:g} day(s)) ...")
    t0 = time.perf_counter()
    api.ingest(prof, db)
    fitted = api.fit(db, days=profile_days, config=cfg)
    fit_s = time.perf_counter() - t0
    store = Store(db)
    scfg = StreamConfig(checkpoint_s=5.0)
    if slow_every_s is not None:
        scfg.slow_every_s = float(slow_every_s)
    engine = StreamEngine(store, api.build_detectors(None, cfg), api._engine(cfg), scfg)
    names = [d.name for d in engine.dets]
    # The profiling day is in the store: judged first, as a backfill (not timed as streaming).
    t0 = time.perf_counter()
    engine.step()
    backfill_s = time.perf_counter() - t0
    freeze_heap()   # as the watcher does after its first step (runners.stream.run)
    log(f"streaming {len(live):,} readings at {rate:,.0f} readings/s offered through {len(names)} detectors ...")
    key = pd.MultiIndex.from_arrays([live["meter_id"].astype(str), live["ts"].astype("datetime64[us, UTC]")])
    n = len(live)
    arrival_rel = np.arange(n) / rate
    reading_lat = np.full(n, np.nan)
    # Tiered engine: per reading, from its arrival to the commit of the fast tier's step that
    # judged it and to that of the slow tier's (which judges it at its next tick).
    fast_lat = np.full(n, np.nan)
    slow_lat = np.full(n, np.nan)
    slow_from = 0
    slow_started: list[int] = []   # per slow judgement started, not yet written: the readings it judged (up to)
    alert_lat: list[float] = []
    alert_lat_tier: dict[str, list[float]] = {"fast": [], "slow": []}
    steps = 0
    step_cpu: list[float] = []
    step_n: list[int] = []
    step_slow: list[bool] = []
    slow_cpu: list[float] = []
    i = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    mono0 = time.monotonic()
    while i < n:
        now = time.perf_counter() - wall0
        j = int(np.searchsorted(arrival_rel, now, side="right"))
        if j <= i:
            time.sleep(max(0.0, min(tick_s, arrival_rel[i] - now)))
            continue
        # The step's own CPU (this thread): the slow tier's judgement runs in a worker thread
        # (StreamConfig.slow_thread), whose CPU is counted in the totals and in slow_part_cpu_ms.
        c0, bg0 = time.thread_time(), getattr(engine.store, "live_bg_cpu_s", 0.0)
        engine.add(live.iloc[i:j])
        rep = engine.step()
        # (ovl) with the store's writes of the readings, run in its worker beside the judging
        step_cpu.append(time.thread_time() - c0 + getattr(engine.store, "live_bg_cpu_s", 0.0) - bg0)
        step_n.append(j - i)
        done = time.perf_counter() - wall0
        reading_lat[i:j] = done - arrival_rel[i:j]
        step_slow.append(bool(rep.slow))
        if rep.slow_taken:
            slow_cpu.append(rep.slow_cpu_s)
        w = {k: v - mono0 for k, v in rep.written.items()}
        if "fast" in w or "all" in w:
            fast_lat[i:j] = w.get("fast", w.get("all")) - arrival_rel[i:j]
        # A slow judgement judges what queued up to the step that started it; its alerts are
        # written by that step or (in the worker) a later one.
        slow_taken = rep.slow_taken
        slow_started += [j] * rep.slow_started
        while slow_taken and slow_started:
            upto = slow_started.pop(0)
            slow_taken -= 1
            slow_lat[slow_from:upto] = w.get("slow", w.get("all", done)) - arrival_rel[slow_from:upto]
            slow_from = upto
        for a in rep.alerts:
            if a.id in rep.new:
                k = key.get_indexer([(a.meter_id, pd.Timestamp(a.end).tz_convert("UTC"))])[0]
                if k >= 0:
                    tier = rep.tier_of.get(a.id)
                    at = w.get(tier, done) if tier else done
                    alert_lat.append(at - arrival_rel[k])
                    if tier in ("fast", "slow"):
                        alert_lat_tier[tier].append(at - arrival_rel[k])
        steps += 1
        i = j
        spare = tick_s - (time.perf_counter() - wall0 - now)
        if spare > 0:
            time.sleep(spare)
    # The slow tier's last judgement, if the worker was still on it when the stream ended.
    last = engine.settle(StepReport())
    if last.slow_taken:
        done = time.perf_counter() - wall0
        at = last.written.get("slow", mono0 + done) - mono0
        slow_cpu.append(last.slow_cpu_s)
        for upto in slow_started[:last.slow_taken]:
            slow_lat[slow_from:upto] = at - arrival_rel[slow_from:upto]
            slow_from = upto
        for a in last.alerts:
            if a.id in last.new:
                k = key.get_indexer([(a.meter_id, pd.Timestamp(a.end).tz_convert("UTC"))])[0]
                if k >= 0:
                    alert_lat.append(at - arrival_rel[k])
                    alert_lat_tier["slow"].append(at - arrival_rel[k])
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    state = engine.carry_bytes()
    engine.checkpoint()
    store.close()
    gc.unfreeze()
    offered_s = n / rate
    result = {
        "machine": f"{os.cpu_count()} cores (shared)",
        "meters": meters, "cadence_s": cadence_s, "detectors": names, "readings": n, "offered_rate": rate,
        "fit_s": round(fit_s, 1), "backfill_s": round(backfill_s, 1), "fit_notices": fitted.notices[:5],
        "steps": steps, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "readings_per_s": round(n / wall), "readings_per_cpu_s": round(n / cpu) if cpu else None,
        "kept_up": bool(wall <= offered_s * 1.1 + tick_s),
        "reading_latency_ms": {"p50": _ms(reading_lat, 50), "p99": _ms(reading_lat, 99)},
        "tick_s": tick_s,
        "step_cpu_ms": {"p50": _ms(step_cpu, 50), "p99": _ms(step_cpu, 99),
                        "readings_p50": float(np.median(step_n)) if step_n else None},
        "tiers": {"slow_every_s": engine.scfg.slow_every_s, "fast_reach_s": engine.scfg.fast_reach_s,
                  "fast": sorted(engine.fast_names) if engine.tiered else [],
                  "slow": [d for d in names if not engine.tiered or d not in engine.fast_names],
                  "fast_steps": int(len(step_slow) - sum(step_slow)), "slow_steps": int(sum(step_slow)),
                  "fast_step_cpu_ms": {"p50": _ms([c for c, sl in zip(step_cpu, step_slow) if not sl], 50),
                                       "p99": _ms([c for c, sl in zip(step_cpu, step_slow) if not sl], 99)},
                  "slow_step_cpu_ms": {"p50": _ms([c for c, sl in zip(step_cpu, step_slow) if sl], 50),
                                       "p99": _ms([c for c, sl in zip(step_cpu, step_slow) if sl], 99)},
                  "slow_part_cpu_ms": {"p50": _ms(slow_cpu, 50), "p99": _ms(slow_cpu, 99)},
                  "fast_reading_latency_ms": {"p50": _ms(fast_lat, 50), "p99": _ms(fast_lat, 99)},
                  "slow_reading_latency_ms": {"p50": _ms(slow_lat, 50), "p99": _ms(slow_lat, 99)},
                  "fast_alert_latency_ms": {"p50": _ms(alert_lat_tier["fast"], 50),
                                            "p99": _ms(alert_lat_tier["fast"], 99), "n": len(alert_lat_tier["fast"])},
                  "slow_alert_latency_ms": {"p50": _ms(alert_lat_tier["slow"], 50),
                                            "p99": _ms(alert_lat_tier["slow"], 99), "n": len(alert_lat_tier["slow"])}},
        "alerts_new": int(engine.counters["alerts_new"]),
        # (b2) readings sent again identical to stored ones (no re-judging), late data re-judged
        "duplicates": int(engine.counters["duplicates"]), "late": int(engine.counters["late"]),
        "rewinds": int(engine.counters["rewinds"]),
        # (fast) readings sent again with other values (the stored kept; no re-judging)
        "conflicts": int(engine.counters["conflicts"]),
        "alert_latency_ms": {"p50": _ms(alert_lat, 50), "p99": _ms(alert_lat, 99), "n": len(alert_lat)},
        "state_bytes_per_meter": round(state["state_bytes_per_meter"]),
        "carry_bytes_per_meter": round(state["tail_bytes_per_meter"]),
        "carry_rows_per_meter": round(state["tail_rows"] / max(state["meters"], 1), 1),
        "fast_tail_rows_per_meter": round(state["fast_tail_rows"] / max(state["meters"], 1), 1),
        "hours_carry_bytes_per_meter": round(state["hours_bytes_per_meter"]),   # closed hours (baseline_macd)
        "known_scores_bytes_per_meter": round(state["known_bytes_per_meter"]),   # in memory, not checkpointed
    }
    log("river HalfSpaceTrees on the same readings ...")
    result["river"] = river_baseline(live, river_readings, seed)
    if result["river"].get("readings_per_s"):
        result["ratio_to_river"] = round(result["readings_per_cpu_s"] / result["river"]["readings_per_s"], 2)
    return result


def _ms(x, q) -> float | None:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return round(float(np.percentile(x, q)) * 1000.0, 1) if len(x) else None


def river_baseline(live: pd.DataFrame, limit: int, seed: int) -> dict:
    """``learn_one`` + ``score_one`` per reading, one model per meter (its own state, as ours)."""
    try:
        from river import anomaly, compose, preprocessing
    except ImportError:
        return {"error": "river is not installed (pip install river; it is in the dev extras)"}
    sub = live.iloc[:limit]
    cols = [c for c in FEATURES if c in sub.columns and sub[c].notna().any()]
    rows = sub[cols].to_dict("records")
    meters = sub["meter_id"].astype(str).to_numpy()
    models: dict = {}
    t0 = time.process_time()
    for m, x in zip(meters, rows):
        x = {k: v for k, v in x.items() if v == v}
        model = models.get(m)
        if model is None:
            model = models[m] = compose.Pipeline(preprocessing.MinMaxScaler(),
                                                 anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250,
                                                                        seed=seed))
        model.score_one(x)
        model.learn_one(x)
    cpu = time.process_time() - t0
    return {"model": "MinMaxScaler | HalfSpaceTrees(n_trees=10, height=8, window_size=250) per meter (river defaults)",
            "readings": len(rows), "cpu_s": round(cpu, 2), "readings_per_s": round(len(rows) / cpu) if cpu else None}
