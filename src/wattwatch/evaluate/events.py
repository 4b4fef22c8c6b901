"""Event-level evaluation of alerts against labelled events (``events.json``).

An event is detected when an alert on the same meter with a code that names that fault overlaps
it (with a tolerance, default 1 h either side, since windowed rules start and end a little off
the truth). An alert is correct when it overlaps a fault event whose code it names, or an outage
it reports as ``INFO_SUPPLY_OUTAGE``; everything else, including alerts during normal events that
must not alert (register resets, motor starts, leakage, jitter), is a false alarm.

Consumption-pattern faults (under-registration theft, level shifts, frozen registers) are named
by ``WARN_CONSUMPTION_ANOMALY`` and also by ``WARN_BASELINE_DEVIATION``: both codes mean "this
meter's consumption is not what it should be".

Visibility. Readings are snapshots taken every ``cadence_s`` seconds, so a fault can be too short
for the readings to show it. Given the cadence (per evaluation, per meter, or per event as
:func:`load_events` finds it next to a simulated fleet's ``events.json``), each fault event is
judged visible or not (:class:`Visibility`), with the reason, and recall is also given over the
visible events (``recall_visible``):

- a fault must cover at least ``min_readings`` readings (2): one anomalous snapshot cannot in
  general be told from a one-reading glitch (a motor start, a bad sample), so most rules do not
  alert on it; an intermittent one-hour neutral bypass seen by one hourly reading is such a case
  (``neutral_tamper`` reports one on a single-phase meter when the reading is far over its limit,
  q63: found, it counts as detected; missed, it is not counted against ``recall_visible``);
- a packet-loss fault must lose at least ``min_lost`` readings (4) and more than ``loss_limit``
  (5 %) of the readings it spans: "more than 5 % missing" of a handful of readings is one or two
  random losses, which a meter has every few days (the packet-loss rule's own terms); unless it lost
  ``gap_lost`` readings (3) in a row lasting ``gap_s`` (2 h) or more from the reading before them to
  the one after (in whole cadences, to within 15 % of one), which the rule finds as a data gap
  whatever the share (q56). The simulator labels a packet-loss fault with its ``loss_rate`` and the
  longest run it lost in a row (``lost_in_a_row``); labels without the run are judged by the share
  alone.

Invisible events still make the alerts that name them correct; they only leave the recall over
visible events. Without a cadence every event is visible.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert
from wattwatch.codes import CONSUMPTION_FAULTS, FAULT_CODES, RULE_FAULTS
from wattwatch.detect.rules.packets import GAP_TOL
from wattwatch.userfile import read_text

__all__ = ["CONSUMPTION_FAULTS", "FAULT_CODES", "RULE_FAULTS", "Visibility", "compatible_codes", "evaluate",
           "load_events", "meter_kinds", "score_auc", "visibility"]


@dataclass(frozen=True)
class Visibility:
    """When a labelled fault can show in readings taken every ``cadence_s`` seconds (see the
    module docstring). ``min_readings``: readings a fault must cover; ``min_lost`` and
    ``loss_limit``: readings a packet-loss fault must lose, and the share of its span (the
    packet-loss rule's ``min_lost`` and ``limit``); ``gap_lost`` and ``gap_s``: a run of readings
    lost in a row that is a data gap whatever the share (the rule's ``gap_lost`` and ``gap_s``; 0:
    none)."""

    min_readings: int = 2
    min_lost: int = 4
    loss_limit: float = 0.05
    gap_lost: int = 3
    gap_s: float = 7200.0

    def __post_init__(self):
        if not (isinstance(self.min_readings, int) and self.min_readings >= 1):
            raise ValueError(f"min_readings must be an integer >= 1, got {self.min_readings!r}")
        if not (isinstance(self.min_lost, int) and self.min_lost >= 0):
            raise ValueError(f"min_lost must be an integer >= 0, got {self.min_lost!r}")
        if not (0 <= self.loss_limit < 1):
            raise ValueError(f"loss_limit must be within [0, 1), got {self.loss_limit!r}")
        if not (isinstance(self.gap_lost, int) and self.gap_lost >= 0):
            raise ValueError(f"gap_lost must be an integer >= 0, got {self.gap_lost!r}")
        if not (isinstance(self.gap_s, (int, float)) and math.isfinite(self.gap_s) and self.gap_s > 0):
            raise ValueError(f"gap_s must be a number > 0, got {self.gap_s!r}")


def visibility(event: dict, cadence_s: float | None, rules: Visibility = Visibility()) -> str | None:
    """Why ``event`` cannot show in readings every ``cadence_s`` seconds, or None when it can
    (or when the cadence is unknown)."""
    why = _invisible(event, cadence_s, rules)
    return None if why is None else why[1]


def _invisible(event: dict, cadence_s: float | None, rules: Visibility) -> tuple[str, str] | None:
    """(short reason, full reason) why ``event`` is invisible at ``cadence_s``, or None."""
    if cadence_s is None or not (isinstance(cadence_s, (int, float)) and math.isfinite(cadence_s) and cadence_s > 0):
        return None
    n = _readings(_utc(event["start"]), _utc(event["end"]), float(cadence_s))
    c = f"{cadence_s:g} s"
    if n < rules.min_readings:
        return (f"under {rules.min_readings} readings",
                f"covers {n} reading{'s' if n != 1 else ''} at {c} cadence; at least {rules.min_readings} are "
                "needed to tell a fault from a one-reading glitch")
    if event.get("type") == "packet_loss":
        detail = event.get("detail") or {}
        rate = detail.get("loss_rate")
        run = detail.get("lost_in_a_row")
        if rules.gap_lost > 0 and isinstance(run, int) and not isinstance(run, bool) and run >= rules.gap_lost \
                and (run + 1 + GAP_TOL) * float(cadence_s) >= rules.gap_s:
            return None   # a data gap (the rule's _long_gaps)
        if isinstance(rate, (int, float)) and not isinstance(rate, bool) and math.isfinite(float(rate)):
            lost = int(round(float(rate) * n))
            if lost < rules.min_lost:
                return (f"under {rules.min_lost} readings lost",
                        f"loses {lost} of {n} readings at {c} cadence; at least {rules.min_lost} must be lost "
                        "to stand out from random single losses")
            if float(rate) <= rules.loss_limit:
                return (f"loss not above {rules.loss_limit:.0%}",
                        f"loses {float(rate):.1%} of its readings, not more than {rules.loss_limit:.0%}")
    return None


def _readings(start: pd.Timestamp, end: pd.Timestamp, cadence_s: float) -> int:
    """Readings every ``cadence_s`` seconds within [start, end]. Labels are normally the first and
    last reading that shows the event (their distance is a whole number of cadences); otherwise
    (a fault that happened between two readings keeps its true span) the readings are taken on
    the grid of multiples of the cadence since the epoch, as the simulator's are."""
    span = (end - start).total_seconds()
    k = span / cadence_s
    if span >= 0 and abs(k - round(k)) < 0.01:
        return int(round(k)) + 1
    a, b = start.timestamp() / cadence_s, end.timestamp() / cadence_s
    return max(0, int(math.floor(b + 1e-9)) - int(math.ceil(a - 1e-9)) + 1)


def compatible_codes(event_type: str) -> set[str]:
    if event_type == "supply_outage":
        return {"INFO_SUPPLY_OUTAGE"}
    codes = {FAULT_CODES[event_type]} if event_type in FAULT_CODES else set()
    if event_type in CONSUMPTION_FAULTS:
        codes.add("WARN_BASELINE_DEVIATION")
    return codes


def load_events(path: str | Path) -> list[dict]:
    """Labelled events from ``events.json``. Next to a simulated fleet's events (its ``meters.json``
    names the cadence it was sampled at), each event also gets ``cadence_s`` unless it has one, so
    that :func:`evaluate` can judge which faults the readings could show.

    Raises ``ValueError`` naming the file, the event's index and the field for anything that is not
    a list of events with a meter, a type and a start no later than its end."""
    path = Path(path)
    text = read_text(path, "events file", ValueError, article="an", expect="expected a JSON list of events")
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                         "expected a list of events") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(doc, dict) and "events" in doc:
        events = doc["events"]
    else:
        events = doc
    if not isinstance(events, list):
        raise ValueError(f"{path}: expected a JSON list of events (or {{\"events\": [...]}}), "
                         f"got {_kind(events)}")
    check_events(events, str(path))
    cadence = _fleet_cadence_s(path.with_name("meters.json"))
    if cadence is not None:
        for e in events:
            e.setdefault("cadence_s", cadence)
    return events


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _kind(x) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(x), type(x).__name__)


