"""Is the live engine's state per meter bounded (issue 16, sm)? A fleet (seed 7 by default) profiled
on its first day, then streamed for days of data time (not wall time) in steps of ``--step-h`` hours
of readings, the slow tier judged in the step (no worker thread, no checkpoint on a clock). At each
mark (hours of live data) the engine is settled and measured, per meter:

- each stitcher's tail (the fast tier's groups and the slow tier's full stitcher): rows and hours
  (p50 / max), bytes held in memory (readings and known scores apart), its closed bins;
- the checkpoint :meth:`StreamEngine.checkpoint` would write: the tail's Parquet by column, the
  closed bins' Parquet, the meta JSON by key (``stream.checkpoint_parts``);
- the learned state (JSON), and the engine's other containers that could grow with time (alerts
  kept, ids written, notices said, ...), and the process's RSS.

    PYTHONPATH=src python scripts/state_bounds.py --cadence-s 60 --marks 6,48,120,192 --json out.json
"""
import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def tail_figures(p, meters: int) -> dict:
    from wattwatch.detect.frame import prepare, seg_bounds
    from wattwatch.runners.stream import _held_bytes

    tail = p.tail
    out = {"detectors": [d.name for d in p.detectors]}
    if tail is None or not len(tail):
        return {**out, "rows_p50": 0, "rows_max": 0, "hours_p50": 0.0, "hours_max": 0.0, "held_per_meter": 0}
    frame = prepare(tail)
    seg, t = frame["_seg"].to_numpy(), frame["_t"].to_numpy()
    starts, ends = seg_bounds(seg)
    lens = ends - starts
    hours = (t[ends - 1] - t[starts]) / 3600.0
    held = _held_bytes(tail)
    known = sum(v for c, v in held.items() if str(c).startswith(("_c:", "_k:")))
    bins = {n: [len(c) for c in per.values()] for n, per in p.hours.items()}
    return {**out, "rows_p50": float(np.median(lens)), "rows_max": int(lens.max()),
            "hours_p50": float(np.median(hours)), "hours_max": float(hours.max()),
            "held_per_meter": sum(held.values()) / meters, "known_per_meter": known / meters,
            "readings_per_meter": (sum(held.values()) - known) / meters,
            "columns": len(tail.columns),
            "bins_per_meter": {n: (float(np.median(v)) if v else 0, max(v, default=0)) for n, v in bins.items()}}


def containers(eng) -> dict:
    """Sizes of the engine's per-run containers (entries), to see which grow with time."""
    out = {}
    for k in ("alerts", "_written", "_checked", "_det_of", "settled", "open_ids", "provisional", "_prov_max",
              "_prov_opened", "_prov_stopped", "_withdrawn_kept", "_pending_final", "_follows", "provisional_open",
              "notices", "exact", "fed", "slow_fed", "pending", "_kept_before", "health_open", "events_open"):
        v = getattr(eng, k, None)
        if v is not None and hasattr(v, "__len__"):
            out[k] = len(v)
    out["handed_rows"] = 0 if eng.handed is None else len(eng.handed)
    out["stitcher_said"] = len(eng.stitcher._said)
    out["stitcher_open"] = sum(len(v) for v in eng.stitcher.open.values())
    if eng._cont is not None:
        c = eng._cont
        out["cont_events"], out["cont_head_of"], out["cont_alone"] = len(c.events), len(c.head_of), len(c.alone)
    return out


def measure(eng, meters: int, hours: float, cadence_s: float) -> dict:
    from wattwatch.runners.stream import _held_bytes, _parquet, checkpoint_parts

    eng.settle()
    parts = [("fast:" + "+".join(d.name for d in p.detectors), p) for p in (eng.fast.parts if eng.fast else [])]
    parts.append(("slow", eng.stitcher))
    ck = checkpoint_parts(eng)
    ck["tail_plain"] = len(_parquet(eng.stitcher.carry()) or b"")   # the layout-2 checkpoint's tail
    ck["hours_plain"] = len(_parquet(eng.stitcher.hour_carry()) or b"")
    resume = resume_figures(eng)
    ck["tail_layout3"] = resume.pop("tail_layout3")
    pend = sum(sum(_held_bytes(p).values()) for p in eng.pending)
    # Shared tail (estimate): do the fast groups' readings lie inside the slow tail (per meter, from its
    # first stamp on) or among the readings the slow tier has not judged yet (after its last stamp)?
    inside = {}
    slow = eng.stitcher.tail
    if slow is not None and eng.fast is not None:
        s_first = slow.groupby("meter_id", observed=True)["ts"].min()
        for k, p in parts[:-1]:
            if p.tail is None:
                continue
            f_first = p.tail.groupby("meter_id", observed=True)["ts"].min()
            ms = f_first.index.intersection(s_first.index)
            inside[k] = [int((f_first[ms] >= s_first[ms]).sum()), len(f_first)]
    learned = sum(len(json.dumps(v, default=str)) for d in eng.dets for v in getattr(d, "state_", {}).values())
    return {"live_h": hours, "cadence_s": cadence_s, "meters": meters,
            "tails": {k: tail_figures(p, meters) for k, p in parts},
            "checkpoint": {k: (v / meters if isinstance(v, (int, float)) else {c: b / meters for c, b in v.items()})
                           for k, v in ck.items()},
            "learned_per_meter": learned / meters, "containers": containers(eng), "rss_mb": rss_mb(),
            "pending_per_meter": pend / meters, "fast_inside_slow": inside, "resume": resume}


