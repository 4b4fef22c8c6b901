"""The canonical telemetry schema (SPEC §2) as data.

One row per meter per timestamp. Units are in the column names. Only ``meter_id`` and ``ts`` are
required; every other channel may be missing from a source or NaN in a single reading.

Each channel carries a physical range. A value outside it is not a measurement but a corrupted or
mis-mapped field (a voltage of -5 V, a power factor of 1.7), so the reader rejects that row with the
line number and the field instead of letting it poison a detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Channel:
    """One canonical column.

    Parameters
    ----------
    name : str
        Canonical column name, unit suffix included.
    unit : str
        Physical unit ("" for dimensionless).
    meaning : str
        One-line description.
    low, high : float
        Inclusive physical range; values outside are rejected at ingest.
    """

    name: str
    unit: str
    meaning: str
    low: float = -np.inf
    high: float = np.inf


# Ranges are wide on purpose: they catch impossible values, not unusual ones. Voltages go up to
# 50 kV so that meters reporting medium-voltage primary values are accepted; a power factor may be
# negative (export under some sign conventions) and gets a rounding allowance above 1.
CHANNELS: tuple[Channel, ...] = (
    Channel("v_l1_v", "V", "phase L1-to-neutral RMS voltage", 0.0, 50_000.0),
    Channel("v_l2_v", "V", "phase L2-to-neutral RMS voltage", 0.0, 50_000.0),
    Channel("v_l3_v", "V", "phase L3-to-neutral RMS voltage", 0.0, 50_000.0),
    Channel("i_l1_a", "A", "phase L1 RMS current", 0.0, 100_000.0),
    Channel("i_l2_a", "A", "phase L2 RMS current", 0.0, 100_000.0),
    Channel("i_l3_a", "A", "phase L3 RMS current", 0.0, 100_000.0),
    Channel("i_n_a", "A", "measured neutral RMS current", 0.0, 100_000.0),
    Channel("p_kw", "kW", "total active power (negative = export)", -1e6, 1e6),
    Channel("q_kvar", "kvar", "total reactive power", -1e6, 1e6),
    Channel("s_kva", "kVA", "total apparent power", 0.0, 1e6),
    Channel("pf", "", "power factor", -1.001, 1.001),
    Channel("e_kwh", "kWh", "cumulative active-energy register as the firmware reports it", 0.0, 1e12),
    Channel("temp_c", "°C", "device or enclosure temperature", -60.0, 250.0),
    Channel("thd_i_pct", "%", "current total harmonic distortion", 0.0, 1000.0),
)

CHANNEL_NAMES: tuple[str, ...] = tuple(c.name for c in CHANNELS)
CHANNEL_BY_NAME: dict[str, Channel] = {c.name: c for c in CHANNELS}
KEY_COLUMNS: tuple[str, ...] = ("meter_id", "ts")
COLUMNS: tuple[str, ...] = KEY_COLUMNS + CHANNEL_NAMES

VOLTAGE_COLUMNS = ("v_l1_v", "v_l2_v", "v_l3_v")
PHASE_CURRENT_COLUMNS = ("i_l1_a", "i_l2_a", "i_l3_a")


def empty_frame() -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes."""
    data = {"meter_id": pd.Series([], dtype="string"), "ts": pd.Series([], dtype="datetime64[us, UTC]")}
    data.update({c: pd.Series([], dtype="float64") for c in CHANNEL_NAMES})
    return pd.DataFrame(data)


def to_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with canonical dtypes and column order; channels it lacks stay absent.

    Raises
    ------
    ValueError
        If ``meter_id`` or ``ts`` is missing.
    """
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"telemetry frame lacks required column(s): {', '.join(missing)}")
    out = pd.DataFrame(index=frame.index)
    mid = frame["meter_id"]
    # A Categorical stays one (no string per reading); anything else becomes pandas strings.
    out["meter_id"] = mid if isinstance(mid.dtype, pd.CategoricalDtype) else mid.astype("string")
    ts = frame["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = pd.to_datetime(ts, utc=True)
    out["ts"] = ts.dt.tz_convert("UTC")
    for c in CHANNEL_NAMES:
        if c in frame.columns:
            out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return out
