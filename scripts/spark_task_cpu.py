"""CPU of the work of `detect --engine spark`'s tasks on a fleet, per piece, without Spark.

Deals the fleet into groups as ``runners.spark.judge`` does (one per core of ``--cores``), builds each
group's Arrow message and profiling-row flags, then per round runs every group's task body:
``read_message``, ``fit_group`` (the fused fit) and ``judge_group``, with each detector's ``_fit`` and
``_score``, the core's post-rules (``core._post``) and ``read_message`` timed by ``time.process_time``.
Prints the least CPU of each over ``--rounds`` rounds (the machine's other jobs only add time):

    python scripts/spark_task_cpu.py bench-out/bench-fleet-120x14d-s0.parquet --rounds 5
"""

from __future__ import annotations

import argparse
import collections
import functools
import time
import warnings

import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cores", type=int, default=2)
    ns = ap.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)

    from wattwatch.app.bench import FLEET_BENCH_DETECTORS
    from wattwatch.detect import core
    from wattwatch.detect.engine import EngineConfig
    from wattwatch.detect.frame import prepare, profile_mask, seg_bounds
    from wattwatch.detect.registry import build_all
    from wattwatch.runners import spark as sr
    from wattwatch.runners.group import judge_group

    full = prepare(pd.read_parquet(ns.path))
    cfg = EngineConfig()
    dets = core.order(build_all(list(FLEET_BENCH_DETECTORS)))
    starts, ends = seg_bounds(full["_seg"].to_numpy())
    group = sr.meter_groups(ends - starts, sr.group_count(ends - starts, ns.cores))
    msgs = sr.group_messages(full, group, sr.shipped_channels(dets))
    fits = sr.group_rows(full, group, profile_mask(full, cfg.profile_days, cfg.profile_max_share))

    acc: dict[str, float] = collections.defaultdict(float)

    def timed(owner, name: str, label: str) -> None:
        f = getattr(owner, name)

        @functools.wraps(f)
        def g(*a, **k):
            t0 = time.process_time()
            try:
                return f(*a, **k)
            finally:
                acc[label] += time.process_time() - t0
        setattr(owner, name, g)

    for cls in {type(d) for d in dets}:
        for m in ("_fit", "_score"):
            if m in cls.__dict__:
                timed(cls, m, f"{cls.name}.{m}")
    timed(core, "_post", "core._post")
    timed(sr, "read_message", "read_message")

    def tasks() -> int:
        alerts = 0
        for k, msg in msgs:
            raw = sr.read_message(msg)
            ds, _ = sr.fit_group(raw, fits[k], build_all(list(FLEET_BENCH_DETECTORS)), cfg)
            alerts += len(judge_group(raw, ds).alerts)
        return alerts

    tasks()  # imports and first-call costs
    best: dict[str, float] = {}
    for _ in range(ns.rounds):
        acc.clear()
        t0 = time.process_time()
        alerts = tasks()
        cur = {**acc, "TOTAL (every group's task)": time.process_time() - t0}
        best = cur if not best else {k: min(best.get(k, float("inf")), v) for k, v in cur.items()}
    print(f"{len(full):,} readings, {len(starts)} meters in {len(msgs)} groups, {alerts} alerts; "
          f"least CPU s of {ns.rounds} rounds:")
    for k, v in sorted(best.items(), key=lambda kv: -kv[1]):
        print(f"  {k:36s} {v:.3f}")


if __name__ == "__main__":
    main()
