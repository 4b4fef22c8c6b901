"""What a `detect` after `store compact` finds after the compaction cut, against the same run before it.

A simulated fleet is ingested into a store and judged over whole histories (alerts A, state kept in
the store, as an operator's first run). For each cut (2, 6 and 24 hours before an alert of A, and
the middle of a fault lasting over two hours), a copy of that store is compacted up to the cut and
judged again (alerts B). Printed per detector: alerts of A that begin at or after the cut and B
lacks (missed), alerts of B that A lacks (added), and alerts running across the cut. cut30: of the
missed, those no alert of B on the meter overlaps (a store whose readings after the cut were first
judged after the compaction never holds anything there), those of them on an injected fault, and the
injected faults after a cut that A reported and no alert of B touches (the faults such a store loses).

    env PYTHONPATH=src python scripts/compact_cut.py --step 5min --days 28 --meters 10 --seed 7
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from wattwatch import api
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store


def _hours(iso: str, cut) -> float:
    return (pd.Timestamp(iso) - cut).total_seconds() / 3600


def _key(a):
    return (a.meter_id, a.detector, a.code, a.start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--step", default="5min")
    p.add_argument("--days", type=float, default=28)
    p.add_argument("--meters", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--cuts", type=int, default=8, help="at most this many cut times")
    p.add_argument("--detectors", default=None, help="comma-separated (default: the default set)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    dets = a.detectors.split(",") if a.detectors else None
    sim = simulate(SimConfig(meters=a.meters, days=a.days, seed=a.seed, step=a.step,
                             fault_share=0.8, outage_share=0.4))
    frame = sim["frame"]
    # Injected faults an alert should report (cut30: a missed alert's fault reported by no other one).
    faults = [e for e in sim["events"] if e.get("expect_alert")]
    tmp = Path(tempfile.mkdtemp(prefix="cut27-"))
    base = tmp / "base.duckdb"
    api.ingest(frame, base)
    A = api.detect(base, detectors=dets).alerts
    t0 = frame["ts"].min() + pd.Timedelta(days=8)   # after profiling, so that the state is what was fitted
    t1 = frame["ts"].max() - pd.Timedelta(days=2)
    cand = []
    for x in A:
        s, e = pd.Timestamp(x.start), pd.Timestamp(x.end)
        for h in (2, 6, 24):
            cand.append(((s - pd.Timedelta(hours=h)).floor("h"), f"{h}h before"))
        if e - s > pd.Timedelta(hours=2):
            cand.append(((s + (e - s) / 2).floor("h"), "mid-fault"))
    seen, cuts = set(), []
    for c, why in sorted(cand, key=lambda z: (z[1], z[0])):
        if t0 <= c <= t1 and c not in seen:
            seen.add(c)
            cuts.append((c, why))
    # An even spread over the kinds of cut, at most --cuts in all.
    by = collections.defaultdict(list)
    for c, why in cuts:
        by[why].append(c)
    pick = []
    while len(pick) < a.cuts and any(by.values()):
        for why in list(by):
            if by[why] and len(pick) < a.cuts:
                lst = by[why]
                pick.append((lst.pop(len(lst) // 2), why))
    added = collections.Counter()
    missed = collections.Counter()
    across = collections.Counter()
    added_kind = collections.Counter()
    same = collections.Counter()
    # cut30: the missed alerts a `detect` on readings first ingested after the compaction never
    # stores (no run before it found them): those whose span no alert of B on the meter overlaps,
    # and of those, the ones on an injected fault no alert of B on the meter overlaps.
    alone = collections.Counter()
    fault_lost = collections.Counter()
    a_after_n = 0
    faults_after = set()
    faults_lost = set()
    rows = []
    for cut, why in sorted(pick):
        db = tmp / "cut.duckdb"
        shutil.copy(base, db)
        with Store(db) as s:
            s.compact(older_than_days=0, as_of=cut)
        B = api.detect(db, detectors=dets).alerts
        ca = cut.isoformat().replace("+00:00", "Z")
        a_after = {_key(x): x for x in A if x.start >= ca}
        a_across = {_key(x): x for x in A if x.start < ca <= x.end}
        b_all = {_key(x): x for x in B}
        bk = {x.id for x in B}
        a_after_n += len(a_after)

        def overlaps(m, s0, e0, alerts):
            return any(y.meter_id == m and pd.Timestamp(y.start) <= e0 and s0 <= pd.Timestamp(y.end) for y in alerts)
        for f in faults:
            fs, fe = pd.Timestamp(f["start"]), pd.Timestamp(f["end"])
            if fs >= cut and overlaps(f["meter_id"], fs, fe, A):
                faults_after.add((ca, f["meter_id"], f["start"]))
                if not overlaps(f["meter_id"], fs, fe, B):
                    faults_lost.add((ca, f["meter_id"], f["start"], f["type"]))
        for k, x in a_after.items():
            if k in b_all:
                same[x.detector] += 1
            else:
                missed[x.detector] += 1
                xs, xe = pd.Timestamp(x.start), pd.Timestamp(x.end)
                if not overlaps(x.meter_id, xs, xe, B):
                    alone[x.detector] += 1
                    if any(f["meter_id"] == x.meter_id and pd.Timestamp(f["start"]) <= xe and xs <= pd.Timestamp(f["end"])
                           for f in faults):
                        fault_lost[x.detector] += 1
                rows.append(("missed", why, ca, f"+{_hours(x.start, cut):.1f}h", x.meter_id, x.detector, x.code,
                             x.start, x.end))
        for k, x in b_all.items():
            if k not in a_after and k not in a_across:
                # The same fault with another start (it overlaps an alert of A of that pair), or new.
                kind = "shifted" if any(y.meter_id == x.meter_id and y.detector == x.detector and y.start <= x.end
                                        and x.start <= y.end for y in A) else "new"
                added[x.detector] += 1
                added_kind[kind] += 1
                rows.append((f"added ({kind})", why, ca, f"+{_hours(x.start, cut):.1f}h", x.meter_id, x.detector,
                             x.code, x.start, x.end))
        for k, x in a_across.items():
            if x.id not in bk:
                across[x.detector] += 1
        db.unlink()
    out = {"step": a.step, "cuts": [(str(c), w) for c, w in sorted(pick)], "alerts_A": len(A),
           "alerts_A_after_cuts": a_after_n, "missed_alone": dict(alone), "missed_alone_on_fault": dict(fault_lost),
           "faults_after_cuts": len(faults_after), "faults_lost": sorted(faults_lost),
           "same": dict(same), "added": dict(added), "added_kind": dict(added_kind), "missed": dict(missed), "across_cut_not_found": dict(across),
           "rows": rows}
    if a.json:
        print(json.dumps(out, default=str))
    else:
        print(f"step {a.step}: {len(A)} alerts before compaction; {len(pick)} cuts")
        print(f"  kept after the cut: {dict(same)}")
        print(f"  added after the cut (B - A): {dict(added)} {dict(added_kind)}")
        print(f"  missed after the cut (A - B): {dict(missed)}")
        print(f"  running across the cut, not found again: {dict(across)}")
        print(f"  A's alerts starting after a cut (summed over cuts): {a_after_n}; missed with no alert of B on the "
              f"meter overlapping: {dict(alone)}; of those on an injected fault: {dict(fault_lost)}")
        near = {f for f in faults_after if pd.Timestamp(f[2]) - pd.Timestamp(f[0]) <= pd.Timedelta(hours=48)}
        print(f"  injected faults starting after a cut that A reported (per cut, summed): {len(faults_after)}, within 48 h "
              f"after it {len(near)}; no alert of B on them: {len(faults_lost)}, distinct "
              f"{len({f[1:] for f in faults_lost})}: {sorted(faults_lost)}")
        for r in rows:
            print("  ", *r)
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
