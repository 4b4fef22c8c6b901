"""``wattwatch bench stream``: the stream engine at stated offered rates, in real (wall) time,
against river's HalfSpaceTrees on the same readings in the same run (issue 16).

A simulated fleet (``meters`` at ``cadence_s``) is split into a profiling period (``profile_days``,
learned once with ``fit`` into a fresh store) and a stream. The stream is offered to a
:class:`~wattwatch.runners.stream.StreamEngine` with the full default rule set by a producer
thread (:func:`paced`): reading *i* of a window arrives at ``t0 + i / rate`` of wall time (its
arrival stamp) and is handed over at the end of its poll cycle (``piece_s``, 10 ms), as a source
hands ``watch`` its batches; the engine's thread steps on every piece that arrived (stores, judges,
writes the alerts). Each offered rate gets a window of ``window_s`` seconds, one after the other on
the same engine and stream (``rate="auto"``: doubling from 500/s while it keeps up).

What the rate means: ``meters / cadence_s`` readings per second is the fleet in real time; a
higher rate replays its data time ``rate x cadence_s / meters`` times faster (the figure "data x
real time"). A real fleet offering 20,000 readings/s is at least 20,000 meters (1.2 M at 1 minute,
18 M at 15 minutes: a utility's head-end), each step holding readings of distinct meters, about
one each; the table's "per meter" figure (readings per meter in a step) shows how near a run is
to that (a time-lapse of few meters holds many readings per meter per step, cheaper per reading,
and the hourly slow tier ticks every few seconds). The profile a real-time fleet that large would
need (a day of it: 1.7 billion readings) cannot be simulated here; ``--meters 4000 --cadence-s 900``
(a feeder's AMI meters) comes near one reading per meter per step at 20,000/s.

Figures, per offered rate:

- kept up or not: the producer stops once ``max_backlog_s`` of readings wait (the rest is not
  offered), or the last reading is written more than max(1 s, a tenth of the window) after it
  arrived: then its latencies are waits in a backlog and the output says so; the backlog (readings
  arrived, not taken) at the steps' starts; readings judged per wall second (sustained) and per
  CPU second (per core, the process: the slow tier's and the store's worker threads included);
- latency of a reading: from its arrival stamp to the time its step's results were written (the
  step returned: its readings committed, its alerts upserted), p50/p99/max; over every reading
  and over the readings whose step wrote (opened or updated) an alert of their meter; of a new
  alert: from the arrival of the reading its first version ends on (this includes the wait for
  the later readings the post-rules need); per tier (the fast tier's commit; the slow tier's
  judgement, in a worker, written by a later step);
- CPU time of a step (p50, p99), the engine's own cost apart from the waits a shared machine adds,
  and over the run a least-squares fit of step CPU = fixed + per reading x readings.

Per run: state per meter, measured: the learned state (JSON) and the checkpoint's carried tail of
readings and closed bins (Parquet, the bytes the store keeps), beside the goal (16 KB); the highest
rate kept up and the highest with reading p99 < 50 ms. Baseline: one river ``MinMaxScaler |
HalfSpaceTrees`` per meter over the same channels, ``learn_one`` + ``score_one`` per reading, on the
readings offered (CPU-bound, no pacing); its readings per CPU second beside ours.
"""

from __future__ import annotations

import gc
import os
import queue
import tempfile
import threading
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


