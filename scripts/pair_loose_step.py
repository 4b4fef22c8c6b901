"""(lq) Whole fast steps (``add`` + ``step``, thread CPU) of two engines warmed alike in one process, the old one's
LooseCT instances (its ``dets`` and its fast tier's stitchers') of OLD_SRC's loosect.py class, the timed steps fed
to both alternately (which goes first alternates); then each engine's alerts digested after a flush. The fleet of
scripts/fast_fleet.py (seed 7, 1 min) with METERS meters.
    PYTHONPATH=src:scripts python scripts/pair_loose_step.py OLD_SRC [METERS] [TIMED]
(OLD_SRC: e.g. `git archive 40cb6de src | tar -x -C /tmp/lq_old`, then /tmp/lq_old/src)"""
import importlib.util, sys
import fast_fleet

old_src = sys.argv[1]
fast_fleet.M = int(sys.argv[2]) if len(sys.argv) > 2 else 200
TIMED = int(sys.argv[3]) if len(sys.argv) > 3 else 40
spec = importlib.util.spec_from_file_location("wattwatch.detect.rules._loosect_old", old_src + "/wattwatch/detect/rules/loosect.py")
ol = importlib.util.module_from_spec(spec); sys.modules[spec.name] = ol; spec.loader.exec_module(ol)
new, live, cut = fast_fleet.warm_engine(TIMED, "ww-lqpair-new-")
old, _, _ = fast_fleet.warm_engine(TIMED, "ww-lqpair-old-")
n_old = 0
for d in [*old.dets, *(d for p in old.fast.parts for d in p.detectors)]:
    if d.name == "loose_ct":
        d.__class__ = ol.LooseCT
        d.__dict__.pop("_score_carry", None)
        n_old += 1
print("old LooseCT instances:", n_old)
fast_fleet.pair_steps(old, new, live, cut, TIMED)
