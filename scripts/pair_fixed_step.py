"""(fo) The live step's fixed cost, old and new in one process: two warm engines (scripts/fast_fleet.py),
one given an older checkout's ``StreamEngine.add/_step/_piece/_prune_handed``, ``Store._normalised_live``
and ``stitch._blocks_of`` (OLD_SRC: that checkout's src), fed the same steps of N readings alternately
(which goes first alternates); the engine thread's CPU per step, the median paired ratio, and both
engines' alerts after a flush (the same digest: the same alerts).

    PYTHONPATH=src python scripts/pair_fixed_step.py OLD_SRC [--sizes 1,20,200] [--timed 30]
"""
import argparse
import hashlib
import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fast_fleet import M, warm_engine  # noqa: E402


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


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
    OldStore._normalised_live = o_duck.Store._normalised_live
    old.__class__, old.store.__class__ = OldEngine, OldStore
    blocks = {"old": o_stitch._blocks_of, "new": stitch._blocks_of}
    i = cut
    for n in sizes:
        cpu = {"old": [], "new": []}
        for s in range(a.timed):
            b = live.iloc[i:i + n]
            i += n
            for mode in (("old", "new") if s % 2 == 0 else ("new", "old")):
                eng = old if mode == "old" else new
                stitch._blocks_of = blocks[mode]
                slow0 = eng.counters["slow_steps"]
                c0 = time.thread_time()
                eng.add(b)
                eng.step()
                if eng.counters["slow_steps"] == slow0:
                    cpu[mode].append(1e3 * (time.thread_time() - c0))
        m = min(len(cpu["old"]), len(cpu["new"]))
        r = np.array(cpu["new"][:m]) / np.array(cpu["old"][:m])
        print(f"{n:5d} readings/step: old p50 {np.median(cpu['old']):.1f} mean {np.mean(cpu['old']):.1f} | "
              f"new p50 {np.median(cpu['new']):.1f} mean {np.mean(cpu['new']):.1f} ms | median paired new/old "
              f"{np.median(r):.3f}, ratio of sums {sum(cpu['new']) / sum(cpu['old']):.3f} ({m} pairs)", flush=True)
    stitch._blocks_of = blocks["new"]
    dig = {}
    for mode, eng in (("old", old), ("new", new)):
        stitch._blocks_of = blocks[mode]
        eng.flush()
        al = sorted(json.dumps(json.loads(x.to_json()), sort_keys=True) for x in eng.alerts.values())
        dig[mode] = (len(al), hashlib.sha256("\n".join(al).encode()).hexdigest()[:16])
    print("alerts", dig, "same" if dig["old"] == dig["new"] else "DIFFER")
    old.close()
    new.close()


if __name__ == "__main__":
    main()
