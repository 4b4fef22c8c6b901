"""(np, 2026-12-07) Whole fast steps (``add`` + ``step``, thread CPU) of two engines warmed alike in one
process, one whose fast tier runs an older stitch.py (its classes; the rest this checkout's), the
timed steps fed to both alternately (which goes first alternates): the paired before/after of a change
to the stitching. The fleet of scripts/fast_fleet.py (seed 7, 1 min) with METERS meters.

    PYTHONPATH=src python scripts/pair_fast_step.py OLD_STITCH_PY [METERS] [TIMED]
"""
import sys

import fast_fleet
from replay_fast_feeds import _as_old, _old_module

old_py = sys.argv[1]
fast_fleet.M = int(sys.argv[2]) if len(sys.argv) > 2 else 200
TIMED = int(sys.argv[3]) if len(sys.argv) > 3 else 40
mod = _old_module(old_py)
new, live, cut = fast_fleet.warm_engine(TIMED, "ww-pair-new-")
old, _, _ = fast_fleet.warm_engine(TIMED, "ww-pair-old-")
old.fast = _as_old(old.fast, mod)
fast_fleet.pair_steps(old, new, live, cut, TIMED)
