"""Usage: python scripts/modbus_real.py [OUT] [DAYS] [DATA_ROOT] [DATASET (ampds2, uci_household)]

A real meter (AMPds2 B1E or UCI household, 1 min) replayed through a simulated Modbus meter with a typical register map
(integer registers with scale factors, the meter's clock as uint32 epoch seconds), polled by
`watch`; compared with `detect` on the same polled readings and on the original file."""
import sys, threading, time, json
from pathlib import Path
import numpy as np, pandas as pd
from wattwatch import api
from wattwatch.evaluate.real_data import load
from wattwatch.devices import modbus as dev
from wattwatch.runners.stream import StreamEngine
from wattwatch.store import Store

out = Path(sys.argv[1] if len(sys.argv) > 1 else "modbus-real-out"); out.mkdir(parents=True, exist_ok=True)
days = float(sys.argv[2]) if len(sys.argv) > 2 else 4
name = sys.argv[4] if len(sys.argv) > 4 else "ampds2"
frame = load(name, Path(sys.argv[3] if len(sys.argv) > 3 else "/work/shared/data/real"))
frame = frame[frame["ts"] < frame["ts"].min() + pd.Timedelta(days=days)].reset_index(drop=True)
REGS = [{"channel": "ts", "table": "holding", "address": 0, "type": "uint32"},
        {"channel": "v_l1_v", "table": "holding", "address": 2, "type": "uint16", "scale": 0.1},
        {"channel": "i_l1_a", "table": "holding", "address": 3, "type": "uint16", "scale": 0.001},
        {"channel": "p_kw", "table": "holding", "address": 4, "type": "int32", "scale": 0.001, "word_order": "little"},
        {"channel": "q_kvar", "table": "holding", "address": 6, "type": "int32", "scale": 0.001, "word_order": "little"},
        {"channel": "s_kva", "table": "holding", "address": 8, "type": "int32", "scale": 0.001, "word_order": "little"},
        {"channel": "pf", "table": "holding", "address": 10, "type": "int16", "scale": 0.001},
        {"channel": "e_kwh", "table": "holding", "address": 11, "type": "uint32", "scale": 0.001}]
REGS = [r for r in REGS if r["channel"] == "ts" or r["channel"] in frame.columns]
CONFIG = {"engine": {"profile_days": 1.0}}
d = dev.start(name, {"registers": REGS, "replay": frame, "cycle_s": 60})
db = out / "live.duckdb"
site = {"sources": [{"type": "modbus", "name": name, "interval_s": 0.002, "timeout_s": 1.0, "deadline_s": 2.0,
                     "models": {"dent": {"registers": REGS}},
                     "devices": [{"meter_id": str(frame["meter_id"].iloc[0]), "port": d.port, "unit": 1, "model": "dent"}]}],
        "store": {"path": str(db)}, **CONFIG}
stop = threading.Event(); box = {}
t0 = time.monotonic()
th = threading.Thread(target=lambda: box.update(w=api.watch(site, stop=stop)), daemon=True); th.start()
while d.view()["left"] > 0 and time.monotonic() - t0 < 900:
    time.sleep(0.5)
time.sleep(1.0); stop.set(); th.join(120); d.stop()
took = time.monotonic() - t0
w = box["w"]
store = Store(db)
StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG)).flush()
live_alerts = {r[0]: r[1:] for r in store.con.execute("SELECT id, code, start, \"end\" FROM alerts").fetchall()}
store.close()
polled = api.read_frame(db)
on_polled = api.detect(polled, config=CONFIG).alerts
on_file = api.detect(frame, config=CONFIG).alerts
err = {c: float(np.nanmax(np.abs(polled[c].to_numpy(float) - frame.sort_values("ts")[c].to_numpy(float))))
       for c in ["v_l1_v", "i_l1_a", "p_kw", "pf", "e_kwh"] if c in frame.columns}
res = {"readings_file": len(frame), "readings_polled": len(polled), "seconds": round(took, 1),
       "polls_per_s": round(len(polled) / took, 1), "source": {k: v for k, v in w.sources[0].items()},
       "max_abs_quantisation": err,
       "alerts_watch": sorted((v[0] for v in live_alerts.values())),
       "alerts_detect_on_polled": sorted(a.code for a in on_polled),
       "same_ids_watch_vs_detect_polled": sorted(live_alerts) == sorted(a.id for a in on_polled),
       "alerts_detect_on_file": sorted(a.code for a in on_file)}
print(json.dumps(res, indent=1, default=str))
