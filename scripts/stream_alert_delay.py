"""Delay from a fault's first reading to the stream writing its alert (lat1, issue 16).

A simulated fleet (neutral bypass, phase imbalance, open CT, packet loss; 40 % of meters with an
outage; no loose CT) is judged by ``detect`` and streamed through a ``StreamEngine`` (every default
rule, profile 1 day, the slow tier in the step) in pieces of ``--every`` of data time (1 h: the slow
tier's clock). For each of ``detect``'s alerts: the data time (newest reading) of the first step that
wrote an alert of that meter and detector overlapping it, minus the alert's start. Alerts first
written by the final flush are counted apart (they started within the blocking horizon of the end).
``--without`` drops detectors from the set (``loose_ct``: what the delay is without its horizon).
``--no-provisional``: the stream without provisional alerts (``[stream] provisional = false``, as
before prov); ``--loose-ct-share``: meters with a loose CT (then neutral-looking fragments there are
provisional alerts the final verdict withdraws: counted). Stream == detect is checked on the engine's
final alerts and on the store's rows after the flush (no provisional one left).

    env PYTHONPATH=src python scripts/stream_alert_delay.py --step 60min --days 8 --meters 8 --seed 41
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

RULES = ("phase_imbalance", "neutral_tamper", "sensor_fault", "supply_outage", "packet_loss")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", default="60min")
    ap.add_argument("--days", type=float, default=8.0)
    ap.add_argument("--meters", type=int, default=8)
    ap.add_argument("--seed", type=int, default=41)
    ap.add_argument("--every", default="1h")
    ap.add_argument("--without", nargs="*", default=[])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-provisional", action="store_true")
    ap.add_argument("--loose-ct-share", type=float, default=0.0)
    ap.add_argument("--fault-share", type=float, default=1.0, help="(loose CTs are drawn on meters without a fault)")
    a = ap.parse_args()
    config: dict = {"engine": {"profile_days": 1.0}}
    if a.without:
        config["detectors"] = [d.name for d in api.build_detectors(None, config) if d.name not in a.without]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        simulate(SimConfig(meters=a.meters, days=a.days, step=a.step, seed=a.seed, commercial_share=0.5,
                           fault_share=a.fault_share, faults=("neutral_bypass", "phase_imbalance", "open_ct", "packet_loss"),
                           profile_days=1.0, outage_share=0.4, loose_ct_share=a.loose_ct_share), tmp / "fleet")
        cpu = time.process_time()
        det = api.detect(tmp / "fleet" / "telemetry.parquet", db=tmp / "batch.duckdb", config=config)
        frame = api.read_frame(tmp / "batch.duckdb").sort_values("ts", kind="stable")
        day = frame["ts"].min().floor("1D") + pd.Timedelta("1D")
        rest = frame[frame["ts"] >= day]
        pieces = [frame[frame["ts"] < day]] + [p for _, p in rest.groupby(rest["ts"].dt.floor(a.every), sort=True)]
        store = Store(tmp / "live.duckdb")
        eng = StreamEngine(store, api.build_detectors(None, config), api._engine(config),
                           StreamConfig(checkpoint_s=1e9, slow_thread=False, provisional=not a.no_provisional))
        seen = []   # (data time, meter, detector, start, end)
        for p in pieces:
            eng.add(p)
            now = p["ts"].max()
            seen += [(now, x.meter_id, x.detector, pd.Timestamp(x.start), pd.Timestamp(x.end))
                     for x in eng.step().alerts]
        eng.flush()
        equal = {x.id for x in det.alerts} == set(eng.alerts)
        stored = {r[0] for r in store.con.execute("SELECT id FROM alerts").fetchall()}
        equal = equal and stored == {x.id for x in det.alerts}
        prov = {k: int(eng.counters[k]) for k in ("provisional_written", "provisional_confirmed",
                                                   "provisional_withdrawn")}
        store.close()
        events = json.loads((tmp / "fleet" / "events.json").read_text())
    # (rpkt) packet loss also from when the loss began (the simulated event's start): its alert
    # opens where the window behind a reading is evidence, after the loss began.
    began = {}
    for ev in events if isinstance(events, list) else events.get("events", []):
        if ev.get("type") == "packet_loss":
            began.setdefault(ev["meter_id"], []).append(pd.Timestamp(ev["start"]))
    out = {}
    for name in RULES:
        delays, flush, from_loss = [], 0, []
        for x in det.alerts:
            if x.detector != name:
                continue
            s, e = pd.Timestamp(x.start), pd.Timestamp(x.end)
            first = [w[0] for w in seen if w[1] == x.meter_id and w[2] == name and w[3] <= e and w[4] >= s]
            if first:
                delays.append(round((min(first) - s) / pd.Timedelta("1h"), 2))
                b = [v for v in began.get(x.meter_id, []) if v <= min(first)] if name == "packet_loss" else []
                if b:
                    from_loss.append(round((min(first) - max(b)) / pd.Timedelta("1h"), 2))
            else:
                flush += 1
        out[name] = {"delay_h": sorted(delays), "flush_only": flush}
        if from_loss:
            out[name]["from_loss_began_h"] = sorted(from_loss)
    res = {"step": a.step, "seed": a.seed, "without": a.without, "stream_equals_detect": equal,
           "provisional": prov,
           "cpu_s": round(time.process_time() - cpu, 1), "rules": out}
    if a.json:
        print(json.dumps(res))
    else:
        print(f"{a.step} seed {a.seed} without {a.without or '-'} provisional {not a.no_provisional} loose CT "
              f"{a.loose_ct_share}: stream == detect {equal}, {res['cpu_s']} s CPU, {prov}")
        for name, r in out.items():
            d = r["delay_h"]
            print(f"  {name:16s} " + (f"{d[0]:.1f}-{d[-1]:.1f} h ({len(d)} alerts)" if d else "-")
                  + (f", {r['flush_only']} only at the flush" if r["flush_only"] else "")
                  + (f"; from the loss's start {r['from_loss_began_h'][0]:.1f}-{r['from_loss_began_h'][-1]:.1f} h"
                     if r.get("from_loss_began_h") else ""))


if __name__ == "__main__":
    main()
