"""Where a stream step's time goes: a simulated fleet (200 meters at 1 min) is profiled on its
first day, streamed in 5,000-reading steps up to its last ``25 x --per-step`` readings, then 20
steps of ``--per-step`` readings (in time order: 200 is one reading per meter, 20 is a tenth of
the meters) are timed, wall and CPU, per phase of the engine (store, read back, stitch and its
parts, alert upsert).

    python scripts/profile_stream_step.py --detectors supply_outage,harmonic_noise,loose_ct,frozen_readings \
        --per-step 20 [--hours 3] [--meters 200]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detectors", default=None, help="comma-separated (default: the default set)")
    ap.add_argument("--per-step", type=int, default=200)
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-known", action="store_true", help="re-score the whole carried tail every step "
                    "(as before the known scores), to measure the difference")
    a = ap.parse_args()

    from wattwatch.detect import core
    from wattwatch.app.benchstream import profiled_engine, simulated_stream
    from wattwatch.runners.stream import StreamConfig

    prof, live = simulated_stream(a.meters, 1 + a.hours / 24, 1, 60.0, a.seed)
    db = Path(tempfile.mkdtemp(prefix="ww-step-")) / "s.duckdb"
    cfg = {"engine": {"profile_days": 1}}
    if a.detectors:
        cfg["detectors"] = a.detectors.split(",")
    _, store, eng = profiled_engine(db, prof, cfg, 1, StreamConfig(checkpoint_s=5.0))
    if a.no_known:
        eng.stitcher.known_scores = False
    eng.step()
    acc: dict = collections.defaultdict(lambda: [0.0, 0.0])

    def wrap(obj, name, label):
        f = getattr(obj, name)

        def timed(*args, **kw):
            w, c = time.perf_counter(), time.process_time()
            try:
                return f(*args, **kw)
            finally:
                acc[label][0] += time.perf_counter() - w
                acc[label][1] += time.process_time() - c
        setattr(obj, name, timed)

    n, i, steps = len(live), 0, 20
    warm = n - 25 * a.per_step
    while i < warm:
        j = min(i + 5000, warm)
        eng.add(live.iloc[i:j])
        eng.step()
        i = j
    wrap(eng, "add", "store (check, de-duplicate, merge)")
    wrap(store, "query_windows", "read back")
    wrap(eng.stitcher, "feed", "stitch (core + carry)")
    from wattwatch.detect import stitch
    wrap(core, "run", "  of which core.run")
    wrap(stitch, "_merge", "  of which merge tail and piece")
    wrap(eng.stitcher, "_cut_tail", "  of which cut the tail")
    wrap(core, "_reach_rows", "  of which reach rows")
    wrap(core, "_alert", "  of which describe alerts")
    wrap(eng, "_upsert", "upsert alerts")
    wall = cpu = 0.0
    for _ in range(steps):
        w, c = time.perf_counter(), time.process_time()
        eng.add(live.iloc[i:i + a.per_step])
        eng.step()
        i += a.per_step
        wall += time.perf_counter() - w
        cpu += time.process_time() - c
    print(f"{a.per_step} readings per step, {a.meters} meters, {len(eng.dets)} detectors; per step (ms) wall / CPU: "
          f"{wall / steps * 1000:.1f} / {cpu / steps * 1000:.1f}")
    for k, (w, c) in acc.items():
        print(f"  {k:38s} {w / steps * 1000:8.1f} {c / steps * 1000:8.1f}")
    carry = eng.carry_bytes()
    print(f"carried tail {carry['tail_bytes_per_meter']:,.0f} B/meter ({carry['tail_rows'] / max(carry['meters'], 1):.0f} "
          f"readings), learned state {carry['state_bytes_per_meter']:,.0f} B/meter, known scores in memory "
          f"{carry.get('known_bytes_per_meter', 0):,.0f} B/meter")
    store.close()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