def _utc(x) -> pd.Timestamp:
    """A label's or alert's time as a UTC timestamp (a time without an offset is UTC)."""
    t = pd.Timestamp(x)
    if t is pd.NaT:
        raise ValueError("not a time")
    return t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")


def _found(start: pd.Timestamp, a: Alert) -> pd.Timestamp:
    """When ``a`` (starting at ``start``) was first anomalous: its evidence's ``anomalous_from``
    where the alert starts before it (:func:`wattwatch.detect.core._alert`), else its start."""
    v = (a.evidence or {}).get("anomalous_from") if isinstance(a.evidence, dict) else None
    if isinstance(v, str):
        try:
            t = _utc(v)
        except (ValueError, TypeError):
            return start
        return max(start, t)
    return start


def check_events(events: list, where: str = "events") -> None:
    """``ValueError`` naming ``where``, the event's index and the field unless every event is an
    object with string ``meter_id`` and ``type`` and ISO-8601 ``start`` <= ``end``."""
    for n, e in enumerate(events):
        if not isinstance(e, dict):
            raise ValueError(f"{where}: event {n}: expected an object with meter_id, type, start, end; got {_kind(e)}")
        missing = {"meter_id", "type", "start", "end"} - set(e)
        if missing:
            raise ValueError(f"{where}: event {n}: missing {sorted(missing)}")
        for k in ("meter_id", "type"):
            if not isinstance(e[k], str) or not e[k]:
                raise ValueError(f"{where}: event {n}: {k} must be a non-empty string, got {_kind(e[k])} {e[k]!r}")
        times = {}
        for k in ("start", "end"):
            v = e[k]
            if not isinstance(v, str):
                raise ValueError(f"{where}: event {n}: {k} must be an ISO-8601 time string, got {_kind(v)} {v!r}")
            try:
                times[k] = _utc(v)
            except (ValueError, TypeError, OverflowError):
                raise ValueError(f"{where}: event {n}: {k} {v!r} is not a time (ISO-8601, e.g. "
                                 "2025-01-06T00:00:00Z)") from None
        if times["end"] < times["start"]:
            raise ValueError(f"{where}: event {n}: end {e['end']} is before start {e['start']}")
        if "detail" in e and e["detail"] is not None and not isinstance(e["detail"], dict):
            raise ValueError(f"{where}: event {n}: detail must be an object, got {_kind(e['detail'])}")
        if "cadence_s" in e and e["cadence_s"] is not None and (
                isinstance(e["cadence_s"], bool) or not isinstance(e["cadence_s"], (int, float))):
            raise ValueError(f"{where}: event {n}: cadence_s must be a number, got {_kind(e['cadence_s'])}")


