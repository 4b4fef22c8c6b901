"""cut29: a watcher started on a compacted store (no checkpoint). Usage: watch_cut.py STEP [macd [nohours]].
Without `macd`: fleet 10 meters x 28 days (seed 7), detect once (A), a copy compacted 6 and 24 h before
the firmware drift, a watcher started on it: its alerts A lacks ("new"), A's alerts 5 days after the cut
it misses. With `macd`: baseline_macd alone on 3 meters x 35 days, cut a day before the latest of its 3
alerts: the watcher's alerts (alone in the store); `nohours`: without the compacted hours' carry."""
import os, shutil, sys, tempfile
import pandas as pd
from wattwatch import api
from wattwatch.alerts import store as alert_store
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store
from wattwatch.runners import stream
from wattwatch.runners.stream import StreamConfig, StreamEngine
TMP = tempfile.mkdtemp(prefix="watch-cut-")
step = sys.argv[1]
mode = sys.argv[2:]
if "nohours" in mode:
    stream.StreamEngine.cut_hours = lambda self, meters: None


def watch(db, dets):
    s = Store(db)
    eng = StreamEngine(s, api.build_detectors(dets, None), api._engine(None), StreamConfig(checkpoint_s=0))
    try:
        eng.step(final=True)
        eng.flush()
        return alert_store.list_alerts(s.con, "all")
    finally:
        eng.close()
        s.close()


if "macd" in mode:
    frame = simulate(SimConfig(meters=20, days=35, seed=7, step=step, fault_share=0.8, outage_share=0.4))["frame"]
    frame = frame[frame["meter_id"].isin(["M-00002", "M-00006", "M-00015"])]
    db = os.path.join(TMP, "m.duckdb")
    api.ingest(frame, db)
    found = api.detect(db, detectors="baseline_macd").alerts
    cut = (max(pd.Timestamp(a.start) for a in found) - pd.Timedelta(days=1)).floor("h")
    with Store(db) as s:
        s.compact(older_than_days=0, as_of=cut)
        s.con.execute("DELETE FROM alerts")
    got = watch(db, "baseline_macd")
    print(step, "detect before:", [(a.id, a.meter_id, a.start) for a in found])
    print(step, "watch after:", [(r.id, r.meter_id, str(r.start)) for r in got.itertuples()])
    sys.exit()
D = ["firmware_drift", "thermal_drift", "phase_imbalance", "supply_outage", "packet_loss", "baseline_macd"]
fr = simulate(SimConfig(meters=10, days=28, seed=7, step=step, fault_share=0.8, outage_share=0.4))["frame"]
base = os.path.join(TMP, "base.duckdb")
api.ingest(fr, base)
A = api.detect(base, detectors=D).alerts
drift = [a for a in A if a.detector == "firmware_drift"][0]
for h in (6, 24):
    cut = (pd.Timestamp(drift.start) - pd.Timedelta(hours=h)).floor("h")
    db = os.path.join(TMP, f"c{h}.duckdb")
    shutil.copy(base, db)
    with Store(db) as s:
        s.compact(older_than_days=0, as_of=cut)
    got = watch(db, D)
    before = {a.id for a in A}
    new = [(r.detector, r.meter_id, str(r.start)) for r in got.itertuples() if r.id not in before]
    far = {a.id for a in A if pd.Timestamp(a.start) >= cut + pd.Timedelta(days=5)}
    print(step, f"cut {h} h before the drift: new", new, "far missed", len(far - set(got["id"])), "of", len(far))
