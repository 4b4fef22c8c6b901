"""(fo, committed by rfo) A sampled step profile (scripts/fixed_step.py --sample OUT: OUT.<size>) split
into the parts of docs/live-log.md's table "Where a step goes" (fo, 2026-12-07): each sample goes to
the first part its stack holds, in this order; ms per step = sampled CPU / STEPS (fixed_step's
``--timed``).

    python scripts/step_parts.py STEPS OUT.1 [OUT.20 ...]
"""
import collections
import sys

PARTS = [("store: normalising statement (DuckDB)", ["duck.py:_normalised_live"]),
         ("store: the rest of the ingest (match, merge, rows back to pandas, read_frame)",
          ["duck.py:ingest", "pipeline.py:ingest_live"]),
         ("add: the rest (first/newest per meter, _newest_stored, late check)", ["stream.py:add"]),
         ("core.run (every detector, the 3 groups)", ["core.py:run"]),
         ("stitch: tail data movement (_merge, _merge_sides, _calm_tail, _without_copies, _cut_tail, _calm, "
          "_put_tail, _own)", ["stitch.py:_merge", "stitch.py:_merge_sides", "stitch.py:_calm_tail",
                               "stitch.py:_without_copies", "stitch.py:_cut_tail", "stitch.py:_calm",
                               "stitch.py:_put_tail", "stitch.py:_own"]),
         ("stitch: prepare (the judged meters' frame)", ["frame.py:prepare"]),
         ("stitch: the rest (Stitchers' _by_meter, bookkeeping)", ["stitch.py:feed"]),
         ("step: _piece", ["stream.py:_piece"]),
         ("step: _prune_handed", ["stream.py:_prune_handed"]),
         ("step: _take (alert upsert)", ["stream.py:_take"]),
         ("step: the rest (fed stamps, tiers, cadence clock)", ["stream.py:_step"])]


def main() -> None:
    steps = int(sys.argv[1])
    for fn in sys.argv[2:]:
        c: collections.Counter = collections.Counter()
        tot = 0
        for line in open(fn):
            st, _, n = line.rstrip().rpartition(" ")
            if ":timed" not in st:
                continue
            st, n = st[st.index(":timed"):], int(n)
            tot += n
            c[next((name for name, keys in PARTS if any(k in st for k in keys)), "other")] += n
        print(fn, "sampled CPU ms per step", round(tot / 1e3 / steps, 1))
        for name, _ in PARTS + [("other", 0)]:
            print(f"| {name} | {100 * c[name] / max(tot, 1):.1f} % | {c[name] / 1e3 / steps:.1f} |")


if __name__ == "__main__":
    main()
