"""wattwatch against the plain faults labelled in real data, with one library peer side by side.

Labels: ``data/real_labels/labels.json`` (made by ``scripts/label_real.py``: explicit criteria, then
each candidate kept or rejected by hand with a reason; never by running wattwatch's detectors).
Each label: ``dataset, meter_id, channel, kind, start, end`` (UTC, ISO-8601) and ``reason``.

Protocol (issue 14's, for hourly buildings, applied to every dataset):

- each meter's normal is learned on its first 8 weeks, or its first quarter when that is shorter
  (a meter shorter than 32 weeks), with the anomalies inside left in (``fit`` with ``days=56`` and
  ``[engine] profile_max_share = 0.25``); the rest of the meter's data is judged with the default
  configuration;
- an alert counts when it overlaps a labelled run on the same meter widened by ``before`` (1 h)
  and ``after`` (6 h); labels wholly inside the learning period are not judged, labels that start
  in it are judged from its end;
- event recall = judged labels with at least one alert / judged labels (overall and per kind);
  alert precision = alerts that overlap a label / alerts in the judged period (any code: a label
  says "something is wrong here", not which code); event F1 from the two;
- false-alarm pressure: alerts that overlap no label, per 1,000 meter-days of judged time outside
  the (widened) labels;
- ranking: per-reading PR-AUC (average precision) of each detector's per-reading score (wattwatch:
  the combined ``score`` of ``detect --scores``; the peer: its IsolationForest decision function)
  against the labelled readings (a reading inside a labelled run of its meter), judged readings
  only, per meter with a labelled reading, and their mean ("mean PR-AUC"; threshold-free: it says
  how well the scores rank, whatever the alerting does with them).

The peer: PyOD ``IForest`` per meter on simple per-reading features of active power (value, hour,
weekday, difference to the previous reading, difference to the same time a day earlier), fitted on
the same learning period, threshold at the 99.5th percentile of its training scores; consecutive
flagged readings form one alert.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.evaluate.real_data import DATASETS, load, zones as data_zones
from wattwatch.userfile import read_text

__all__ = ["KINDS", "LABEL_FIELDS", "check_labels", "default_labels", "load_labels", "pr_auc", "score", "run",
           "train_ends"]

KINDS = ("zero_run", "flat_line", "ceiling", "dead_channel", "gap", "register_reset", "register_jump", "spike", "drop",
         "unusual_day")
LABEL_FIELDS = ("dataset", "meter_id", "channel", "kind", "start", "end", "reason")
TRAIN_DAYS = 56.0
TRAIN_SHARE = 0.25
BEFORE = pd.Timedelta(hours=1)
AFTER = pd.Timedelta(hours=6)


def default_labels() -> Path:
    """``data/real_labels/labels.json`` of the wattwatch checkout."""
    return Path(__file__).resolve().parents[3] / "data" / "real_labels" / "labels.json"


def _utc(x) -> pd.Timestamp:
    t = pd.Timestamp(x)
    return t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")


def check_labels(labels: list, where: str = "labels") -> None:
    """``ValueError`` naming ``where``, the label's index and the field unless every label has the
    fields of :data:`LABEL_FIELDS`, a known dataset and kind, and ISO-8601 ``start`` <= ``end``."""
    if not isinstance(labels, list):
        raise ValueError(f"{where}: expected a list of labels")
    for n, lab in enumerate(labels):
        if not isinstance(lab, dict):
            raise ValueError(f"{where}: label {n}: expected an object")
        missing = [k for k in LABEL_FIELDS if k not in lab]
        if missing:
            raise ValueError(f"{where}: label {n}: missing {missing}")
        for k in LABEL_FIELDS:
            if not isinstance(lab[k], str) or not lab[k]:
                raise ValueError(f"{where}: label {n}: {k} must be a non-empty string, got {lab[k]!r}")
        if lab["dataset"] not in DATASETS:
            raise ValueError(f"{where}: label {n}: dataset {lab['dataset']!r} is not one of {', '.join(DATASETS)}")
        if lab["kind"] not in KINDS:
            raise ValueError(f"{where}: label {n}: kind {lab['kind']!r} is not one of {', '.join(KINDS)}")
        try:
            s, e = _utc(lab["start"]), _utc(lab["end"])
        except (ValueError, TypeError):
            raise ValueError(f"{where}: label {n}: start/end must be ISO-8601 times, got {lab['start']!r}, "
                             f"{lab['end']!r}") from None
        if e < s:
            raise ValueError(f"{where}: label {n}: end {lab['end']} is before start {lab['start']}")


def load_labels(path: str | Path | None = None) -> list[dict]:
    """The kept labels of a labels file (default :func:`default_labels`), checked."""
    path = Path(path) if path else default_labels()
    text = read_text(path, "labels file", ValueError, expect="a labels file is UTF-8 JSON")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    labels = doc["labels"] if isinstance(doc, dict) and "labels" in doc else doc
    check_labels(labels, str(path))
    return labels


def train_ends(frame: pd.DataFrame) -> pd.Series:
    """Per meter: the end of its learning period (first 8 weeks, at most a quarter of its span)."""
    g = frame.groupby("meter_id")["ts"]
    first, last = g.min(), g.max()
    length = np.minimum(TRAIN_DAYS * 86400.0, (last - first).dt.total_seconds() * TRAIN_SHARE)
    return first + pd.to_timedelta(length, unit="s")


def _field(a, k: str):
    """``a[k]`` of a dict alert, ``a.k`` of an object; None where it has none."""
    return a.get(k) if isinstance(a, dict) else getattr(a, k, None)


def score(labels: list[dict], alerts: list[dict], judged: dict[str, tuple], before=BEFORE, after=AFTER,
          list_false: bool = False) -> dict:
    """Match ``alerts`` (dicts or objects with ``meter_id, start, end``, optionally ``code``) to ``labels`` over the judged
    period of each meter (``judged``: meter -> (start, end), UTC). See the module docstring. ``list_false``: the
    result also lists each alert that overlaps no label (``false_alert_list``: meter, start, end, code and, where
    the alert has them, detector, evidence kind and message), so that every false alert can be read on the data."""
    labs, ids = [], []
    for lab in labels:
        m = lab["meter_id"]
        if m not in judged:
            continue
        js, je = (_utc(t) for t in judged[m])
        s, e = _utc(lab["start"]), _utc(lab["end"])
        if e < js or s > je:
            continue
        labs.append((m, max(s, js), min(e, je), lab["kind"]))
        ids.append(lab.get("id", ""))
    al, kept = [], []
    for a in alerts:
        get = a.get if isinstance(a, dict) else (lambda k, a=a: getattr(a, k))
        m = str(get("meter_id"))
        if m not in judged:
            continue
        s, e = _utc(get("start")), _utc(get("end"))
        js, je = (_utc(t) for t in judged[m])
        if e < js or s > je:
            continue
        al.append((m, s, e, str(get("code") or "")))
        kept.append(a)
    hit = np.zeros(len(labs), bool)
    ok = np.zeros(len(al), bool)
    for i, (m, ls, le, _) in enumerate(labs):
        for j, (am, s, e, _) in enumerate(al):
            if am == m and s <= le + after and e >= ls - before:
                hit[i] = ok[j] = True
    per_kind: dict[str, dict] = {}
    for (m, ls, le, kind), h in zip(labs, hit):
        r = per_kind.setdefault(kind, {"labels": 0, "detected": 0})
        r["labels"] += 1
        r["detected"] += int(h)
    for r in per_kind.values():
        r["recall"] = r["detected"] / r["labels"]
    recall = float(hit.mean()) if len(labs) else float("nan")
    precision = float(ok.mean()) if len(al) else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if (precision + recall) > 0 else 0.0
    # judged meter-days outside the widened labels
    days = 0.0
    for m, (js, je) in judged.items():
        js, je = _utc(js), _utc(je)
        spans = sorted((max(ls - before, js), min(le + after, je)) for lm, ls, le, _ in labs if lm == m)
        covered, cur_s, cur_e = pd.Timedelta(0), None, None
        for s, e in spans:
            if cur_e is None or s > cur_e:
                if cur_e is not None:
                    covered += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        if cur_e is not None:
            covered += cur_e - cur_s
        days += max(0.0, ((je - js) - covered).total_seconds() / 86400)
    false = int((~ok).sum())
    codes: dict[str, list[int]] = {}
    for (_, _, _, code), good in zip(al, ok):
        c = codes.setdefault(code, [0, 0])
        c[0] += 1
        c[1] += int(not good)
    out = {"labels": len(labs), "detected": int(hit.sum()), "recall": recall, "alerts": len(al),
           "true_alerts": int(ok.sum()), "precision": precision, "f1": f1 if not math.isnan(f1) else 0.0,
           "false_alerts": false, "unlabelled_meter_days": days,
           "false_per_1000_meter_days": 1000 * false / days if days > 0 else float("nan"),
           "per_kind": dict(sorted(per_kind.items())),
           "judged_labels": [{"id": i, "meter_id": m, "kind": k, "start": ls.isoformat(), "end": le.isoformat(),
                              "found": bool(h)} for i, (m, ls, le, k), h in zip(ids, labs, hit)],
           "alerts_by_code": {k: {"alerts": v[0], "false": v[1]} for k, v in sorted(codes.items())}}
    if list_false:
        out["false_alert_list"] = [
            {"meter_id": m, "start": s.isoformat(), "end": e.isoformat(), "code": code,
             "detector": str(_field(a, "detector") or ""), "kind": str((_field(a, "evidence") or {}).get("kind") or ""),
             "message": str(_field(a, "message") or "")}
            for (m, s, e, code), a, good in zip(al, kept, ok) if not good]
    return out


def pr_auc(labels: list[dict], scores: pd.DataFrame, judged: dict[str, tuple]) -> dict:
    """Per-reading PR-AUC (scikit-learn's average precision) of ``scores`` (``meter_id``, ``ts``,
    ``score``: higher is more anomalous, NaN a reading not judged, ranked with the meter's least
    anomalous reading) against ``labels``
    over each meter's judged period (``judged``: meter -> (start, end), UTC): a reading is positive
    when it lies within a labelled run of its meter (``start`` .. ``end``, no tolerance). Per meter
    with at least one positive and one negative reading (``per_meter``), their mean (``mean``,
    None without any) and the base rate of positives over those meters' readings."""
    from sklearn.metrics import average_precision_score

    by_meter: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for lab in labels:
        by_meter.setdefault(str(lab["meter_id"]), []).append((_utc(lab["start"]), _utc(lab["end"])))
    per: dict[str, float] = {}
    pos = tot = 0
    if len(scores):
        ts_all = pd.to_datetime(scores["ts"], utc=True)
        for m, idx in scores.groupby(scores["meter_id"].astype(str), sort=True).indices.items():
            if m not in judged or m not in by_meter:
                continue
            js, je = (_utc(t) for t in judged[m])
            ts = ts_all.iloc[idx]
            keep = ((ts > js) & (ts <= je)).to_numpy()
            if not keep.any():
                continue
            t = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").astype(np.int64)[keep]
            y = np.zeros(len(t), bool)
            for s, e in by_meter[m]:
                y |= (t >= s.value) & (t <= e.value)
            if not y.any() or y.all():
                continue
            # Not judged: with the least anomalous reading (a 0 would outrank every judged reading
            # of a score that is negative on ordinary ones, as the peer's decision function).
            v = scores["score"].to_numpy(float)[idx][keep]
            nan = np.isnan(v)
            v = np.where(nan, v[~nan].min() if (~nan).any() else 0.0, v)
            per[m] = float(average_precision_score(y, v))
            pos, tot = pos + int(y.sum()), tot + len(y)
    return {"mean": float(np.mean(list(per.values()))) if per else None, "meters": len(per),
            "base_rate": pos / tot if tot else None, "per_meter": per}


