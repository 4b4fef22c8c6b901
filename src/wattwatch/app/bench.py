"""Benchmarks: figures and ratios against a baseline run in the same process.

``ingest``: a simulated fleet (1,000 meters at 5-minute cadence, messy as real exports are) is
written once as Parquet and CSV; each format is then ingested into a fresh store by wattwatch
(read, map, check, de-duplicate, merge) and, in the same worker process, loaded by plain DuckDB
(``CREATE TABLE AS SELECT * FROM read_parquet/read_csv``: no checks, no de-duplication) as the
floor to compare against. Each format runs in its own worker process so that the peak RSS it
reports is the ingest's own.

``wide`` (``--formats wide``): a SCADA-style wide Parquet export (1,000 meters x 2 channels, one
column per meter and channel, a line per 5 minutes) ingested with a ``[wide.channels]`` mapping,
against DuckDB's plain ``UNPIVOT`` of the same file into a table of cells (no checks, no units).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

TARGETS = {"parquet": 1_000_000, "csv": 400_000}


def _machine() -> str:
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GB"
    except ImportError:  # pragma: no cover
        mem = "?"
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {mem}, Python {platform.python_version()}"


def ensure_fleet(rows: int, workdir: Path, formats: tuple[str, ...], log=print) -> dict[str, Path]:
    """Simulate (once per size) a fleet of about ``rows`` readings in the requested formats
    (``wide``: :func:`ensure_wide`)."""
    from wattwatch.sim import SimConfig, simulate

    meters = 1000 if rows >= 100_000 else max(1, rows // 1000)
    days = rows / meters / 288
    data = workdir / f"fleet-{rows}"
    long = tuple(f for f in formats if f != "wide")
    files = {f: data / f"telemetry.{f}" for f in long}
    if not all(p.exists() for p in files.values()):
        log(f"simulating {meters} meters x {days:.1f} days (~{rows:,} rows) into {data} ...")
        t0 = time.perf_counter()
        simulate(SimConfig(meters=meters, days=days, seed=42), data, formats=long)
        log(f"  simulated in {time.perf_counter() - t0:.1f} s")
    if "wide" in formats:
        files["wide"] = ensure_wide(rows, data, meters, log)
    return files


WIDE_MAPPING = '[wide]\nts = "time"\n[wide.channels]\np_kw = "{meter}_P"\nv_l1_v = "{meter}_V"\n'


def ensure_wide(rows: int, data: Path, meters: int, log=print, seed: int = 42) -> Path:
    """A wide Parquet export of about ``rows`` readings (once per size): a time column and, per
    meter, a power and a voltage column (``M0001_P``, ``M0001_V``, ...), a line per 5 minutes; a
    few blank cells. Its mapping (:data:`WIDE_MAPPING`) is written beside it."""
    import numpy as np
    import pandas as pd

    path = data / "telemetry-wide.parquet"
    data.mkdir(parents=True, exist_ok=True)
    (data / "telemetry-wide.toml").write_text(WIDE_MAPPING)
    if path.exists():
        return path
    lines = max(1, rows // meters)
    log(f"writing a wide export of {meters} meters x 2 channels x {lines:,} lines into {path} ...")
    rng = np.random.default_rng(seed)
    cols = {"time": pd.date_range("2025-01-06", periods=lines, freq="5min", tz="UTC")}
    for m in range(meters):
        p = rng.gamma(2.0, 0.8, lines)
        p[rng.random(lines) < 0.001] = np.nan
        cols[f"M{m:04d}_P"] = p
        cols[f"M{m:04d}_V"] = 230 + rng.normal(0, 2, lines)
    pd.DataFrame(cols).to_parquet(path)
    return path


def ingest_benchmark(rows: int = 5_000_000, workdir: Path = Path("bench-out"),
                     formats: tuple[str, ...] = ("parquet", "csv"), log=print) -> dict:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    files = ensure_fleet(rows, workdir, formats, log)
    results = []
    for fmt in formats:
        db = workdir / f"bench-{fmt}.duckdb"
        log(f"ingesting {files[fmt].name} ...")
        # (pc) in a process group of its own, as bench fleet's worker: see worker_in_group
        stdout = worker_in_group([sys.executable, "-m", "wattwatch.app.bench", fmt, str(files[fmt]), str(db)],
                                 f"bench worker for {fmt}")
        r = json.loads(stdout.strip().splitlines()[-1])
        r["target_rows_per_s"] = TARGETS.get(fmt, 0)
        r["meets_target"] = r["rows_per_s"] >= r["target_rows_per_s"]
        results.append(r)
    return {"benchmark": "ingest", "machine": _machine(), "date": time.strftime("%Y-%m-%d"), "results": results}


def _worker(fmt: str, path: str, db: str) -> dict:
    import duckdb

    from wattwatch.ingest.mapping import Mapping
    from wattwatch.ingest.pipeline import ingest_path
    from wattwatch.store import Store
    from wattwatch.store.duck import NO_EXTENSION_FETCH

    for p in (Path(db), Path(db + ".wal")):
        p.unlink(missing_ok=True)
    mapping = Mapping.from_toml(Path(path).with_suffix(".toml")) if fmt == "wide" else None
    store = Store(db)
    t0 = time.perf_counter()
    counts = ingest_path(store, path, mapping)
    seconds = time.perf_counter() - t0
    store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Baseline: the same file loaded by DuckDB alone, no checks, no de-duplication.
    base_db = db + ".baseline"
    Path(base_db).unlink(missing_ok=True)
    con = duckdb.connect(base_db, config=dict(NO_EXTENSION_FETCH))
    reader = f"read_parquet('{path}')" if fmt in ("parquet", "wide") else f"read_csv('{path}')"
    select = f"UNPIVOT {reader} ON COLUMNS(* EXCLUDE (time)) INTO NAME col VALUE v" if fmt == "wide" \
        else f"SELECT * FROM {reader}"
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE t AS {select}")
    base_seconds = time.perf_counter() - t0
    con.close()
    Path(base_db).unlink(missing_ok=True)
    return {"format": fmt, "rows": counts.read, "stored": counts.stored, "duplicates": counts.duplicates + counts.merged,
            "conflicts": counts.conflicts, "rejected": counts.rejected, "seconds": round(seconds, 3), "rows_per_s": counts.read / seconds,
            "baseline_seconds": round(base_seconds, 3), "baseline_rows_per_s": counts.read / base_seconds,
            "ratio_to_baseline": base_seconds / seconds, "peak_rss_mb": peak_mb}


def detect_benchmark(rows: int = 10_000_000, workdir: Path = Path("bench-out"), log=print, repeats: int = 3) -> dict:
    """Full rule set on ~``rows`` simulated readings (1,000 meters at 5 min), in a worker process;
    then the default set (rules + learned ensemble), both with state fitted once beforehand (timed
    apart: it is what the first run, or `wattwatch fit`, does).

    The detection is timed ``repeats`` times on the same loaded frame; the median is the figure
    (a shared VM's run-to-run spread is +-20 %), every run is reported.

    The floor, timed in the same process on the same frame, is one vectorised rule (single-phase
    neutral mismatch over all readings, then the same post-rules): what the cheapest useful
    detector costs, so the ratio says what the whole rule set costs on top of it."""
    from wattwatch.ingest.pipeline import ingest_path
    from wattwatch.store import Store

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    files = ensure_fleet(rows, workdir, ("parquet",), log)
    db = workdir / f"bench-detect-{rows}.duckdb"
    if not db.exists():
        log(f"ingesting {files['parquet']} into {db} ...")
        tmp = db.with_suffix(".tmp.duckdb")
        tmp.unlink(missing_ok=True)
        with Store(tmp) as s:
            ingest_path(s, files["parquet"])
        tmp.rename(db)
    log("detecting ...")
    stdout = worker_in_group([sys.executable, "-m", "wattwatch.app.bench", "detect", str(db), str(repeats)],
                             "bench detect worker")   # (pc) as bench fleet's: see worker_in_group
    r = json.loads(stdout.strip().splitlines()[-1])
    r.update(benchmark="detect", machine=_machine(), date=time.strftime("%Y-%m-%d"), target_readings_per_s=1_000_000)
    r["meets_target"] = r["readings_per_s"] >= r["target_readings_per_s"]
    return r


def _timed_runs(run, repeats: int) -> tuple[list[float], object]:
    """The seconds each of ``repeats`` (at least one) calls of ``run`` took, and the last one's result."""
    runs, result = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = run()
        runs.append(time.perf_counter() - t0)
    return runs, result


def _detect_worker(db: str, repeats: int = 3) -> dict:
    import warnings

    import numpy as np

    from wattwatch.detect.base import PostRule
    from wattwatch.detect.engine import EngineConfig, detect, profile
    from wattwatch.detect.frame import prepare
    from wattwatch.detect.postrules import alert_groups
    from wattwatch.detect.registry import DEFAULT_DETECTORS, LEARNED, build_all
    from wattwatch.store import Store

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    with Store(db, read_only=True) as s:
        t0 = time.perf_counter()
        frame = s.query()
        load_s = time.perf_counter() - t0
    # State is learned once (profiles, thermal models, calibrations, the learned ensemble's fleet
    # model), timed apart; detection then judges with it, as every run after the first does.
    rules = [n for n in DEFAULT_DETECTORS if n not in LEARNED]
    full_frame = prepare(frame)
    dets_rules, dets_default = build_all(rules), build_all()
    t0 = time.perf_counter()
    fit_notes = profile(full_frame, dets_default, EngineConfig())
    fit_s = time.perf_counter() - t0
    by_name = {d.name: d for d in dets_default}
    dets_rules = [by_name[n] for n in rules]  # the same fitted objects
    runs, result = _timed_runs(lambda: detect(full_frame, dets_rules), repeats)
    seconds = float(np.median(runs))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Forked detection workers share the frame copy-on-write; their own peak is reported apart.
    worker_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    default_runs, full = _timed_runs(lambda: detect(full_frame, dets_default), repeats)
    default_s = float(np.median(default_runs))
    t0 = time.perf_counter()
    df = prepare(frame)
    il, i_n = df["i_l1_a"].to_numpy(), df["i_n_a"].to_numpy()
    score = np.abs(il - i_n) / np.maximum(0.5, 0.02 * il)
    floor_groups = alert_groups(df["_seg"].to_numpy(), df["_t"].to_numpy(), score, PostRule())
    floor_s = time.perf_counter() - t0
    return {"readings": result.readings, "meters": result.meters, "alerts": len(result.alerts),
            "seconds": round(seconds, 3), "readings_per_s": result.readings / seconds, "load_seconds": round(load_s, 3),
            "runs_readings_per_s": [round(result.readings / s) for s in runs],
            "floor_seconds": round(floor_s, 3), "floor_readings_per_s": result.readings / floor_s,
            "floor_alerts": len(floor_groups), "ratio_to_floor": floor_s / seconds, "peak_rss_mb": peak_mb,
            "worker_peak_rss_mb": worker_peak_mb, "rules": rules,
            "default_seconds": round(default_s, 3), "default_readings_per_s": full.readings / default_s,
            "default_runs_readings_per_s": [round(full.readings / s) for s in default_runs],
            "default_alerts": len(full.alerts), "fit_seconds": round(fit_s, 3),
            "default_not_run": [n for n in fit_notes + full.notices if "not run" in n],
            "default_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# --------------------------------------------------------------------------------------- fleet

FLEET_TARGET_RATIO = 0.25  # detect --engine spark per meter against the naive applyInPandas
# Both sides run the default set without the learned stage: a fleet model cannot be trained on one
# meter (the naive UDF's learned ensemble would only say "not run"), so with it the two sides would
# not do the same work.
FLEET_BENCH_DETECTORS = ("supply_outage", "harmonic_noise", "phase_imbalance", "neutral_tamper", "sensor_fault",
                         "loose_ct", "firmware_drift", "packet_loss", "thermal_drift", "frozen_readings",
                         "baseline_macd", "seasonal_profile")


def fleet_benchmark(meters: int = 200, days: float = 14.0, seed: int = 0, masters: tuple[str, ...] = ("local[2]", "local[1]"),
                    pods: int | None = None, workdir: Path = Path("bench-out"), log=print, repeats: int = 3) -> dict:
    """Per-meter cost of ``detect --engine spark`` against a naive ``applyInPandas`` on the same
    simulated fleet, per Spark master; ``pods``: also ``fleet --engine spark`` on that many PODs
    (``wattwatch.fleet.bench.run_pods``, when that module is installed).

    Spark allows one session per process, so each master runs in its own worker process (a fresh
    JVM and Python workers each): there, after a warm-up job that starts the Python workers,

    - **ours** is what ``detect --engine spark`` does on a fleet without state: fleet models trained
      on the driver (none in this set), the detectors pickled and broadcast, then meter groups
      (``GROUPS_PER_CORE`` per core, at most 500k readings each) each sent as one Arrow IPC message
      with its meters' profiling rows flagged, one task per group (no shuffle), each task fitting
      its meters' state and judging them (``runners.spark.judge(fit=...)``), Outcomes and the
      learned state back to the driver;
    - **naive** is one meter per group, the same detectors built, fitted and run inside the UDF
      (``engine.detect`` on the meter alone), alerts back as JSON rows.

    Both run :data:`FLEET_BENCH_DETECTORS` (the default set without the learned ensemble, whose
    fleet model cannot be trained on one meter).

    The ratio is ours / naive seconds on the same meters in the same process, the median of
    ``repeats`` rounds (each round times both sides on the whole fleet, on every other meter and on
    every fourth, in alternating order). A job's fixed cost (its start, the broadcast, first-task
    work) is not a meter's: the marginal cost per meter, per side, is the slope through the three
    sizes (per round, median and range over the rounds, and pooled), and its ratio is reported
    beside the totals (``marginal_ratio``), never instead of them."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"bench-fleet-{meters}x{days:g}d-s{seed}.parquet"
    if not path.exists():
        from wattwatch.sim import SimConfig, simulate

        log(f"simulating {meters} meters x {days:g} days at 5 min (seed {seed}) into {path} ...")
        sim = simulate(SimConfig(meters=meters, days=days, seed=seed, fault_share=0.3, profile_days=min(7.0, days / 2)))
        tmp = path.with_suffix(".tmp.parquet")
        sim["frame"].to_parquet(tmp, index=False)
        tmp.rename(path)
    runs = []
    for master in masters:
        log(f"detect --engine spark and the naive applyInPandas on {master} (own process) ...")
        stdout = spark_worker([sys.executable, "-m", "wattwatch.app.bench", "fleet", str(path), master, str(repeats)],
                              f"bench fleet worker ({master})")
        runs.append(json.loads(stdout.strip().splitlines()[-1]))
    out = {"benchmark": "fleet", "machine": _machine(), "date": time.strftime("%Y-%m-%d"), "meters": meters,
           "days": days, "seed": seed, "target_ratio": FLEET_TARGET_RATIO, "runs": runs, "repeats": repeats,
           "isolation": "each master in its own worker process (one Spark session per process)"}
    by = {r["master"]: r for r in runs}
    if "local[1]" in by and "local[2]" in by:
        out["scaling_ours"] = by["local[1]"]["ours_s"] / by["local[2]"]["ours_s"]
        out["scaling_naive"] = by["local[1]"]["naive_s"] / by["local[2]"]["naive_s"]
    if pods:
        log(f"fleet --engine spark on {pods:,} PODs (own process) ...")
        stdout = spark_worker([sys.executable, "-m", "wattwatch.app.bench", "pods", str(pods), masters[0], str(workdir)],
                              "bench fleet --pods worker")
        out["pods"] = json.loads(stdout.strip().splitlines()[-1])
    return out


def worker_in_group(argv: list[str], what: str, grace_s: float = 20.0) -> str:
    """(prov) Run a bench worker (``python -m wattwatch.app.bench fleet|pods``: Spark; (pc) also
    ``detect`` and ingest's) in a process group of its own and return its stdout (RuntimeError with
    its stderr's end if it failed). A Ctrl-C or SIGTERM here (a KeyboardInterrupt: ``bench`` runs
    under the command line's handling) is passed on to the worker as a Ctrl-C: it ends its work
    itself within ``grace_s`` (a Spark worker cancels its jobs and stops its session:
    :func:`_spark_main`; detect's stops and reaps its forked workers: :func:`_plain_main`); whatever
    is left of its group then (the JVM it started, the JVM's Python workers, a forked child) is
    ended (:func:`_end_group`), and so after any end of the worker. Before, ``subprocess.run``
    killed the worker 0.25 s after the Ctrl-C (SIGKILL), its work never told, and what it had
    started lived on, orphaned (a JVM seen over 100 s after a ``bench fleet`` Ctrl-C; ``bench
    detect``'s forked workers end with it on Linux only, by ``PR_SET_PDEATHSIG``)."""
    import signal

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    # (le) The pipes are read by two threads and the worker itself is waited for, not its pipes'
    # end: a grandchild that holds them (a JVM started with the worker's stdout) kept
    # ``communicate`` waiting -- a Ctrl-C for the whole grace, a worker that had ended until the
    # grandchild did. What is left of the group is ended (closing the pipes) once the worker is gone.
    got = ([], [])
    readers = [threading.Thread(target=_drain, args=(f.fileno(), buf), daemon=True)
               for f, buf in zip((proc.stdout, proc.stderr), got)]
    for t in readers:
        t.start()
    try:
        try:
            proc.wait()
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGINT)   # (a terminal's Ctrl-C reaches only our group)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace_s)
            except BaseException:   # noqa: BLE001 - not in time, or a second Ctrl-C: the group is ended below
                proc.kill()
                proc.wait()
            raise
    finally:
        _end_group(proc.pid)
        for t in readers:   # EOF once the group is gone; one that left the group keeps what it holds
            t.join(_PIPE_WAIT_S)
        if not any(t.is_alive() for t in readers):
            proc.stdout.close()
            proc.stderr.close()
    out, err = (b"".join(buf).decode(errors="replace") for buf in got)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{err[-3000:]}")
    return out


_PIPE_WAIT_S = 2.0   # (le) for the last of a worker's output once its group is ended


def _drain(fd: int, into: list) -> None:
    """Read ``fd`` to its end into ``into`` (a worker's pipe, in a thread of its own)."""
    while True:
        try:
            b = os.read(fd, 1 << 16)
        except OSError:
            return
        if not b:
            return
        into.append(b)


spark_worker = worker_in_group   # (its name before pc: bench fleet's and pods')


def _end_group(pgid: int, wait_s: float = 5.0) -> None:
    """End what is left of process group ``pgid`` (a worker's, the worker itself reaped): SIGTERM (a
    JVM runs its shutdown hooks: Spark's temporary folders removed), SIGKILL after ``wait_s``."""
    import signal

    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return   # nothing left
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        time.sleep(0.05)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def pods_available() -> bool:
    """Whether ``wattwatch.fleet.bench.run_pods`` (the per-POD fleet benchmark) is installed."""
    try:
        from wattwatch.fleet.bench import run_pods  # noqa: F401
    except ImportError:
        return False
    return True


def _pods_worker(n_pods: int, master: str, workdir: str) -> dict:
    import inspect

    from wattwatch.fleet.bench import run_pods

    offer = {"master": master, "workdir": Path(workdir), "log": lambda *a, **k: None}
    params = inspect.signature(run_pods).parameters
    kwargs = {k: v for k, v in offer.items() if k in params}
    t0 = time.perf_counter()
    r = run_pods(n_pods, **kwargs)
    wall = time.perf_counter() - t0
    r = dict(r) if isinstance(r, dict) else {"result": repr(r)}
    r.setdefault("pods", n_pods)
    r["bench_wall_s"] = round(wall, 3)
    r["bench_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return r


def _warm_rows(pdf):
    """Warm-up UDF: the Python worker imports what both sides use (the detectors, torch)."""
    import torch  # noqa: F401 - the learned detectors' models

    from wattwatch.detect.registry import DEFAULT_DETECTORS, build_all
    from wattwatch.runners import group  # noqa: F401

    build_all(list(DEFAULT_DETECTORS))
    return pdf


def _warm_part(items):
    """The same warm-up for the RDD API's Python workers: Spark keeps them apart from the SQL
    (``applyInPandas``) workers (other processes), so warming only the latter warmed only the naive
    side, and ``detect --engine spark``'s timing paid its workers' start and imports (2-8 s)."""
    import os

    _warm_rows(None)
    yield os.getpid()


def _naive_rows(pdf, unit: str = "ns"):
    """The naive UDF: one meter; the default detectors built, fitted and run on it alone
    (``pdf`` as :func:`wattwatch.runners.spark.to_spark` sends it, times in ``unit``)."""
    from wattwatch.detect.engine import EngineConfig, detect
    from wattwatch.detect.registry import build_all
    from wattwatch.runners.group import Outcome
    from wattwatch.runners.spark import _canonical, _rows

    res = detect(_canonical(pdf, unit), build_all(list(FLEET_BENCH_DETECTORS)), EngineConfig(workers=1))
    return _rows(Outcome(alerts=res.alerts, notices=res.notices, open_ids=res.open_ids, readings=res.readings))


def marginal(n_small: int, s_small: float, n_large: int, s_large: float) -> float:
    """Seconds per extra meter between two fleet sizes: what a meter costs once the job's fixed
    costs (job start, broadcast, first-task work) are paid, which the larger fleet pays once too."""
    if n_large <= n_small:
        raise ValueError(f"the larger fleet must hold more meters ({n_small} then {n_large})")
    return (s_large - s_small) / (n_large - n_small)


def slope(ns, ss) -> float:
    """Seconds per extra meter through (meters, seconds) points at two or more fleet sizes: the
    least-squares line's slope (two points: :func:`marginal`). Sizes far apart and more than two of
    them keep one slow or fast run from making the slope absurd (it is a difference of times)."""
    import numpy as np

    n, s = np.asarray(ns, float), np.asarray(ss, float)
    if len(n) != len(s) or len(np.unique(n)) < 2:
        raise ValueError(f"a slope needs times at two or more fleet sizes, got sizes {list(ns)}")
    n0 = n - n.mean()
    return float(np.sum(n0 * (s - s.mean())) / np.sum(n0 * n0))


def marginal_summary(sizes: list[int], ours: list[list[float]], naive: list[list[float]]) -> dict:
    """The marginal cost per meter of each side and their ratio, from ``ours[r][k]`` and
    ``naive[r][k]``: seconds of round ``r`` on the fleet of ``sizes[k]`` meters.

    Per round, each side's slope over the sizes measured in that round, and the ratio of the two
    (None when naive's slope is not positive: the round did not resolve a cost per meter); reported
    as the median over the rounds with the lowest and highest, beside the pooled slope (one line
    through every round's points) and its ratio. A single round's difference of two times is what
    made this figure absurd before (ratios of -0.16 and 1.14 at load 14-21)."""
    o = [slope(sizes, r) for r in ours]
    n = [slope(sizes, r) for r in naive]
    ratios = [a / b if b > 0 else None for a, b in zip(o, n)]
    ok = [x for x in ratios if x is not None]
    po = slope([m for _ in ours for m in sizes], [x for r in ours for x in r])
    pn = slope([m for _ in naive for m in sizes], [x for r in naive for x in r])
    return {"marginal_sizes": list(sizes),
            "ours_marginal_ms_per_meter": 1000 * _median(o), "naive_marginal_ms_per_meter": 1000 * _median(n),
            "ours_marginal_ms_runs": [round(1000 * x, 2) for x in o],
            "naive_marginal_ms_runs": [round(1000 * x, 2) for x in n],
            "marginal_ratio": _median(ok) if ok else None,
            "marginal_ratios": [None if x is None else round(x, 3) for x in ratios],
            "marginal_ratio_range": [round(min(ok), 3), round(max(ok), 3)] if ok else None,
            "ours_marginal_pooled_ms": 1000 * po, "naive_marginal_pooled_ms": 1000 * pn,
            "marginal_ratio_pooled": po / pn if pn > 0 else None}


def _ignores_sigchld(pid: int) -> bool:
    """Whether process ``pid`` ignores SIGCHLD (Linux ``/proc/PID/status`` ``SigIgn``): its children
    are reaped by the kernel as they exit, and their CPU times are added to no one's."""
    import signal

    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGCHLD - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


class _TreeCpu:
    """:func:`tree_cpu`'s memory: each live process's CPU total at the last reading, and the
    totals of those that exited with nobody to add them to their parent."""

    def __init__(self):
        self.last: dict[tuple[int, float], tuple[float, bool]] = {}  # (pid, start) -> (total, parent ignores SIGCHLD)
        self.gone = 0.0

    def read(self) -> float:
        import psutil

        me = psutil.Process()
        now: dict[tuple[int, float], tuple[float, int]] = {}
        for p in [me, *me.children(recursive=True)]:
            try:
                with p.oneshot():
                    key, t, ppid = (p.pid, p.create_time()), p.cpu_times(), p.ppid()
            except psutil.Error:  # exited between the listing and the read
                continue
            now[key] = (t.user + t.system + t.children_user + t.children_system, ppid)
        for key, (total, unreaped) in self.last.items():
            if key not in now and unreaped:
                self.gone += total
        ignores = {pp: _ignores_sigchld(pp) for pp in {pp for _, pp in now.values()}}
        self.last = {k: (total, ignores[pp]) for k, (total, pp) in now.items()}
        return self.gone + sum(total for total, _ in self.last.values())


_TREE_CPU: _TreeCpu | None = None


def tree_cpu() -> float:
    """CPU seconds (user + system) used so far by this process and every process under it (the
    Spark JVM, its Python workers), exited ones included: a process's own times plus those of the
    children it has reaped. A child whose parent ignores SIGCHLD (the PySpark daemon does, for its
    workers) is reaped by the kernel and its times are added to no one's: such a process, once
    gone, keeps the total it had at the last reading (what it used after that reading is not
    known). Without that memory, a worker the JVM retired between two readings took its whole
    life's CPU out of the sum (a bench round read -2.59 s). Each exited process is counted once:
    by the live process that reaped it, or by this memory."""
    global _TREE_CPU
    if _TREE_CPU is None:
        _TREE_CPU = _TreeCpu()
    return _TREE_CPU.read()


def _median(xs: list[float]) -> float:
    import statistics

    return float(statistics.median(xs))


def _fleet_worker(path: str, master: str, repeats: int = 3, fit: str = "tasks") -> dict:
    """One master's measurements, all in this process (one Spark session): after the warm-up,
    ``repeats`` rounds, each timing ours and naive on the whole fleet, on half of it (every other
    meter) and on a quarter (every fourth), the six in an order that alternates between rounds (so
    neither side always runs first or after the other; the machine's load drifts over a round).
    The marginal cost per meter is the slope through the three sizes (:func:`marginal_summary`).
    ``fit``: ``tasks`` (what ``detect --engine spark`` does) or ``driver`` (ours as it was before
    the fit was fused into the judging tasks: every meter fitted on the driver first), for a
    before/after measurement with the same bench: ``python -m wattwatch.app.bench fleet PATH
    local[2] 3 driver``."""
    import warnings

    import pandas as pd

    from wattwatch.detect.frame import prepare
    from wattwatch.runners import spark as sparkrun

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    full = prepare(pd.read_parquet(path))
    half = prepare(full[full["_seg"].to_numpy() % 2 == 0])
    quarter = prepare(full[full["_seg"].to_numpy() % 4 == 0])
    spark = sparkrun.session(master, app="wattwatch-bench-fleet")
    cores = spark.sparkContext.defaultParallelism
    # (prov) Every Spark job of the rounds in one block: a Ctrl-C or SIGTERM cancels the running one
    # (the warm-up's, ``to_spark``'s, the naive side's ``applyInPandas``; ours' judging is
    # ``sparkrun.collect``'s own block too) and waits for its stages before the worker stops Spark.
    with sparkrun.cancelled_on_interrupt(spark.sparkContext):
        r = _fleet_rounds(spark, cores, full, half, quarter, master, repeats, fit)
    spark.stop()
    return r


def _warm_up(spark, cores: int) -> None:
    """Warm-up, for neither side: the JVM's first job, the Python workers' start and their imports."""
    spark.range(4 * cores).groupBy("id").applyInPandas(_warm_rows, "id long").collect()
    spark.sparkContext.parallelize(range(4 * cores), 4 * cores).mapPartitions(_warm_part).collect()


def _fleet_rounds(spark, cores: int, full, half, quarter, master: str, repeats: int, fit: str) -> dict:
    """:func:`_fleet_worker`'s measurements on its session (which it stops after them)."""
    from wattwatch.detect.engine import DetectionResult, EngineConfig
    from wattwatch.detect.frame import profile_mask
    from wattwatch.detect.registry import build_all
    from wattwatch.runners import spark as sparkrun

    t0 = time.perf_counter()
    _warm_up(spark, cores)
    warm_s = time.perf_counter() - t0
    frames = {"full": full, "half": half, "quarter": quarter}
    sdfs = {k: (sparkrun.to_spark(spark, f), sparkrun.ts_unit(f)) for k, f in frames.items()}

    def ours(key: str) -> dict:
        f = frames[key]
        t0 = time.perf_counter()
        dets = build_all(list(FLEET_BENCH_DETECTORS))
        cfg = EngineConfig()
        # What detect --engine spark does on a fleet without state: fleet models (none in this set)
        # fitted on the driver, every other detector's state fitted in the task that judges the meter.
        if fit == "driver":
            notes = sparkrun.profile(f, dets, cfg, master=master)
            rows = None
        else:
            notes = sparkrun.profile(f, [d for d in dets if getattr(d, "fleet_model", False)], cfg, master=master)
            rows = profile_mask(f, cfg.profile_days, cfg.profile_max_share)
        fit_s = time.perf_counter() - t0
        res = DetectionResult()
        sparkrun.judge(f, dets, cfg, res, master=master, **({} if rows is None else {"fit": rows}))
        total = time.perf_counter() - t0
        return {"s": total, "fit_s": fit_s, "judge_s": total - fit_s, "alerts": len(res.alerts),
                "meters": res.meters, "readings": res.readings, "notices": notes + res.notices}

    def naive(key: str) -> dict:
        sdf, unit = sdfs[key]
        t0 = time.perf_counter()
        rows = sdf.groupBy("meter_id").applyInPandas(lambda p: _naive_rows(p, unit), sparkrun.RESULT_SCHEMA).collect()
        return {"s": time.perf_counter() - t0, "alerts": sum(1 for row in rows if row["kind"] == "alert")}

    keys = ("full", "half", "quarter")
    plan = [(side, key) for key in keys for side in ("ours", "naive")]
    got: dict[tuple[str, str], list[dict]] = {k: [] for k in plan}
    for r in range(repeats):
        for side, key in (plan if r % 2 == 0 else plan[::-1]):
            c0 = tree_cpu()
            one = ours(key) if side == "ours" else naive(key)
            one["cpu_s"] = tree_cpu() - c0
            got[(side, key)].append(one)
    o, n = got[("ours", "full")], got[("naive", "full")]
    oh, nh = got[("ours", "half")], got[("naive", "half")]
    meters, meters_half = o[0]["meters"], oh[0]["meters"]
    sizes = [got[("ours", k)][0]["meters"] for k in keys]
    # Per round: the ratio of totals on the whole fleet; the marginal cost per meter over the three
    # sizes measured in the same round (and pooled over the rounds).
    ratios = [a["s"] / b["s"] for a, b in zip(o, n)]
    per_round = lambda side: [[got[(side, k)][r]["s"] for k in keys] for r in range(repeats)]  # noqa: E731
    margin = marginal_summary(sizes, per_round("ours"), per_round("naive"))
    r3 = lambda xs: [round(x, 3) for x in xs]  # noqa: E731
    return {"master": master, "fit": fit, "cores": cores, "meters": meters, "meters_half": meters_half, "readings": o[0]["readings"],
            "groups": sparkrun.group_count(full.groupby("_seg").size().to_numpy(), cores), "warmup_s": round(warm_s, 3),
            "repeats": repeats, "ours_s": round(_median([x["s"] for x in o]), 3),
            "ours_fit_s": round(_median([x["fit_s"] for x in o]), 3),
            "ours_judge_s": round(_median([x["judge_s"] for x in o]), 3),
            "ours_ms_per_meter": 1000 * _median([x["s"] for x in o]) / meters, "ours_alerts": o[0]["alerts"],
            "detectors": list(FLEET_BENCH_DETECTORS), "notices": o[0]["notices"],
            "naive_s": round(_median([x["s"] for x in n]), 3),
            "naive_ms_per_meter": 1000 * _median([x["s"] for x in n]) / meters, "naive_alerts": n[0]["alerts"],
            "ratio": _median(ratios), "ratios": r3(ratios),
            "ours_runs_s": r3([x["s"] for x in o]), "naive_runs_s": r3([x["s"] for x in n]),
            # CPU seconds of the process tree (driver, JVM, Python workers) on the whole fleet: the
            # work done, much less sensitive than wall time to the machine's other jobs.
            "ours_cpu_s": round(_median([x["cpu_s"] for x in o]), 3), "naive_cpu_s": round(_median([x["cpu_s"] for x in n]), 3),
            "cpu_ratio": _median([a["cpu_s"] / b["cpu_s"] for a, b in zip(o, n)]),
            "ours_cpu_runs_s": r3([x["cpu_s"] for x in o]), "naive_cpu_runs_s": r3([x["cpu_s"] for x in n]),
            "ours_half_runs_s": r3([x["s"] for x in oh]), "naive_half_runs_s": r3([x["s"] for x in nh]),
            "ours_quarter_runs_s": r3([x["s"] for x in got[("ours", "quarter")]]),
            "naive_quarter_runs_s": r3([x["s"] for x in got[("naive", "quarter")]]),
            **margin,
            "alerts_equal": all(a["alerts"] == b["alerts"] for k in keys
                                for a, b in zip(got[("ours", k)], got[("naive", k)])),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _spark_main(work) -> None:
    """(prov) A Spark worker's ``__main__`` (:func:`spark_worker` runs it): as :func:`_plain_main`,
    its Ctrl-C the command's (:func:`spark_worker` passes the user's on), so pyspark's own SIGINT
    handler is left out (``runners.spark.PYSPARK_SIGINT``); the Spark jobs it started are cancelled
    by their ``cancelled_on_interrupt`` blocks, then its session is stopped (the JVM ends)."""
    from wattwatch.runners import spark as sparkrun

    sparkrun.PYSPARK_SIGINT = False
    _plain_main(work, _stop_spark)


def _stop_spark() -> None:
    try:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    except Exception:  # noqa: BLE001 - the JVM gone: nothing to stop (spark_worker ends what is left)
        pass


def _plain_main(work, on_interrupt=None) -> None:
    """(pc) A bench worker's ``__main__`` (detect's, ingest's; Spark's through :func:`_spark_main`;
    :func:`worker_in_group` runs it): ``work()``'s result as JSON on stdout; a Ctrl-C (the user's,
    passed on) or SIGTERM ends it as the command line does, its clean-ups run (detect's forked
    workers stopped and reaped; ``on_interrupt``), with exit 130 (143) and no traceback. (rpc) 143
    also when the SIGTERM's interrupt is in the context of the error that replaced it (Py4J's
    "Answer from Java side is empty"): before, Spark's worker took the error's type and said 130."""
    from wattwatch import sigterm

    try:
        with sigterm.as_interrupt():
            print(json.dumps(work(), default=str))
    except BaseException as exc:
        if not sigterm.from_interrupt(exc):
            raise
        if on_interrupt is not None:
            on_interrupt()
        sys.exit(143 if isinstance(sigterm.interrupt_in(exc), sigterm.Terminated) else 130)


if __name__ == "__main__":
    if sys.argv[1] == "detect":
        _plain_main(lambda: _detect_worker(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3))
    elif sys.argv[1] == "fleet":
        _spark_main(lambda: _fleet_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 3,
                                          sys.argv[5] if len(sys.argv) > 5 else "tasks"))
    elif sys.argv[1] == "pods":
        _spark_main(lambda: _pods_worker(int(sys.argv[2]), sys.argv[3], sys.argv[4]))
    else:
        _plain_main(lambda: _worker(*sys.argv[1:4]))


# ------------------------------------------------------------------------------------- learned

LEARNED_BASELINES = {
    "isolation_forest": "PyOD IForest (scikit-learn IsolationForest)",
    "local_outlier_factor": "PyOD LOF (scikit-learn LocalOutlierFactor)",
    "pca_reconstruction": "PyOD PCA",
    "autoencoder": "PyOD AutoEncoder (torch)",
    "lstm_autoencoder": "the same torch LSTM autoencoder, called bare",
}


def _library_twin(name: str, det, train_rows, seed: int):
    """The library's own detector for ``name``, fit on the same training rows with the same
    hyper-parameters; returns a function scoring the raw feature rows the library's way."""
    import numpy as np

    if name == "isolation_forest":
        from pyod.models.iforest import IForest

        m = IForest(n_estimators=det.config.n_estimators, contamination=det.config.contamination,
                    random_state=seed, n_jobs=1).fit(train_rows)
        return m.decision_function
    if name == "local_outlier_factor":
        from pyod.models.lof import LOF

        from wattwatch.detect.learned.models import seeded_rows

        rows = seeded_rows(train_rows, det.config.max_fit_rows, seed)  # the reference set ours keeps
        m = LOF(n_neighbors=det.config.n_neighbors, novelty=True, n_jobs=1).fit(rows)
        return m.decision_function
    if name == "pca_reconstruction":
        from pyod.models.pca import PCA

        m = PCA(random_state=seed).fit(train_rows)
        return m.decision_function
    if name == "autoencoder":
        from pyod.models.auto_encoder import AutoEncoder

        m = AutoEncoder(hidden_neuron_list=[det.config.hidden, det.config.code_size], epoch_num=2, batch_size=4096,
                        batch_norm=False, dropout_rate=0.0, random_state=seed, verbose=0).fit(train_rows)
        return m.decision_function
    if name == "lstm_autoencoder":
        import torch

        net = det.fleets_[300.0].model_.net_

        def bare(seqs):
            with torch.inference_mode():
                out = []
                for k in range(0, len(seqs), 65_536):
                    x = torch.from_numpy(seqs[k:k + 65_536])
                    out.append(((net(x) - x) ** 2).mean(dim=(1, 2)).numpy())
            return np.concatenate(out)
        return bare
    raise ValueError(name)


def learned_benchmark(rows: int = 1_000_000, seed: int = 0, repeats: int = 1, detectors: list[str] | None = None,
                      log=print) -> dict:
    """Rows/s of each learned detector scoring the same ``rows`` feature rows (all of its work: its
    inputs, scaling, model, calibration) against its library twin in the same process."""
    import numpy as np
    import pandas as pd

    from wattwatch.detect import registry
    from wattwatch.detect.frame import prepare, profile_mask
    from wattwatch.detect.learned.features import Baseline
    from wattwatch.sim import SimConfig, simulate

    days = 30.0
    # About 55 % of a simulated month's bins are judged (not the profiling week, not a day type
    # seen on fewer than two days): simulate enough meters for ``rows`` of them, then take ``rows``.
    meters = max(1, int(np.ceil(rows / (0.5 * days * 288))))
    log(f"simulating {meters} meters x {days:.0f} days for ~{rows:,} feature rows ...")
    sim = simulate(SimConfig(meters=meters, days=days, seed=seed, fault_share=0.3))
    frame = prepare(sim["frame"].drop_duplicates(["meter_id", "ts"]))
    prof = prepare(frame[profile_mask(frame, 7)])
    names = detectors or ["isolation_forest", "local_outlier_factor", "pca_reconstruction", "autoencoder",
                          "lstm_autoencoder"]
    results = []
    gf = None
    for name in names:
        det = registry.build(name, {"seed": seed}).train(prof)
        fleet = det.fleets_[300.0]  # 5-minute readings: the model of the 5-minute grid
        if gf is None:
            gf = Baseline.from_states(fleet.config.features(), det.get_state()).features(frame)
            keep = np.flatnonzero(gf.valid.ravel())[:rows]
            valid = np.zeros(gf.valid.size, bool)
            valid[keep] = True
            gf.valid = valid.reshape(gf.valid.shape)
            n = int(gf.valid.sum())
            train_rows = Baseline(det.config.features()).fit(prof).features(prof, leave_day_out=True).rows()
            log(f"{n:,} feature rows x {gf.values.shape[2]} features; training rows {len(train_rows):,}")
        # Both score the same scaled feature rows (the scaler is the feature stage, fitted with
        # the detector and shared by the ensemble's members; timed apart below), so the ratio is
        # what our wrapper (model call, calibration to exceedance probability, grid placement)
        # costs on top of the library.
        twin = _library_twin(name, det, fleet.scaler_.transform(train_rows), seed)
        t0 = time.perf_counter()
        Xs = fleet._inputs(gf, scale=True)
        feat_s = time.perf_counter() - t0
        ours_s, lib_s = [], []
        for _ in range(repeats):  # alternated, so a slow minute of the machine hits both
            t0 = time.perf_counter()
            ours = fleet.evidence(gf, Xs)
            ours_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            theirs = twin(Xs)
            lib_s.append(time.perf_counter() - t0)
        o, l_ = float(np.median(ours_s)), float(np.median(lib_s))
        load = _load_times(det.model_state(), repeats)
        both = np.isfinite(ours[gf.valid]) & np.isfinite(theirs)
        rho = float(pd.Series(ours[gf.valid][both]).corr(pd.Series(theirs[both]), method="spearman"))
        results.append({"detector": name, "library": LEARNED_BASELINES[name], "rows": n,
                        "ours_rows_per_s": round(n / o), "library_rows_per_s": round(n / l_),
                        "ratio": round(l_ / o, 3), "rank_correlation": round(rho, 3),
                        "features_rows_per_s": round(n / feat_s), "end_to_end_rows_per_s": round(n / (feat_s + o)),
                        "ours_runs_s": [round(x, 2) for x in ours_s], "library_runs_s": [round(x, 2) for x in lib_s],
                        **load})
        log(f"  {name}: ours {n / o:,.0f} rows/s, {LEARNED_BASELINES[name]} {n / l_:,.0f} rows/s, ratio {l_ / o:.2f}; "
            f"feature scaling {n / feat_s:,.0f} rows/s; model load {load['load_s']:.3f} s "
            f"({load['load_bytes'] / 1e6:.1f} MB, pickle {load['pickle_load_s']:.3f} s, ratio {load['load_ratio']:.2f})")
    return {"machine": _machine(), "rows": n, "repeats": repeats, "results": results,
            "date": time.strftime("%Y-%m-%d")}


def _load_times(state: dict, repeats: int) -> dict:
    """Seconds to load a detector's stored fleet state (the validating, pickle-free format of
    ``detect.learned.persist``), against ``pickle.loads`` of the same state (no checks), alternated;
    medians."""
    import pickle

    import numpy as np

    from wattwatch.detect.learned.persist import dumps_state, loads_state

    ours, theirs = dumps_state(state), pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    ours_s, pickle_s = [], []
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        loads_state(ours)
        ours_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pickle.loads(theirs)  # noqa: S301 - our own bytes, made just above: the baseline
        pickle_s.append(time.perf_counter() - t0)
    o, p = float(np.median(ours_s)), float(np.median(pickle_s))
    return {"load_s": round(o, 4), "pickle_load_s": round(p, 4), "load_ratio": round(p / o, 3),
            "load_bytes": len(ours)}


# -------------------------------------------------------------------------------------- report

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
CHROMIUM = "/usr/bin/chromium"
REPORT_TARGETS = {"bytes": 2_000_000, "open_s": 2.0}


def synthetic_fleet(meters: int = 1000, days: float = 35.0, cadence_s: int = 900, seed: int = 0):
    """A three-phase fleet built with numpy in seconds (no simulation): a daily load shape per meter
    with noise, phase currents from it at ~230 V, a rising energy register, temperature and THD."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = int(days * 86400 // cadence_s)
    t = np.arange(n) * cadence_s
    day = np.sin(2 * np.pi * (t % 86400) / 86400 - np.pi / 2)  # low at night
    base = rng.uniform(0.5, 20.0, meters)[:, None]
    p = np.clip(base * (1.0 + 0.5 * day[None, :]) + rng.normal(0, 0.05, (meters, n)) * base, 0.0, None)
    v = 230 + rng.normal(0, 1.5, (meters, 3, n))
    share = rng.dirichlet([20, 20, 20], meters)[:, :, None]
    i = p[:, None, :] * 1000 * share / v
    frame = pd.DataFrame({
        "meter_id": np.repeat([f"M{k:05d}" for k in range(meters)], n),
        "ts": np.tile(pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(t, unit="s"), meters),
        "v_l1_v": v[:, 0].ravel(), "v_l2_v": v[:, 1].ravel(), "v_l3_v": v[:, 2].ravel(),
        "i_l1_a": i[:, 0].ravel(), "i_l2_a": i[:, 1].ravel(), "i_l3_a": i[:, 2].ravel(),
        "i_n_a": np.abs(i[:, 0] - i[:, 1]).ravel() * 0.3, "p_kw": p.ravel(), "q_kvar": (0.2 * p).ravel(),
        "s_kva": (1.02 * p).ravel(), "pf": np.full(meters * n, 0.98),
        "e_kwh": (np.cumsum(p, axis=1) * cadence_s / 3600 + rng.uniform(0, 5e4, meters)[:, None]).ravel(),
        "temp_c": (25 + 5 * day[None, :] + rng.normal(0, 0.3, (meters, n))).ravel(),
        "thd_i_pct": np.abs(5 + rng.normal(0, 0.5, (meters, n))).ravel(),
    })
    return frame


def synthetic_alerts(meters: int, n: int, start, days: float, seed: int = 0) -> list:
    """``n`` alerts on a skewed share of the meters (a few meters carry many), codes and scores
    drawn at random, severities from the codes' policy, evidence of a handful of numbers."""
    import numpy as np
    import pandas as pd

    from wattwatch.alerts.model import Alert
    from wattwatch.codes import SEVERITY_POLICY, severity

    rng = np.random.default_rng(seed)
    codes = sorted(SEVERITY_POLICY)
    who = np.minimum((rng.pareto(1.2, n) * meters / 8).astype(int), meters - 1)
    out = []
    for k in range(n):
        code = codes[rng.integers(len(codes))]
        score = float(rng.uniform(0.5, 1.0))
        s = pd.Timestamp(start) + pd.Timedelta(seconds=float(rng.uniform(0, days * 86400 - 7200)))
        e = s + pd.Timedelta(minutes=float(rng.choice([0, 15, 60, 240, 1440])))
        out.append(Alert(meter_id=f"M{who[k]:05d}", start=s.isoformat(), end=e.isoformat(), code=code,
                         severity=severity(code, score), score=round(score, 3), detector="synthetic",
                         message=f"synthetic {code.lower()} finding {k}",
                         evidence={"ratio": round(float(rng.uniform(1, 5)), 3), "limit": 0.1,
                                   "i_n_a": round(float(rng.uniform(0, 40)), 2),
                                   "i_l1_a": round(float(rng.uniform(0, 40)), 2), "readings": int(rng.integers(1, 500))},
                         action="check the meter's wiring on site"))
    return out


def measure_open(browser, path: Path, meter: int | None = 0) -> dict:
    """Open ``path`` in a fresh page of ``browser``: seconds from the start of navigation until the
    page is built and every figure in view is drawn (the page's own clock, read back: polling from
    outside would load the page it measures), and (``meter``) from scrolling to that meter's section
    until its figure is drawn. Console and page errors are collected."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        t0 = time.perf_counter()
        page.goto(path.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        wall_s = time.perf_counter() - t0
        in_view = ("() => [...document.querySelectorAll('.plot')].filter(d => {const r = d.getBoundingClientRect();"
                   " return r.top < innerHeight && r.bottom > 0})")
        # Every figure in view at the open is drawn then; the time is the last one's.
        page.wait_for_function(f"() => ({in_view})().every(d => d.dataset.drawn === '1')", polling=100, timeout=60_000)
        open_ms = page.evaluate(f"() => Math.max(...({in_view})().map(d => window.wattwatchReport.drawnAt[d.id]))")
        meter_s = None
        if meter is not None:  # the sections are built after the open, in slices
            page.wait_for_selector("body[data-sections='1']", timeout=60_000)
        if meter is not None and page.query_selector(f"#plot-m-{meter}"):
            t_ms = page.evaluate(f"() => {{document.getElementById('m-{meter}').scrollIntoView(); return performance.now()}}")
            page.wait_for_selector(f"#plot-m-{meter}[data-drawn='1']", timeout=60_000)
            meter_s = (page.evaluate(f"() => window.wattwatchReport.drawnAt['plot-m-{meter}']") - t_ms) / 1000
        info = page.evaluate("() => ({sections: document.querySelectorAll('section.meter').length,"
                             " evidence: document.querySelectorAll('table.evidence').length,"
                             " drawn_meters: document.querySelectorAll('#index td').length ? [...document.querySelectorAll("
                             "'#index tr')].filter(r => r.lastChild.textContent === 'drawn').length : 0,"
                             " note: (document.getElementById('telemetry-note') || {}).textContent || ''})")
        return {"open_s": open_ms / 1000, "wall_s": wall_s, "meter_s": meter_s, "errors": errors, **info}
    finally:
        page.close()


def _floor_page(path: Path) -> Path:
    """The floor: a page that inflates the same plotly.js bundle and draws one small figure."""
    from wattwatch.report.html import _plotly_b64

    js = ("(async()=>{const b=Uint8Array.from(atob(document.getElementById('p').textContent),c=>c.charCodeAt(0));"
          "const t=await new Response(new Blob([b]).stream().pipeThrough(new DecompressionStream('gzip'))).text();"
          "const s=document.createElement('script');s.text=t;document.head.append(s);"
          "const d=document.querySelector('.plot');await Plotly.newPlot(d,[{type:'scatter',y:[1,3,2]}]);"
          "d.dataset.drawn='1';window.wattwatchReport={drawnAt:{floor:performance.now()}};"
          "document.body.dataset.ready='1';})();")
    path.write_text(f"<!doctype html><html><body><div class='plot' id='floor' style='height:300px'></div>"
                    f"<script type='application/octet-stream' id='p'>{_plotly_b64()}</script><script>{js}</script>"
                    "</body></html>")
    return path


def report_benchmark(meters: int = 1000, days: float = 35.0, alerts: int = 1000, cadence_s: int = 900,
                     workdir: Path = Path("bench-out"), seed: int = 0, repeats: int = 3, browser=None, log=print,
                     floor: bool = True) -> dict:
    """Size and open time of the report of ``meters`` x ``days`` with ``alerts`` alerts, in headless
    Chromium, against the floor (a page with the same plotly.js bundle and one figure)."""
    import numpy as np

    from wattwatch import api
    from wattwatch.alerts.store import upsert
    from wattwatch.store import Store

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / f"report-{meters}x{days:g}d-{cadence_s}s-{alerts}a-{seed}.duckdb"
    if not db.exists():
        t0 = time.perf_counter()
        frame = synthetic_fleet(meters, days, cadence_s, seed)
        log(f"building {len(frame):,} readings ({meters} meters x {days:g} days at {cadence_s} s) into {db} ...")
        tmp = db.with_suffix(".tmp.duckdb")
        tmp.unlink(missing_ok=True)
        api.ingest(frame, tmp)
        with Store(tmp) as s:
            upsert(s.con, synthetic_alerts(meters, alerts, frame["ts"].min(), days, seed))
        tmp.rename(db)
        log(f"  built in {time.perf_counter() - t0:.1f} s")
    out = workdir / "report.html"
    t0 = time.perf_counter()
    api.report(out, db=db)
    write_s = time.perf_counter() - t0
    floor_page = _floor_page(workdir / "floor.html") if floor else None
    own = browser is None
    if own:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
    try:
        runs, floors = [], []
        for k in range(max(1, repeats)):  # alternated, so a slow second of the machine hits both
            runs.append(measure_open(browser, out, 0 if k == 0 else None))  # one meter's section: once
            if floor_page is not None:
                floors.append(measure_open(browser, floor_page, None))
    finally:
        if own:
            browser.close()
            pw.stop()
    open_s = float(np.median([r["open_s"] for r in runs]))
    meter_s = runs[0]["meter_s"] if runs[0]["meter_s"] is not None else float("nan")
    floor_s = float(np.median([r["open_s"] for r in floors])) if floors else float("nan")
    size = out.stat().st_size
    from wattwatch.report.html import _plotly_b64

    return {"benchmark": "report", "machine": _machine(), "date": time.strftime("%Y-%m-%d"), "meters": meters,
            "days": days, "cadence_s": cadence_s, "alerts": alerts, "sections": runs[0]["sections"],
            "drawn_meters": runs[0]["drawn_meters"], "note": runs[0]["note"],
            "evidence_tables": runs[0]["evidence"], "bytes": size, "plotly_bytes": len(_plotly_b64()),
            "write_s": round(write_s, 3), "open_s": round(open_s, 3), "meter_s": round(meter_s, 3),
            "runs_open_s": [round(r["open_s"], 3) for r in runs], "runs_wall_s": [round(r["wall_s"], 3) for r in runs], "best_open_s": round(min(r["open_s"] for r in runs), 3),
            "floor_open_s": round(floor_s, 3),
            "ratio_to_floor": round(open_s / floor_s, 2), "errors": sorted({e for r in runs for e in r["errors"]}),
            "target_bytes": REPORT_TARGETS["bytes"], "target_open_s": REPORT_TARGETS["open_s"],
            "meets_target": size <= REPORT_TARGETS["bytes"] and open_s <= REPORT_TARGETS["open_s"]}