def resume_figures(eng) -> dict:
    """(ck) What a resume reads the carried tail back with: the layout-3 checkpoint's tail (every
    reading carried, compact Parquet) decoded, against layout 4's re-read of the spans from the store
    (``StreamEngine._reread``: the query and the check of each meter's rows); wall seconds (best of 2),
    and the two frames compared bit for bit."""
    from wattwatch.runners import carrycodec

    carry = eng.stitcher.carry()
    if carry is None:
        return {"tail_layout3": 0}
    blob = carrycodec.write(carry)
    kept, spans = eng._reread_split(carry)
    best = {}
    for k, fn in (("layout3_read_s", lambda: carrycodec.read(blob)),
                  ("layout4_reread_s", lambda: eng._reread(spans))):
        for _ in range(2):
            t0 = time.perf_counter()
            got = fn()
            best[k] = min(best.get(k, np.inf), time.perf_counter() - t0)
        best[k.replace("_s", "_rows")] = len(got)
    a = carrycodec.read(blob)
    b = eng._reread(spans)
    if kept is not None:
        b = pd.concat([carrycodec.read(carrycodec.write(kept)), b], ignore_index=True)
    for f in (a, b):
        f["meter_id"] = f["meter_id"].astype(str)
    b = b.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert all(np.array_equal(a[c].to_numpy().view(np.int64), b[c].to_numpy().view(np.int64)) for c in a.columns[2:])
    return {"tail_layout3": len(blob), "same": True, "changed": int(eng.counters["reread_changed"]), **best}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--cadence-s", type=float, default=60.0)
    ap.add_argument("--marks", default="6,48,120,192")
    ap.add_argument("--step-h", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json")
    a = ap.parse_args()
    from wattwatch.app.benchstream import profiled_engine, simulated_stream
    from wattwatch.runners.stream import StreamConfig

    marks = sorted(float(x) for x in a.marks.split(","))
    t0 = time.time()
    prof, live = simulated_stream(a.meters, 1 + marks[-1] / 24, 1, a.cadence_s, a.seed)
    db = Path(tempfile.mkdtemp(prefix="ww-bounds-")) / "s.duckdb"
    _, _, eng = profiled_engine(db, prof, {"engine": {"profile_days": 1}}, 1,
                                StreamConfig(checkpoint_s=1e9, slow_thread=False))
    eng.step()
    start = live["ts"].min()
    h = (live["ts"] - start).dt.total_seconds().to_numpy() / 3600.0
    print(f"simulated {len(prof)} + {len(live)} readings, engine warm in {time.time() - t0:.0f} s", flush=True)
    out = []
    lo = 0.0
    cpu0 = time.process_time()
    for mk in marks:
        while lo < mk:
            hi = min(lo + a.step_h, mk)
            sel = (h >= lo) & (h < hi)
            eng.add(live[sel])
            eng.step()
            lo = hi
        r = measure(eng, a.meters, mk, a.cadence_s)
        r["cpu_s"] = time.process_time() - cpu0
        r["wall_s"] = time.time() - t0
        out.append(r)
        tl = " | ".join(f"{k.split(':')[0]}{i} {v['rows_p50']:.0f}r/{v['hours_p50']:.1f}h {v['held_per_meter'] / 1e3:.1f}KB"
                        for i, (k, v) in enumerate(r["tails"].items()))
        ck = r["checkpoint"]
        print(f"[{mk:6.1f} h] {tl} || checkpoint/meter tail {ck['tail'] / 1e3:.1f} KB (plain {ck['tail_plain'] / 1e3:.1f}) "
              f"hours {ck['hours'] / 1e3:.1f} KB (plain {ck['hours_plain'] / 1e3:.1f}) "
              f"meta {ck['meta'] / 1e3:.1f} KB (layout 3's tail {ck['tail_layout3'] / 1e3:.1f} KB); learned "
              f"{r['learned_per_meter'] / 1e3:.1f} KB; rss {r['rss_mb']:.0f} MB; cpu {r['cpu_s']:.0f} s", flush=True)
        print("   resume", r["resume"], "meta reread/meter", ck["meta_keys"].get("reread"), flush=True)
        print("   containers", r["containers"], flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=1, default=float))
    eng.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
