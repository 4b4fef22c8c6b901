"""(lq) Whole fast steps (``add`` + ``step``, thread CPU) of two engines warmed alike in one process, the old one's
LooseCT instances (its ``dets`` and its fast tier's stitchers') of OLD_SRC's loosect.py class, the timed steps fed
to both alternately (which goes first alternates); then each engine's alerts digested after a flush. The fleet of
scripts/fast_fleet.py (seed 7, 1 min) with METERS meters.
    PYTHONPATH=src:scripts python scripts/pair_loose_step.py OLD_SRC [METERS] [TIMED] [R]
(R: readings a step, default METERS: one a meter; (lx) fewer, e.g. 1 or 40, and each engine's steps are fed the
next R readings in time and meter order, TIMED steps)
(OLD_SRC: e.g. `git archive 40cb6de src | tar -x -C /tmp/lq_old`, then /tmp/lq_old/src)"""
import importlib.util, sys
import fast_fleet

old_src = sys.argv[1]
fast_fleet.M = int(sys.argv[2]) if len(sys.argv) > 2 else 200
TIMED = int(sys.argv[3]) if len(sys.argv) > 3 else 40
R = int(sys.argv[4]) if len(sys.argv) > 4 else fast_fleet.M
spec = importlib.util.spec_from_file_location("wattwatch.detect.rules._loosect_old", old_src + "/wattwatch/detect/rules/loosect.py")
ol = importlib.util.module_from_spec(spec); sys.modules[spec.name] = ol; spec.loader.exec_module(ol)
WARM = -(-R * TIMED // fast_fleet.M)   # whole steps of one reading a meter the timed readings take
new, live, cut = fast_fleet.warm_engine(WARM, "ww-lqpair-new-")
old, _, _ = fast_fleet.warm_engine(WARM, "ww-lqpair-old-")
n_old = 0
for d in [*old.dets, *(d for p in old.fast.parts for d in p.detectors)]:
    if d.name == "loose_ct":
        d.__class__ = ol.LooseCT
        d.__dict__.pop("_score_carry", None)
        n_old += 1
print("old LooseCT instances:", n_old)
if R == fast_fleet.M:
    fast_fleet.pair_steps(old, new, live, cut, TIMED)
else:
    import numpy as np
    cpu = fast_fleet.paired_cpu(old, new, (live.iloc[cut + k * R: cut + (k + 1) * R] for k in range(TIMED)))
    for m, v in cpu.items():
        print(f"{m}: {len(v)} fast steps of {R} readings, CPU ms p50 {np.median(v):.1f} mean {np.mean(v):.1f} "
              f"p99 {np.percentile(v, 99):.1f}")
    med, sums, _ = fast_fleet.paired_ratio(cpu)
    print(f"median paired new/old {med:.3f}; ratio of sums {sums:.3f}")
    fast_fleet.pair_digests(old, new)
