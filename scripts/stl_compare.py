"""A forecast-residual comparator on the labelled real hourly buildings: statsmodels MSTL next to
wattwatch, on the protocol of ``wattwatch bench quality-real`` (each meter's normal learned on its
first 8 weeks or first quarter, the rest judged, an alert counts when it overlaps a labelled run
-1 h / +6 h; :mod:`wattwatch.evaluate.real`).

The comparator is a library method, not a wattwatch detector: per meter, the hourly series (gaps of
up to 3 h interpolated for the decomposition only; longer gaps cut the series into pieces, each
decomposed alone) is decomposed by ``statsmodels.tsa.seasonal.MSTL`` with daily and weekly periods
(daily only on pieces shorter than 3 weeks; pieces shorter than 4 days are not judged); the residual, divided by its robust spread (1.4826 x
MAD) over the learning period, flags a reading beyond the 99.5th percentile of the learning
period's |z| (the PyOD peer's threshold rule). Consecutive flagged readings form one alert. Only
readings that exist are flagged (an interpolated hour is never an alert). MSTL sees each piece
whole (the trend and seasonal terms are not causal): an optimistic comparator.

    python scripts/stl_compare.py [--data DIR] [--datasets bdg2] [--json]

Prints recall / precision / event F1 / false alerts per 1,000 meter-days for MSTL and for
wattwatch's default configuration on the same meters (wattwatch's row is `bench quality-real`'s).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.evaluate.real import load_labels, score, train_ends, wattwatch_alerts
from wattwatch.evaluate.real_data import DATASETS, find_data, load

MAX_FILL_H = 3
TAIL = 0.995


def _pieces(s: pd.Series, step: pd.Timedelta) -> list[pd.Series]:
    """The series on its regular grid, cut where more than ``MAX_FILL_H`` readings are missing;
    shorter holes interpolated (for the decomposition only)."""
    grid = s.reindex(pd.date_range(s.index.min(), s.index.max(), freq=step))
    missing = grid.isna().to_numpy()
    run_id = np.cumsum(np.r_[True, missing[1:] != missing[:-1]])
    run_len = pd.Series(run_id).map(pd.Series(run_id).value_counts()).to_numpy()
    cut = missing & (run_len > MAX_FILL_H)
    out = []
    piece = np.cumsum(np.r_[True, cut[1:] != cut[:-1]])
    for k in np.unique(piece[~cut]):
        p = grid[(piece == k) & ~cut]
        if len(p) >= 96:
            out.append(p.interpolate(limit_direction="both"))
    return out


def mstl_alerts(frame: pd.DataFrame, ends: pd.Series, cadence_s: float) -> list[dict]:
    from statsmodels.tsa.seasonal import MSTL

    step = pd.Timedelta(seconds=cadence_s)
    per_day = int(round(86400 / cadence_s))
    out = []
    for m, g in frame[frame["p_kw"].notna()].groupby("meter_id", sort=True):
        s = g.set_index("ts")["p_kw"].sort_index()
        s = s[~s.index.duplicated()]
        real = set(s.index)
        resid = []
        for p in _pieces(s, step):
            if len(p) < 4 * per_day:
                continue
            periods = (per_day, 7 * per_day) if len(p) >= 21 * per_day else (per_day,)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = MSTL(p.to_numpy(float), periods=periods).fit()
            resid.append(pd.Series(np.asarray(r.resid), index=p.index))
        if not resid:
            continue
        res = pd.concat(resid)
        res = res[res.index.isin(real)]
        train = res.index <= ends[m]
        if train.sum() < 48 or (~train).sum() == 0:
            continue
        med = np.median(res[train])
        mad = 1.4826 * np.median(np.abs(res[train] - med)) or 1e-9
        z = np.abs(res.to_numpy() - med) / mad
        thr = np.quantile(z[train], TAIL)
        flag = (z > thr) & ~train
        ts = res.index
        idx = np.flatnonzero(flag)
        if not len(idx):
            continue
        # Consecutive readings (one cadence apart) form one alert.
        brk = np.flatnonzero(np.diff(ts[idx].asi8) > step.value) + 1
        for run in np.split(idx, brk):
            out.append({"meter_id": m, "start": ts[run[0]].isoformat(), "end": ts[run[-1]].isoformat(),
                        "code": "MSTL_RESIDUAL"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--datasets", default="bdg2")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = find_data(args.data)
    if root is None:
        raise SystemExit("no real-data folder found; give --data DIR or set WATTWATCH_REAL_DIR")
    labels = load_labels()
    rows = {}
    for name in [n.strip() for n in args.datasets.split(",") if n.strip()]:
        if name not in DATASETS:
            raise SystemExit(f"--datasets: unknown {name}; known: {', '.join(DATASETS)}")
        frame = load(name, root)
        ends = train_ends(frame)
        last = frame.groupby("meter_id")["ts"].max()
        judged = {m: (ends[m], last[m]) for m in ends.index}
        mine = [lab for lab in labels if lab["dataset"] == name]
        t0 = time.perf_counter()
        stl = score(mine, mstl_alerts(frame, ends, DATASETS[name]["cadence_s"]), judged)
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ww-stl-") as tmp:
            ww = score(mine, wattwatch_alerts(frame, Path(tmp)), judged)
        t2 = time.perf_counter()
        rows[name] = {"mstl": stl, "mstl_s": t1 - t0, "wattwatch": ww, "wattwatch_s": t2 - t1}
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return
    print("| data | detector | labels | found | recall | alerts | precision | event F1 | false / 1,000 meter-days | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        for who, label in (("wattwatch", "wattwatch (defaults)"), ("mstl", "statsmodels MSTL residual, 99.5 % train tail")):
            x = r[who]
            prec = "-" if x["precision"] != x["precision"] else f"{x['precision']:.2f}"
            print(f"| {name} | {label} | {x['labels']} | {x['detected']} | {x['recall']:.2f} | {x['alerts']} | {prec} | "
                  f"{x['f1']:.2f} | {x['false_per_1000_meter_days']:.1f} | {r[who + '_s']:.1f} |")


if __name__ == "__main__":
    main()