def paced(n: int, rate: float, step, *, piece_s: float = 0.01, max_backlog_s: float | None = 5.0,
          ready=None, clock=time.monotonic) -> dict:
    """Offer readings ``0 .. n-1`` at ``rate`` per second of wall time and step on what arrived.

    A producer thread hands the readings over in poll-cycle pieces, as a source hands ``watch``
    its batches: reading *i* arrives at ``t0 + i / rate`` (its arrival stamp); the piece of the
    cycle ``[k, k + 1) x piece_s`` is handed at the cycle's end, never before (pieces the producer
    is late with go over together). The caller's thread (the engine's) waits for a piece, takes
    every piece handed so far and calls ``step(lo, hi)`` on readings ``lo .. hi-1``; ``step``
    returns the ``clock()`` time its results (the alerts it judged, the readings) were written.
    A reading's latency is that time minus its arrival stamp: the wait for its cycle's end and
    for the steps before it is in it. ``ready(arrival)`` (optional) gets the stamps before the
    first piece. ``max_backlog_s``: once the readings arrived and not yet taken are that many
    seconds of the offered rate, the producer stops (the engine is not keeping up); what it
    handed is still judged, the rest is not offered.

    Returns ``lat`` (seconds per reading; NaN for readings not offered), ``offered`` (readings
    handed over and judged), the steps' start and end times and sizes, the backlog at each step's
    start (readings arrived, not taken), the producer's lateness per piece, and ``behind``."""
    if n <= 0 or rate <= 0 or piece_s <= 0:
        raise ValueError("paced: n, rate and piece_s must be > 0")
    cycles = max(1, int(np.ceil(n / rate / piece_s)))
    # bound[k]: readings arrived before cycle k starts (arrival < k * piece_s)
    bound = np.minimum(np.ceil(np.arange(cycles + 1) * piece_s * rate - 1e-9).astype(np.int64), n)
    bound[-1] = n
    q: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    late: list[float] = []
    t0 = clock() + 0.05   # the first cycle starts a moment from now
    arrival = t0 + np.arange(n) / rate
    if ready is not None:
        ready(arrival)

    def produce() -> None:
        k = 0
        try:
            while k < cycles and not stop.is_set():
                due = t0 + (k + 1) * piece_s
                wait = due - clock()
                if wait > 0:
                    stop.wait(wait)
                    continue
                now = clock()
                k2 = min(cycles, max(k + 1, int((now - t0) / piece_s)))
                late.append(now - due)
                q.put(int(bound[k2]))
                k = k2
        finally:
            q.put(None)   # no more pieces

    prod = threading.Thread(target=produce, name="bench-producer", daemon=True)
    lat = np.full(n, np.nan)
    starts: list[float] = []
    ends: list[float] = []
    sizes: list[int] = []
    backlog: list[tuple[float, int]] = []
    taken = handed = 0
    behind = done = False
    prod.start()
    try:
        while not done:
            items = [q.get()]
            while True:
                try:
                    items.append(q.get_nowait())
                except queue.Empty:
                    break
            done = None in items
            handed = max([handed] + [x for x in items if x is not None])
            if handed <= taken:
                continue
            start = clock()
            arrived = min(n, int(np.searchsorted(arrival, start, side="right")))
            backlog.append((start - t0, arrived - taken))
            written = step(taken, handed)
            end = clock()
            lat[taken:handed] = written - arrival[taken:handed]
            starts.append(start)
            ends.append(end)
            sizes.append(handed - taken)
            taken = handed
            if max_backlog_s and not stop.is_set() and (end - t0) - taken / rate > max_backlog_s:
                behind = True
                stop.set()
    finally:
        stop.set()
        prod.join()
    return {"lat": lat, "arrival": arrival, "t0": t0, "offered": taken, "starts": np.array(starts),
            "ends": np.array(ends), "sizes": np.array(sizes, dtype=np.int64), "backlog": backlog,
            "late": np.array(late), "behind": behind, "piece_s": piece_s, "rate": rate, "n": n}


