"""Small shared pieces of the rules: nominal voltage, phase currents, voltage presence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect.frame import cache, seg_median
from wattwatch.schema import PHASE_CURRENT_COLUMNS, VOLTAGE_COLUMNS


def frame_cached(df: pd.DataFrame, key: str, fn):
    """``fn()`` computed once per prepared frame and shared by all detectors (phase arrays are
    needed by most rules); kept on the frame object itself (see :func:`frame.cache`)."""
    store = cache(df)
    if key not in store:
        store[key] = fn()
    return store[key]


def _columns(df: pd.DataFrame, cols) -> np.ndarray:
    # Column-major: reductions across the three phases (axis=1) run ~7x faster than row-major.
    out = np.empty((len(df), len(cols)), order="F")
    for k, c in enumerate(cols):
        out[:, k] = df[c].to_numpy(float)
    return out


def phases(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(voltages, currents) as (n, 3) arrays, NaN where a meter lacks a phase."""
    return frame_cached(df, "phases", lambda: (_columns(df, VOLTAGE_COLUMNS), _columns(df, PHASE_CURRENT_COLUMNS)))


def max_current(df: pd.DataFrame) -> np.ndarray:
    """Largest phase current per reading (NaN when the meter reports none)."""
    def compute():
        _, i = phases(df)
        out = np.fmax(np.fmax(i[:, 0], i[:, 1]), i[:, 2])
        return out
    return frame_cached(df, "imax", compute)


def max_voltage(df: pd.DataFrame) -> np.ndarray:
    """Highest phase voltage per reading (NaN when the meter reports none)."""
    def compute():
        v, _ = phases(df)
        return np.fmax(np.fmax(v[:, 0], v[:, 1]), v[:, 2])
    return frame_cached(df, "vmax", compute)


def n_phases(df: pd.DataFrame, n_seg: int) -> np.ndarray:
    """Phases each meter reports current on (1 for single-phase meters, 3 for three-phase)."""
    seg = df["_seg"].to_numpy()
    out = np.zeros(n_seg, int)
    for col in PHASE_CURRENT_COLUMNS:
        out += np.bincount(seg[np.isfinite(df[col].to_numpy())], minlength=n_seg) > 0
    return out


def nominal_voltage(df: pd.DataFrame, n_seg: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Per meter: median of its highest phase voltage while supplied (V > 50 V)."""
    vmax = max_voltage(df)
    ok = vmax > 50
    if mask is not None:
        ok &= mask
    return seg_median(vmax, df["_seg"].to_numpy(), n_seg, ok)


INRUSH_RATIO = 2.5
INRUSH_MIN_A = 1.0
INRUSH_PF_DROP = 0.1


def inrush(df: pd.DataFrame) -> np.ndarray:
    """Readings that caught a motor's starting current.

    On some phase the current is at least ``INRUSH_RATIO`` times (and ``INRUSH_MIN_A`` above)
    what the readings either side show (per side the lower of its two nearest readings, so two
    starts in a row are both caught while a load that switches on and stays on is not), and,
    where the meter reports a power factor, the power factor drops with it: a starting motor is
    inductive, while a kettle or an oven caught in one reading raises it. Such a snapshot stands
    for a few seconds, not for its interval; rules that weigh currents over time (the neutral
    balance, the heating) leave it out rather than read it as the interval's current."""

    def compute():
        seg = df["_seg"].to_numpy()
        _, i = phases(df)
        n = len(df)
        # Screen: a spike is at least INRUSH_RATIO times one of its four nearest readings
        # (compared on views, no copies; a neighbour on another meter only adds candidates, so
        # nothing is missed). Then the exact test on the few candidates.
        cand = np.zeros(n, bool)
        if n >= 3:
            with np.errstate(invalid="ignore"):
                for k in range(i.shape[1]):
                    x = i[:, k]
                    h = x * (1 / INRUSH_RATIO)
                    cand[1:] |= h[1:] >= x[:-1]
                    cand[2:] |= h[2:] >= x[:-2]
                    cand[:-1] |= h[:-1] >= x[1:]
                    cand[:-2] |= h[:-2] >= x[2:]
        idx = np.flatnonzero(cand)
        out = np.zeros(n, bool)
        if not len(idx):
            return out

        def near(x, step):
            j = np.clip(idx + step, 0, n - 1)
            return np.where((idx + step >= 0) & (idx + step < n) & (seg[j] == seg[idx]), x[j], np.nan)

        spike = np.zeros(len(idx), bool)
        with np.errstate(invalid="ignore"):
            for k in range(i.shape[1]):
                x = i[:, k]
                ref = np.fmax(np.fmin(near(x, -1), near(x, -2)), np.fmin(near(x, 1), near(x, 2)))
                spike |= (x[idx] >= INRUSH_RATIO * ref) & (x[idx] - ref >= INRUSH_MIN_A)
            if "pf" in df:
                pf = np.abs(df["pf"].to_numpy(float))
                ref_pf = np.fmax(near(pf, -1), near(pf, 1))
                spike &= ~(pf[idx] > ref_pf - INRUSH_PF_DROP)  # resistive; False where either is unknown
        out[idx[spike]] = True
        return out

    return frame_cached(df, "inrush", compute)
