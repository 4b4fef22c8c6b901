"""Write a labelled POD fleet behind panel meters (wattwatch.sim.pods) to a folder.

    PYTHONPATH=src python scripts/simulate_pods.py OUT --pods 2000 --panels 50 --months 6 [--json]

OUT gets telemetry.parquet (PODs and panel meters, with panel_id), panels.csv (the panel meters, for
``wattwatch fleet --panels``), pods.csv, labels.json and, with --json, the nested UrbanDataset JSON
under OUT/json/ (one file per panel).
"""

from __future__ import annotations

import argparse

from wattwatch.sim.pods import PodSimConfig, simulate_pods


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--pods", type=int, default=400)
    ap.add_argument("--panels", type=int, default=10)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--fault-months", type=int, default=2)
    ap.add_argument("--step", default="1h")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--theft", type=float, default=0.02)
    ap.add_argument("--shift", type=float, default=0.03)
    ap.add_argument("--vacation", type=float, default=0.02)
    ap.add_argument("--json", action="store_true", help="also write the nested smart-meter JSON")
    a = ap.parse_args()
    try:
        cfg = PodSimConfig(pods=a.pods, panels=a.panels, months=a.months, fault_months=a.fault_months, step=a.step,
                           seed=a.seed, theft_share=a.theft, shift_share=a.shift, vacation_share=a.vacation)
    except ValueError as exc:
        ap.error(str(exc))
    r = simulate_pods(cfg, out=a.out, json_records=a.json)
    kinds = {}
    for lab in r["labels"]:
        kinds[lab["type"]] = kinds.get(lab["type"], 0) + 1
    print(f"{a.pods} PODs on {a.panels} panels, {a.months} months: {len(r['hourly']):,} POD readings; "
          f"faults {kinds}; wrote {', '.join(r['files'].values())}")


if __name__ == "__main__":
    main()
