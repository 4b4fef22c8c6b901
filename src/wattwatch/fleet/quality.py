"""How well fleet scoring and energy balance find injected faults (and what they do on real data).

Simulated fleet (:mod:`wattwatch.sim.pods`): a (pod_id, period) row is positive for a fault type
when that fault is active during the period; per type, ROC-AUC and precision@k (k = the number of
positives of that type) of each model's score and of the consensus, on the rows of that type
against the fault-free rows (rows of other fault types left out). Vacation is the look-alike: a
high score there means the cross-meter view cannot tell it from theft on its own (the energy
balance can). Energy balance: the share of injected thefts whose POD ranks in the top 5 of its
panel (and in the top 1), the share of thefts on a flagged panel, and the panels flagged with no
theft behind them.

Real data (BDG2, 10 buildings, hourly 2016-2017): buildings as PODs, months as periods; a
building-month is positive when a labelled event of ``data/real_labels/labels.json`` overlaps it.
The labels are used only here, to evaluate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.fleet.models import MODELS, score
from wattwatch.sim.pods import PodSimConfig, period_labels, simulate_pods


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def _prec_at_k(y: np.ndarray, s: np.ndarray, k: int) -> float:
    if k <= 0:
        return float("nan")
    top = np.argsort(-s, kind="stable")[:k]
    return float(y[top].mean())


def ranking_table(table: pd.DataFrame, fault: pd.Series, kinds: list[str]) -> pd.DataFrame:
    """Per fault type and model: positives, ROC-AUC, precision@k (k = positives)."""
    rows = []
    scores = {m: table[f"{m}_score"].to_numpy() for m in MODELS}
    scores["consensus"] = table["consensus_score"].to_numpy()
    f = fault.to_numpy()
    for kind in kinds + ["any"]:
        pos = (f != "") if kind == "any" else (f == kind)
        keep = pos | (f == "")
        if kind == "any":
            keep = np.ones(len(f), bool)
            pos = np.isin(f, [k for k in kinds if k != "vacation"])
            keep = pos | (f == "")
        y = pos[keep]
        for m, s in scores.items():
            rows.append({"fault": kind if kind != "any" else "theft+shift", "model": m, "positives": int(y.sum()),
                         "negatives": int((~y).sum()), "roc_auc": _auc(y, s[keep]),
                         "precision_at_k": _prec_at_k(y, s[keep], int(y.sum()))})
    return pd.DataFrame(rows)


def fleet_frame(sim: dict) -> pd.DataFrame:
    """The simulated readings as the fleet frame :func:`wattwatch.fleet.features.pod_periods` reads
    (interval energy, mean power, pf, panel and town), PODs and panel meters alike."""
    h = sim["hourly"]
    ph = sim["panel_hourly"]
    pf = pd.Series({p["pod_id"]: p["pf"] for p in sim["pods"]})
    step_h = (h["hour"].iloc[1] - h["hour"].iloc[0]).total_seconds() / 3600.0
    both = pd.concat([h[["pod_id", "panel_id", "hour", "e_kwh"]],
                      ph.assign(pod_id=ph["panel_id"])[["pod_id", "panel_id", "hour", "e_kwh"]]], ignore_index=True)
    f = pd.DataFrame({"meter_id": both["pod_id"].to_numpy(), "ts": both["hour"].to_numpy(),
                      "panel_id": both["panel_id"].to_numpy(), "town": "T000",
                      "e_int_kwh": both["e_kwh"].to_numpy(), "p_kw": both["e_kwh"].to_numpy() / step_h})
    f["ts"] = pd.to_datetime(f["ts"], utc=True)
    f["ts_end"] = f["ts"] + pd.Timedelta(hours=step_h)
    f["pf"] = f["meter_id"].map(pf).fillna(0.99).to_numpy()
    f["q_kvar"] = f["p_kw"] * np.tan(np.arccos(f["pf"]))
    return f


def simulated(cfg: PodSimConfig, seed: int = 0, log=print, cache: str | Path | None = None) -> dict:
    """Run the simulated evaluation; returns the tables. With ``cache``, the simulated fleet's
    features, hourly table and labels are kept there (keyed by the config) and reused."""
    import time

    from wattwatch.fleet.balance import energy_balance
    from wattwatch.fleet.features import pod_periods

    import hashlib
    from dataclasses import asdict
    from types import SimpleNamespace

    key = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(cache) / f"pods-{key}" if cache else None
    if folder is not None and (folder / "labels.json").exists():
        ff = SimpleNamespace(features=pd.read_parquet(folder / "features.parquet"),
                             hourly=pd.read_parquet(folder / "hourly.parquet"),
                             panels=pd.read_parquet(folder / "panels.parquet"))
        sim = {"labels": json.loads((folder / "labels.json").read_text())}
        log(f"features of the simulated fleet from {folder}")
    else:
        t = time.time()
        sim = simulate_pods(cfg)
        log(f"simulated {cfg.pods} PODs on {cfg.panels} panels, {cfg.months} months: {len(sim['hourly']):,} "
            f"POD-hours ({time.time() - t:.0f} s)")
        t = time.time()
        ff = pod_periods(fleet_frame(sim), "month")
        log(f"features: {len(ff.features):,} POD-months, {len(ff.excluded):,} meters excluded ({time.time() - t:.0f} s)")
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            ff.features.to_parquet(folder / "features.parquet")
            ff.hourly.to_parquet(folder / "hourly.parquet")
            ff.panels.to_parquet(folder / "panels.parquet")
            (folder / "labels.json").write_text(json.dumps(sim["labels"]))
    t = time.time()
    res = score(ff.features, seed=seed)
    log(f"scored ({time.time() - t:.0f} s): " + ", ".join(
        f"{m} {k}={res.chosen[m][k]}" for m, k in (("pca", "n_components"), ("iforest", "max_samples"),
                                                   ("lof", "n_neighbors"))) + f"; silhouette {res.silhouette:.3f}")
    lab = period_labels(sim["labels"], res.table[["pod_id", "period"]])
    tab = res.table.merge(lab, on=["pod_id", "period"], how="left")
    tab["fault"] = tab["fault"].fillna("")
    ranking = ranking_table(tab, tab["fault"], ["theft", "level_shift", "vacation"])
    t = time.time()
    bal = energy_balance(ff.hourly, ff.panels, "month")
    log(f"energy balance ({time.time() - t:.0f} s): {int(bal.panels['flagged'].sum())} of {len(bal.panels)} panels flagged")
    labels = pd.DataFrame(sim["labels"])
    thefts = labels[labels["type"] == "theft"].merge(bal.suspects, on=["pod_id", "panel_id"], how="left")
    theft_panels = set(thefts["panel_id"])
    flagged = set(bal.panels.loc[bal.panels["flagged"], "panel_id"])
    others = labels[labels["type"] != "theft"].merge(bal.suspects, on=["pod_id", "panel_id"], how="left")
    loc = {
        "thefts": int(len(thefts)),
        "top5_share": float((thefts["rank"] <= 5).mean()),
        "top1_share": float((thefts["rank"] == 1).mean()),
        "on_flagged_panel_share": float(thefts["panel_id"].isin(flagged).mean()),
        "top5_and_flagged_share": float(((thefts["rank"] <= 5) & thefts["panel_id"].isin(flagged)).mean()),
        "panels_with_theft": len(theft_panels), "panels_flagged": len(flagged),
        "panels_flagged_without_theft": len(flagged - theft_panels),
        "lookalikes_top1_on_flagged_panel": int(((others["rank"] == 1) & others["panel_id"].isin(flagged)).sum()),
        "lookalikes": int(len(others)),
    }
    # The theft's size decides whether a panel notices it: share of the panel's energy stolen.
    return {"ranking": ranking, "localisation": loc, "chosen": res.chosen, "silhouette": res.silhouette,
            "table": tab, "balance": bal}


def real_bdg2(data: str | Path | None = None, labels: str | Path | None = None, seed: int = 0, log=print) -> dict:
    """Buildings as PODs, months as periods; positives from the expert labels (evaluation only)."""
    from wattwatch.evaluate.real_data import find_data, load
    from wattwatch.fleet.features import pod_periods

    root = find_data(data)
    if root is None:
        raise FileNotFoundError("no real-data folder (give --data or set WATTWATCH_REAL_DIR)")
    frame = load("bdg2", root)
    ff = pod_periods(frame, "month", min_coverage=0.0)
    feats = ff.features
    log(f"BDG2: {frame['meter_id'].nunique()} buildings, {len(feats)} building-months scored, "
        f"{len(ff.excluded)} excluded")
    res = score(feats, seed=seed)
    lab_path = Path(labels) if labels else Path(__file__).resolve().parents[3] / "data" / "real_labels" / "labels.json"
    ev = [x for x in json.loads(lab_path.read_text())["labels"] if x["dataset"] == "bdg2"]
    events = [{"pod_id": x["meter_id"], "type": x["kind"], "start": x["start"], "end": x["end"]} for x in ev]
    lab = period_labels(events, res.table[["pod_id", "period"]])
    tab = res.table.merge(lab, on=["pod_id", "period"], how="left")
    tab["fault"] = np.where(tab["fault"].fillna("") != "", "labelled", "")
    ranking = ranking_table(tab, tab["fault"], ["labelled"])
    ranking = ranking[ranking["fault"] == "labelled"]
    return {"ranking": ranking, "chosen": res.chosen, "silhouette": res.silhouette, "table": tab,
            "rows": len(tab), "positives": int((tab["fault"] != "").sum())}
