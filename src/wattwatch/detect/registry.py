"""Detectors by name, so the CLI, config files, Spark jobs and the dashboard build the same objects.

Config file (TOML)::

    detectors = ["neutral_tamper", "phase_imbalance"]   # optional: default is every rule

    [neutral_tamper]
    abs_limit_a = 0.7
    [neutral_tamper.post]
    min_duration_s = 60
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

from wattwatch.detect.base import Detector

# name -> "module:Class"; imported only when built so optional dependencies stay optional.
_REGISTRY: dict[str, str] = {
    "supply_outage": "wattwatch.detect.rules.outage:SupplyOutage",
    "harmonic_noise": "wattwatch.detect.rules.harmonic:HarmonicNoise",
    "phase_imbalance": "wattwatch.detect.rules.imbalance:PhaseImbalance",
    "neutral_tamper": "wattwatch.detect.rules.neutral:NeutralTamper",
    "sensor_fault": "wattwatch.detect.rules.sensor:SensorFault",
    "firmware_drift": "wattwatch.detect.rules.firmware:FirmwareDrift",
    "packet_loss": "wattwatch.detect.rules.packets:PacketLoss",
    "thermal_drift": "wattwatch.detect.rules.thermal:ThermalDrift",
    "frozen_readings": "wattwatch.detect.rules.frozen:FrozenReadings",
    "baseline_macd": "wattwatch.detect.baseline.macd:BaselineMACD",
    "residual_likelihood": "wattwatch.detect.baseline.likelihood:ResidualLikelihood",
    "window_novelty": "wattwatch.detect.baseline.novelty:WindowNovelty",
    "isolation_forest": "wattwatch.detect.learned.detectors:IsolationForestDetector",
    "local_outlier_factor": "wattwatch.detect.learned.detectors:LOFDetector",
    "pca_reconstruction": "wattwatch.detect.learned.detectors:PCADetector",
    "autoencoder": "wattwatch.detect.learned.detectors:AutoencoderDetector",
    "lstm_autoencoder": "wattwatch.detect.learned.detectors:LSTMAutoencoderDetector",
    "learned_ensemble": "wattwatch.detect.learned.detectors:EnsembleDetector",
}
# What `detect` runs without --detectors: the rules, the profile baseline and the learned ensemble
# (which the engine trains on the run's own profile when that holds enough meter-days, or takes
# from `detect --models`; otherwise it is skipped with a notice).
DEFAULT_DETECTORS: tuple[str, ...] = (
    "supply_outage", "harmonic_noise", "phase_imbalance", "neutral_tamper", "sensor_fault", "firmware_drift",
    "packet_loss", "thermal_drift", "frozen_readings", "baseline_macd", "learned_ensemble")
LEARNED: tuple[str, ...] = ("isolation_forest", "local_outlier_factor", "pca_reconstruction", "autoencoder",
                            "lstm_autoencoder", "learned_ensemble")


def names() -> list[str]:
    return list(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(_REGISTRY)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def build(name: str, params: dict | None = None) -> Detector:
    """A detector from its registered name and a parameter dict (``post`` may be a sub-dict)."""
    return detector_class(name)(params or {})


def register(name: str, target: str) -> None:
    """Add a detector class (``"module:Class"``) under ``name``."""
    _REGISTRY[name] = target


def build_all(names_: list[str] | None = None, config: dict | None = None) -> list[Detector]:
    """Detectors for ``names_`` (default: those the config lists, else all), with config sections."""
    config = config or {}
    chosen = names_ or config.get("detectors") or list(DEFAULT_DETECTORS)
    return [build(n, config.get(n)) for n in chosen]


def load_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read detector config: {exc}") from exc
    unknown = [k for k, v in doc.items() if isinstance(v, dict) and k not in _REGISTRY and k != "engine"]
    if unknown:
        raise ValueError(f"{path}: unknown detector section(s) {unknown}; known: {', '.join(_REGISTRY)}")
    return doc
