"""The stream engine's step, paired: two engines on stores holding the same profiled fleet
(``--meters`` at 1 minute, the first day fitted), fed the same ``--hours`` of readings, the last
``--timed`` steps of ``--per-step`` readings timed (CPU of the caller's thread: ``add`` and
``step``), alternating which engine goes first. One engine runs this checkout's code, the other a
baseline's for the modules a folder holds (``--baseline DIR`` with files at their paths under
``src/wattwatch``, e.g. ``DIR/alerts/store.py`` from ``git show main:src/wattwatch/alerts/store.py``):
before each of its steps, the baseline's module-level functions and its classes' methods are put
in place of this checkout's (and put back after), so only code reached through module attributes
or methods is swapped (a name imported with ``from x import f`` elsewhere keeps this checkout's).
The slow tier judges in the caller's thread (``slow_thread=False``) so that no judgement of one
engine runs under the other's code; only steps where neither engine's slow tier ran are compared.
Prints CPU per fast step (p50 / p90 / p99 / mean) of each, the median of the paired ratios, the same of
the steps' wall time (DuckDB's own threads do part of a statement's work, which the caller's CPU
misses), and whether the two engines wrote the same alerts (every version, and those after a final
flush). ``--stored-alerts N``: both stores keep N older alerts (a long-lived store), as every
statement over the alerts table sees them.

    python scripts/bench_stream_step.py --baseline /tmp/main_src [--per-step 200] [--timed 60] [--stored-alerts N]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


_UNSET = object()


def _swapper(baseline: Path):
    """(use_baseline, use_this): put the baseline's functions and methods in place, or back."""
    this, base = {}, {}
    for f in sorted(baseline.rglob("*.py")):
        rel = f.relative_to(baseline).with_suffix("")
        name = "wattwatch." + ".".join(rel.parts)
        live = importlib.import_module(name)
        spec = importlib.util.spec_from_file_location(f"_baseline_{'_'.join(rel.parts)}", f)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod   # dataclasses look their module up
        spec.loader.exec_module(mod)
        for k, v in vars(mod).items():
            cur = getattr(live, k, None)
            if callable(v) and getattr(v, "__module__", None) == spec.name and not isinstance(v, type) \
                    and callable(cur):
                this[(live, k)], base[(live, k)] = cur, v
            elif isinstance(v, type) and isinstance(cur, type) and v.__module__ == spec.name:
                for m, fn in vars(v).items():
                    if callable(fn) and not isinstance(fn, type) and m in vars(cur) and callable(vars(cur)[m]) \
                            and not (m.startswith("__") and "__dataclass_fields__" in vars(cur)):
                        # (a dataclass's generated methods stay this checkout's: its fields may differ)
                        this[(cur, m)], base[(cur, m)] = vars(cur)[m], fn
                # Plain class settings the baseline's class sets (``reads_also``, ``lookback_n``: what a
                # detector reads and how far back, which the engine's tiers follow; a trimmed baseline
                # class states the value it inherited, e.g. ``lookback_n = 0``).
                for m, bv in vars(v).items():
                    if m.startswith("__") or m == "_abc_impl" \
                            or not isinstance(bv, (tuple, int, float, str, bool, frozenset, type(None))):
                        continue
                    cv = vars(cur).get(m, _UNSET)
                    if not (callable(cv) or isinstance(cv, (type, property, staticmethod, classmethod))) \
                            and (cv is _UNSET or cv != bv):
                        this[(cur, m)], base[(cur, m)] = cv, bv

    def put(which):
        for (obj, k), v in which.items():
            if v is _UNSET:
                if k in vars(obj):
                    delattr(obj, k)
            else:
                setattr(obj, k, v)

    return (lambda: put(base)), (lambda: put(this))


