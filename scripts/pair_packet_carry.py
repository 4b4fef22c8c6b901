"""(ic, 2026-12-07) packet_loss's scoring with its carry (``packets._carried_score``) against scoring
every reading (``PacketLoss._score_whole``), paired in one process: two engines of
scripts/fast_fleet.py's fleet (seed 7, 1 min, METERS meters) warmed alike, the timed steps'
readings fed to both alternately in pieces of PER readings, one engine's packet_loss scoring with
the carry and the other's without (the method swapped before each engine's step). Prints each
side's fast-step thread CPU, packet_loss's scoring CPU a step, the paired ratio, and both sides'
alerts after a flush (count and digest).

    PYTHONPATH=src python scripts/pair_packet_carry.py [PER] [STEPS] [METERS] [HOURS]
"""
import collections
import sys
import time

import numpy as np

import fast_fleet
from wattwatch.detect.rules import packets

PER = int(sys.argv[1]) if len(sys.argv) > 1 else 200
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 40
fast_fleet.M = int(sys.argv[3]) if len(sys.argv) > 3 else 200
HOURS = float(sys.argv[4]) if len(sys.argv) > 4 else 12.0
timed = -(-PER * STEPS // fast_fleet.M)
new, live, cut = fast_fleet.warm_engine(timed, "ww-plc-new-", hours=HOURS)
old, _, _ = fast_fleet.warm_engine(timed, "ww-plc-old-", hours=HOURS)
carried, whole = packets.PacketLoss._score, packets.PacketLoss._score_whole
score_cpu = collections.defaultdict(list)
mode_now = {"m": "new"}


def timed_score(fn):
    def w(self, df):
        c0 = time.thread_time()
        try:
            return fn(self, df)
        finally:
            score_cpu[mode_now["m"]].append(1e3 * (time.thread_time() - c0))
    return w


def before(mode):
    mode_now["m"] = mode
    packets.PacketLoss._score = timed_score(carried if mode == "new" else whole)


pieces = [live.iloc[cut + k * PER: cut + (k + 1) * PER] for k in range(STEPS)]
cpu = fast_fleet.paired_cpu(old, new, pieces, before)
for m in ("old", "new"):
    v, s = cpu[m], score_cpu[m]
    print(f"{m} ({'carry' if m == 'new' else 'whole'}): {len(v)} fast steps, CPU ms p50 {np.median(v):.1f} "
          f"mean {np.mean(v):.1f}; packet_loss scoring {sum(s) / max(len(v), 1):.2f} ms a step "
          f"({len(s)} scorings, p50 {np.median(s) if s else float('nan'):.2f} ms)")
med, sums, n = fast_fleet.paired_ratio(cpu)
print(f"median paired new/old {med:.3f}; ratio of sums {sums:.3f} ({n} pairs)")
fast_fleet.pair_digests(old, new, before)