class _EngineSteps:
    """``paced``'s step on a StreamEngine over the stream ``live`` (a window of it at a time,
    from ``lo``): stores and judges the readings, keeps per reading its arrival, the latency of
    the fast and the slow tier, whether its step wrote (opened or updated) an alert of its meter,
    the new alerts' latency from the reading their first version ends on, and each step's CPU
    (the caller's thread and the store's worker; the slow tier's worker apart)."""

    def __init__(self, engine, live: pd.DataFrame):
        self.engine, self.live = engine, live
        self.key = pd.MultiIndex.from_arrays([live["meter_id"].astype(str), live["ts"].astype("datetime64[us, UTC]")])
        self.meter = live["meter_id"].astype(str).to_numpy()
        n = len(live)
        self.lo = 0
        self.arrival = np.full(n, np.nan)
        self.fast_lat = np.full(n, np.nan)
        self.slow_lat = np.full(n, np.nan)
        self.hit = np.zeros(n, bool)
        self.slow_from = 0
        self.slow_started: list[int] = []    # per slow judgement started, not yet written: readings up to
        self.alert_lat: list[tuple[int, float, str]] = []   # (reading it ends on, latency, tier)
        self.step_cpu: list[float] = []
        self.step_slow: list[bool] = []
        self.step_meters: list[int] = []     # meters with a reading in the step
        self.slow_cpu: list[float] = []

    def ready(self, arrival: np.ndarray) -> None:
        self.arrival[self.lo:self.lo + len(arrival)] = arrival

    def __call__(self, a: int, b: int) -> float:
        lo, hi = self.lo + a, self.lo + b
        engine = self.engine
        c0, bg0 = time.thread_time(), getattr(engine.store, "live_bg_cpu_s", 0.0)
        engine.add(self.live.iloc[lo:hi])
        rep = engine.step()
        done = time.monotonic()
        # (ovl) with the store's writes of the readings, run in its worker beside the judging
        self.step_cpu.append(time.thread_time() - c0 + getattr(engine.store, "live_bg_cpu_s", 0.0) - bg0)
        self.step_slow.append(bool(rep.slow))
        self.step_meters.append(len(np.unique(self.meter[lo:hi])))
        if rep.slow_taken:
            self.slow_cpu.append(rep.slow_cpu_s)
        arr, w = self.arrival, rep.written
        if "fast" in w or "all" in w:
            self.fast_lat[lo:hi] = w.get("fast", w.get("all")) - arr[lo:hi]
        # A slow judgement judges what queued up to the step that started it; its alerts are
        # written by that step or (in the worker) a later one.
        slow_taken = rep.slow_taken
        self.slow_started += [hi] * rep.slow_started
        while slow_taken and self.slow_started:
            upto = self.slow_started.pop(0)
            slow_taken -= 1
            self.slow_lat[self.slow_from:upto] = w.get("slow", w.get("all", done)) - arr[self.slow_from:upto]
            self.slow_from = upto
        self._alerts(rep, lambda tier: w.get(tier, done) if tier else done)
        if rep.alerts:
            meters = np.array(sorted({str(x.meter_id) for x in rep.alerts}), dtype=object)
            self.hit[lo:hi] |= np.isin(self.meter[lo:hi], meters)
        return done

    def _alerts(self, rep, at_of) -> None:
        for x in rep.alerts:
            if x.id in rep.new:
                k = self.key.get_indexer([(x.meter_id, pd.Timestamp(x.end).tz_convert("UTC"))])[0]
                if k >= 0 and np.isfinite(self.arrival[k]):
                    tier = rep.tier_of.get(x.id)
                    self.alert_lat.append((int(k), at_of(tier) - self.arrival[k], tier or "all"))

    def settle(self) -> None:
        """The slow tier's last judgement, if the worker was still on it when the stream ended."""
        from wattwatch.runners.stream import StepReport

        last = self.engine.settle(StepReport())
        if last is None or not last.slow_taken:
            return
        at = last.written.get("slow", time.monotonic())
        self.slow_cpu.append(last.slow_cpu_s)
        for upto in self.slow_started[:last.slow_taken]:
            self.slow_lat[self.slow_from:upto] = at - self.arrival[self.slow_from:upto]
            self.slow_from = upto
        self.slow_started = self.slow_started[last.slow_taken:]
        self._alerts(last, lambda tier: at)


