"""(fo) The live step's fixed cost, old and new in one process: two warm engines (scripts/fast_fleet.py),
one given an older checkout's ``StreamEngine.add/_step/_piece/_prune_handed``, ``Store._normalised_live``
and ``stitch._blocks_of`` (OLD_SRC: that checkout's src), fed the same steps of N readings alternately
(which goes first alternates); the engine thread's CPU per step, the median paired ratio, and both
engines' alerts after a flush (the same digest: the same alerts).

    PYTHONPATH=src python scripts/pair_fixed_step.py OLD_SRC [--sizes 1,20,200] [--timed 30]
"""
import argparse
import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fast_fleet import M, pair_digests, paired_cpu, paired_ratio, warm_engine  # noqa: E402


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

    def use(mode):
        stitch._blocks_of = blocks[mode]

    i = cut
    for n in sizes:
        cpu = paired_cpu(old, new, [live.iloc[i + s * n: i + (s + 1) * n] for s in range(a.timed)], before=use)
        i += n * a.timed
        med, sums, m = paired_ratio(cpu)
        print(f"{n:5d} readings/step: old p50 {np.median(cpu['old']):.1f} mean {np.mean(cpu['old']):.1f} | "
              f"new p50 {np.median(cpu['new']):.1f} mean {np.mean(cpu['new']):.1f} ms | median paired new/old "
              f"{med:.3f}, ratio of sums {sums:.3f} ({m} pairs)", flush=True)
    pair_digests(old, new, before=use)
    use("new")
    old.close()
    new.close()


if __name__ == "__main__":
    main()