# ------------------------------------------------------------------------------------ detectors


def _features(g: pd.DataFrame, cadence_s: float) -> np.ndarray:
    x = g["p_kw"].to_numpy(float)
    ts = pd.DatetimeIndex(g["ts"])
    s = pd.Series(x, index=ts)
    prev = s.shift(1, freq=pd.Timedelta(seconds=cadence_s)).reindex(ts).to_numpy()
    day = s.shift(1, freq=pd.Timedelta(days=1)).reindex(ts).to_numpy()
    return np.column_stack([x, ts.hour + ts.minute / 60, ts.dayofweek, np.nan_to_num(x - prev),
                            np.nan_to_num(x - day)])


def peer_alerts(frame: pd.DataFrame, ends: pd.Series, cadence_s: float, seed: int = 0,
                scores_out: list | None = None) -> list[dict]:
    """PyOD IsolationForest per meter (see the module docstring). ``scores_out``: receives a
    frame of every judged reading's decision function (``meter_id``, ``ts``, ``score``; NaN where
    it has none: no active power, or a meter too short to fit), as wattwatch's scores table has
    every judged reading."""
    from pyod.models.iforest import IForest

    out = []
    parts = []
    for m, g in frame[frame["p_kw"].notna()].groupby("meter_id", sort=True):
        g = g.sort_values("ts")
        X = _features(g, cadence_s)
        train = (g["ts"] <= ends[m]).to_numpy()
        if train.sum() < 20 or (~train).sum() == 0:
            continue
        det = IForest(n_estimators=100, random_state=seed).fit(X[train])
        thr = np.quantile(det.decision_function(X[train]), 0.995)
        dec = det.decision_function(X)
        flag = (dec > thr) & ~train
        ts = g["ts"].to_numpy()
        parts.append(pd.DataFrame({"meter_id": m, "ts": ts[~train], "score": dec[~train]}))
        idx = np.flatnonzero(flag)
        if not len(idx):
            continue
        brk = np.flatnonzero(np.diff(idx) > 1) + 1
        for run in np.split(idx, brk):
            out.append({"meter_id": m, "start": pd.Timestamp(ts[run[0]]).isoformat(),
                        "end": pd.Timestamp(ts[run[-1]]).isoformat(), "code": "PEER_IFOREST"})
    if scores_out is not None:
        every = frame.loc[(frame["ts"] > frame["meter_id"].map(ends)).to_numpy(), ["meter_id", "ts"]]
        every = every.assign(ts=pd.to_datetime(every["ts"], utc=True)).drop_duplicates(["meter_id", "ts"])
        have = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["meter_id", "ts", "score"])
        have = have.assign(ts=pd.to_datetime(have["ts"], utc=True), score=have["score"].astype(float)) \
            .drop_duplicates(["meter_id", "ts"])
        scores_out.append(every.merge(have, on=["meter_id", "ts"], how="left").reset_index(drop=True))
    return out


