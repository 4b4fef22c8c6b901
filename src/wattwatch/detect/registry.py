"""Detectors by name, so the CLI, config files, Spark jobs and the dashboard build the same objects.

Config file (TOML)::

    detectors = ["neutral_tamper", "phase_imbalance"]   # optional: default is every rule

    [neutral_tamper]
    abs_limit_a = 0.7
    [neutral_tamper.post]
    min_duration_s = 60
"""

from __future__ import annotations

import difflib

import importlib
from wattwatch.tomlfile import number, read_toml
from pathlib import Path

from wattwatch.detect.base import Detector
from wattwatch.errors import ConfigError

# name -> "module:Class"; imported only when built so optional dependencies stay optional.
_REGISTRY: dict[str, str] = {
    "supply_outage": "wattwatch.detect.rules.outage:SupplyOutage",
    "harmonic_noise": "wattwatch.detect.rules.harmonic:HarmonicNoise",
    "phase_imbalance": "wattwatch.detect.rules.imbalance:PhaseImbalance",
    "neutral_tamper": "wattwatch.detect.rules.neutral:NeutralTamper",
    "sensor_fault": "wattwatch.detect.rules.sensor:SensorFault",
    "loose_ct": "wattwatch.detect.rules.loosect:LooseCT",
    "firmware_drift": "wattwatch.detect.rules.firmware:FirmwareDrift",
    "packet_loss": "wattwatch.detect.rules.packets:PacketLoss",
    "thermal_drift": "wattwatch.detect.rules.thermal:ThermalDrift",
    "frozen_readings": "wattwatch.detect.rules.frozen:FrozenReadings",
    "channel_invalid": "wattwatch.detect.rules.channel:ChannelInvalid",
    "baseline_macd": "wattwatch.detect.baseline.macd:BaselineMACD",
    "residual_likelihood": "wattwatch.detect.baseline.likelihood:ResidualLikelihood",
    "window_novelty": "wattwatch.detect.baseline.novelty:WindowNovelty",
    "seasonal_profile": "wattwatch.detect.baseline.seasonal:SeasonalProfile",
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
    "supply_outage", "harmonic_noise", "phase_imbalance", "neutral_tamper", "sensor_fault", "loose_ct",
    "firmware_drift", "packet_loss", "thermal_drift", "frozen_readings", "channel_invalid", "baseline_macd", "seasonal_profile",
    "learned_ensemble")
# What a meter is judged by when the detection core fails on it even alone (a runner retries a
# failed group meter by meter first): the physics rules, which need no fleet model or learned stage.
FALLBACK_DETECTORS: tuple[str, ...] = (
    "supply_outage", "harmonic_noise", "phase_imbalance", "neutral_tamper", "sensor_fault", "loose_ct",
    "firmware_drift", "packet_loss", "thermal_drift", "frozen_readings", "channel_invalid")
LEARNED: tuple[str, ...] = ("isolation_forest", "local_outlier_factor", "pca_reconstruction", "autoencoder",
                            "lstm_autoencoder", "learned_ensemble")


