"""What a `detect` after `store compact` finds after the compaction cut, against the same run before it.

A simulated fleet is ingested into a store and judged over whole histories (alerts A, state kept in
the store, as an operator's first run). For each cut (2, 6 and 24 hours before an alert of A, and
the middle of a fault lasting over two hours), a copy of that store is compacted up to the cut and
judged again (alerts B). Printed per detector: alerts of A that begin at or after the cut and B
lacks (missed), alerts of B that A lacks (added), and alerts running across the cut.

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
    frame = simulate(SimConfig(meters=a.meters, days=a.days, seed=a.seed, step=a.step,
                               fault_share=0.8, outage_share=0.4))["frame"]
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
        for k, x in a_after.items():
            if k in b_all:
                same[x.detector] += 1
            else:
                missed[x.detector] += 1
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
        for r in rows:
            print("  ", *r)
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