def _old_alerts(path: Path, n: int, seed: int) -> None:
    """``n`` closed alerts of the store's meters before its first reading, a tenth acknowledged or
    cleared (one statement)."""
    import hashlib

    import duckdb
    import pandas as pd

    from wattwatch.alerts import store as alert_store

    con = duckdb.connect(str(path))
    alert_store.ensure_tables(con)
    meters = [r[0] for r in con.execute("SELECT meter_id FROM meters ORDER BY 1").fetchall()]
    first = pd.Timestamp(con.execute("SELECT min(ts) FROM readings_raw").fetchone()[0])
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    start = first - pd.to_timedelta(rng.integers(3600, 2 * 365 * 86400, n), unit="s")
    status = np.where(k % 10 == 0, "acknowledged", np.where(k % 10 == 1, "cleared", "open"))
    # Ids as the store's are (16 hex digits of a hash, in no order): the alerts table's zone maps
    # cannot skip a row group for them, as they could for ids written in order.
    ids = [hashlib.sha1(f"old|{seed}|{i}".encode()).hexdigest()[:16] for i in k]
    old = pd.DataFrame({"id": ids, "meter_id": np.array(meters, object)[k % len(meters)],
                        "code": "ERR_OLD", "detector": "old", "severity": "warning", "start": start,
                        "end": start + pd.Timedelta("2h"), "score": 1.0, "message": "", "evidence": "{}", "action": "",
                        "status": status, "first_seen": start, "last_seen": start, "status_at": start, "note": None})
    con.execute("INSERT INTO alerts SELECT * FROM old")
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="a folder with modules at their paths under src/wattwatch")
    ap.add_argument("--per-step", type=int, default=200)
    ap.add_argument("--timed", type=int, default=60)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--stored-alerts", type=int, default=0,
                    help="alerts the store already keeps (a long-lived store: closed, a tenth acknowledged or "
                         "cleared, before the profiling day), as per-step statements over the alerts table see it")
    a = ap.parse_args()

    from wattwatch import api
    from wattwatch.app.benchstream import simulated_stream
    from wattwatch.runners.stream import StreamConfig, StreamEngine
    from wattwatch.store import Store

    use_base, use_this = _swapper(Path(a.baseline))
    prof, live = simulated_stream(a.meters, 1 + a.hours / 24, 1, 60.0, a.seed)
    cfg = {"engine": {"profile_days": 1}}
    work = Path(tempfile.mkdtemp(prefix="ww-bench-step-"))
    api.ingest(prof, work / "fitted.duckdb")
    api.fit(work / "fitted.duckdb", days=1, config=cfg)
    if a.stored_alerts:
        _old_alerts(work / "fitted.duckdb", a.stored_alerts, a.seed)
    engines = {}
    for name, mode in (("baseline", use_base), ("this", use_this)):
        shutil.copy(work / "fitted.duckdb", work / f"{name}.duckdb")
        mode()
        eng = StreamEngine(Store(work / f"{name}.duckdb"), api.build_detectors(None, cfg), api._engine(cfg),
                           StreamConfig(checkpoint_s=1e9, slow_thread=False))
        eng.step()   # the profiling day, as a backfill
        engines[name] = (mode, eng)

    def version(al) -> tuple:
        return (al.start, al.end, al.severity, al.score, al.message, json.dumps(al.evidence, sort_keys=True, default=str))

    written = {k: [] for k in engines}
    cpu = {k: [] for k in engines}
    wall = {k: [] for k in engines}
    n, per = len(live), a.per_step
    n_warm = n - a.timed * per
    i = k = 0
    while i < n:
        j = min(n, i + (5000 if i < n_warm else per))
        if i < n_warm:
            j = min(j, n_warm)
        took, slow = {}, False
        for name in (("baseline", "this") if k % 2 == 0 else ("this", "baseline")):
            mode, eng = engines[name]
            mode()
            c0, w0 = time.thread_time(), time.perf_counter()
            eng.add(live.iloc[i:j])
            rep = eng.step()
            took[name] = (time.thread_time() - c0, time.perf_counter() - w0)
            slow |= bool(rep.slow)
            written[name] += [(al.id, version(al)) for al in rep.alerts]
        if i >= n_warm and not slow:
            for name, (c, w) in took.items():
                cpu[name].append(c)
                wall[name].append(w)
        i, k = j, k + 1
    for name, (mode, eng) in engines.items():
        mode()
        written[name] += [(al.id, version(al)) for al in eng.flush().alerts]
        eng.store.close()
    use_this()
    b, t = np.array(cpu["baseline"]) * 1e3, np.array(cpu["this"]) * 1e3
    wb, wt = np.array(wall["baseline"]) * 1e3, np.array(wall["this"]) * 1e3
    stats = lambda x: {"p50": round(float(np.median(x)), 1), "p90": round(float(np.percentile(x, 90)), 1),
                       "p99": round(float(np.percentile(x, 99)), 1), "mean": round(float(x.mean()), 1)}
    print(json.dumps({"meters": a.meters, "per_step": per, "fast_steps": len(t), "baseline_cpu_ms": stats(b),
                      "this_cpu_ms": stats(t), "paired_ratio_median": round(float(np.median(t / b)), 3),
                      # (DuckDB's own threads do part of a statement's work: the caller's CPU misses it)
                      "stored_alerts": a.stored_alerts, "baseline_wall_ms": stats(wb), "this_wall_ms": stats(wt),
                      "paired_wall_ratio_median": round(float(np.median(wt / wb)), 3),
                      "alert_versions": [len(written["baseline"]), len(written["this"])],
                      "alerts_identical": written["baseline"] == written["this"]}, indent=1))


if __name__ == "__main__":
    main()
