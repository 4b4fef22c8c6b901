"""(fo) The live step's fixed cost, old and new in one process: two warm engines (scripts/fast_fleet.py),
one given an older checkout's ``StreamEngine.add/_step/_piece/_prune_handed``, ``Store._normalised_live``
(fk: and ``Store._finish/_write``, the ingest worker's writes), ``stitch._blocks_of`` and (fk)
``pipeline.ingest_live`` (with the old ``read_frame``), ``alerts.store.upsert`` (OLD_SRC: that
checkout's src), fed the same steps of N readings alternately (which goes first alternates); the
engine thread's CPU per step (fk: also with the store's ingest worker's CPU of that step added, as
``bench stream``'s step CPU, and ``add``'s alone), the median paired ratio, and both engines' alerts
after a flush (the same digest: the same alerts).

    PYTHONPATH=src python scripts/pair_fixed_step.py OLD_SRC [--sizes 1,20,200] [--timed 30]
"""
import argparse
import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fast_fleet import M, pair_digests, paired_ratio, warm_engine  # noqa: E402


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def paired_cpu(old, new, pieces, before) -> tuple[dict, dict, dict]:
    """fast_fleet.paired_cpu, also returning each step's CPU with the ingest worker's added, and
    the thread's CPU in ``add`` alone (the store's ingest on the caller's thread)."""
    import time
    cpu, both, adds = {"old": [], "new": []}, {"old": [], "new": []}, {"old": [], "new": []}
    for k, b in enumerate(pieces):
        for mode in (("old", "new") if k % 2 == 0 else ("new", "old")):
            eng = old if mode == "old" else new
            before(mode)
            slow0 = eng.counters["slow_steps"]
            c0, bg0 = time.thread_time(), eng.store.live_bg_cpu_s
            eng.add(b)
            a1 = time.thread_time()
            eng.step()   # (settles the ingest worker's writes)
            if eng.counters["slow_steps"] == slow0:
                c = 1e3 * (time.thread_time() - c0)
                cpu[mode].append(c)
                both[mode].append(c + 1e3 * (eng.store.live_bg_cpu_s - bg0))
                adds[mode].append(1e3 * (a1 - c0))
    return cpu, both, adds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old_src")
    ap.add_argument("--sizes", default="1,20,200")
    ap.add_argument("--timed", type=int, default=30)
    a = ap.parse_args()
    # (as the store filters it for its own module: the old copy is another module, which would
    # otherwise print it at every step and pay for that)
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
    from wattwatch.detect import stitch
    from wattwatch.runners.stream import StreamEngine
    from wattwatch.store.duck import Store
    o_stream = load("old_stream", f"{a.old_src}/wattwatch/runners/stream.py")
    o_duck = load("old_duck", f"{a.old_src}/wattwatch/store/duck.py")
    o_stitch = load("old_stitch", f"{a.old_src}/wattwatch/detect/stitch.py")
    sizes = [int(x) for x in a.sizes.split(",")]
    k = -(-a.timed * sum(sizes) // M)
    new, live, cut = warm_engine(k, prefix="ww-fo-n-", hours=3.0 + k / 60.0)
    old, _, _ = warm_engine(k, prefix="ww-fo-o-", hours=3.0 + k / 60.0)

    class OldEngine(StreamEngine):
        pass

    class OldStore(Store):
        pass

    for n in ("add", "_step", "_piece", "_prune_handed"):
        setattr(OldEngine, n, getattr(o_stream.StreamEngine, n))
    for n in ("_normalised_live", "_finish", "_write"):
        setattr(OldStore, n, getattr(o_duck.Store, n))
    old.__class__, old.store.__class__ = OldEngine, OldStore
    from wattwatch.ingest import pipeline
    o_pipe = load("old_pipeline", f"{a.old_src}/wattwatch/ingest/pipeline.py")
    # (the old pipeline's names taken from the package are the new ones: its read_frame the old one's)
    o_pipe.read_frame = load("old_readers", f"{a.old_src}/wattwatch/ingest/readers.py").read_frame
    # module functions the engine looks up at each call: (module, name, old)
    from wattwatch.alerts import store as alert_store
    o_alerts = load("old_alert_store", f"{a.old_src}/wattwatch/alerts/store.py")
    swap = [(stitch, "_blocks_of", o_stitch._blocks_of), (pipeline, "ingest_live", o_pipe.ingest_live),
            (alert_store, "upsert", o_alerts.upsert)]
    kept = {(m.__name__, n): getattr(m, n) for m, n, _ in swap}

    def use(mode):
        for m, n, f in swap:
            setattr(m, n, f if mode == "old" else kept[(m.__name__, n)])

    i = cut
    for n in sizes:
        got = paired_cpu(old, new, [live.iloc[i + s * n: i + (s + 1) * n] for s in range(a.timed)], before=use)
        i += n * a.timed
        for what, cpu in zip(("thread", "+ingest worker", "add alone"), got):
            med, sums, m = paired_ratio(cpu)
            print(f"{n:5d} readings/step, {what}: old p50 {np.median(cpu['old']):.1f} mean {np.mean(cpu['old']):.1f} | "
                  f"new p50 {np.median(cpu['new']):.1f} mean {np.mean(cpu['new']):.1f} ms | median paired new/old "
                  f"{med:.3f}, ratio of sums {sums:.3f} ({m} pairs)", flush=True)
    pair_digests(old, new, before=use)
    use("new")
    old.close()
    new.close()


if __name__ == "__main__":
    main()
