"""The loose-CT rule against its look-alikes on simulated fleets: loose clamps, open CTs, real
phase-imbalance steps and erratic loads (welders, arc furnaces, drives) at 1, 5 and 15 minutes,
through the store and the default detector set, as a user runs it.

    PYTHONPATH=src python scripts/loose_ct_fleet.py [OUT_DIR]

Per cadence: loose-CT events found (a SENSOR_FAULT alert with evidence kind=loose_ct overlapping
them, 1 h tolerance), loose-CT alerts that fall on anything else (an open CT, an imbalance step,
an erratic load, a healthy meter), and the imbalance / neutral / consumption alerts that overlap a
loose clamp (they should be kept off it)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd

from wattwatch.detect.engine import detect
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

TOL = pd.Timedelta(hours=1)


def overlap(a, e) -> bool:
    start, end = pd.Timestamp(e["start"]), pd.Timestamp(e["end"])
    return pd.Timestamp(a.start) <= end + TOL and pd.Timestamp(a.end) >= start - TOL


def main(out: Path) -> None:
    print("| cadence | meters × days | loose CT found | loose-CT alerts elsewhere | on open CT / imbalance step / "
          "erratic load meters | other alerts overlapping a loose clamp |")
    print("| --- | --- | --- | --- | --- | --- |")
    for step, meters, days in (("1min", 24, 10), ("5min", 60, 14), ("15min", 60, 14)):
        d = out / step
        cfg = SimConfig(meters=meters, days=days, seed=7, step=step, fault_share=0.75,
                        faults=("loose_ct", "open_ct", "phase_imbalance"), variable_load_share=0.25)
        sim = simulate(cfg, d, formats=("parquet",))
        with Store(d / "s.duckdb") as s:
            ingest_path(s, sim["files"]["parquet"])
            frame = s.query()
        alerts = detect(frame).alerts
        ev = sim["events"]
        loose = [e for e in ev if e["type"] == "loose_ct"]
        lc = [a for a in alerts if a.evidence.get("kind") == "loose_ct"]
        found = sum(any(a.meter_id == e["meter_id"] and overlap(a, e) for a in lc) for e in loose)
        wrong = [a for a in lc if not any(a.meter_id == e["meter_id"] and overlap(a, e) for e in loose)]
        kinds = {m["meter_id"]: (m["faults"] + m["extras"]) for m in sim["meters"]}
        on_lookalike = sum(1 for a in wrong if set(kinds[a.meter_id]) & {"open_ct", "phase_imbalance", "variable_load"})
        others = [a for a in alerts if a.evidence.get("kind") != "loose_ct"
                  and any(a.meter_id == e["meter_id"] and overlap(a, e) for e in loose)]
        n_look = {k: sum(k in v for v in kinds.values()) for k in ("open_ct", "phase_imbalance", "variable_load")}
        print(f"| {step} | {meters} × {days} | {found}/{len(loose)} | {len(wrong)} | {on_lookalike} "
              f"({n_look['open_ct']} / {n_look['phase_imbalance']} / {n_look['variable_load']} meters) | "
              f"{', '.join(sorted(a.code for a in others)) or 'none'} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="loose_ct_fleet_")))
