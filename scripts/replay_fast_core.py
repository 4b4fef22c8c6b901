"""(fc) replay_fast_feeds.replay with fc's old way: da07462's core.run and LooseCT's scoring and
description key (the old modules loaded from OLD_SRC, their functions patched in while the old copy is fed).
    PYTHONPATH=src:scripts python scripts/replay_fast_core.py PKL REPS OLD_SRC   (OLD_SRC: e.g. `git archive da07462 src | tar -x -C /tmp/old`, then /tmp/old/src)"""
import importlib.util, sys
import replay_fast_feeds as R
from wattwatch.detect import core
from wattwatch.detect.rules import loosect

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); sys.modules[name] = mod; spec.loader.exec_module(mod)
    return mod

pkl, reps, old = sys.argv[1], int(sys.argv[2]), sys.argv[3]
oc = load("wattwatch.detect._core_old", old + "/wattwatch/detect/core.py")
ol = load("wattwatch.detect.rules._loosect_old", old + "/wattwatch/detect/rules/loosect.py")
R.OLD[:] = [(core, "run", oc.run), (loosect, "_key_columns", ol._key_columns)] + \
    [(loosect.LooseCT, a, ol.LooseCT.__dict__[a]) for a in ("_score", "_one_phase", "_limit", "_below_level")]
R.replay(pkl, reps)
