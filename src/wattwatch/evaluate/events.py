"""Event-level evaluation of alerts against labelled events (``events.json``).

An event is detected when an alert on the same meter with a code that names that fault overlaps
it (with a tolerance, default 1 h either side, since windowed rules start and end a little off
the truth). An alert is correct when it overlaps a fault event whose code it names, or an outage
it reports as ``INFO_SUPPLY_OUTAGE``; everything else, including alerts during normal events that
must not alert (register resets, motor starts, leakage, jitter), is a false alarm.

Consumption-pattern faults (under-registration theft, level shifts, frozen registers) are named
by ``WARN_CONSUMPTION_ANOMALY`` and also by ``WARN_BASELINE_DEVIATION``: both codes mean "this
meter's consumption is not what it should be".
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert
from wattwatch.codes import CONSUMPTION_FAULTS, FAULT_CODES, RULE_FAULTS

__all__ = ["CONSUMPTION_FAULTS", "FAULT_CODES", "RULE_FAULTS", "compatible_codes", "evaluate", "load_events"]


def compatible_codes(event_type: str) -> set[str]:
    if event_type == "supply_outage":
        return {"INFO_SUPPLY_OUTAGE"}
    codes = {FAULT_CODES[event_type]} if event_type in FAULT_CODES else set()
    if event_type in CONSUMPTION_FAULTS:
        codes.add("WARN_BASELINE_DEVIATION")
    return codes


def load_events(path: str | Path) -> list[dict]:
    doc = json.loads(Path(path).read_text())
    events = doc["events"] if isinstance(doc, dict) else doc
    for n, e in enumerate(events):
        missing = {"meter_id", "type", "start", "end"} - set(e)
        if missing:
            raise ValueError(f"{path}: event {n}: missing {sorted(missing)}")
    return events


def evaluate(events: list[dict], alerts: list[Alert], tolerance_s: float = 3600.0) -> dict:
    """Per fault type: events, detected, recall, median detection delay; overall precision/F1."""
    tol = pd.Timedelta(seconds=tolerance_s)
    by_meter: dict[str, list[tuple[pd.Timestamp, pd.Timestamp, Alert]]] = defaultdict(list)
    for a in alerts:
        by_meter[a.meter_id].append((pd.Timestamp(a.start), pd.Timestamp(a.end), a))
    relevant = [e for e in events if e["type"] in FAULT_CODES or e["type"] == "supply_outage"]
    alert_ok = np.zeros(len(alerts), bool)
    index = {id(a): k for k, a in enumerate(alerts)}
    per_type: dict[str, dict] = {}
    for e in relevant:
        es, ee = pd.Timestamp(e["start"]), pd.Timestamp(e["end"])
        codes = compatible_codes(e["type"])
        hits = [(s, a) for s, en, a in by_meter.get(e["meter_id"], [])
                if a.code in codes and s <= ee + tol and en >= es - tol]
        for _, a in hits:
            alert_ok[index[id(a)]] = True
        row = per_type.setdefault(e["type"], {"events": 0, "detected": 0, "delays_min": []})
        row["events"] += 1
        if hits:
            row["detected"] += 1
            row["delays_min"].append(max(0.0, (min(s for s, _ in hits) - es).total_seconds() / 60))
    table = {}
    for k, r in sorted(per_type.items()):
        table[k] = {"events": r["events"], "detected": r["detected"],
                    "recall": r["detected"] / r["events"] if r["events"] else float("nan"),
                    "median_delay_min": float(np.median(r["delays_min"])) if r["delays_min"] else None,
                    "expected_code": sorted(compatible_codes(k))}
    faults = [k for k in table if k in FAULT_CODES]
    n_ev = sum(table[k]["events"] for k in faults)
    n_det = sum(table[k]["detected"] for k in faults)
    recall = n_det / n_ev if n_ev else float("nan")
    precision = float(alert_ok.mean()) if len(alerts) else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    false_by_code: dict[str, int] = defaultdict(int)
    for a, ok in zip(alerts, alert_ok):
        if not ok:
            false_by_code[a.code] += 1
    rule = [k for k in faults if k in RULE_FAULTS]
    return {
        "per_type": table,
        "events": n_ev, "detected": n_det, "recall": recall,
        "rule_recall_min": min((table[k]["recall"] for k in rule), default=float("nan")),
        "alerts": len(alerts), "true_alerts": int(alert_ok.sum()), "precision": precision, "f1": f1,
        "false_alerts_by_code": dict(sorted(false_by_code.items())),
    }
