"""Saving and loading trained learned detectors (``wattwatch train`` / ``detect --models``).

A model folder holds ``manifest.json`` (format, wattwatch and schema versions, feature names,
each detector's config and file, what it was trained on) and one ``<name>.joblib`` per detector
with its fleet-wide state (scaler, model, calibrations). Loading checks the manifest before it
unpickles anything: a folder written by an incompatible version fails with a message that says
which versions differ and what to do, instead of a model that silently scores garbage.
"""

from __future__ import annotations

import json
from pathlib import Path

from wattwatch import __version__
from wattwatch.detect.learned.detectors import LearnedDetector
from wattwatch.schema import SCHEMA_VERSION

# Bump when the saved state or the features change meaning (a new feature, another scaler).
MODEL_FORMAT = 3  # 2: the feature scaler keeps one knot per distinct training quantile; 3: baseline = mean of
# leave-one-day-out medians, evidence persistence judged only when half covered
MANIFEST = "manifest.json"


class ModelFormatError(ValueError):
    """A model folder that this version of wattwatch cannot use."""


def save_models(detectors: list[LearnedDetector], out: str | Path, trained_on: dict | None = None) -> Path:
    import joblib

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = {}
    for d in detectors:
        if not d.locked:
            raise ValueError(f"{d.name}: train it before saving")
        path = out / f"{d.name}.joblib"
        joblib.dump(d.model_state(), path)
        entries[d.name] = {"file": path.name, "config": d.config.to_dict(), "features": d.feature_names_}
    manifest = {"format": MODEL_FORMAT, "wattwatch": __version__, "schema": SCHEMA_VERSION,
                "detectors": entries, "trained_on": trained_on or {}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return out


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFormatError(f"{folder}: no {MANIFEST}; not a wattwatch model folder (create one with "
                               "`wattwatch train`)") from None
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{path}: unreadable manifest: {exc}") from exc
    fmt, schema = manifest.get("format"), manifest.get("schema")
    if fmt != MODEL_FORMAT or schema != SCHEMA_VERSION:
        raise ModelFormatError(
            f"{folder}: models saved by wattwatch {manifest.get('wattwatch', '?')} (model format {fmt}, schema "
            f"{schema}) cannot be loaded by wattwatch {__version__} (model format {MODEL_FORMAT}, schema "
            f"{SCHEMA_VERSION}); retrain them with `wattwatch train`")
    return manifest


def load_models(folder: str | Path) -> list[LearnedDetector]:
    """The trained detectors of ``folder``, locked (``fit`` re-learns only per-meter baselines)."""
    import joblib

    from wattwatch.detect import registry

    folder = Path(folder)
    manifest = read_manifest(folder)
    out = []
    for name, entry in manifest["detectors"].items():
        d = registry.build(name, entry["config"])
        if not isinstance(d, LearnedDetector):
            raise ModelFormatError(f"{folder}: {name} is not a learned detector")
        expected = d.config.features().names()
        if entry.get("features") != expected:
            raise ModelFormatError(f"{folder}: {name} was trained on features {entry.get('features')}, this version "
                                   f"computes {expected}; retrain with `wattwatch train`")
        state = joblib.load(folder / entry["file"])
        for k, v in state.items():
            setattr(d, k, v)
        d.locked_ = True
        out.append(d)
    return out
