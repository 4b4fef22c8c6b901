"""pkt (issue 16): when the stream writes a total dropout (a meter silent 45 min or 3 h at hour 36),
at 1 and 5 minutes, in 5-minute pieces; and that stream == detect.

    env PYTHONPATH=src python scripts/stream_dropout_delay.py
"""
import sys, tempfile
from pathlib import Path
import numpy as np, pandas as pd
from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store
CONFIG = {"engine": {"profile_days": 1.0}, "detectors": ["supply_outage", "packet_loss"]}
T0 = pd.Timestamp("2025-01-06", tz="UTC")
def meter(name, cad, silent_h, seed, days=2.5):
    rng = np.random.default_rng(seed); n = int(days * 86400 / cad); k = np.arange(n)
    ts = T0 + pd.to_timedelta(k * cad + rng.uniform(-2, 2, n), unit="s"); h = k * cad / 3600
    f = pd.DataFrame({"meter_id": name, "ts": ts, "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})
    return f[~((h >= 36) & (h < 36 + silent_h))]
ms = {"D1_45m": (60, 0.75), "D1_3h": (60, 3.0), "D5_45m": (300, 0.75), "D5_3h": (300, 3.0)}
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    fr = pd.concat([meter(m, c, s, i) for i, (m, (c, s)) in enumerate(ms.items())], ignore_index=True)
    fr.to_parquet(tmp / "f.parquet")
    det = api.detect(tmp / "f.parquet", db=tmp / "b.duckdb", config=CONFIG)
    frame = api.read_frame(tmp / "b.duckdb").sort_values("ts", kind="stable")
    day = T0 + pd.Timedelta("1D"); rest = frame[frame["ts"] >= day]
    pieces = [frame[frame["ts"] < day]] + [p for _, p in rest.groupby(rest["ts"].dt.floor("5min"), sort=True)]
    store = Store(tmp / "l.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG), StreamConfig(checkpoint_s=1e9, slow_thread=False))
    first = {}
    for p in pieces:
        eng.add(p)
        for a in eng.step().alerts:
            first.setdefault(a.meter_id, p["ts"].max())
    eng.flush(); eq = {a.id for a in det.alerts} == set(eng.alerts); store.close()
print("stream == detect", eq)
for m, (c, s) in ms.items():
    back = T0 + pd.Timedelta(hours=36 + s)
    d = [a for a in det.alerts if a.meter_id == m]
    print(m, [a.message[:60] for a in d], "first written", None if m not in first else round((first[m] - back) / pd.Timedelta("1min"), 1), "min after the meter is heard again")
