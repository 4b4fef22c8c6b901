"""Real homes profiled on a short period (``fit --normal-start/--normal-end`` over 7 and 14 days),
the whole record judged with the default ``detect`` (review rev27, docs/quality-log.md).

Meters: the UCI household (1 min, and its 15- and 60-minute means), the AMPds2 bedroom circuit (the
same), each OPSD residential grid import (hourly, Europe/Berlin profile clock) and OPSD
residential3/4/6's net import (import minus export: negative while exporting). The profiled period
starts ``OFFS`` days (comma list, default 0) after each meter's first reading.

    env PYTHONPATH=src OFFS=0,61 python scripts/short_profile_homes.py OUT.jsonl [frame-prefix,...]

Writes every alert as a JSON line (frame, profile days, offset, alert fields) to OUT.jsonl, and
``baseline_macd``'s per-reading scores to OUT.jsonl.FRAME.OFFSET.DAYS.parquet; run it with two
checkouts and compare the two outputs."""
import json, os, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from wattwatch import api
from wattwatch.evaluate.real_data import load

ROOT = os.environ.get("DATA", str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"))
out_path = sys.argv[1]
only = sys.argv[2].split(",") if len(sys.argv) > 2 else None


def resample(df, step):
    g = df.set_index("ts")[["p_kw"]].resample(step, label="left", closed="left").mean().dropna().reset_index()
    g["meter_id"] = df["meter_id"].iloc[0]
    return g[["meter_id", "ts", "p_kw"]]

frames = {}
uci = load("uci_household", ROOT)[["meter_id", "ts", "p_kw"]]
amp = load("ampds2", ROOT)[["meter_id", "ts", "p_kw"]]
for name, f in (("uci", uci), ("ampds2", amp)):
    frames[f"{name}@1min"] = (f, None)
    frames[f"{name}@15min"] = (resample(f, "15min"), None)
    frames[f"{name}@60min"] = (resample(f, "60min"), None)
op = load("opsd", ROOT)
for m, g in op.groupby("meter_id"):
    frames[f"{m}@60min"] = (g[["meter_id", "ts", "p_kw"]].reset_index(drop=True), "Europe/Berlin")
# prosumer net meters: import - export (negative when exporting)
wide = pd.read_csv(Path(ROOT) / "opsd_household_prosumer_60min" / "opsd_household_residential1-6_60min.csv.gz")
ts = pd.to_datetime(wide["utc_timestamp"], utc=True)
for n in (3, 4, 6):
    imp = pd.to_numeric(wide[f"DE_KN_residential{n}_grid_import"], errors="coerce").diff()
    exp = pd.to_numeric(wide[f"DE_KN_residential{n}_grid_export"], errors="coerce").diff()
    net = imp - exp
    keep = net.notna().to_numpy()
    frames[f"opsd_net{n}@60min"] = (pd.DataFrame({"meter_id": f"opsd_net{n}", "ts": ts[keep].to_numpy(),
                                                  "p_kw": net[keep].to_numpy()}), "Europe/Berlin")

with open(out_path, "a") as fo:
    for key, (f, zone) in frames.items():
        if only and not any(key.startswith(o) for o in only):
            continue
        f = f.copy(); f["ts"] = pd.to_datetime(f["ts"], utc=True)
        offs = [float(o) for o in os.environ.get('OFFS', '0').split(',')]
        for off, days in [(o, d) for o in offs for d in (7, 14)]:
            t0 = f['ts'].min() + pd.Timedelta(days=off)
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="rev27-") as tmp:
                db = Path(tmp) / "s.duckdb"
                api.ingest(f, db)
                cfg = {"seasonal_profile": {"timezone": zone}} if zone else None
                api.fit(db, normal_start=t0, normal_end=t0 + pd.Timedelta(days=days), config=cfg)
                det = api.detect(db, scores=True)
                sc = det.scores
                col = [c for c in sc.columns if 'macd' in c]
                sc[['meter_id','ts']+col].to_parquet(out_path + f'.{key}.{off:g}.{days}.parquet')
                for a in det.alerts:
                    d = a.to_dict() if hasattr(a, "to_dict") else dict(a)
                    d = {k: d[k] for k in ("meter_id", "start", "end", "code", "score", "detector", "message", "evidence")}
                    fo.write(json.dumps({"frame": key, "days": days, "off": off, **d}, default=str) + "\n")
            print(key, off, days, len(det.alerts), f"{time.perf_counter()-t:.0f}s", flush=True)