def parse_rates(text: str, target: float = 20_000.0) -> list[float] | str:
    """``--rate``: one rate, a comma-separated list, or ``auto`` (doubling from 500/s to
    ``2 x target`` while the engine keeps up, the target itself included)."""
    t = str(text).strip().lower()
    if t == "auto":
        return "auto"
    try:
        rates = [float(x) for x in t.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--rate: {text!r} is not a rate, a comma-separated list of rates or 'auto'") from None
    if not rates or any(not np.isfinite(r) or r <= 0 for r in rates):
        raise ValueError(f"--rate: {text!r}: rates must be numbers > 0")
    return rates


def auto_rates(target: float = 20_000.0, lo: float = 500.0) -> list[float]:
    out, r = [], lo
    while r < target:
        out.append(r)
        r *= 2
    return out + [target, 2 * target]


GOAL_P99_MS = 50.0
GOAL_STATE_BYTES = 16 * 1024
GOAL_RIVER_RATIO = 2.0


def stream_benchmark(meters: int = 200, cadence_s: float = 60.0, stream_hours: float | None = None,
                     profile_days: float = 1.0, rate=(1000.0, 5000.0, 20_000.0), window_s: float = 10.0,
                     piece_s: float = 0.01, max_backlog_s: float | None = 5.0, seed: int = 7,
                     river_readings: int = 50_000, workdir: Path | None = None, detectors: list[str] | None = None,
                     log=print, slow_every_s: float | None = None, target: float = 20_000.0) -> dict:
    """The stream engine at each offered rate of ``rate`` (a list, one rate, or ``"auto"``), a
    window of ``window_s`` seconds of wall time each (the whole stream for a single rate with
    ``stream_hours`` given), one after the other on the same engine and stream; see the module."""
    from wattwatch import api
    from wattwatch.runners.stream import StreamConfig, StreamEngine, freeze_heap
    from wattwatch.store import Store

    auto = rate == "auto"
    rates = auto_rates(target) if auto else [float(r) for r in (rate if isinstance(rate, (list, tuple)) else [rate])]
    per_hour = meters * 3600.0 / cadence_s
    whole = stream_hours is not None and len(rates) == 1
    if stream_hours is None:
        need = sum(r * window_s for r in rates)
        stream_hours = max(1.0, float(np.ceil(need * 1.02 / per_hour)))
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
    steps = _EngineSteps(engine, live)
    windows = []
    lo = 0
    for r in rates:
        n = len(live) - lo if whole else min(int(round(r * window_s)), len(live) - lo)
        if n < max(10, r * piece_s):
            log(f"rate {r:,.0f}/s: the stream has no readings left (raise --hours)")
            break
        log(f"offering {n:,} readings at {r:,.0f} readings/s ({meters} meters at {cadence_s:g} s: data time "
            f"{r * cadence_s / meters:,.1f}x real time) through {len(names)} detectors ...")
        steps.lo = lo
        k0 = len(steps.step_cpu)
        cpu0 = time.process_time()
        res = paced(n, r, steps, piece_s=piece_s, max_backlog_s=max_backlog_s, ready=steps.ready)
        cpu = time.process_time() - cpu0
        win = _figures(steps, res, lo, k0, cpu, meters, cadence_s)
        windows.append(win)
        log(f"  {win['verdict']}")
        lo += res["offered"]
        if auto and not win["kept_up"]:
            break
    steps.settle()
    state = engine.carry_bytes()
    engine.checkpoint()
    ck = store.con.execute("SELECT length(meta), coalesce(octet_length(tail), 0), coalesce(octet_length(hours), 0) "
                           "FROM stream_checkpoint WHERE name = ?", [engine.name]).fetchone()
    # (rbs) The new alerts a run reports depend on where its steps cut the stream (provisional
    # versions written, the last judgements still pending when it ends: 77-83 in runs of the same
    # readings); after a flush the alerts are detect's on the readings offered, whatever the split.
    engine.flush()
    final = list(engine.alerts.values())
    store.close()
    gc.unfreeze()
    m = max(state["meters"], 1)
    all_lat = np.concatenate([w_["_lat"] for w_ in windows]) if windows else np.array([])
    cpu_all = np.array(steps.step_cpu)
    sizes_all = np.concatenate([w_["_sizes"] for w_ in windows]) if windows else np.array([])
    fixed = _fixed_cost(sizes_all, cpu_all)
    kept = [w_ for w_ in windows if w_["kept_up"]]
    best = max(kept, key=lambda w_: w_["offered_rate"]) if kept else None
    best_p99 = [w_ for w_ in kept if w_["reading_latency_ms"]["p99"] is not None
                and w_["reading_latency_ms"]["p99"] < GOAL_P99_MS]
    at_target = [w_ for w_ in windows if w_["offered_rate"] == target]
    result = {
        "machine": f"{os.cpu_count()} cores (shared)",
        "meters": meters, "cadence_s": cadence_s, "detectors": names, "profile_days": profile_days,
        "stream_hours": stream_hours, "piece_s": piece_s, "window_s": None if whole else window_s,
        "max_backlog_s": max_backlog_s,
        "fit_s": round(fit_s, 1), "backfill_s": round(backfill_s, 1), "fit_notices": fitted.notices[:5],
        "windows": [{k: v for k, v in w_.items() if not k.startswith("_")} for w_ in windows],
        "highest_rate_kept_up": best["offered_rate"] if best else None,
        "highest_rate_kept_up_p99_ms": best["reading_latency_ms"]["p99"] if best else None,
        "highest_rate_p99_under_goal": max((w_["offered_rate"] for w_ in best_p99), default=None),
        "step_fixed_cpu_ms": fixed[0], "step_cpu_us_per_reading": fixed[1],
        "tiers": {"slow_every_s": engine.scfg.slow_every_s, "fast_reach_s": engine.scfg.fast_reach_s,
                  "fast": sorted(engine.fast_names) if engine.tiered else [],
                  "slow": [d for d in names if not engine.tiered or d not in engine.fast_names]},
        "alerts_new": int(engine.counters["alerts_new"]),   # reported new during the run, provisional ones too
        "alerts_final": len(final), "alerts_final_digest": alerts_digest(final),
        # (b2) readings sent again identical to stored ones (no re-judging), late data re-judged
        "duplicates": int(engine.counters["duplicates"]), "late": int(engine.counters["late"]),
        "rewinds": int(engine.counters["rewinds"]),
        # (fast) readings sent again with other values (the stored kept; no re-judging)
        "conflicts": int(engine.counters["conflicts"]),
        # State per meter, measured (sm: three things apart, at the run's length of data): the learned
        # state (JSON, as the store keeps it); the checkpoint as stored (its row: the carried tail of
        # readings, the closed bins, the meta), by part; in memory, the tails the engine holds.
        "data_hours": round(profile_days * 24 + _streamed_hours(live, lo), 2),
        "state_bytes_per_meter": round(state["state_bytes_per_meter"]),
        "carry_bytes_per_meter": round(state["tail_bytes_per_meter"]),
        "carry_plain_bytes_per_meter": round(state["plain_tail_bytes_per_meter"]),   # as plain Parquet (layout 2)
        "carry_rows_per_meter": round(state["tail_rows"] / m, 1),
        "fast_tail_rows_per_meter": round(state["fast_tail_rows"] / m, 1),
        "hours_carry_bytes_per_meter": round(state["hours_bytes_per_meter"]),   # closed bins (baseline_macd, learned)
        "meta_bytes_per_meter": round(state["meta_bytes_per_meter"]),
        "known_scores_bytes_per_meter": round(state["known_bytes_per_meter"]),   # in memory, not checkpointed
        "memory_tail_bytes_per_meter": round(state["tail_memory_bytes_per_meter"]),   # the full stitcher's readings
        "memory_fast_tail_bytes_per_meter": round(state["fast_tail_memory_bytes_per_meter"]),
        "memory_bytes_per_meter": round(state["tail_memory_bytes_per_meter"] + state["known_bytes_per_meter"]
                                        + state["fast_tail_memory_bytes_per_meter"]),
        "checkpoint_bytes_per_meter": round(sum(ck) / m) if ck else None,
        # the goal's "state per meter": what a meter costs to keep, learned and checkpointed
        "state_total_bytes_per_meter": round(state["state_bytes_per_meter"] + sum(ck) / m) if ck else None,
        "goal": {"p99_ms": GOAL_P99_MS, "state_bytes_per_meter": GOAL_STATE_BYTES, "river_ratio": GOAL_RIVER_RATIO,
                 "rate": target},
    }
    if len(all_lat):
        result["reading_latency_ms"] = {"p50": _ms(all_lat, 50), "p99": _ms(all_lat, 99)}
    log("river HalfSpaceTrees on the same readings ...")
    result["river"] = river_baseline(live.iloc[:max(lo, 1)], river_readings, seed, warm=prof)
    # as before 2026-12-07 (bs): each model built inside the clock, at its meter's first reading
    rv_ = result["river"]
    result["river_building_models"] = {"readings_per_s": rv_.get("readings_per_s_building_models"),
                                       "cpu_s": round(rv_["cpu_s"] + rv_["build_cpu_s"], 2) if "cpu_s" in rv_ else None}
    rv = result["river"].get("readings_per_s")
    for w_ in result["windows"]:
        if rv and w_.get("readings_per_cpu_s"):
            w_["ratio_to_river"] = round(w_["readings_per_cpu_s"] / rv, 2)
    if rv and best:
        result["ratio_to_river"] = next(w_.get("ratio_to_river") for w_ in result["windows"]
                                        if w_["offered_rate"] == best["offered_rate"])
    result["verdict"] = _verdict(result, at_target, best)
    return result


def _streamed_hours(live: pd.DataFrame, n: int) -> float:
    """Hours of data time the first ``n`` readings of ``live`` (in arrival order) span from its start."""
    if n <= 0 or not len(live):
        return 0.0
    ts = live["ts"]
    return float((ts.iloc[min(n, len(ts)) - 1] - ts.iloc[0]).total_seconds()) / 3600.0


def _figures(steps: _EngineSteps, res: dict, lo: int, k0: int, cpu: float, meters: int, cadence_s: float) -> dict:
    """One window's figures (see the module); keys starting with ``_`` are for the run's totals."""
    off = res["offered"]
    lat = res["lat"][:off]
    rate = res["rate"]
    sl = slice(lo, lo + off)
    ends, starts, sizes = res["ends"], res["starts"], res["sizes"]
    last_end = float(ends[-1]) if len(ends) else res["t0"]
    span = last_end - res["t0"]
    drain = last_end - float(res["arrival"][off - 1]) if off else None
    offered_s = off / rate
    # Kept up: the producer never had to stop, and the backlog at the steps' starts in the second
    # half of the window did not grow (a least-squares slope under 10 % of the rate: an engine that
    # keeps up settles at what arrives during one of its steps; the first half is its ramp from
    # nothing waiting); with fewer than 4 steps there, the last reading was written within a
    # second (or a tenth of the window) of its arrival.
    bl = res["backlog"]
    during = [(t, b) for t, b in bl if offered_s / 2 <= t <= offered_s]
    slope = float(np.polyfit([t for t, _ in during], [b for _, b in during], 1)[0]) if len(during) >= 4 else None
    kept = (not res["behind"]) and off == res["n"] and drain is not None and (
        slope <= 0.1 * rate if slope is not None else drain <= max(1.0, 0.1 * offered_s))
    cpu_steps = np.array(steps.step_cpu[k0:])
    slow = np.array(steps.step_slow[k0:], bool)
    pick = np.unique(np.linspace(0, len(bl) - 1, min(len(bl), 8)).round().astype(int)) if bl else []
    hit = steps.hit[sl]
    at = [(k, x, t) for k, x, t in steps.alert_lat if lo <= k < lo + off]
    win = {
        "offered_rate": rate, "readings_planned": res["n"], "readings": off, "stopped_behind": bool(res["behind"]),
        "kept_up": bool(kept), "steps": len(sizes),
        "wall_s": round(span, 2), "cpu_s": round(cpu, 2),
        "readings_per_s": round(off / span) if span > 0 else None,   # sustained: judged per second of wall
        "readings_per_cpu_s": round(off / cpu) if cpu > 0 else None,
        "drain_s": round(drain, 3) if drain is not None else None,
        # seconds of data time per second of wall time (1: real time; the fleet's meters report at
        # their cadence); the readings per meter in a step tell a time-lapse (many) from a fleet
        # that large (about one, or fewer)
        "data_speed": round(rate * cadence_s / meters, 2),
        "reading_latency_ms": {"p50": _ms(lat, 50), "p99": _ms(lat, 99), "max": _ms(lat, 100)},
        "alert_reading_latency_ms": {"p50": _ms(lat[hit], 50), "p99": _ms(lat[hit], 99), "n": int(hit.sum())},
        "alert_latency_ms": {"p50": _ms([x for _, x, _ in at], 50), "p99": _ms([x for _, x, _ in at], 99), "n": len(at)},
        "fast_reading_latency_ms": {"p50": _ms(steps.fast_lat[sl], 50), "p99": _ms(steps.fast_lat[sl], 99)},
        "slow_reading_latency_ms": {"p50": _ms(steps.slow_lat[sl], 50), "p99": _ms(steps.slow_lat[sl], 99)},
        "step_cpu_ms": {"p50": _ms(cpu_steps, 50), "p99": _ms(cpu_steps, 99),
                        "fast_p50": _ms(cpu_steps[~slow], 50), "slow_p50": _ms(cpu_steps[slow], 50),
                        "slow_steps": int(slow.sum())},
        "step_wall_ms": {"p50": _ms(ends - starts, 50), "p99": _ms(ends - starts, 99)},
        "readings_per_step": {"p50": float(np.median(sizes)) if len(sizes) else None,
                              "max": int(sizes.max()) if len(sizes) else None},
        "readings_per_meter_per_step_p50": round(float(np.median(sizes)) / meters, 2) if len(sizes) else None,
        "meters_per_step_p50": float(np.median(steps.step_meters[k0:])) if len(sizes) else None,
        "backlog": {"max_readings": int(max((b for _, b in bl), default=0)),
                    "max_s": round(max((b for _, b in bl), default=0) / rate, 3),
                    "growth_per_s": round(slope) if slope is not None else None,
                    "at": [[round(bl[i][0], 2), int(bl[i][1])] for i in pick]},
        "producer_late_ms_p99": _ms(res["late"], 99),
        "_lat": lat, "_sizes": sizes,
    }
    p99 = win["reading_latency_ms"]["p99"]
    if kept:
        win["verdict"] = (f"{rate:,.0f}/s: kept up ({win['readings_per_s']:,}/s judged), reading latency "
                          f"p50 {win['reading_latency_ms']['p50']} ms, p99 {p99} ms")
    else:
        why = (f"stopped offering after {off:,} of {res['n']:,} readings, {win['backlog']['max_s']:g} s of them waiting"
               if off < res["n"] else f"the backlog grew {slope:,.0f} readings/s" if slope is not None
               and slope > 0.1 * rate else f"the last reading written {win['drain_s']} s after it arrived")
        win["verdict"] = (f"{rate:,.0f}/s: DID NOT KEEP UP ({win['readings_per_s']:,}/s judged; {why}); "
                          f"its latencies are backlog waits (p99 {p99} ms), not the engine's")
    return win


def _fixed_cost(sizes: np.ndarray, cpu: np.ndarray) -> tuple:
    """Step CPU = fixed + per reading x readings, least squares over the steps: (ms, us); None
    for a handful of steps or steps all of one size."""
    if len(sizes) < 8 or len(sizes) != len(cpu) or np.ptp(sizes) == 0:
        return None, None
    b, a = np.polyfit(sizes.astype(float), cpu.astype(float), 1)
    return round(a * 1e3, 1), round(b * 1e6, 2)


def _verdict(r: dict, at_target: list, best: dict | None) -> str:
    goal = r["goal"]
    parts = []
    if at_target:
        w = at_target[0]
        parts.append(f"at {goal['rate']:,.0f} readings/s: {'kept up' if w['kept_up'] else 'DID NOT KEEP UP'}"
                     + (f", p99 {w['reading_latency_ms']['p99']} ms (goal < {goal['p99_ms']:g} ms)" if w["kept_up"]
                        else f" (judged {w['readings_per_s']:,}/s)"))
    else:
        parts.append(f"{goal['rate']:,.0f} readings/s not offered")
    if best:
        parts.append(f"highest offered rate kept up: {best['offered_rate']:,.0f}/s, reading latency p99 "
                     f"{best['reading_latency_ms']['p99']} ms")
    else:
        parts.append("kept up at no rate offered")
    ok = r["highest_rate_p99_under_goal"]
    parts.append(f"p99 < {goal['p99_ms']:g} ms at: " + (f"up to {ok:,.0f}/s" if ok else "no rate offered"))
    return "; ".join(parts)


def alerts_digest(alerts) -> str:
    """A short hash of alerts as they are output (id, meter, detector, span, score, message): the
    same alerts, the same hash."""
    import hashlib
    import json

    keys = ("id", "meter_id", "detector", "start", "end", "score", "message")
    rows = sorted(tuple(str(d[k]) for k in keys) for d in (json.loads(a.to_json()) for a in alerts))
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _ms(x, q) -> float | None:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return round(float(np.percentile(x, q)) * 1000.0, 1) if len(x) else None


def river_baseline(live: pd.DataFrame, limit: int, seed: int, warm: pd.DataFrame | None = None) -> dict:
    """``learn_one`` + ``score_one`` per reading, one model per meter (its own state, as ours).
    ``warm``: readings before the stream (the profiling period); each meter's model is built on
    its first one before the clock starts (river builds a model's trees at its first
    ``learn_one``), as our state is learned before the stream: with a few readings per meter
    (thousands of meters) the timed figure was otherwise the building of the models."""
    try:
        from river import anomaly, compose, preprocessing
    except ImportError:
        return {"error": "river is not installed (pip install river; it is in the dev extras)"}
    sub = live.iloc[:limit]
    cols = [c for c in FEATURES if c in sub.columns and sub[c].notna().any()]
    rows = sub[cols].to_dict("records")
    meters = sub["meter_id"].astype(str).to_numpy()
    models: dict = {}

    def model_of(m):
        model = models.get(m)
        if model is None:
            model = models[m] = compose.Pipeline(preprocessing.MinMaxScaler(),
                                                 anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250,
                                                                        seed=seed))
        return model

    built, b0 = 0, time.process_time()
    if warm is not None and len(warm):
        first = warm[warm["meter_id"].astype(str).isin(set(meters))].drop_duplicates("meter_id")
        for m, x in zip(first["meter_id"].astype(str), first[cols].to_dict("records")):
            model_of(m).learn_one({k: v for k, v in x.items() if v == v})
            built += 1
    build = time.process_time() - b0
    t0 = time.process_time()
    for m, x in zip(meters, rows):
        x = {k: v for k, v in x.items() if v == v}
        model = model_of(m)
        model.score_one(x)
        model.learn_one(x)
    cpu = time.process_time() - t0
    return {"model": "MinMaxScaler | HalfSpaceTrees(n_trees=10, height=8, window_size=250) per meter (river defaults)",
            "readings": len(rows), "meters": len(set(meters)), "built_before": built, "cpu_s": round(cpu, 2),
            "readings_per_s": round(len(rows) / cpu) if cpu else None,
            # (rbs) the figure with the building in the clock (as before 2026-12-07), from the same
            # models: building them again in a second pass cost ~13 s of a default run's ~47 s of CPU
            "build_cpu_s": round(build, 2),
            "readings_per_s_building_models": round(len(rows) / (cpu + build)) if cpu + build else None}


