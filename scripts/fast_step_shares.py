"""(fs, 2026-12-07) Shares of a fast step by part, from a py-spy raw (collapsed) profile of
scripts/profile_fast_step.py's timed steps (run inside its function ``timed_steps``: py-spy record -r 500
-f raw -o OUT --nonblocking -- python scripts/profile_fast_step.py 40; py-spy is not in the venv: a separate
virtualenv).
    python scripts/fast_step_shares.py OUT
"""
import sys, collections
fn = sys.argv[1]
R = [("detectors: scoring (Detector.scored, subset rows)", ["_scored (wattwatch/detect/core", "_score_rows (wattwatch/detect/core", "_rows_read (wattwatch"]),
     ("detectors: alerts formed (core._alert)", ["_alert (wattwatch/detect/core"]),
     ("post-rules' grouping (postrules.group)", ["group (wattwatch/detect/postrules"]),
     ("core.run: reaches/blockers", ["reaches (wattwatch/detect/core", "blockers (wattwatch/detect/core"]),
     ("core.run: the rest (masks, _reach_rows, _post's own work, prepare)", ["run (wattwatch/detect/core"]),
     ("stitch: _calm + _calm_tail (packet_loss)", ["Stitcher._calm (", "_calm_tail ("]),
     ("stitch: merges (_merge, _merge_sides)", ["_merge (wattwatch/detect/stitch", "_merge_sides ("]),
     ("stitch: _cut_tail (+_first_kept, _needed)", ["Stitcher._cut_tail ("]),
     ("stitch: _put_tail (compaction, frame)", ["Stitcher._put_tail ("]),
     ("stitch: prepare (frame.py)", ["prepare (wattwatch/detect/frame"]),
     ("stitch: the rest of feed (_by_meter, _own, isin, known, bookkeeping)", ["Stitchers.feed ("]),
     ("add: store ingest normalising SQL (main thread)", ["Store._normalised_live ("]),
     ("add: store ingest, the rest (match, merge, hand to worker)", ["Store.ingest ("]),
     ("add: the rest (ingest_live's frames, late check)", ["StreamEngine.add ("]),
     ("alert upsert (DuckDB INSERT .. ON CONFLICT)", ["upsert (wattwatch/alerts/store"]),
     ("step: the rest (_take, _piece, _prune_handed)", ["StreamEngine._step ("])]
tot = 0; c = collections.Counter()
for line in open(fn):
    st, _, n = line.rstrip().rpartition(" "); n = int(n)
    if "timed_steps" not in st: continue
    tot += n
    for name, keys in R:
        if any(k in st for k in keys):
            c[name] += n; break
    else:
        c["other"] += n
for name, _ in R + [("other", 0)]:
    print(f"| {name} | {100 * c[name] / tot:.1f} % |")
print("samples", tot)