def names() -> list[str]:
    return list(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown detector {name!r}; known: {', '.join(_REGISTRY)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def build(name: str, params: dict | None = None) -> Detector:
    """A detector from its registered name and a parameter dict (``post`` may be a sub-dict).
    ``ConfigError`` (a ``ValueError``) naming ``[name]`` and the key for a bad parameter."""
    if not isinstance(name, str):
        raise ConfigError(f"detector names are strings, got {name!r}")
    cls = detector_class(name)
    if params is not None and not isinstance(params, dict):
        raise ConfigError(f"[{name}]: expected a table of parameters, got {type(params).__name__} {params!r}")
    try:
        return cls(params or {})
    except ConfigError as exc:
        raise ConfigError(f"[{name}] {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{name}] {exc}") from None


def register(name: str, target: str) -> None:
    """Add a detector class (``"module:Class"``) under ``name``."""
    _REGISTRY[name] = target


def build_all(names_: list[str] | None = None, config: dict | None = None) -> list[Detector]:
    """Detectors for ``names_`` (default: those the config lists, else all), with config sections."""
    config = config or {}
    chosen = names_ or config.get("detectors") or list(DEFAULT_DETECTORS)
    return [build(n, config.get(n)) for n in chosen]


# [engine] keys: what tomlfile.number asks of each (None: a string) -- checked here so that a config
# file names the key, and by EngineConfig itself (a library caller's values).
ENGINE_NUMBERS = {"profile_days": {"lo": 0, "lo_in": False}, "profile_max_share": {"lo": 0, "lo_in": False, "hi": 1},
           "chunk_rows": {"whole": True, "lo": 1}, "workers": {"whole": True, "lo": 0}, "parallel": None,
           "max_fleet_meters": {"whole": True, "lo": 1}, "max_trace_days": {"lo": 0},
           "continue_within_h": {"lo": 0}}


def check_engine(section, where: str = "[engine]") -> None:
    """``ConfigError`` naming the key for an ``[engine]`` value of the wrong type or range."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a table, got {type(section).__name__}")
    for k, v in section.items():
        if k not in ENGINE_NUMBERS:
            raise ConfigError(f"{where}: unknown parameter {k!r}; known: {', '.join(ENGINE_NUMBERS)}")
        if ENGINE_NUMBERS[k] is None:
            if not isinstance(v, str):
                raise ConfigError(f"{where} {k}: expected a string, got {v!r}")
            continue
        try:
            number(f"{where} {k}", v, **ENGINE_NUMBERS[k])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def _as_written(name: str, value) -> str:
    """``name`` as the file writes it: ``[[sinks]]`` for an array of tables, ``detectors``."""
    return name if name == "detectors" else f"[[{name}]]" if isinstance(value, list) else f"[{name}]"


def _closest(name: str, known) -> str:
    """" (did you mean [x]?)" for a section name one typo away from a known one, else ""."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean [{close[0]}]?)" if close else ""


def check_config(doc, where: str = "detector config", site_sections: tuple[str, ...] = ()) -> dict:
    """``ConfigError`` naming the section and key unless ``doc`` is a detector configuration:
    ``detectors`` a list of registered names, a table per detector, ``[engine]``. ``site_sections``:
    the other tables the file may hold (a ``watch`` site config's ``store``, ``stream`` ...), named
    in the error for an unknown one (a typo of ``[store]`` was "unknown detector section")."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a table, got {type(doc).__name__}")
    for k, v in doc.items():
        if k == "detectors":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConfigError(f"{where}: detectors must be a list of detector names, got {v!r}")
            for x in v:
                try:
                    detector_class(x)
                except ConfigError as exc:
                    raise ConfigError(f"{where}: detectors: {exc}") from None
        elif k == "engine":
            check_engine(v, f"{where}: [engine]")
        elif k in _REGISTRY:
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: [{k}] must be a table of parameters, got {type(v).__name__} {v!r}")
        elif isinstance(v, dict):
            known = [*site_sections, "engine", *_REGISTRY]
            site = f"; a site config's sections: {', '.join(site_sections)}" if site_sections else ""
            raise ConfigError(f"{where}: unknown {'section' if site_sections else 'detector section'} [{k}]"
                              f"{_closest(k, known)}{site}; detector sections: engine, {', '.join(_REGISTRY)}")
        elif site_sections:
            # (rfh) a typo'd array of tables ([[sink]], [[action]]) or key is not a detector's either
            known = ["detectors", *site_sections, "engine", *_REGISTRY]
            close = difflib.get_close_matches(k, known, n=1, cutoff=0.75)
            said = "" if not close else f" (did you mean {_as_written(close[0], v)}?)"
            raise ConfigError(f"{where}: unknown key {k!r}{said}; a site config's sections: "
                              f"{', '.join(site_sections)}; detector sections: engine, {', '.join(_REGISTRY)}")
        else:
            raise ConfigError(f"{where}: unknown key {k!r} (expected detectors = [...], [engine] or a detector "
                              "section)")
    return doc


def load_config(path: str | Path) -> dict:
    path = Path(path)
    doc = read_toml(path, "detector config")
    check_config(doc, str(path))
    for name, section in doc.items():
        if name in _REGISTRY:
            try:
                build(name, section)  # every parameter checked now, naming the file
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc}") from None
    return doc
