"""(qr) Mixed cadences in one run: the same per-meter alerts as each cadence alone (SPEC: every
cadence is normal, mixed in one run).

From a kept `bench quality --workdir DIR` fleet, the meters FINE keep the fleet's cadence and the
others are thinned to COARSE: snapshots, every reading whose nominal time (rounded to the fleet's
step) lies on the COARSE grid of the day, as a meter reporting less often reports (the simulator's
readings are snapshots and its register integrates every step, so a thinned meter is what the
same world reported every COARSE). Three runs of ``api.detect`` on the readings alone (no store,
each meter profiled on its own first days): the FINE meters alone, the thinned meters alone, both
in one run; every alert (meter, detector, code, start, end) of the mixed run must be one of the
runs alone and the other way round.

    PYTHONPATH=src python scripts/mixed_cadence.py DIR OUT --coarse 15min [--fine even | --fine M-00003,M-00017]

``--fine even``: every other meter (sorted ids) keeps the fleet's cadence; a list: those meters
(one meter at 1 min among hourly ones: ``--coarse 60min --fine M-00013`` on a 1-min fleet).
Learned detectors train one fleet model per grid step on the meters of that step: mixed and alone
train each step's model on the same meters, so they too must agree (the whole fleet thinned would
train its model on more meters and may differ: that is no cadence effect).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from wattwatch import api


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--coarse", required=True)
    ap.add_argument("--fine", default="even")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    t = pd.read_parquet(a.workdir / "fleet" / "telemetry.parquet")
    cfg = json.loads((a.workdir / "fleet" / "meters.json").read_text())["config"]
    nom = pd.to_datetime(t["ts"], utc=True).dt.round(pd.Timedelta(cfg["step"]))
    on_grid = ((nom - nom.dt.normalize()) % pd.Timedelta(a.coarse)) == pd.Timedelta(0)
    ids = sorted(t["meter_id"].unique())
    fine = set(ids[::2]) if a.fine == "even" else set(a.fine.split(","))
    is_fine = t["meter_id"].isin(fine).to_numpy()
    parts = {"fine_alone": t[is_fine], "coarse_alone": t[~is_fine & on_grid],
             "mixed": t[is_fine | (~is_fine & on_grid)]}
    res = {}
    for name, df in parts.items():
        p = a.out / f"{name}.parquet"
        df.to_parquet(p, index=False)
        t0 = time.process_time()
        alerts = [json.loads(x.to_json()) for x in api.detect(str(p)).alerts]
        (a.out / f"{name}.alerts.json").write_text(json.dumps(alerts, indent=0))
        res[name] = {(x["meter_id"], x["detector"], x["code"], x["start"], x["end"]) for x in alerts}
        print(f"{name}: {len(df)} readings, {len(alerts)} alerts, {time.process_time() - t0:.0f} s CPU", flush=True)
    alone, mixed = res["fine_alone"] | res["coarse_alone"], res["mixed"]
    print(f"only alone: {len(alone - mixed)}")
    for x in sorted(alone - mixed):
        print("  -", x)
    print(f"only mixed: {len(mixed - alone)}")
    for x in sorted(mixed - alone):
        print("  +", x)


if __name__ == "__main__":
    main()
