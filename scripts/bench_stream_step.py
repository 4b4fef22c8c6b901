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
Prints CPU per fast step (p50 / p90 / mean) of each, the median of the paired ratios, and whether
the two engines wrote the same alerts (every version, and those after a final flush).

    python scripts/bench_stream_step.py --baseline /tmp/main_src [--per-step 200] [--timed 60]
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
                    if callable(fn) and not isinstance(fn, type) and m in vars(cur) and callable(vars(cur)[m]):
                        this[(cur, m)], base[(cur, m)] = vars(cur)[m], fn

    def put(which):
        for (obj, k), v in which.items():
            setattr(obj, k, v)

    return (lambda: put(base)), (lambda: put(this))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="a folder with modules at their paths under src/wattwatch")
    ap.add_argument("--per-step", type=int, default=200)
    ap.add_argument("--timed", type=int, default=60)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
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
            c0 = time.thread_time()
            eng.add(live.iloc[i:j])
            rep = eng.step()
            took[name] = time.thread_time() - c0
            slow |= bool(rep.slow)
            written[name] += [(al.id, version(al)) for al in rep.alerts]
        if i >= n_warm and not slow:
            for name, c in took.items():
                cpu[name].append(c)
        i, k = j, k + 1
    for name, (mode, eng) in engines.items():
        mode()
        written[name] += [(al.id, version(al)) for al in eng.flush().alerts]
        eng.store.close()
    use_this()
    b, t = np.array(cpu["baseline"]) * 1e3, np.array(cpu["this"]) * 1e3
    stats = lambda x: {"p50": round(float(np.median(x)), 1), "p90": round(float(np.percentile(x, 90)), 1),
                       "mean": round(float(x.mean()), 1)}
    print(json.dumps({"meters": a.meters, "per_step": per, "fast_steps": len(t), "baseline_cpu_ms": stats(b),
                      "this_cpu_ms": stats(t), "paired_ratio_median": round(float(np.median(t / b)), 3),
                      "alert_versions": [len(written["baseline"]), len(written["this"])],
                      "alerts_identical": written["baseline"] == written["this"]}, indent=1))


if __name__ == "__main__":
    main()