def stream_table(r: dict) -> list[tuple[str, tuple, list[tuple]]]:
    """``bench stream``'s printed tables: one row per offered rate, then the run's figures beside
    the goals."""
    def pair(d, unit=" ms"):
        return f"{d.get('p50')} / {d.get('p99')}{unit}" + (f" ({d['n']:,})" if "n" in d else "")

    cols = ("offered/s", "data x real time", "readings", "kept up", "judged/s (wall)", "per CPU s", "x river",
            "steps (readings p50; per meter)", "reading latency p50 / p99", "readings whose step wrote an alert",
            "new alert from its last reading", "step CPU p50 / p99", "step wall p50", "backlog max")
    rows = []
    for w in r["windows"]:
        rows.append((f"{w['offered_rate']:,.0f}", f"{w['data_speed']:,g}", f"{w['readings']:,}",
                     "yes" if w["kept_up"] else "NO", f"{w['readings_per_s'] or 0:,}", f"{w['readings_per_cpu_s'] or 0:,}",
                     str(w.get("ratio_to_river", "-")),
                     f"{w['steps']} ({w['readings_per_step']['p50']:g}; {w['readings_per_meter_per_step_p50']:g})",
                     pair(w["reading_latency_ms"]), pair(w["alert_reading_latency_ms"]), pair(w["alert_latency_ms"]),
                     pair(w["step_cpu_ms"]), f"{w['step_wall_ms']['p50']} ms",
                     f"{w['backlog']['max_readings']:,} ({w['backlog']['max_s']:g} s)"))
    g = r["goal"]
    rv = r.get("river", {})
    kb = lambda b: f"{b / 1024:,.1f} KB" if b is not None else "-"  # noqa: E731
    facts = [
        ("meters x cadence", f"{r['meters']:,} x {r['cadence_s']:g} s ({len(r['detectors'])} detectors; tiers: fast "
                             f"{len(r['tiers']['fast'])}, slow {len(r['tiers']['slow'])})"),
        ("poll cycle; window per rate", f"{r['piece_s'] * 1000:g} ms; " + (f"{r['window_s']:g} s" if r["window_s"]
                                                                          else "the whole stream")),
        ("highest rate kept up (reading p99)", f"{r['highest_rate_kept_up'] or 0:,.0f}/s "
                                               f"({r['highest_rate_kept_up_p99_ms']} ms)"),
        (f"highest rate with p99 < {g['p99_ms']:g} ms", f"{r['highest_rate_p99_under_goal'] or 0:,.0f}/s"),
        ("step CPU = fixed + per reading (fit over the steps)",
         f"{r['step_fixed_cpu_ms']} ms + {r['step_cpu_us_per_reading']} us"),
        ("alerts: new during the run (varies with the steps' split); after a flush (detect's)",
         f"{r['alerts_new']}; {r['alerts_final']} ({r['alerts_final_digest']})"),
        (f"state per meter after {r['data_hours']:g} h of data: learned (JSON in the store)", kb(r["state_bytes_per_meter"])),
        ("  checkpoint (stored): carried tail; closed bins; meta",
         f"{kb(r['carry_bytes_per_meter'])} ({r['carry_rows_per_meter']} readings; plain Parquet "
         f"{kb(r['carry_plain_bytes_per_meter'])}); {kb(r['hours_carry_bytes_per_meter'])}; {kb(r['meta_bytes_per_meter'])}"),
        ("  checkpoint row per meter (stored, all parts)", kb(r["checkpoint_bytes_per_meter"])),
        ("  in memory: full stitcher's readings + its known scores; fast tier's tails",
         f"{kb(r['memory_tail_bytes_per_meter'])} + {kb(r['known_scores_bytes_per_meter'])}; "
         f"{kb(r['memory_fast_tail_bytes_per_meter'])} ({r['fast_tail_rows_per_meter']} readings, longest group)"),
        (f"  learned + checkpoint (goal <= {g['state_bytes_per_meter'] / 1024:g} KB)",
         kb(r.get("state_total_bytes_per_meter"))),
        ("river HalfSpaceTrees readings per CPU s (models built before; building them in the clock)",
         f"{rv.get('readings_per_s', rv.get('error'))} ({r.get('river_building_models', {}).get('readings_per_s')})"),
        (f"ratio to river at the highest rate kept up (goal >= {g['river_ratio']:g}x)", str(r.get("ratio_to_river"))),
    ]
    return [(f"bench stream: offered rates ({r['machine']})", cols, rows),
            ("bench stream: the run beside the goals", ("figure", "value"), facts)]
