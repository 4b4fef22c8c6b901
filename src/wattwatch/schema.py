"""The canonical telemetry schema (SPEC §2) as data.

One row per meter per timestamp. Units are in the column names. Only ``meter_id`` and ``ts`` are
required; every other channel may be missing from a source or NaN in a single reading.

Each channel carries a physical range. A value outside it is not a measurement but a corrupted or
mis-mapped field (a voltage of -5 V, a power factor of 1.7), so the reader rejects that row with the
line number and the field instead of letting it poison a detector.
"""

from __future__ import annotations

import datetime
import re
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

# Extra channels: numeric columns a site declares beyond the canonical ones (UPS battery level, UPS
# mode, per-outlet PDU current). Their names follow the house style, units in the name, so the unit
# is one of these suffixes; ``_1`` marks a dimensionless value (a mode, a state code, a ratio).
EXTRA_UNIT_SUFFIXES: tuple[str, ...] = ("_v", "_a", "_kw", "_kvar", "_kva", "_kwh", "_w", "_wh", "_hz", "_c",
                                        "_pct", "_s", "_rpm", "_1")
EXTRA_NAME_MAX_LEN = 63
_EXTRA_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


def extra_channel_error(name: object) -> str | None:
    """Why ``name`` cannot name an extra channel, or None when it can.

    An extra channel name is a lower-case identifier (``[a-z][a-z0-9_]*``, at most 63 characters,
    no ``__``, which internal columns use) that is not a canonical column and ends in a unit suffix
    from :data:`EXTRA_UNIT_SUFFIXES` (``ups_battery_pct``, ``pdu_outlet_3_a``, ``ups_mode_1``).

    Returns
    -------
    str or None
        A message a user can act on, or None for a valid name.
    """
    if not isinstance(name, str) or not name:
        return f"extra channel name must be a non-empty string, not {name!r}"
    if name in COLUMNS:
        return f"{name!r} is a canonical column; map it under [columns], not as an extra channel"
    if name.startswith("_"):
        return f"{name!r} starts with '_' (reserved for internal columns)"
    if not _EXTRA_NAME_RE.fullmatch(name):
        return (f"{name!r} is not a lower-case identifier: use letters a-z, digits and '_', "
                "starting with a letter (e.g. ups_battery_pct)")
    if "__" in name:
        return f"{name!r} contains '__' (reserved for internal columns)"
    if len(name) > EXTRA_NAME_MAX_LEN:
        return f"{name!r} is {len(name)} characters long; at most {EXTRA_NAME_MAX_LEN} are allowed"
    if not name.endswith(EXTRA_UNIT_SUFFIXES):
        return (f"{name!r} does not end in a unit suffix: add one of {', '.join(EXTRA_UNIT_SUFFIXES)} "
                "(_1 for a dimensionless value, e.g. ups_mode_1)")
    return None


VOLTAGE_COLUMNS = ("v_l1_v", "v_l2_v", "v_l3_v")
PHASE_CURRENT_COLUMNS = ("i_l1_a", "i_l2_a", "i_l3_a")


def empty_frame() -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes."""
    data = {"meter_id": pd.Series([], dtype="string"), "ts": pd.Series([], dtype="datetime64[us, UTC]")}
    data.update({c: pd.Series([], dtype="float64") for c in CHANNEL_NAMES})
    return pd.DataFrame(data)


def utc_times(col: pd.Series, errors: str = "raise") -> pd.Series:
    """``pd.to_datetime(col, utc=True, errors=errors)``, and a column already in that form (what a
    source's frames and the stitcher's pieces carry) as it is, not copied: to_datetime copies it
    (~1 ms a 1,000 rows), at every live step. ``errors="coerce"``: an unreadable time is NaT."""
    if isinstance(col.dtype, pd.DatetimeTZDtype) and col.dtype.tz is datetime.timezone.utc:
        return col
    return pd.to_datetime(col, utc=True, errors=errors)


def canonical_keys(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """``frame``'s ``meter_id`` and ``ts`` with canonical dtypes, as :func:`to_canonical` gives them
    (``detect.frame.prepare`` needs only these two: no frame is built for them).

    Raises
    ------
    ValueError
        If ``meter_id`` or ``ts`` is missing.
    """
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"telemetry frame lacks required column(s): {', '.join(missing)}")
    mid = frame["meter_id"]
    # A Categorical stays one (no string per reading); anything else becomes pandas strings.
    mid = mid if isinstance(mid.dtype, pd.CategoricalDtype) else mid.astype("string")
    ts = frame["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = pd.to_datetime(ts, utc=True)
    return mid, ts.dt.tz_convert("UTC")


def to_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with canonical dtypes and column order; channels it lacks stay absent.

    Raises
    ------
    ValueError
        If ``meter_id`` or ``ts`` is missing.
    """
    mid, ts = canonical_keys(frame)
    out = pd.DataFrame(index=frame.index)
    out["meter_id"] = mid
    out["ts"] = ts
    for c in CHANNEL_NAMES:
        if c in frame.columns:
            out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return out