def wattwatch_alerts(frame: pd.DataFrame, workdir: Path, zones: dict[str, str] | None = None,
                     scores_out: list | None = None) -> list:
    """Ingest into a fresh store, fit every meter on its learning period, detect with defaults.
    ``zones``: per meter, the time zone of its wall clock (``seasonal_profile``'s ``timezone``,
    the one setting a user gives per site); meters of one zone are fitted together.
    ``scores_out``: receives the per-reading scores table (``detect --scores``)."""
    from wattwatch import api

    db = Path(workdir) / "real.duckdb"
    api.ingest(frame, db)
    engine = {"engine": {"profile_max_share": TRAIN_SHARE}}
    meters = sorted(frame["meter_id"].astype(str).unique())
    zones = {m: z for m, z in (zones or {}).items() if m in set(meters) and z}
    if not zones:
        api.fit(db, days=TRAIN_DAYS, config=engine)
    else:
        for z in sorted(set(zones.values())) + [""]:
            group = [m for m in meters if zones.get(m, "") == z]
            if group:
                api.fit(db, days=TRAIN_DAYS, meters=group,
                        config={**engine, **({"seasonal_profile": {"timezone": z}} if z else {})})
    if scores_out is None:
        return list(api.detect(db).alerts)
    det = api.detect(db, scores=True)
    scores_out.append(det.scores[["meter_id", "ts", "score"]])
    return list(det.alerts)


