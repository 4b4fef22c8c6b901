"""Where a fast stream step's CPU goes, per group of the fast tier: a simulated fleet (``--meters``
at 1 minute, default rule set) is profiled on its first day, streamed in 5,000-reading steps up to
its last ``--timed x --per-step`` readings, then ``--timed`` steps of ``--per-step`` readings are
timed (thread CPU). The slow tier judges in the caller's thread (``slow_thread=False``) and the
steps where it ran are left out, so every figure is a fast step's own: the store's ingest and
alert upsert, the piece, and per stitcher of the fast tier (named by its first detector) its feed,
merges, preparation, cut, and in ``core.run`` the scoring, the post-rules and the descriptions.

    python scripts/profile_stream_groups.py [--meters 200] [--per-step 200] [--timed 40] [--hours 6]
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--per-step", type=int, default=200)
    ap.add_argument("--timed", type=int, default=40)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    from wattwatch.app.benchstream import profiled_engine, simulated_stream
    from wattwatch.detect import core, stitch
    from wattwatch.ingest import pipeline
    from wattwatch.runners.stream import StreamConfig

    prof, live = simulated_stream(a.meters, 1 + a.hours / 24, 1, 60.0, a.seed)
    db = Path(tempfile.mkdtemp(prefix="ww-groups-")) / "s.duckdb"
    _, _, eng = profiled_engine(db, prof, {"engine": {"profile_days": 1}}, 1,
                                StreamConfig(checkpoint_s=1e9, slow_thread=False))
    eng.step()
    cur: dict = collections.defaultdict(float)
    group = {"g": "-"}

    def wrap(obj, attr, label, by_group=False):
        f = getattr(obj, attr)

        def w(*x, **k):
            c0 = time.thread_time()
            try:
                return f(*x, **k)
            finally:
                cur[f"{label} [{group['g']}]" if by_group else label] += time.thread_time() - c0
        setattr(obj, attr, w)

    wrap(pipeline, "ingest_live", "store: ingest_live")
    wrap(eng, "_upsert", "store: alert upsert")
    wrap(eng, "_piece", "stream: piece")
    for name in ("_merge", "_merge_sides", "prepare", "_compact_columns"):
        if hasattr(stitch, name):   # (_merge_sides: every merge, the put-back too, since tail)
            wrap(stitch, name, f"stitch.{name}", True)
    for name in ("_known", "_cut_tail", "_calm", "_put_tail"):
        if hasattr(stitch.Stitcher, name):   # (_calm: calm meters taken without judging; live25)
            wrap(stitch.Stitcher, name, f"Stitcher.{name}", True)
    for name in ("run", "_post", "_alert", "_rows_read", "reaches"):
        wrap(core, name, f"core.{name}", True)
    for d in eng.dets:
        wrap(d, "scored", "scoring", True)
    feed = stitch.Stitcher.feed

    def fed(self, *x, **k):
        outer = group["g"]
        group["g"] = self.detectors[0].name if self is not eng.stitcher else "full"
        c0 = time.thread_time()
        try:
            return feed(self, *x, **k)
        finally:
            cur[f"feed [{group['g']}]"] += time.thread_time() - c0
            group["g"] = outer
    stitch.Stitcher.feed = fed

    n, per = len(live), a.per_step
    n_warm = n - a.timed * per
    steps: list[float] = []
    acc: dict = collections.defaultdict(list)
    i = 0
    while i < n:
        j = min(n, i + (5000 if i < n_warm else per))
        if i < n_warm:
            j = min(j, n_warm)
        cur.clear()
        c0 = time.thread_time()
        eng.add(live.iloc[i:j])
        rep = eng.step()
        took = time.thread_time() - c0
        if i >= n_warm and not rep.slow:
            steps.append(took)
            for k, v in cur.items():
                acc[k].append(v)
        i = j
    k = max(len(steps), 1)
    print(json.dumps({"meters": a.meters, "per_step": per, "fast_steps": len(steps),
                      "step_cpu_ms": {"p50": round(1e3 * float(np.median(steps)), 1),
                                      "mean": round(1e3 * float(np.mean(steps)), 1)},
                      "mean_ms_per_fast_step": {c: round(1e3 * sum(v) / k, 1)
                                                for c, v in sorted(acc.items(), key=lambda x: -sum(x[1]))}}, indent=1))


if __name__ == "__main__":
    main()
