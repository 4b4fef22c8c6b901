"""Small shared pieces of the rules: nominal voltage, phase currents, voltage presence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect.frame import seg_median
from wattwatch.schema import PHASE_CURRENT_COLUMNS, VOLTAGE_COLUMNS


def phases(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(voltages, currents) as (n, 3) arrays, NaN where a meter lacks a phase."""
    v = df[list(VOLTAGE_COLUMNS)].to_numpy(float)
    i = df[list(PHASE_CURRENT_COLUMNS)].to_numpy(float)
    return v, i


def n_phases(df: pd.DataFrame, n_seg: int) -> np.ndarray:
    """Phases each meter reports current on (1 for single-phase meters, 3 for three-phase)."""
    seg = df["_seg"].to_numpy()
    out = np.zeros(n_seg, int)
    for col in PHASE_CURRENT_COLUMNS:
        out += np.bincount(seg[np.isfinite(df[col].to_numpy())], minlength=n_seg) > 0
    return out


def nominal_voltage(df: pd.DataFrame, n_seg: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Per meter: median of its highest phase voltage while supplied (V > 50 V)."""
    v, _ = phases(df)
    vmax = np.nanmax(np.where(np.isfinite(v), v, -np.inf), axis=1)
    vmax = np.where(np.isfinite(vmax), vmax, np.nan)
    ok = vmax > 50
    if mask is not None:
        ok &= mask
    return seg_median(vmax, df["_seg"].to_numpy(), n_seg, ok)
