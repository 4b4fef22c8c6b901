"""Run a wattwatch detector over the NAB corpus and score it the NAB way.

``run`` writes the official results layout, one file per data file::

    <out>/<detector>/<category>/<detector>_<name>.csv    timestamp,value,anomaly_score,label

``score`` reads it back, optimises the threshold per cost profile over the whole corpus, writes
``<out>/<detector>/<detector>_<profile>_scores.csv`` (per file, plus a Totals row) and merges the
normalised scores into ``<out>/final_results.json``.

NAB rules: the detector sees each file as one meter whose only channel is ``value`` (mapped to the
detector's channel, ``p_kw`` unless it says otherwise); it learns from the probationary period
(first 15 % of rows, at most 750) and must score causally, a row from rows up to it only: only
detectors that declare ``causal = True`` run. Scores become [0, 1] through the same calibration
the alerts use (0.5 at the detector's limit).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector
from wattwatch.detect.postrules import calibrated_array
from wattwatch.evaluate.nab.corpus import Corpus, DataFile, NabError, safe_key
from wattwatch.evaluate.nab.scorer import normalised, probation_rows, score_file, threshold_curve


def file_scores(det: Detector, f: DataFile) -> np.ndarray:
    """Anomaly scores in [0, 1] of one data file (learned on its probationary rows)."""
    channel = getattr(det.config, "channel", "p_kw")
    frame = pd.DataFrame({"meter_id": pd.Categorical([Path(f.key).stem] * len(f.values)),
                          "ts": f.timestamps.dt.tz_localize("UTC"), channel: f.values})
    n_prob = max(probation_rows(len(frame)), 2)
    det.fit(frame.iloc[:n_prob])
    raw = det.score(frame).to_numpy(float)
    out = calibrated_array(raw)
    out[:n_prob] = 0.0  # NAB ignores them; do not let warm-up values look like detections
    return out


def run(det: Detector, corpus: Corpus, out: Path, name: str | None = None, log=lambda *_: None) -> Path:
    """Score every file of the corpus with ``det``; returns the detector's results folder."""
    if not getattr(det, "causal", False):
        raise ValueError(f"{det.name} is not causal (it looks at readings after the one it scores); "
                         "NAB requires causal detectors")
    name = name or det.name
    base = Path(out) / name
    for k, f in enumerate(corpus.files):
        path = result_path(out, name, f.key)
        scores = file_scores(det, f)
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": f.timestamps.dt.strftime("%Y-%m-%d %H:%M:%S"), "value": f.values,
                      "anomaly_score": np.round(scores, 6), "label": f.labels}).to_csv(path, index=False)
        log(k + 1, len(corpus.files), f.key)
    return base


def result_path(out: Path, name: str, key: str) -> Path:
    """``<out>/<name>/<category>/<name>_<file>.csv``; ``NabError`` unless it lies inside ``out``
    (keys are checked when the corpus is read; this holds for corpora built in code too)."""
    rel = safe_key(key, Path("the corpus"))
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise NabError(f"detector name {name!r} cannot name a results folder")
    path = Path(out) / name / Path(*rel.parent.parts) / f"{name}_{rel.name}"
    root = Path(out).resolve()
    real = path.resolve()
    if root not in real.parents:
        raise NabError(f"{path}: leads outside --out {out} (to {real})")
    return path


def read_results(corpus: Corpus, out: Path, name: str) -> list[np.ndarray]:
    scores = []
    for f in corpus.files:
        path = result_path(out, name, f.key)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no results for {f.key}; run `wattwatch nab run --detector {name}` first")
        try:
            df = pd.read_csv(path)
            values = pd.to_numeric(df["anomaly_score"], errors="coerce").to_numpy(float)
        except KeyError:
            raise NabError(f"{path}: no anomaly_score column; run `wattwatch nab run --detector {name}` again") from None
        except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise NabError(f"{path}: unreadable results ({type(exc).__name__}: {str(exc).strip()}); run "
                           f"`wattwatch nab run --detector {name}` again") from None
        if len(df) != len(f.values):
            raise ValueError(f"{path}: {len(df)} rows, the data file has {len(f.values)}")
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise NabError(f"{path}: line {bad[0] + 2}: anomaly_score is not a finite number")
        scores.append(values)
    return scores


def score(corpus: Corpus, out: Path, name: str) -> dict:
    """Normalised NAB scores of the results in ``out/name`` per profile, with the thresholds."""
    scores = read_results(corpus, out, name)
    layouts = [f.layout for f in corpus.files]
    n_windows = sum(lay.n_windows for lay in layouts)
    summary: dict = {}
    for profile in corpus.profiles:
        best = threshold_curve(list(zip(scores, layouts)), profile).best
        rows = [{"Detector": name, "Profile": profile.name, "File": f.key, "Threshold": best.threshold,
                 "Score": score_file(s, lay, profile, best.threshold)}
                for f, s, lay in zip(corpus.files, scores, layouts)]
        total = float(sum(r["Score"] for r in rows))
        rows.append({"Detector": name, "Profile": profile.name, "File": "Totals", "Threshold": best.threshold,
                     "Score": total})
        pd.DataFrame(rows).to_csv(Path(out) / name / f"{name}_{profile.name}_scores.csv", index=False)
        summary[profile.name] = {"score": normalised(total, n_windows, profile), "raw": total,
                                 "threshold": best.threshold, "tp": best.tp, "fp": best.fp}
    final = Path(out) / "final_results.json"
    try:
        merged = json.loads(final.read_text()) if final.exists() else {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NabError(f"{final}: unreadable ({exc}); remove it and score again") from None
    if not isinstance(merged, dict):
        raise NabError(f"{final}: expected a JSON object of detectors; remove it and score again")
    merged[name] = {p: v["score"] for p, v in summary.items()}
    final.write_text(json.dumps(merged, indent=2, sort_keys=True))
    return summary