def to_wall_clock(frame: pd.DataFrame, zones: dict[str, str]) -> pd.DataFrame:
    """Each meter's times as its site's wall clock read as UTC (the naive local stamps a building
    export carries, given to a tool that assumes UTC); meters without a zone unchanged."""
    out = frame.copy()
    ts = pd.to_datetime(out["ts"], utc=True)
    for z in sorted(set(zones.values())):
        rows = out["meter_id"].astype(str).isin([m for m, mz in zones.items() if mz == z]).to_numpy()
        if rows.any():
            out.loc[rows, "ts"] = ts[rows].dt.tz_convert(z).dt.tz_localize(None).dt.tz_localize("UTC")
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out


def from_wall_clock(alerts: list, zones: dict[str, str]) -> list[dict]:
    """Alerts judged on :func:`to_wall_clock` times back on true UTC (a repeated autumn hour read
    as the daylight-saving one, a skipped spring hour moved forward), as dicts for :func:`score`."""
    out = []
    for a in alerts:
        get = a.get if isinstance(a, dict) else (lambda k, a=a: getattr(a, k, None))
        m, z = str(get("meter_id")), zones.get(str(get("meter_id")))
        ends = []
        for k in ("start", "end"):
            t = _utc(get(k))
            if z:
                t = t.tz_localize(None).tz_localize(z, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
            ends.append(t.isoformat())
        out.append({"meter_id": m, "start": ends[0], "end": ends[1], "code": get("code"),
                    "detector": get("detector"), "message": get("message"), "evidence": get("evidence")})
    return out


def scores_from_wall_clock(scores: pd.DataFrame, zones: dict[str, str]) -> pd.DataFrame:
    """Per-reading scores judged on :func:`to_wall_clock` times back on true UTC (as
    :func:`from_wall_clock` puts alerts back)."""
    out = scores.copy()
    ts = pd.to_datetime(out["ts"], utc=True)
    mid = out["meter_id"].astype(str)
    for z in sorted(set(zones.values())):
        rows = mid.isin([m for m, mz in zones.items() if mz == z]).to_numpy()
        if rows.any():
            naive = ts[rows].dt.tz_localize(None)
            out.loc[rows, "ts"] = naive.dt.tz_localize(z, ambiguous=np.ones(int(rows.sum()), bool),
                                                       nonexistent="shift_forward").dt.tz_convert("UTC")
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out


def _ranked(row: dict, who: str, labs: list[dict], parts: list, judged: dict) -> None:
    """``row[who]`` gains the mean per-reading PR-AUC of the score frames ``parts`` (see :func:`pr_auc`)."""
    if who not in row or "error" in row[who]:
        return
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["meter_id", "ts", "score"])
    auc = pr_auc(labs, frame, judged)
    row[who].update(pr_auc_mean=auc["mean"], pr_auc_meters=auc["meters"], pr_auc_base_rate=auc["base_rate"],
                    pr_auc_per_meter=auc["per_meter"])


