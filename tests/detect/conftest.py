"""Frames for detector tests: healthy single meters built by the simulator, faults added by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scipy.signal import lfilter

from wattwatch.detect.engine import EngineConfig, detect
from wattwatch.detect.registry import build_all
from wattwatch.sim import SimConfig, simulate

HEALTHY = dict(fault_share=0.0, outage_share=0.0, reset_share=0.0, motor_starts_per_day=0.0, jitter_s=0.0,
               duplicate_rate=0.0, nan_rate=0.0, disorder_rate=0.0, background_loss=0.0)


def healthy(kind: str, days: float = 6, seed: int = 5) -> pd.DataFrame:
    """One healthy meter (``residential`` single phase or ``commercial`` three phase), 5-min cadence."""
    cfg = SimConfig(meters=1, days=days, seed=seed, commercial_share=1.0 if kind == "commercial" else 0.0, **HEALTHY)
    return simulate(cfg)["frame"]


def window(frame: pd.DataFrame, start: str, hours: float) -> np.ndarray:
    t0 = pd.Timestamp(start)
    return ((frame.ts >= t0) & (frame.ts < t0 + pd.Timedelta(hours=hours))).to_numpy()


ENGINE = EngineConfig(profile_days=3.0)


def run(frame: pd.DataFrame, names=None):
    return detect(frame, build_all(names) if names else None, ENGINE).alerts


@pytest.fixture(scope="session")
def residential() -> pd.DataFrame:
    return healthy("residential")


@pytest.fixture(scope="session")
def commercial() -> pd.DataFrame:
    return healthy("commercial")


CURRENTS = ["i_l1_a", "i_l2_a", "i_l3_a"]


def load_raised(frame: pd.DataFrame, meter: dict, rows: np.ndarray, factor: float, step_min: float = 5.0) -> None:
    """Raise a simulated meter's phase currents ``factor`` times over ``rows`` (in place), its
    enclosure temperature by the heat the simulator's physics gives for that (the rise at rated
    current x (I / rated)², through the first-order lag of the meter's ``tau_min``)."""
    heat = meter["rise_c"] * (frame[CURRENTS].max(axis=1).to_numpy() / meter["rated_a"]) ** 2
    a = np.exp(-step_min / meter["tau_min"])
    frame["temp_c"] += lfilter([1 - a], [1, -a], np.where(rows, heat * (factor ** 2 - 1), 0.0))
    frame.loc[rows, CURRENTS] *= factor


def thermal_alerts(frame: pd.DataFrame) -> list:
    """``thermal_drift``'s alerts alone on ``frame`` (the engine's 3-day profile)."""
    return [a for a in run(frame, ["thermal_drift"]) if a.code == "WARN_THERM_DRIFT"]
