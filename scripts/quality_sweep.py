"""Robustness sweep of the default detection on the real-shape fleet: the simulated world's
parameters varied one at a time (fault magnitudes and durations at their range ends, the normal
imbalance of commercial meters, measurement noise, jitter, NaN channels, duplicates, outages,
register resets, motor starts, thermal behaviour), each on a few seeds, against the defaults.

What a different simulator's author could plausibly have chosen is the range swept; every
variant is :class:`wattwatch.sim.fleet.SimKnobs` or a ``SimConfig`` field, and the default
variant is the plain ``wattwatch bench quality --shapes real`` fleet (byte for byte).

Per variant and seed: recall, precision, per-fault-type found/events, and false alerts by
detector; the table printed at the end sets each variant against the default on the same seeds.
One fleet at a time (each 60-120 s on 2 cores); results are kept in OUT (one JSON per run) and a
rerun skips the runs already there.

    env PYTHONPATH=src python scripts/quality_sweep.py OUT [--seeds 7,41] [--variants a,b] [--step 5min]
        [--data ../shared/data/real] [--keep]   # --keep: keep each run's fleet, store and alerts
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from wattwatch.evaluate.events import FAULT_CODES, compatible_codes
from wattwatch.evaluate.fleet import quality
from wattwatch.sim.fleet import FAULT_HOURS, SimKnobs

# name -> (SimKnobs fields, other SimConfig fields, what it stands for)
VARIANTS: dict[str, tuple[dict, dict, str]] = {
    "default": ({}, {}, "the simulator's defaults"),
    "fault_weak": (dict(theft_keep=(0.55, 0.6), level_shift_add=(0.6, 0.7), imbalance_boost=(0.22, 0.26),
                        earth_fraction=(0.25, 0.3), firmware_gain=(0.85, 0.9), thermal_extra_c=(8.0, 10.0),
                        thermal_ramp_h=(5.0, 6.0), harmonic_thd=(35.0, 40.0), packet_loss_rate=(0.12, 0.16),
                        loose_depth=(0.3, 0.35), loose_drop_rate=(0.03, 0.05)), {},
                   "every fault's magnitude at the weak end of its range"),
    "fault_short": (dict(fault_hours=tuple((k, lo, lo) for k, (lo, hi) in FAULT_HOURS.items())), {},
                    "every fault at the shortest duration of its range"),
    "issue_ranges": (dict(level_shift_add=(0.6, 1.0),
                          fault_hours=(("level_shift", 24, 72), ("phase_imbalance", 3, 12))), {},
                     "issue 14's fleet: level shift +60-100 % for 1-3 days, imbalance for hours (3-12 h)"),
    "level_shift_issue": (dict(level_shift_add=(0.6, 1.0), fault_hours=(("level_shift", 24, 72),)), {},
                          "level shift +60-100 % of the profiled mean for 1-3 days (issue 14's fleet)"),
    "fault_strong": (dict(theft_keep=(0.3, 0.35), level_shift_add=(1.4, 1.5), imbalance_boost=(0.45, 0.5),
                          earth_fraction=(0.55, 0.6), firmware_gain=(0.6, 0.65), thermal_extra_c=(18.0, 20.0),
                          thermal_ramp_h=(2.0, 2.5), harmonic_thd=(65.0, 70.0), packet_loss_rate=(0.35, 0.4),
                          loose_depth=(0.65, 0.7), loose_drop_rate=(0.13, 0.15)), {},
                     "every fault's magnitude at the strong end of its range"),
    "fault_long": (dict(fault_hours=tuple((k, hi, hi) for k, (lo, hi) in FAULT_HOURS.items())), {},
                   "every fault at the longest duration of its range"),
    "imbalance_wide": (dict(normal_imbalance_max=0.15, low_imbalance_max=0.06), {},
                       "commercial meters' steady imbalance up to 15 % (half), 6 % (others)"),
    "phase_wander": (dict(phase_wander=0.05), {}, "the phases' shares wander 5 % (default 2.5 %)"),
    "noise_x3": (dict(ct_error=0.006, v_noise=0.006, pf_noise=0.03, temp_noise_c=0.45, commercial_wander=0.06), {},
                 "measurement noise x3 (CT, voltage, pf, temperature), commercial minute wander x2"),
    "noise_ct": (dict(ct_error=0.006), {}, "current (and neutral) CT error 0.6 % reading by reading (default 0.2 %)"),
    "noise_pf": (dict(pf_noise=0.03), {}, "each phase's power factor wanders 0.03 reading by reading (default 0.01)"),
    "noise_v": (dict(v_noise=0.006), {}, "voltage noise 0.6 % (default 0.2 %)"),
    "noise_temp": (dict(temp_noise_c=0.45), {}, "temperature sensor noise 0.45 C (default 0.15 C)"),
    "commercial_wander": (dict(commercial_wander=0.06), {}, "commercial load's minute wander 6 % (default 3 %)"),
    "jitter_30s": ({}, dict(jitter_s=30.0), "timestamp jitter +-30 s (default 2 s)"),
    "nan_x10": ({}, dict(nan_rate=0.005), "NaN channel share 0.5 % (default 0.05 %)"),
    "dup_x10": ({}, dict(duplicate_rate=0.02), "duplicate rows 2 % (default 0.2 %)"),
    "outages": (dict(outage_max_h=8.0), dict(outage_share=0.5),
                "half the meters with outages (default 15 %), up to 8 h (default 4 h)"),
    "resets": ({}, dict(reset_share=0.5), "register resets on half the meters (default 10 %)"),
    "motors_x5": ({}, dict(motor_starts_per_day=10.0), "10 motor starts a day (default 2)"),
    "motors_x10": ({}, dict(motor_starts_per_day=20.0), "20 motor starts a day (default 2)"),
    "thermal_slow": (dict(tau_scale=3.0), {}, "enclosure thermal time constant x3 (homes 60-180 min, "
                                              "commercial 120-270 min)"),
    "thermal_fast": (dict(tau_scale=0.25), {}, "enclosure thermal time constant x0.25 (5-22 min)"),
    "thermal_hot": (dict(rise_scale=2.0), {}, "temperature rise at rated current x2 (homes 16-36 C, "
                                             "commercial 24-50 C)"),
    "ambient_swing": (dict(ambient_swing_c=8.0, ambient_wander_c=1.5), {},
                      "ambient daily swing +-8 C (default 3), wander 1.5 C (default 0.5)"),
}


def alert_flags(events: list[dict], alerts: list[dict], tol_s: float = 3600.0) -> list[bool]:
    """Per alert: does it overlap (within ``tol_s``) an event on its meter whose code it names?
    The evaluator's rule (:func:`wattwatch.evaluate.events.evaluate`), kept per alert."""
    tol = pd.Timedelta(seconds=tol_s)
    by_meter = defaultdict(list)
    for e in events:
        if e["type"] in FAULT_CODES or e["type"] == "supply_outage":
            by_meter[e["meter_id"]].append((pd.Timestamp(e["start"]), pd.Timestamp(e["end"]),
                                            compatible_codes(e["type"])))
    out = []
    for a in alerts:
        s, en = pd.Timestamp(a["start"]), pd.Timestamp(a["end"])
        out.append(any(a["code"] in codes and s <= ee + tol and en >= es - tol
                       for es, ee, codes in by_meter.get(a["meter_id"], [])))
    return out


