"""The fast tier's profiling fleet, shared by the fast-step scripts (profile_fast_step.py,
profile_fast_detectors.py, replay_fast_feeds.py): 200 meters at 1 min, seed 7, a profiling day then
3 h live (the fleet and engine of scripts/profile_stream_groups.py), the engine fitted and fed all
but the last ``timed`` steps' readings (one reading per meter a step)."""
import tempfile
from pathlib import Path

M, H, SEED = 200, 3.0, 7


def warm_engine(timed: int, prefix: str = "ww-fast-", hours: float | None = None, cadence_s: float = 60.0,
                meters: int | None = None):
    """(engine, live readings sorted by time and meter, row where the timed steps start); ``hours``
    live (default ``H``), ``meters`` (default ``M``) at ``cadence_s``."""
    from wattwatch.app.benchstream import profiled_engine, simulated_stream
    from wattwatch.runners.stream import StreamConfig
    m = M if meters is None else meters
    prof, live = simulated_stream(m, 1 + (H if hours is None else hours) / 24, 1, cadence_s, SEED)
    db = Path(tempfile.mkdtemp(prefix=prefix)) / "s.duckdb"
    _, _, eng = profiled_engine(db, prof, {"engine": {"profile_days": 1}}, 1,
                                StreamConfig(checkpoint_s=1e9, slow_thread=False))
    eng.step()
    live = live.sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)
    cut = len(live) - timed * m
    for i in range(0, cut, 5000):
        eng.add(live.iloc[i:min(i + 5000, cut)])
        eng.step()
    return eng, live, cut


def paired_cpu(old, new, pieces, before=None) -> dict:
    """Feed each piece to engines ``old`` and ``new`` alternately (which goes first alternates) and
    return each one's fast steps' thread CPU in ms (``{"old": [...], "new": [...]}``; a step that ran
    the slow tier is left out). ``before(mode)``, if given, runs before each engine's step (e.g. to
    swap a module function between the old and the new)."""
    import time
    cpu = {"old": [], "new": []}
    for k, b in enumerate(pieces):
        for mode in (("old", "new") if k % 2 == 0 else ("new", "old")):
            eng = old if mode == "old" else new
            if before is not None:
                before(mode)
            slow0 = eng.counters["slow_steps"]
            c0 = time.thread_time()
            eng.add(b)
            eng.step()
            if eng.counters["slow_steps"] == slow0:
                cpu[mode].append(1e3 * (time.thread_time() - c0))
    return cpu


def paired_ratio(cpu: dict) -> tuple[float, float, int]:
    """(median paired new/old, ratio of sums, pairs) of :func:`paired_cpu`'s result."""
    import numpy as np
    n = min(len(cpu["old"]), len(cpu["new"]))
    r = np.array(cpu["new"][:n]) / np.array(cpu["old"][:n])
    return float(np.median(r)), sum(cpu["new"]) / sum(cpu["old"]), n


def pair_digests(old, new, before=None) -> None:
    """Flush both engines (``before(mode)`` first, if given) and print their alerts' count and digest."""
    import hashlib
    import json
    dig = {}
    for mode, eng in (("old", old), ("new", new)):
        if before is not None:
            before(mode)
        eng.flush()
        al = sorted(json.dumps(json.loads(a.to_json()), sort_keys=True) for a in eng.alerts.values())
        dig[mode] = (len(al), hashlib.sha256("\n".join(al).encode()).hexdigest()[:16])
    print("alerts", dig, "same" if dig["old"] == dig["new"] else "DIFFER")


def pair_steps(old, new, live, cut: int, timed: int) -> None:
    """Feed the timed steps' readings (one per meter a step) to engines ``old`` and ``new``
    alternately, print each one's fast steps' thread CPU and the paired ratio, then flush both and
    print their alerts' count and digest (scripts/pair_fast_step.py, pair_loose_step.py)."""
    import numpy as np
    cpu = paired_cpu(old, new, (live.iloc[cut + k * M: cut + (k + 1) * M] for k in range(timed)))
    for m, v in cpu.items():
        print(f"{m}: {len(v)} fast steps, CPU ms p50 {np.median(v):.1f} mean {np.mean(v):.1f} p99 {np.percentile(v, 99):.1f}")
    med, sums, _ = paired_ratio(cpu)
    print(f"median paired new/old {med:.3f}; ratio of sums {sums:.3f}")
    pair_digests(old, new)