# Units a source column may be declared in (mapping ``[units]``, ``[wide] unit``): per quantity,
# the factor to the quantity's base unit. Temperatures also carry an offset (°F -> °C).
UNIT_FAMILIES: dict[str, dict[str, float]] = {
    "power": {"w": 1e-3, "kw": 1.0, "mw": 1e3, "gw": 1e6},
    "reactive power": {"var": 1e-3, "kvar": 1.0, "mvar": 1e3},
    "apparent power": {"va": 1e-3, "kva": 1.0, "mva": 1e3},
    "energy": {"wh": 1e-3, "kwh": 1.0, "mwh": 1e3, "gwh": 1e6},
    "current": {"ma": 1e-3, "a": 1.0, "ka": 1e3},
    "voltage": {"mv": 1e-3, "v": 1.0, "kv": 1e3},
    "temperature": {"c": 1.0, "degc": 1.0, "°c": 1.0, "f": 5 / 9, "degf": 5 / 9, "°f": 5 / 9, "k": 1.0},
    "percent": {"%": 1.0, "pct": 1.0, "fraction": 100.0},
}
# Offsets to °C after the factor: °F -> (x - 32) * 5/9, K -> x - 273.15.
_UNIT_OFFSETS = {"f": -32 * 5 / 9, "degf": -32 * 5 / 9, "°f": -32 * 5 / 9, "k": -273.15}
_SUFFIX_UNIT = {"_v": "v", "_a": "a", "_kw": "kw", "_kvar": "kvar", "_kva": "kva", "_kwh": "kwh", "_w": "w",
                "_wh": "wh", "_c": "c", "_pct": "%"}
_CANON_UNIT = {"V": "v", "A": "a", "kW": "kw", "kvar": "kvar", "kVA": "kva", "kWh": "kwh", "°C": "c", "%": "%"}


def channel_unit(name: str) -> str | None:
    """The (lower-case) unit a canonical or extra channel is stored in, or None (dimensionless)."""
    ch = CHANNEL_BY_NAME.get(name)
    if ch is not None:
        return _CANON_UNIT.get(ch.unit)
    for suffix, unit in sorted(_SUFFIX_UNIT.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return unit
    return None


def unit_conversion(unit: str, channel: str) -> tuple[float, float]:
    """``(factor, offset)`` taking a value in ``unit`` to ``channel``'s unit: ``x * factor + offset``.

    Raises
    ------
    ValueError
        ``unit`` is unknown, or not a unit of the channel's quantity (the message lists those that are).
    """
    key = unit.strip().lower().replace(" ", "")
    target = channel_unit(channel)
    family = next((f for f, units in UNIT_FAMILIES.items() if target in units), None)
    if family is None:
        raise ValueError(f"{channel} is dimensionless; it takes no unit (use [scale] to multiply)")
    units = UNIT_FAMILIES[family]
    if key not in units:
        shown = ", ".join(_display(u) for u in units)
        known = next((f for f, us in UNIT_FAMILIES.items() if key in us), None)
        what = f"{unit!r} is a unit of {known}, not of {family}" if known else f"unknown unit {unit!r}"
        raise ValueError(f"{what} ({channel} is {family}; units: {shown})")
    factor = units[key] / units[target]
    offset = _UNIT_OFFSETS.get(key, 0.0) / units[target]
    return factor, offset


def _display(u: str) -> str:
    return {"w": "W", "kw": "kW", "mw": "MW", "gw": "GW", "var": "var", "kvar": "kvar", "mvar": "Mvar", "va": "VA",
            "kva": "kVA", "mva": "MVA", "wh": "Wh", "kwh": "kWh", "mwh": "MWh", "gwh": "GWh", "ma": "mA", "a": "A",
            "ka": "kA", "mv": "mV", "v": "V", "kv": "kV", "c": "°C", "degc": "degC", "°c": "°C", "f": "°F",
            "degf": "degF", "°f": "°F", "k": "K"}.get(u, u)