def run(data: str | Path, datasets=None, labels: str | Path | None = None, peer: bool = True, log=print,
        local_time: bool = True, wall_clock: bool = False) -> dict:
    """Both detectors on each dataset; per dataset and overall results (see :func:`score`).
    ``local_time``: give ``seasonal_profile`` each meter's wall-clock zone (:func:`real_data.zones`);
    False: none (UTC slots, as a user who gives no zone gets). ``wall_clock``: both detectors get
    each meter's naive wall-clock stamps read as UTC and no zone (what a user whose export is in
    local time gets with the defaults); their alerts are put back on true UTC to be scored."""
    labs = load_labels(labels)
    names = list(datasets) if datasets else list(DATASETS)
    result = {"protocol": {"train": f"first {TRAIN_DAYS:g} days, at most {TRAIN_SHARE:.0%} of the meter's span",
                           "tolerance": f"-{BEFORE}, +{AFTER}"}, "datasets": {}}
    pooled: dict[str, list] = {"wattwatch": [], "peer": []}
    ranked: dict[str, list] = {"wattwatch": [], "peer": []}
    for name in names:
        if name not in DATASETS:
            raise ValueError(f"unknown real dataset {name!r}; known: {', '.join(DATASETS)}")
        t0 = time.perf_counter()
        frame = load(name, data)
        ends = train_ends(frame)
        last = frame.groupby("meter_id")["ts"].max()
        judged = {m: (ends[m], last[m]) for m in ends.index}
        mine = [lab for lab in labs if lab["dataset"] == name]
        row = {"meters": len(judged), "readings": len(frame), "labels_total": len(mine),
               "load_s": time.perf_counter() - t0}
        t0 = time.perf_counter()
        wall = data_zones(name, data) if wall_clock else {}
        seen = to_wall_clock(frame, wall) if wall else frame
        try:
            scored: list = []
            with tempfile.TemporaryDirectory(prefix="ww-real-") as tmp:
                alerts = wattwatch_alerts(seen, Path(tmp), data_zones(name, data) if local_time and not wall_clock
                                          else None, scores_out=scored)
            if wall:
                alerts = from_wall_clock(alerts, wall)
                scored = [scores_from_wall_clock(f, wall) for f in scored]
            row["wattwatch"] = score(mine, alerts, judged, list_false=True)
            pooled["wattwatch"].append((mine, alerts, judged))
            _ranked(row, "wattwatch", mine, scored, judged)
            ranked["wattwatch"].extend(scored)
        except Exception as exc:  # noqa: BLE001 - a crash is a result to report, with its traceback
            row["wattwatch"] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        row["wattwatch_s"] = time.perf_counter() - t0
        if peer:
            t0 = time.perf_counter()
            scored = []
            alerts = peer_alerts(seen, train_ends(seen), DATASETS[name]["cadence_s"], scores_out=scored)
            if wall:
                alerts = from_wall_clock(alerts, wall)
                scored = [scores_from_wall_clock(f, wall) for f in scored]
            row["peer"] = score(mine, alerts, judged)
            pooled["peer"].append((mine, alerts, judged))
            _ranked(row, "peer", mine, scored, judged)
            ranked["peer"].extend(scored)
            row["peer_s"] = time.perf_counter() - t0
        result["datasets"][name] = row
        log(f"{name}: done in {row['load_s'] + row['wattwatch_s'] + row.get('peer_s', 0):.1f} s")
    result["overall"] = {}
    for who, parts in pooled.items():
        if parts:
            labs_all = [x for p in parts for x in p[0]]
            judged_all = {k: v for p in parts for k, v in p[2].items()}
            result["overall"][who] = score(labs_all, [x for p in parts for x in p[1]], judged_all)
            _ranked(result["overall"], who, labs_all, ranked[who], judged_all)
    return result