def _fleet_cadence_s(path: Path) -> float | None:
    """The cadence (s) a simulated fleet was sampled at, from its ``meters.json`` (None if absent)."""
    try:
        step = json.loads(path.read_text())["config"]["step"]
        c = pd.Timedelta(step).total_seconds()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return c if c > 0 else None


def evaluate(events: list[dict], alerts: list[Alert], tolerance_s: float = 3600.0,
             cadence_s: float | dict | None = None, rules: Visibility | None = None) -> dict:
    """Per fault type: events, detected, recall, median detection delay; overall precision/F1.

    ``cadence_s``: the readings' cadence (seconds), one for all meters or a dict meter -> cadence;
    None: each event's own ``cadence_s`` where it has one (see :func:`load_events`), else every
    event is visible. With a cadence, per type and overall: ``visible`` events,
    ``detected_visible``, ``recall_visible`` (over visible events only) and ``invisible`` (reason
    -> count); ``invisible_events`` lists them with the reason. ``rules``: what visible means
    (:class:`Visibility`)."""
    if not (isinstance(tolerance_s, (int, float)) and math.isfinite(tolerance_s) and 0 <= tolerance_s <= 1e9):
        raise ValueError(f"tolerance_s must be a number of seconds within [0, 1e9], got {tolerance_s!r}")
    check_events(events)
    tol = pd.Timedelta(seconds=tolerance_s)
    rules = rules or Visibility()

    def cadence_of(e: dict):
        if isinstance(cadence_s, dict):
            return cadence_s.get(e["meter_id"], e.get("cadence_s"))
        return cadence_s if cadence_s is not None else e.get("cadence_s")

    by_meter: dict[str, list[tuple[pd.Timestamp, pd.Timestamp, Alert]]] = defaultdict(list)
    for a in alerts:
        by_meter[a.meter_id].append((_utc(a.start), _utc(a.end), a))
    relevant = [e for e in events if e["type"] in FAULT_CODES or e["type"] == "supply_outage"]
    alert_ok = np.zeros(len(alerts), bool)
    index = {id(a): k for k, a in enumerate(alerts)}
    per_type: dict[str, dict] = {}
    invisible: list[dict] = []
    for e in relevant:
        es, ee = _utc(e["start"]), _utc(e["end"])
        codes = compatible_codes(e["type"])
        hits = [(s, a) for s, en, a in by_meter.get(e["meter_id"], [])
                if a.code in codes and s <= ee + tol and en >= es - tol]
        for _, a in hits:
            alert_ok[index[id(a)]] = True
        row = per_type.setdefault(e["type"], {"events": 0, "detected": 0, "delays_min": [], "visible": 0,
                                              "detected_visible": 0, "invisible": defaultdict(int)})
        row["events"] += 1
        why = _invisible(e, cadence_of(e), rules) if e["type"] in FAULT_CODES else None
        if why is None:
            row["visible"] += 1
        else:
            row["invisible"][why[0]] += 1
            invisible.append({"meter_id": e["meter_id"], "type": e["type"], "start": e["start"], "end": e["end"],
                              "detected": bool(hits), "reason": why[1]})
        if hits:
            row["detected"] += 1
            row["detected_visible"] += why is None
            # From the event's start to the first hit's first anomalous reading: an alert that
            # starts where its evidence began, before that reading (a floor drop's earlier day,
            # ``anomalous_from``), was not raised any sooner.
            row["delays_min"].append(max(0.0, (min(_found(s, a) for s, a in hits) - es).total_seconds() / 60))
    table = {}
    for k, r in sorted(per_type.items()):
        table[k] = {"events": r["events"], "detected": r["detected"],
                    "recall": r["detected"] / r["events"] if r["events"] else float("nan"),
                    "visible": r["visible"], "detected_visible": r["detected_visible"],
                    "recall_visible": r["detected_visible"] / r["visible"] if r["visible"] else float("nan"),
                    "invisible": dict(sorted(r["invisible"].items())),
                    "median_delay_min": float(np.median(r["delays_min"])) if r["delays_min"] else None,
                    "expected_code": sorted(compatible_codes(k))}
    faults = [k for k in table if k in FAULT_CODES]
    n_ev = sum(table[k]["events"] for k in faults)
    n_det = sum(table[k]["detected"] for k in faults)
    recall = n_det / n_ev if n_ev else float("nan")
    n_vis = sum(table[k]["visible"] for k in faults)
    n_dvis = sum(table[k]["detected_visible"] for k in faults)
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
        "visible_events": n_vis, "detected_visible": n_dvis,
        "recall_visible": n_dvis / n_vis if n_vis else float("nan"),
        "rule_recall_min": min((table[k]["recall"] for k in rule), default=float("nan")),
        "rule_recall_visible_min": min((table[k]["recall_visible"] for k in rule if table[k]["visible"]),
                                       default=float("nan")),
        "invisible_events": invisible,
        "alerts": len(alerts), "true_alerts": int(alert_ok.sum()), "precision": precision, "f1": f1,
        "false_alerts_by_code": dict(sorted(false_by_code.items())),
    }


