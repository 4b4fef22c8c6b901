"""One-hour glitches injected into the real BDG2 buildings, judged with the default configuration.

Usage (from the repository root):

    python scripts/point_glitches.py [--seed N] [--data DIR] [--per-meter 8]

Each building with enough judged readings gets ``--per-meter`` single readings changed, in turn: a
spike to 2.5x, a drop to zero, a dip to 0.4x, a spike to 1.6x (at readings above the building's own
20th percentile, at least two days after its learning period and a day away from any expert label,
so an existing fault does not count as found). The buildings are learned as in
``wattwatch bench quality-real`` (first 8 weeks, anomalies left in) but without their time zones, as a
user running the defaults would, and an injected reading counts as found when an alert on its meter
overlaps it (-1 h, +6 h, the real-data protocol). Prints recall per kind, the missed readings, and
the number of alerts. Seeded: the same seed picks the same readings.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.evaluate import real, real_data

KINDS = {"spike_2.5x": 2.5, "drop_to_zero": 0.0, "dip_0.4x": 0.4, "spike_1.6x": 1.6}


def inject(frame: pd.DataFrame, labels: list[dict], seed: int, per_meter: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = frame.sort_values(["meter_id", "ts"]).reset_index(drop=True)
    ends = real.train_ends(frame)
    rng = np.random.default_rng(seed)
    names = list(KINDS)
    picked = []
    for m, g in frame.groupby("meter_id", sort=True):
        near = np.zeros(len(g), bool)
        for lab in labels:
            if lab["meter_id"] == m:
                lo = pd.Timestamp(lab["start"]) - pd.Timedelta(hours=24)
                hi = pd.Timestamp(lab["end"]) + pd.Timedelta(hours=24)
                near |= ((g["ts"] >= lo) & (g["ts"] <= hi)).to_numpy()
        ok = (g["ts"] > ends[m] + pd.Timedelta(days=2)).to_numpy() & \
            (g["p_kw"] > g["p_kw"].quantile(0.2)).to_numpy() & ~near
        cand = g.index.to_numpy()[ok]
        if len(cand) < 50:
            continue
        for k, i in enumerate(np.sort(rng.choice(cand, per_meter, replace=False))):
            kind = names[k % len(names)]
            picked.append({"meter_id": m, "ts": frame.at[i, "ts"], "kind": kind, "was": float(frame.at[i, "p_kw"])})
            frame.at[i, "p_kw"] = frame.at[i, "p_kw"] * KINDS[kind]
    return frame, pd.DataFrame(picked)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="the real-data folder (default: ../shared/data/real when found)")
    ap.add_argument("--per-meter", type=int, default=8)
    ap.add_argument("--labels", default=str(Path(__file__).resolve().parents[1] / "data/real_labels/labels_expert.json"))
    a = ap.parse_args()
    root = real_data.find_data(a.data)
    if root is None:
        raise SystemExit("no real-data folder found: pass --data DIR")
    labels = [lab for lab in real.load_labels(a.labels) if lab["dataset"] == "bdg2"]
    frame, picked = inject(real_data.load("bdg2", root), labels, a.seed, a.per_meter)
    with tempfile.TemporaryDirectory() as d:
        alerts = real.wattwatch_alerts(frame, Path(d))
    al = pd.DataFrame([{"meter_id": x.meter_id, "start": pd.Timestamp(x.start), "end": pd.Timestamp(x.end)} for x in alerts])
    hit = []
    for r in picked.itertuples():
        on = al[al["meter_id"] == r.meter_id] if len(al) else al
        hit.append(bool(len(on) and ((on["start"] <= r.ts + real.AFTER) & (on["end"] >= r.ts - real.BEFORE)).any()))
    picked["found"] = hit
    print(f"seed {a.seed}: {len(picked)} glitches on {picked['meter_id'].nunique()} buildings, {len(al)} alerts")
    for kind in KINDS:
        s = picked.loc[picked["kind"] == kind, "found"]
        print(f"  {kind:13s} found {int(s.sum())}/{len(s)} ({s.mean():.2f})")
    print("missed:")
    print(picked.loc[~picked["found"], ["meter_id", "ts", "kind", "was"]].to_string(index=False))


if __name__ == "__main__":
    main()
