"""What a rise of a home's day floor (its lowest hourly reading over 24 h) would report on the
real-shape fleet (q20, docs/quality-log.md): the UCI household's own long loads, and, on a fleet kept
by ``scripts/quality_sweep.py --keep``, the runs of 12 hours or more where the last 24 hours' floor
stood above the standby (the median of the lower half of the profiled week's daily floors) by more
than ``K`` x the profiled mean load and 4.42 x the Shamos spread of the profiled floors in kW; each run
is matched with the meter's injected faults (true) or not (false).

    env PYTHONPATH=src python scripts/home_floor_episodes.py DATA [WORK ...] [--k 0.3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.evaluate.real_data import load


def uci_episodes(data: str, kw: float = 0.5, min_h: int = 6) -> None:
    s = load("uci_household", data).set_index("ts")["p_kw"].resample("5min").mean()
    h = s.resample("1h").min()
    print(f"UCI household: daily floor median {s.resample('1D').min().median():.3f} kW, mean {s.mean():.2f} kW")
    on = h > kw
    for _, x in h[on].groupby((on != on.shift()).cumsum()[on]):
        if len(x) >= min_h:
            print(f"  from {x.index[0]:%Y-%m-%d %H:%M} {len(x):3d} h with every hour's lowest reading above {kw} kW:"
                  f" lowest {x.min():.2f}, median {x.median():.2f} kW")


def runs(b: np.ndarray, idx: pd.DatetimeIndex, min_h: int, win: int) -> list:
    out, k = [], 0
    while k < len(b):
        if b[k]:
            e = k
            while e < len(b) and b[e]:
                e += 1
            if e - k >= min_h:
                out.append((idx[k] - pd.Timedelta(hours=win), idx[e - 1]))
            k = e
        else:
            k += 1
    return out


def fleet(work: Path, k: float, win: int = 24) -> None:
    tel = pd.read_parquet(work / "fleet" / "telemetry.parquet", columns=["meter_id", "ts", "p_kw"])
    meters = {m["meter_id"]: m for m in json.loads((work / "fleet" / "meters.json").read_text())["meters"]}
    ev = json.loads((work / "fleet" / "events.json").read_text())
    ev = ev if isinstance(ev, list) else ev["events"]
    pend = tel.ts.min().floor("D") + pd.Timedelta(days=7)
    found = false = shifts = 0
    for mid, g in tel.groupby("meter_id"):
        if meters[mid]["kind"] != "residential":
            continue
        s = g.set_index("ts")["p_kw"]
        prof = s[s.index < pend]
        f = prof.resample("1D").min().dropna()
        f = f[f > 0].to_numpy()
        sb = float(np.median(f[f <= np.median(f)]))
        i, j = np.triu_indices(len(f), 1)
        thr = sb + max(k * prof.mean(), 4.42 * 1.0483 * float(np.median(np.abs(f[i] - f[j]))))
        d1 = s.resample("1h").min().rolling(win, min_periods=int(0.75 * win)).min()
        d1 = d1[d1.index >= pend + pd.Timedelta(hours=win)]
        got = runs((d1 > thr).to_numpy(), d1.index, 12, win)
        faults = [e for e in ev if e.get("meter_id") == mid and e.get("type") != "motor_start"]
        false += sum(not any(pd.Timestamp(x["start"]) <= z and pd.Timestamp(x["end"]) >= a for x in faults) for a, z in got)
        for x in faults:
            if x["type"] == "level_shift":
                shifts += 1
                found += any(pd.Timestamp(x["start"]) <= z and pd.Timestamp(x["end"]) >= a for a, z in got)
    print(f"{work}: homes' level shifts found {found}/{shifts}, runs on no fault {false} (K {k})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("work", nargs="*", type=Path)
    ap.add_argument("--k", type=float, default=0.3)
    a = ap.parse_args()
    uci_episodes(a.data)
    for w in a.work:
        fleet(w, a.k)
