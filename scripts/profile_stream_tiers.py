"""CPU of the tiered stream step's fast and slow steps and, per detector, its scoring: a simulated
fleet (``--meters`` at 1 minute, default set) is profiled on its first day, streamed in 5,000-reading
steps up to its last ``--timed x --per-step`` readings, then ``--timed`` steps of ``--per-step``
readings (200: one reading per meter) are timed (CPU): steps where only the fast tier judged and
those where the slow tier did too, the time in ``core.run`` and in each detector's scoring per step,
and the carried tail per meter of the full and the fast stitcher; per step also the wall time the
caller waited and the CPU of its own thread (the slow tier judges in a worker thread).

    python scripts/profile_stream_tiers.py [--hours 3] [--per-step 200] [--timed 30]
        [--slow-every-s 3600] [--fast-reach-s 43200] [--no-room]

``fast_moves_ms``: per timed step, the fast tier's data movement (CPU of the stitchers' sections that
put the tail and the pieces together and take them apart: the frame's merges, cut, calm tail and
put-back with compaction; the room's append, gather, arrays made again, known scores written back,
a room made from a frame; the cut's own computing, ``_first_kept`` and ``_needed``, left out: both
ways do it). ``--no-room``: the tail held as a frame (``stitch.ROOM = False``), for before/after.
``fast_held_bytes_per_meter``: what the fast tier's tails hold in memory (room included).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-step", type=int, default=200)
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--slow-every-s", type=float, default=3600.0)
    ap.add_argument("--fast-reach-s", type=float, default=43200.0)
    ap.add_argument("--timed", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-room", action="store_true", help="the fast tier's tail as a frame (stitch.ROOM False)")
    ap.add_argument("--no-provisional", action="store_true", help="[stream] provisional = false (prov: paired runs)")
    a = ap.parse_args()

    from wattwatch.detect import core, stitch
    from wattwatch.app.benchstream import profiled_engine, simulated_stream
    from wattwatch.runners.stream import StreamConfig

    stitch.ROOM = not a.no_room

    prof, live = simulated_stream(a.meters, 1 + a.hours / 24, 1, 60.0, a.seed)
    db = Path(tempfile.mkdtemp(prefix="ww-tiers-")) / "s.duckdb"
    cfg = {"engine": {"profile_days": 1}}
    _, _, eng = profiled_engine(db, prof, cfg, 1, StreamConfig(checkpoint_s=1e9, slow_every_s=a.slow_every_s,
                                                              fast_reach_s=a.fast_reach_s,
                                                              provisional=not a.no_provisional))
    eng.step()
    acc: dict = collections.defaultdict(float)
    timing = {"on": False}

    def timed(label, f):
        def w(*x, **k):
            c0 = time.process_time()
            try:
                return f(*x, **k)
            finally:
                if timing["on"]:
                    acc[label] += time.process_time() - c0
        return w

    for d in eng.dets:
        d.scored = timed(d.name, d.scored)
    # The fast tier's data movement: the outermost of these sections, less the cut's computing
    # (_first_kept, _needed) inside them. (The fast stitchers only: the full one's feed runs in
    # its worker thread; thread CPU.)
    local = threading.local()   # (per thread: the fast feed under way, the sections' depth)
    moves = {"ms": 0.0}

    def moving(f, less=False):
        def w(*x, **k):
            if not getattr(local, "fast", False) or not timing["on"]:
                return f(*x, **k)
            outer = getattr(local, "depth", 0) == 0
            if less and outer:
                return f(*x, **k)
            local.depth = getattr(local, "depth", 0) + 1
            c0 = time.thread_time()
            try:
                return f(*x, **k)
            finally:
                local.depth -= 1
                dt = 1e3 * (time.thread_time() - c0)
                if less:
                    moves["ms"] -= dt
                elif outer:
                    moves["ms"] += dt
        return w

    for nm in ("_merge", "_merge_sides", "_calm_tail", "_without_unkept"):
        setattr(stitch, nm, moving(getattr(stitch, nm)))
    for nm in ("_cut_tail", "_cut_rows", "_put_tail", "_cut_known"):
        setattr(stitch.Stitcher, nm, moving(getattr(stitch.Stitcher, nm)))
    for nm in ("_first_kept", "_needed"):
        setattr(stitch.Stitcher, nm, moving(getattr(stitch.Stitcher, nm), less=True))
    if hasattr(stitch, "_Room"):
        for nm in ("append", "gather", "put_known"):
            setattr(stitch._Room, nm, moving(getattr(stitch._Room, nm)))
        stitch._Room.of = classmethod(moving(stitch._Room.of.__func__))
    feed0 = stitch.Stitcher.feed

    def feed(self, *x, **k):
        mine = eng.fast is not None and any(self is p for p in eng.fast.parts)
        local.fast = mine
        try:
            return feed0(self, *x, **k)
        finally:
            local.fast = False
    stitch.Stitcher.feed = feed
    fast_moves: list[float] = []
    stitch.core.run = timed("core.run", core.run)
    n, per = len(live), a.per_step
    n_warm = n - a.timed * per
    cpu = collections.defaultdict(list)
    wall: list[float] = []
    own: list[float] = []
    i = 0
    while i < n:
        timing["on"] = i >= n_warm
        j = min(n, i + (5000 if i < n_warm else per))
        if i < n_warm:
            j = min(j, n_warm)
        c0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
        moves["ms"] = 0.0
        eng.add(live.iloc[i:j])
        rep = eng.step()
        if timing["on"]:
            cpu["slow" if rep.slow else "fast"].append(time.process_time() - c0)
            # What the caller waited (wall) and spent in its own thread: with the slow tier in
            # its worker (StreamConfig.slow_thread) a step that starts it does not wait for it.
            wall.append(time.perf_counter() - w0)
            own.append(time.thread_time() - t0)
            fast_moves.append(moves["ms"])
        i = j
    if hasattr(eng, "settle"):
        eng.settle()
    steps = sum(len(v) for v in cpu.values())
    tails = {"full": eng.stitcher.tail}
    for p in (eng.fast.parts if eng.fast is not None else []):   # the fast tier: a stitcher per independent group
        tails["fast:" + ",".join(d.name for d in p.detectors)] = p.tail
    out = {"meters": a.meters, "per_step": per, "timed_steps": steps, "fast_tier": sorted(eng.fast_names),
           "step_cpu_ms": {k: {"steps": len(v), "p50": round(1e3 * float(np.median(v)), 1),
                               "max": round(1e3 * float(np.max(v)), 1)} for k, v in cpu.items()},
           "step_wall_ms": {"p50": round(1e3 * float(np.median(wall)), 1),
                            "p99": round(1e3 * float(np.percentile(wall, 99)), 1), "max": round(1e3 * max(wall), 1)},
           "step_own_thread_cpu_ms": {"p50": round(1e3 * float(np.median(own)), 1),
                                      "p99": round(1e3 * float(np.percentile(own, 99)), 1),
                                      "max": round(1e3 * max(own), 1)},
           "per_step_cpu_ms": {k: round(1e3 * v / max(steps, 1), 1) for k, v in sorted(acc.items(), key=lambda x: -x[1])},
           "room": stitch.ROOM,
           "fast_moves_ms": {"p50": round(float(np.median(fast_moves)), 2), "mean": round(float(np.mean(fast_moves)), 2),
                             "max": round(float(np.max(fast_moves)), 2)},
           "fast_held_bytes_per_meter": round(sum(p.held_bytes() for p in (eng.fast.parts if eng.fast is not None else []))
                                              / a.meters),
           "tail_rows_per_meter": {k: round(len(t) / a.meters, 1) if t is not None else 0 for k, t in tails.items()}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
