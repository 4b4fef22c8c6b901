"""(lat1, issue 16) The provisional alerts' prototype, measured: needs
docs/proposals/lat1-provisional-alerts-core.patch applied (``git apply``; it adds ``Step.provisional``).

A fleet as scripts/stream_alert_delay.py's (``loose`` the share of meters with a loose CT), streamed
in 1-hour pieces with every detector every step (``slow_every_s = 0``); every stitcher piece's
provisional alerts are recorded with the data time. Prints whether the stream's final alerts equal
``detect``'s, how many provisional ids became final ones, those that never did (would be withdrawn),
and per blanked rule the delay (h) to the first final and to the first final-or-provisional write.

    env PYTHONPATH=src python scripts/stream_provisional_delay.py 60min 41 8 8 0
"""
import sys, json, time, tempfile
from pathlib import Path
import pandas as pd
from wattwatch import api
from wattwatch.detect import stitch
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store
step, seed, days, meters, loose = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), \
    float(sys.argv[5])
prov_seen = []
NOW = [None]
orig = stitch.Stitcher.feed
def feed(self, piece, final=False):
    st = orig(self, piece, final)
    for x in st.provisional:
        prov_seen.append((NOW[0], x.meter_id, x.detector, pd.Timestamp(x.start), pd.Timestamp(x.end), x.id))
    return st
stitch.Stitcher.feed = feed
config = {"engine": {"profile_days": 1.0}}
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    simulate(SimConfig(meters=meters, days=days, step=step, seed=seed, commercial_share=0.5, fault_share=1.0,
                       faults=("neutral_bypass", "phase_imbalance", "open_ct", "packet_loss"),
                       profile_days=1.0, outage_share=0.4, loose_ct_share=loose), tmp / "fleet")
    det = api.detect(tmp / "fleet" / "telemetry.parquet", db=tmp / "batch.duckdb", config=config)
    frame = api.read_frame(tmp / "batch.duckdb").sort_values("ts", kind="stable")
    day = frame["ts"].min().floor("1D") + pd.Timedelta("1D")
    rest = frame[frame["ts"] >= day]
    pieces = [frame[frame["ts"] < day]] + [p for _, p in rest.groupby(rest["ts"].dt.floor("1h"), sort=True)]
    store = Store(tmp / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, config), api._engine(config),
                       StreamConfig(checkpoint_s=1e9, slow_thread=False, slow_every_s=0))
    seen = []
    for p in pieces:
        NOW[0] = p["ts"].max()
        eng.add(p)
        seen += [(NOW[0], x.meter_id, x.detector, pd.Timestamp(x.start), pd.Timestamp(x.end), x.id)
                 for x in eng.step().alerts]
    eng.flush()
    equal = {x.id for x in det.alerts} == set(eng.alerts)
    store.close()
final_ids = {x.id for x in det.alerts}
pids = {w[5] for w in prov_seen}
print(step, seed, "loose", loose, "equal", equal, "provisional ids", len(pids),
      "of which final", len(pids & final_ids),
      "withdrawn", sorted({(w[1], w[2]) for w in prov_seen if w[5] not in final_ids}))
for name in ("phase_imbalance", "neutral_tamper", "sensor_fault"):
    fd, pd_ = [], []
    for x in det.alerts:
        if x.detector != name: continue
        s, e = pd.Timestamp(x.start), pd.Timestamp(x.end)
        f = [w[0] for w in seen if w[1] == x.meter_id and w[2] == name and w[3] <= e and w[4] >= s]
        q = [w[0] for w in seen + prov_seen
             if w[1] == x.meter_id and w[2] == name and w[3] <= e and w[4] >= s]
        fd.append(round((min(f) - s) / pd.Timedelta("1h"), 1) if f else None)
        pd_.append(round((min(q) - s) / pd.Timedelta("1h"), 1) if q else None)
    print(f"  {name}: final-only {fd}  with provisional {pd_}")