def _found(event: dict, alerts: list[dict], tol_s: float = 3600.0) -> bool:
    """Is ``event`` found: an alert on its meter naming a compatible code overlaps it (within ``tol_s``)?"""
    codes = compatible_codes(event["type"])
    tol = pd.Timedelta(seconds=tol_s)
    es, ee = pd.Timestamp(event["start"]), pd.Timestamp(event["end"])
    return any(a["meter_id"] == event["meter_id"] and a["code"] in codes
               and pd.Timestamp(a["start"]) <= ee + tol and pd.Timestamp(a["end"]) >= es - tol for a in alerts)


def run_one(out: Path, variant: str, seed: int, step: str, data: str | None, keep: bool) -> dict:
    path = out / f"{variant}-{step}-{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    knobs, over, _ = VARIANTS[variant]
    work = out / "work" / f"{variant}-{step}-{seed}"
    t0 = time.perf_counter()
    res = quality(step=step, meters=120, days=28, seed=seed, fault_share=0.8, workdir=work, shapes="real", data=data,
                  knobs=SimKnobs(**knobs) if knobs else None, sim_overrides=over or None)
    row = {"variant": variant, "seed": seed, "step": step, "seconds": round(time.perf_counter() - t0, 1)}
    if "error" in res:
        row["error"] = res["error"]
    else:
        ev = res["evaluation"]
        events = json.loads((work / "fleet" / "events.json").read_text())
        alerts = json.loads((work / "alerts.json").read_text())
        ok = alert_flags(events, alerts)
        assert sum(ok) == ev["true_alerts"], (sum(ok), ev["true_alerts"])
        row.update(recall=ev["recall"], precision=ev["precision"], f1=ev["f1"], alerts=ev["alerts"],
                   false=ev["alerts"] - ev["true_alerts"],
                   per_type={k: [r["detected"], r["events"]] for k, r in ev["per_type"].items() if k in FAULT_CODES},
                   false_by_detector=dict(Counter(a["detector"] for a, g in zip(alerts, ok) if not g)),
                   false_alerts=[{k: a[k] for k in ("meter_id", "start", "end", "code", "detector", "message")}
                                 for a, g in zip(alerts, ok) if not g],
                   missed=[{k: e[k] for k in ("meter_id", "type", "start", "end", "detail")} for e in events
                           if e["type"] in FAULT_CODES and not _found(e, alerts)])
    path.write_text(json.dumps(row, indent=1))
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return row


