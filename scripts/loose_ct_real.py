"""The loose-CT rule on real meters: false alerts on the healthy readings, and recall of loose
clamps injected into the same readings, at 1, 5 and 15 minutes.

    PYTHONPATH=src python scripts/loose_ct_real.py [DATA_DIR]

DATA_DIR defaults to ../shared/data/real (UCI household: V, I to 0.2 A, P, Q at 1 min; AMPds2
bedroom circuit: V, I, P, APF at 1 min). Coarser cadences take every 5th / 15th reading. Each
injected spell attenuates the current by up to half, differently each reading, and nearly loses
it in one reading of ten, for 10 h, rounded to the meter's own resolution; one spell per run,
12 start times spread over the judged period (seeded)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.detect.engine import EngineConfig, detect
from wattwatch.detect.registry import build


def load(root: Path) -> dict[str, tuple[pd.DataFrame, float]]:
    u = pd.read_csv(root / "uci_household_1min/household_power_consumption_20061216_20070111.csv.gz")
    p, q = u.Global_active_power, u.Global_reactive_power
    uci = pd.DataFrame({"meter_id": "uci", "ts": pd.to_datetime(u.Date + " " + u.Time, format="%d/%m/%Y %H:%M:%S",
                                                                  utc=True),
                        "v_l1_v": u.Voltage, "i_l1_a": u.Global_intensity, "p_kw": p,
                        "pf": p / np.sqrt(p ** 2 + q ** 2)})
    a = pd.read_csv(root / "ampds2_b1e_1min/Electricity_B1E_20140224_20140331.csv.gz")
    amp = pd.DataFrame({"meter_id": "ampds2", "ts": pd.to_datetime(a.unix_ts, unit="s", utc=True), "v_l1_v": a.V,
                        "i_l1_a": a.I, "p_kw": a.P / 1000, "pf": a.APF})
    return {"uci": (uci, 0.2), "ampds2": (amp, 0.1)}


def main(root: Path) -> None:
    engine = EngineConfig(profile_days=7.0)
    rng = np.random.default_rng(0)
    print("| meter | cadence | readings | judged | loose_ct alerts (healthy) | max score | injected found |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (frame, res) in load(root).items():
        for k, cad in ((1, "1 min"), (5, "5 min"), (15, "15 min")):
            f = frame.iloc[::k].reset_index(drop=True)
            r = detect(f, [build("loose_ct")], engine, keep_scores=True)
            s = r.scores["loose_ct"].to_numpy()
            t0 = f.ts.iloc[0] + pd.Timedelta(days=7)
            starts = t0 + (f.ts.iloc[-1] - pd.Timedelta(hours=10) - t0) * np.linspace(0.02, 0.98, 12)
            found = 0
            for st in starts:
                g = f.copy()
                w = ((g.ts >= st) & (g.ts < st + pd.Timedelta(hours=10))).to_numpy()
                gain = 1 - 0.5 * rng.random(w.sum())
                gain[rng.random(w.sum()) < 0.1] = 0.05
                g.loc[w, "i_l1_a"] = np.round(g.loc[w, "i_l1_a"] * gain / res) * res
                al = detect(g, [build("loose_ct")], engine).alerts
                span = g.ts[w]
                found += any(pd.Timestamp(a.start) <= span.max() and pd.Timestamp(a.end) >= span.min() for a in al)
            print(f"| {name} | {cad} | {len(f):,} | {np.isfinite(s).mean():.0%} | {len(r.alerts)} | "
                  f"{np.nanmax(s) if np.isfinite(s).any() else float('nan'):.2f} | {found}/{len(starts)} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "../shared/data/real")