# ------------------------------------------------------------------------------ per-reading scores


def score_auc(events: list[dict], scores: pd.DataFrame, kinds: dict[str, str] | None = None,
              columns: list[str] | None = None, codes: dict[str, str] | None = None) -> dict:
    """ROC-AUC and PR-AUC (average precision, ``sklearn.metrics``) of per-reading scores (the
    table of ``detect --scores``, :mod:`wattwatch.detect.scores`) against labelled events.

    A reading is positive when it lies within a fault event on its meter (a type that names a
    fault code; the span padded by half the event's ``cadence_s`` when it has one, since readings
    sit a little off the labelled grid); negative when it lies within no labelled fault and no
    supply outage. Readings inside outages are left out: an outage is a real event (the outage
    detector reports it), neither a fault nor normal. A reading a detector cannot judge (NaN)
    ranks below every judged one (it raised nothing).

    ``columns``: the score columns to rate (default: ``score``, the combined one, then each
    detector column). Returns ``overall`` (per column: ``roc_auc``, ``pr_auc``), ``per_type``
    (combined score, each fault type's readings against all negatives), ``per_kind`` (combined
    score per meter kind, when ``kinds`` maps meter -> kind), ``per_detector`` (when ``codes``
    maps a detector column to its alert code: that column on the readings of the faults its code
    names, against all negatives, since a detector is not meant to see the other faults), and the
    counts. An AUC is None where there are no positives or no negatives."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    check_events(events)
    need = {"meter_id", "ts"}
    if not need <= set(scores.columns):
        raise ValueError(f"scores: missing column(s) {sorted(need - set(scores.columns))}; expected the table "
                         "`wattwatch detect --scores` writes (meter_id, ts, one column per detector, score)")
    if columns is None:
        columns = (["score"] if "score" in scores.columns else []) + [
            c for c in scores.columns if c not in ("meter_id", "ts", "score", "detector")]
    missing = [c for c in columns if c not in scores.columns]
    if missing:
        raise ValueError(f"scores: no column {missing[0]!r}; the columns are {', '.join(map(str, scores.columns))}")
    df = scores.assign(meter_id=scores["meter_id"].astype(str))
    order = np.lexsort((pd.to_datetime(df["ts"], utc=True).to_numpy(), df["meter_id"].to_numpy()))
    df = df.iloc[order].reset_index(drop=True)
    t = pd.to_datetime(df["ts"], utc=True).dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    meters = df["meter_id"].to_numpy()
    uniq, first = np.unique(meters, return_index=True)
    bounds = dict(zip(uniq, zip(first, np.r_[first[1:], len(meters)])))
    n = len(df)
    fault_type = np.full(n, None, dtype=object)
    outage = np.zeros(n, bool)
    for e in events:
        kind = e["type"]
        if kind not in FAULT_CODES and kind != "supply_outage":
            continue
        ab = bounds.get(e["meter_id"])
        if ab is None:
            continue
        a, b = ab
        cad = e.get("cadence_s")
        pad = 0.5 * float(cad) * 1e6 if isinstance(cad, (int, float)) and math.isfinite(cad) and cad > 0 else 0.0
        lo = np.searchsorted(t[a:b], _utc(e["start"]).value // 1000 - pad, side="left") + a
        hi = np.searchsorted(t[a:b], _utc(e["end"]).value // 1000 + pad, side="right") + a
        if kind == "supply_outage":
            outage[lo:hi] = True
        else:
            fault_type[lo:hi] = kind
    positive = fault_type != None  # noqa: E711 (element-wise)
    use = positive | ~outage

    def rate(col: str, mask: np.ndarray) -> dict:
        y = positive[mask]
        s = df[col].to_numpy(dtype=float)[mask]
        judged = np.isfinite(s)
        floor = (np.min(s[judged]) - 1.0) if judged.any() else 0.0
        s = np.where(judged, s, floor)
        pos, neg = int(y.sum()), int((~y).sum())
        both = pos > 0 and neg > 0
        return {"positives": pos, "negatives": neg, "judged_share": float(judged.mean()) if len(s) else float("nan"),
                "roc_auc": float(roc_auc_score(y, s)) if both else None,
                "pr_auc": float(average_precision_score(y, s)) if both else None,
                "base_rate": pos / (pos + neg) if pos + neg else None}

    overall = {c: rate(c, use) for c in columns}
    main = columns[0] if columns else None
    per_type = {}
    for kind in sorted({k for k in fault_type[positive]}):
        per_type[kind] = rate(main, (fault_type == kind) | (use & ~positive))
    per_kind = {}
    if kinds:
        kind_of = np.array([kinds.get(m) for m in meters], dtype=object)
        for k in sorted({x for x in kind_of if x is not None}):
            per_kind[k] = rate(main, use & (kind_of == k))
    per_detector = {}
    for col, code in (codes or {}).items():
        if col not in df.columns:
            continue
        types = sorted({k for k in fault_type[positive] if code in compatible_codes(k)})
        if types:
            per_detector[col] = {**rate(col, np.isin(fault_type, types) | (use & ~positive)), "fault_types": types}
    return {"readings": n, "rated": int(use.sum()), "left_out_in_outages": int((~use).sum()),
            "positives": int(positive.sum()), "column": main, "overall": overall, "per_type": per_type,
            "per_kind": per_kind, "per_detector": per_detector}


def meter_kinds(events_path: str | Path) -> dict[str, str] | None:
    """Meter -> kind (residential, commercial, ...) from the ``meters.json`` next to a simulated
    fleet's ``events.json``; None when there is none."""
    try:
        doc = json.loads(Path(events_path).with_name("meters.json").read_text())
        return {str(m["meter_id"]): str(m["kind"]) for m in doc["meters"] if m.get("kind")}
    except (OSError, ValueError, KeyError, TypeError):
        return None
