"""rev28: detect after `store compact` on awkward stores (holes, compacted twice, ts_list NULL,
late raw readings before the cut, power only, a register reset, mixed cadences, a meter all compacted):
per case alerts before (A) and after (B, C: twice), alerts B has that A lacks, withdrawals, and the
largest score difference after the cut. Usage: compact_edges.py [baseline_macd|default]"""
import os, sys, tempfile, traceback
import numpy as np, pandas as pd
from wattwatch import api
from wattwatch.alerts import store as alert_store
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store
TMP = tempfile.mkdtemp(prefix="compact-edges-")
D = sys.argv[1] if len(sys.argv) > 1 else "baseline_macd"
DET = None if D == "default" else D
fr15 = simulate(SimConfig(meters=20, days=35, seed=7, step="15min", fault_share=0.8, outage_share=0.4))["frame"]
fr60 = simulate(SimConfig(meters=20, days=35, seed=7, step="60min", fault_share=0.8, outage_share=0.4))["frame"]
M = ["M-00002", "M-00006", "M-00015"]
base = fr15[fr15.meter_id.isin(M)]
cut = pd.Timestamp("2025-01-15T15:00Z")
def fresh(name, frame):
    db = os.path.join(TMP, name.replace(" ", "_").replace("/", "-") + ".duckdb")
    for p in (db, db + ".wal"):
        if os.path.exists(p): os.remove(p)
    api.ingest(frame, db)
    return db
def run(name, frame, prep=None, post=None):
    try:
        db = fresh(name, frame)
        A = api.detect(db, detectors=DET, scores=True)
        with Store(db) as s:
            (prep or (lambda s: s.compact(older_than_days=0, as_of=cut)))(s)
        if post: post(db)
        B = api.detect(db, detectors=DET, scores=True)
        C = api.detect(db, detectors=DET, scores=True)
        ida, idb, idc = ({a.id for a in X.alerts} for X in (A, B, C))
        sa, sb = A.scores, B.scores
        both = sa.merge(sb, on=["meter_id", "ts"], suffixes=("_a", "_b"))
        col = "baseline_macd" if "baseline_macd_a" in both else "score"
        j = both[col + "_b"].notna() & both[col + "_a"].notna()
        diff = float(np.nanmax(np.abs(both.loc[j, col + "_b"] - both.loc[j, col + "_a"]))) if j.any() else np.nan
        with Store(db) as s:
            openids = set(alert_store.list_alerts(s.con, "open")["id"])
        print(f"{name:14s} A={len(ida)} B={len(idb)} new={sorted((a.meter_id,a.detector,a.start) for a in B.alerts if a.id not in ida)} "
              f"B==C {idb==idc} withdrawn B/C {B.stored['withdrawn']}/{C.stored['withdrawn']} store==A {openids==ida} "
              f"judged after cut {int(j.sum())}/{len(both)} maxdiff {diff:.2g}")
    except Exception:
        print(name, "FAILED"); traceback.print_exc()
run("plain", base)
# holes: two days before the cut with no readings
hole = (base.ts >= cut - pd.Timedelta(days=6)) & (base.ts < cut - pd.Timedelta(days=4))
run("holes", base[~hole])
# compacted twice (cut moved)
def twice(s):
    s.compact(older_than_days=0, as_of=cut - pd.Timedelta(days=5)); s.compact(older_than_days=0, as_of=cut)
run("twice", base, twice)
# ts_list NULL (older layout)
def nolist(s):
    s.compact(older_than_days=0, as_of=cut); s.con.execute("UPDATE readings_hourly SET ts_list = NULL, e_list = NULL")
run("ts_list NULL", base, nolist)
# late readings for compacted hours, raw before the cut
def late(db):
    x = base[(base.ts < cut) & (base.ts >= cut - pd.Timedelta(days=2))].iloc[::50].copy()
    x["ts"] = x["ts"] + pd.Timedelta(seconds=30)
    api.ingest(x, db)
run("late raw", base, post=late)
# power only
run("power only", base.drop(columns=[c for c in ["e_kwh"] if c in base]))
# register reset inside compacted span
rr = base.copy(); m = (rr.meter_id == "M-00002") & (rr.ts >= cut - pd.Timedelta(days=3))
rr.loc[m, "e_kwh"] = rr.loc[m, "e_kwh"] - rr.loc[m, "e_kwh"].iloc[0]
run("register reset", rr)
# mixed cadences
mix = pd.concat([base[base.meter_id != "M-00015"], fr60[fr60.meter_id == "M-00015"]], ignore_index=True)
run("mixed 15/60", mix)
# all compacted for one meter (its last reading before the cut)
allc = base[~((base.meter_id == "M-00006") & (base.ts >= cut))]
run("all compacted", allc)
