"""The store part of a stream step, paired: two stores holding the same ``--hours`` of a fleet
(``--meters`` at ``--cadence-s``) take the same ``--steps`` pieces of ``--per-step`` readings through
``ingest_live`` (the watcher's path: check, de-duplicate, merge, one transaction), one store through
this checkout's ``Store`` and ``ingest_live``, the other through a baseline's (``--baseline DIR``
holding another checkout's ``store/duck.py`` and ``ingest/pipeline.py``, e.g. from ``git show
main:src/wattwatch/store/duck.py``), alternating which goes first.
Prints CPU per step (p50 / p90 / mean) for each, the paired ratio, and checks that both stores end
with the same readings and meters.

    python scripts/bench_store_ingest.py --baseline /tmp/main_src --per-step 200,900
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store_step import fleet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="a folder with store/duck.py and ingest/pipeline.py")
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--cadence-s", type=int, default=60)
    ap.add_argument("--per-step", default="200,900")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()

    from wattwatch.ingest.pipeline import ingest_frame, ingest_live
    from wattwatch.store import Store

    def load(rel: str, name: str):
        spec = importlib.util.spec_from_file_location(f"wattwatch._baseline_{name}", Path(a.baseline) / rel)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod   # its dataclasses look their module up
        spec.loader.exec_module(mod)
        return mod

    kinds = {"baseline": (load("store/duck.py", "duck").Store, load("ingest/pipeline.py", "pipeline").ingest_live),
             "this": (Store, ingest_live)}

    start = pd.Timestamp("2026-01-01", tz="UTC")
    n = int(a.hours * 3600 / a.cadence_s)
    hist = fleet(a.meters, start, n, a.cadence_s, 1)
    for per in [int(x) for x in a.per_step.split(",")]:
        stores, caches, cpu = {}, {}, {k: [] for k in kinds}
        for k, (cls, _) in kinds.items():
            s = cls(Path(tempfile.mkdtemp(prefix="ww-singest-")) / "s.duckdb")
            ingest_frame(s, hist, source="history")
            stores[k], caches[k] = s, {}
        live = fleet(a.meters, start + pd.Timedelta(seconds=n * a.cadence_s), a.steps * per // a.meters + 2,
                     a.cadence_s, 2)
        live["e_kwh"] += n * 0.08
        for i in range(a.steps):
            piece = live.iloc[i * per:(i + 1) * per]
            for k in (list(kinds) if i % 2 else list(kinds)[::-1]):
                c = time.process_time()
                kinds[k][1](stores[k], piece, source="watch", cache=caches[k])
                cpu[k].append(time.process_time() - c)
        got = {k: (s.query().sort_values(["meter_id", "ts"]).reset_index(drop=True),
                   s.catalogue().sort_values("meter_id").reset_index(drop=True)) for k, s in stores.items()}
        pd.testing.assert_frame_equal(got["baseline"][0], got["this"][0])
        pd.testing.assert_frame_equal(got["baseline"][1], got["this"][1])
        w = a.warmup
        b, t = np.array(cpu["baseline"][w:]) * 1e3, np.array(cpu["this"][w:]) * 1e3
        print(f"{per} readings a step, {a.meters} meters, {a.hours:g} h stored, {len(b)} steps (CPU ms):")
        for k, v in (("baseline", b), ("this", t)):
            print(f"  {k:8s} p50 {np.median(v):6.2f}  p90 {np.percentile(v, 90):6.2f}  mean {v.mean():6.2f}")
        print(f"  paired ratio this/baseline: median {np.median(t / b):.3f}; stores equal "
              f"({len(got['this'][0]):,} readings)")
        for s in stores.values():
            s.close()


if __name__ == "__main__":
    main()