def table(rows: list[dict]) -> str:
    """Markdown: per variant, summed over its seeds, against the default on the same seeds."""
    by = defaultdict(dict)
    for r in rows:
        by[r["variant"]][r["seed"]] = r
    base = by.get("default", {})
    types = sorted({t for r in rows for t in r.get("per_type", {})})
    short = {t: "".join(w[0] for w in t.split("_")) for t in types}
    lines = ["| variant | seeds | recall | precision | alerts (false) | missed by type | false by detector (default) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in VARIANTS:
        if v not in by:
            continue
        rs = [by[v][s] for s in sorted(by[v])]
        if any("error" in r for r in rs):
            lines.append(f"| {v} | {','.join(str(r['seed']) for r in rs)} | crash: "
                         f"{next(r['error'] for r in rs if 'error' in r)} | | | | |")
            continue
        det = sum(sum(r["per_type"][t][0] for t in r["per_type"]) for r in rs)
        evs = sum(sum(r["per_type"][t][1] for t in r["per_type"]) for r in rs)
        al = sum(r["alerts"] for r in rs)
        fa = sum(r["false"] for r in rs)
        missed = Counter()
        for r in rs:
            for t, (d, n) in r["per_type"].items():
                if n > d:
                    missed[short[t]] += n - d
        fb, fb0 = Counter(), Counter()
        for r in rs:
            fb.update(r["false_by_detector"])
            if r["seed"] in base and "false_by_detector" in base[r["seed"]]:
                fb0.update(base[r["seed"]]["false_by_detector"])
        fdet = ", ".join(f"{d} {fb[d]}" + (f" ({fb0[d]})" if v != "default" else "")
                         for d in sorted(set(fb) | (set(fb0) if v != "default" else set()))
                         if fb[d] or fb0[d])
        lines.append(f"| {v} | {','.join(str(r['seed']) for r in rs)} | "
                     + " / ".join(f"{r['recall']:.3f}" for r in rs) + " | "
                     + " / ".join(f"{r['precision']:.3f}" for r in rs) + f" | {al} ({fa}) | "
                     + (", ".join(f"{k} {n}" for k, n in sorted(missed.items())) or "-")
                     + f" ({det}/{evs} found) | {fdet or '-'} |")
    legend = ", ".join(f"{short[t]} = {t}" for t in types)
    return "\n".join(lines) + "\n\n" + legend + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", default="7,41")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--step", default="5min")
    ap.add_argument("--data", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variant(s) {sorted(unknown)}; known: {list(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for v in variants:
        for s in seeds:
            r = run_one(args.out, v, s, args.step, args.data, args.keep)
            print(f"{v} seed {s}: " + (r["error"] if "error" in r else
                  f"recall {r['recall']:.3f} precision {r['precision']:.3f} alerts {r['alerts']} false {r['false']} "
                  f"({r['seconds']:.0f} s)"), flush=True)
            rows.append(r)
    if "default" not in variants:
        rows += [json.loads(p.read_text()) for p in sorted(args.out.glob(f"default-{args.step}-*.json"))
                 if json.loads(p.read_text())["seed"] in seeds]
    print(table(rows))
    for v in VARIANTS:
        if v in variants:
            print(f"- {v}: {VARIANTS[v][2]}")


if __name__ == "__main__":
    main()
