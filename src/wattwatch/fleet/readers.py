"""Fleet input: telemetry files and nested smart-meter JSON as one canonical fleet frame.

The nested layout (seed 002, ENEA's PELL platform) is the SCPS *UrbanDataset*::

    {"UrbanDataset": {
        "specification": {"properties": {"propertyDefinition": [
            {"propertyName": "Phase1ActivePower", "unitOfMeasure": "kilowatt"}, ...]}},
        "context": {"timeZone": "UTC+1", ...},
        "values": {"line": [
            {"id": 1, "period": {"start_ts": "2025-01-01T00:00:00", "end_ts": "2025-01-01T01:00:00"},
             "property": [{"name": "PODID", "val": "IT001E0001"}, {"name": "ElectricPanelID", "val": "QE7"},
                          {"name": "TownCode", "val": "058091"}, {"name": "Phase1ActivePower", "val": "0.84"},
                          ...]}]}}}

one document per ``.json`` file (or a JSON array of them), or one per line in ``.jsonl``/``.ndjson``.
Flat records with the same field names at the top level (``{"PODID": ..., "start_ts": ...}``) are
read too. Each record is an interval ``start_ts .. end_ts``; times without an offset are local to
``context.timeZone`` (``UTC+1``, ``UTC+01:00``; UTC when absent) and become UTC.

Field mapping and units. Units are those seed 002 states (kW, kvar, kVA, V, A, kWh, kvarh), unless the
document's ``propertyDefinition`` declares another ``unitOfMeasure`` (``watt``, ``wattHour``,
``kilovolt`` ...), which is converted:

=========================================  ==================  =====================================
source field                               column              meaning
=========================================  ==================  =====================================
PODID                                      meter_id            the POD
ElectricPanelID / TownCode                 panel_id / town     grouping (peer group, energy balance)
start_ts / end_ts                          ts / ts_end         the reading's interval, UTC
Phase{k}Voltage                            v_l{k}_v            V
Line{k}Current                             i_l{k}_a            A
Phase{k}ActivePower                        p_l{k}_kw           kW, mean over the interval
sum of Phase{k}ActivePower                 p_kw                kW (TotalActivePower when no phase)
sum of Phase{k}ReactivePower               q_kvar              kvar (TotalReactivePower when none)
sum of Phase{k}ApparentPower               s_kva               kVA (TotalApparentPower when none)
p_kw / s_kva                               pf                  (mean of Phase{k}PowerFactor when no s)
TotalActiveEnergy                          e_int_kwh           kWh consumed during the interval
                                           (e_kwh with         (a cumulative register instead when
                                           ``energy="register"``)  the export holds one)
TotalReactiveEnergy                        q_int_kvarh         kvarh during the interval
height                                     height_m            m (kept, not used by the features)
=========================================  ==================  =====================================

A record that cannot be a reading (no PODID, an unparseable or reversed interval, a value that is
not a number or is physically impossible) goes to the rejects with file, record and field, like
the other readers (for the nested layout ``line`` is the record's 1-based position in
``values.line``; in JSON Lines it is the text line of the document).

A Parquet or CSV file in canonical columns (``meter_id``, ``ts``, ...) is read with every fleet
column it has (``ts_end``, ``e_int_kwh``, ``p_l1_kw``, ``panel_id``, ``town`` ...), the same way on
both engines. Everything else ``wattwatch ingest`` reads (other layouts through a mapping, JSON/JSONL
records, SQLite) goes through the existing readers and mapping; ``panel_id`` and ``town`` columns of
such files are kept. On Spark,
the nested/flat JSON is read by ``spark.read.json`` and flattened with native columns, Parquet and
CSV in canonical columns natively, and any path Spark understands (``hdfs://``, ``s3a://``, globs)
is handed to Spark untouched; a local file is read by its exact name (glob characters escaped for
Hadoop) and named as given in rejects and errors, as here.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.errors import InputError
from wattwatch.schema import CHANNEL_BY_NAME

# ----------------------------------------------------------------------------------- the layout

PHASES = (1, 2, 3)
ID_FIELDS = {"PODID": "meter_id", "ElectricPanelID": "panel_id", "TownCode": "town"}
TIME_FIELDS = ("start_ts", "end_ts")

# source field -> (column, quantity). Quantity picks the default unit and the unit family.
NUMERIC_FIELDS: dict[str, tuple[str, str]] = {}
for _k in PHASES:
    NUMERIC_FIELDS.update({
        f"Phase{_k}Voltage": (f"v_l{_k}_v", "voltage"),
        f"Line{_k}Current": (f"i_l{_k}_a", "current"),
        f"Phase{_k}ActivePower": (f"p_l{_k}_kw", "power"),
        f"Phase{_k}ReactivePower": (f"q_l{_k}_kvar", "reactive power"),
        f"Phase{_k}ApparentPower": (f"s_l{_k}_kva", "apparent power"),
        f"Phase{_k}PowerFactor": (f"pf_l{_k}", "ratio"),
    })
NUMERIC_FIELDS.update({
    "TotalActivePower": ("p_total_kw", "power"),
    "TotalReactivePower": ("q_total_kvar", "reactive power"),
    "TotalApparentPower": ("s_total_kva", "apparent power"),
    "TotalActiveEnergy": ("e_field_kwh", "energy"),
    "TotalReactiveEnergy": ("q_int_kvarh", "reactive energy"),
    "height": ("height_m", "length"),
})

# SCPS unitOfMeasure names (case-insensitive) -> (quantity, factor to the column's unit).
SCPS_UNITS: dict[str, tuple[str, float]] = {
    "watt": ("power", 1e-3), "kilowatt": ("power", 1.0), "megawatt": ("power", 1e3),
    "var": ("reactive power", 1e-3), "voltamperereactive": ("reactive power", 1e-3),
    "kilovar": ("reactive power", 1.0), "kilovoltamperereactive": ("reactive power", 1.0),
    "voltampere": ("apparent power", 1e-3), "kilovoltampere": ("apparent power", 1.0),
    "watthour": ("energy", 1e-3), "kilowatthour": ("energy", 1.0), "megawatthour": ("energy", 1e3),
    "varhour": ("reactive energy", 1e-3), "voltamperereactivehour": ("reactive energy", 1e-3),
    "kilovarhour": ("reactive energy", 1.0), "kilovoltamperereactivehour": ("reactive energy", 1.0),
    "volt": ("voltage", 1.0), "kilovolt": ("voltage", 1e3),
    "ampere": ("current", 1.0), "milliampere": ("current", 1e-3), "kiloampere": ("current", 1e3),
    "metre": ("length", 1.0), "meter": ("length", 1.0),
    "dimensionless": ("ratio", 1.0), "percent": ("ratio", 0.01),
}

# Unit symbols exports write instead of the SCPS names -> the name. Case-sensitive (``mA`` is milli,
# ``MW`` mega); any case as well where no milli/mega prefix makes the case matter (``KW``, ``kwh``).
UNIT_SYMBOLS: dict[str, str] = {
    "W": "watt", "kW": "kilowatt", "MW": "megawatt", "var": "var", "VAr": "var", "kvar": "kilovar", "kVAr": "kilovar",
    "VA": "voltampere", "kVA": "kilovoltampere", "Wh": "watthour", "kWh": "kilowatthour", "MWh": "megawatthour",
    "varh": "varhour", "VArh": "varhour", "kvarh": "kilovarhour", "kVArh": "kilovarhour", "V": "volt",
    "kV": "kilovolt", "A": "ampere", "mA": "milliampere", "kA": "kiloampere", "m": "metre", "%": "percent",
}
UNIT_SYMBOLS_ANY_CASE = {k.lower(): v for k, v in UNIT_SYMBOLS.items() if k[0] not in "mM"}


def unit_key(unit) -> str:
    """The SCPS_UNITS key of a declared unit: its name (any case, spaces and dashes dropped) or a symbol."""
    raw = str(unit).strip().replace(" ", "").replace("-", "")
    if raw in UNIT_SYMBOLS:
        return UNIT_SYMBOLS[raw]
    return UNIT_SYMBOLS_ANY_CASE.get(raw.lower(), raw.lower())


# Physical ranges for the fleet columns (schema ranges; per-phase ones as their totals).
_RANGE_OF = {"p_l": "p_kw", "q_l": "q_kvar", "s_l": "s_kva", "pf_l": "pf", "p_total": "p_kw", "q_total": "q_kvar",
             "s_total": "s_kva", "e_field": "e_kwh", "v_l": "v_l1_v", "i_l": "i_l1_a"}


def reading_range(col: str, energy: str) -> tuple[float, float]:
    """:func:`column_range` of a reader's column, ``TotalActiveEnergy`` (``e_field_kwh``) as what it is
    read as: an interval's (signed) energy, or a cumulative register with ``energy="register"``."""
    return column_range("e_int_kwh" if col == "e_field_kwh" and energy == "interval" else col)


def column_range(col: str) -> tuple[float, float]:
    """The inclusive physical range of a fleet column (infinite when none)."""
    if col in CHANNEL_BY_NAME:
        ch = CHANNEL_BY_NAME[col]
        return ch.low, ch.high
    if col.startswith(("e_int", "q_int")):
        # An interval's energy is the POD's net energy over it: negative while a prosumer exports,
        # as ``p_kw`` is (only a cumulative register, ``e_kwh``, cannot go below zero); its reactive
        # energy negative while the load is capacitive, as ``q_kvar`` is.
        hi = CHANNEL_BY_NAME["e_kwh"].high
        return -hi, hi
    for prefix, canon in _RANGE_OF.items():
        if col.startswith(prefix):
            ch = CHANNEL_BY_NAME[canon]
            return ch.low, ch.high
    return -np.inf, np.inf


# Columns of the fleet frame, in order; channels a source lacks are NaN.
FLOAT_COLUMNS = ("v_l1_v", "v_l2_v", "v_l3_v", "i_l1_a", "i_l2_a", "i_l3_a", "p_kw", "p_l1_kw", "p_l2_kw", "p_l3_kw",
                 "q_kvar", "s_kva", "pf", "e_kwh", "e_int_kwh", "q_int_kvarh", "height_m")
FLEET_COLUMNS = ("meter_id", "ts", "ts_end", "panel_id", "town") + FLOAT_COLUMNS

_TS_RE = r"^\s*(\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
_TZ_RE = re.compile(r"^\s*(?:UTC|GMT)?\s*(?:([+-])\s*(\d{1,2})(?::?(\d{2}))?)?\s*$", re.IGNORECASE)


def tz_offset_minutes(tz: str | None) -> int:
    """Minutes east of UTC of an SCPS ``timeZone`` (``UTC+1``, ``UTC+01:00``, ``UTC-3``, ``UTC``).

    Raises
    ------
    ValueError
        For anything else (a zone name such as ``Europe/Rome`` is not an SCPS timeZone).
    """
    if tz is None or str(tz).strip() == "":
        return 0
    m = _TZ_RE.match(str(tz))
    if not m:
        raise ValueError(f"timeZone {tz!r} is not UTC±H[:MM]")
    if m.group(1) is None:
        return 0
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    if minutes > 14 * 60:
        raise ValueError(f"timeZone {tz!r} is more than 14 hours from UTC")
    return minutes if m.group(1) == "+" else -minutes


def parse_times(values: pd.Series, offset_min: pd.Series | int) -> pd.Series:
    """Timestamps of ``values`` in UTC: ``YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]]`` (``/`` between date parts
    accepted) with an optional ``Z``/``±HH:MM`` offset; without one the time is local to
    ``offset_min`` minutes east of UTC. Unparseable values are NaT. The Spark reader applies the
    same rule with native functions."""
    s = values.map(lambda x: x if isinstance(x, str) else None).astype("object")
    parts = s.str.extract(_TS_RE)
    base = parts[0].str.replace("/", "-", regex=False).str.replace("T", " ", regex=False)
    ts = pd.to_datetime(base, format="ISO8601", errors="coerce", utc=True)
    off = parts[1]
    explicit = off.notna()
    off = off.fillna("")
    sign = np.where(off.str[:1] == "-", -1, 1)
    digits = off.str.replace(":", "", regex=False).str.lstrip("+-")
    hh = pd.to_numeric(digits.str[:2], errors="coerce").fillna(0).to_numpy()
    mm = pd.to_numeric(digits.str[2:4], errors="coerce").fillna(0).to_numpy()
    own = pd.Series(np.where((off == "Z").to_numpy(), 0, sign * (hh * 60 + mm)), index=s.index)
    if not isinstance(offset_min, pd.Series):
        offset_min = pd.Series(offset_min, index=s.index)
    minutes = own.where(explicit.to_numpy(), offset_min).astype("float64")
    return (ts - pd.to_timedelta(minutes, unit="min")).astype("datetime64[us, UTC]")


def unit_factor(unit: str | None, quantity: str, where: str) -> float:
    """The factor taking a value declared in SCPS ``unit`` to the column of ``quantity``.

    Raises
    ------
    InputError
        An unknown unit, or a unit of another quantity (a power declared in volts).
    """
    if unit is None or str(unit).strip() == "":
        return 1.0
    key = unit_key(unit)
    if key not in SCPS_UNITS:
        if quantity == "ratio" and key in ("", "none"):
            return 1.0
        raise InputError(f"{where}: unknown unitOfMeasure {unit!r}")
    q, f = SCPS_UNITS[key]
    if q != quantity and not (quantity == "ratio" and q == "ratio"):
        raise InputError(f"{where}: unitOfMeasure {unit!r} is a unit of {q}, not of {quantity}")
    return f


# ------------------------------------------------------------------------------------ the result


@dataclass
class FleetInput:
    """What the readers made of the input: the fleet frame, rejected records and notes."""

    frame: pd.DataFrame
    rejects: list[tuple] = field(default_factory=list)  # (file, line, field, reason)
    notes: list[str] = field(default_factory=list)
    unread: list[tuple] = field(default_factory=list)  # (file, columns not read): see unread_notes


def empty_fleet_frame() -> pd.DataFrame:
    data = {"meter_id": pd.Series([], dtype="string"), "ts": pd.Series([], dtype="datetime64[us, UTC]"),
            "ts_end": pd.Series([], dtype="datetime64[us, UTC]"), "panel_id": pd.Series([], dtype="string"),
            "town": pd.Series([], dtype="string")}
    data.update({c: pd.Series([], dtype="float64") for c in FLOAT_COLUMNS})
    return pd.DataFrame(data)


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every fleet column, in order and with its dtype (missing ones NaN/NA)."""
    out = pd.DataFrame(index=frame.index)
    out["meter_id"] = frame["meter_id"].astype("string")
    for c in ("ts", "ts_end"):
        if c in frame.columns:
            v = frame[c]
            v = v if isinstance(v.dtype, pd.DatetimeTZDtype) else pd.to_datetime(v, utc=True)
            out[c] = v.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        else:
            out[c] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    for c in ("panel_id", "town"):
        out[c] = frame[c].astype("string") if c in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="string")
    for c in FLOAT_COLUMNS:
        out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64") if c in frame.columns else np.nan
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------ nested JSON (pandas)


def is_fleet_json(path: Path) -> bool:
    """Whether a .json/.jsonl file is in the nested SCPS or flat PODID layout (peeks at 64 KB)."""
    name = path.name.lower()
    if not name.endswith((".json", ".jsonl", ".ndjson")):
        return False
    with open(path, "rb") as fh:
        head = fh.read(65536)
    return b'"UrbanDataset"' in head or b'"PODID"' in head


def _documents(path: Path) -> list[tuple[int, object]]:
    """``(line, document)`` pairs: one per line for JSON Lines, else the file's one document."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if path.name.lower().endswith((".jsonl", ".ndjson")):
        docs = []
        for i, line in enumerate(raw.splitlines(), start=1):
            if line.strip():
                try:
                    docs.append((i, json.loads(line)))
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                    docs.append((i, exc))
        return docs
    try:
        return [(0, json.loads(raw))]
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except (UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{path}: not readable JSON: {exc}".splitlines()[0]) from exc


def _long_from_urban(doc: dict, where: str) -> tuple[pd.DataFrame, dict[str, float], int]:
    """One UrbanDataset as long rows (rec, name, val) plus the record's times; units; tz offset."""
    ud = doc["UrbanDataset"]
    if not isinstance(ud, dict):
        raise InputError(f"{where}: UrbanDataset is not an object")
    spec = ud.get("specification") or {}
    defs = ((spec.get("properties") or {}).get("propertyDefinition") or []) if isinstance(spec, dict) else []
    factors = {}
    for d in defs if isinstance(defs, list) else []:
        if isinstance(d, dict) and d.get("propertyName") in NUMERIC_FIELDS:
            name = d["propertyName"]
            factors[name] = unit_factor(d.get("unitOfMeasure"), NUMERIC_FIELDS[name][1], f"{where}: {name}")
    ctx = ud.get("context") or {}
    try:
        offset = tz_offset_minutes(ctx.get("timeZone") if isinstance(ctx, dict) else None)
    except ValueError as exc:
        raise InputError(f"{where}: context.{exc}") from exc
    lines = ((ud.get("values") or {}).get("line")) or []
    if not isinstance(lines, list):
        raise InputError(f"{where}: values.line is not a list")
    recs, names, vals = [], [], []
    starts, ends, heights = [], [], []
    for i, ln in enumerate(lines):
        ln = ln if isinstance(ln, dict) else {}
        per = ln.get("period") if isinstance(ln.get("period"), dict) else {}
        starts.append(per.get("start_ts"))
        ends.append(per.get("end_ts"))
        coords = ln.get("coordinates") if isinstance(ln.get("coordinates"), dict) else {}
        heights.append(coords.get("height"))
        props = ln.get("property") if isinstance(ln.get("property"), list) else []
        for p in props:
            if isinstance(p, dict) and "name" in p:
                recs.append(i)
                names.append(p["name"])
                vals.append(p.get("val"))
    n = len(lines)
    long = pd.DataFrame({"rec": np.asarray(recs, dtype=np.int64), "name": pd.Series(names, dtype="object"),
                         "val": pd.Series(vals, dtype="object")})
    wide = long.drop_duplicates(["rec", "name"], keep="last").pivot(index="rec", columns="name", values="val")
    wide = wide.reindex(np.arange(n))
    wide["start_ts"] = pd.Series(starts, dtype="object")
    wide["end_ts"] = pd.Series(ends, dtype="object")
    if "height" not in wide.columns:
        wide["height"] = pd.Series(heights, dtype="object")
    wide["_record"] = np.arange(1, n + 1)
    return wide.reset_index(drop=True), factors, offset


def read_fleet_json(path: str | Path, energy: str = "interval") -> FleetInput:
    """Read one nested (UrbanDataset) or flat PODID JSON/JSONL file into the fleet frame.

    Parameters
    ----------
    path
        A ``.json`` (one document, or an array of documents/records) or ``.jsonl`` file.
    energy
        ``"interval"`` (default, what seed 002 states): ``TotalActiveEnergy`` is the energy of the
        record's interval -> ``e_int_kwh``; ``"register"``: a cumulative register -> ``e_kwh``.
    """
    path = Path(path)
    if energy not in ("interval", "register"):
        raise InputError(f"energy must be 'interval' or 'register', not {energy!r}")
    parts: list[pd.DataFrame] = []
    for line, doc in _documents(path):
        where = f"{path}" + (f" line {line}" if line else "")
        if isinstance(doc, Exception):
            parts.append(pd.DataFrame({"_record": [line], "_line": [line], "_bad": [f"not valid JSON: {doc}"]}))
            continue
        docs = doc if isinstance(doc, list) else [doc]
        flat = [d for d in docs if isinstance(d, dict) and "UrbanDataset" not in d]
        for d in docs:
            if isinstance(d, dict) and "UrbanDataset" in d:
                wide, factors, offset = _long_from_urban(d, where)
                wide = _convert(wide, factors)
                wide["_offset"] = offset
                wide["_line"] = line if line else wide["_record"]
                parts.append(wide)
        if flat:
            wide = pd.DataFrame.from_records(flat)
            wide["_record"] = np.arange(1, len(flat) + 1)
            wide["_line"] = line if line else wide["_record"]
            wide["_offset"] = 0
            for c in list(wide.columns):
                if c in NUMERIC_FIELDS or c in ID_FIELDS or c in TIME_FIELDS:
                    wide[c] = wide[c].astype("object")
            parts.append(wide)
        if not isinstance(doc, (list, dict)):
            raise InputError(f"{path}: JSON that is not records (top level is {type(doc).__name__})")
    if not parts:
        raise InputError(f"{path}: JSON holds no records")
    raw = pd.concat(parts, ignore_index=True, sort=False)
    return _flatten(raw, str(path), energy)


def _convert(wide: pd.DataFrame, factors: dict[str, float]) -> pd.DataFrame:
    """Numeric fields as floats in the column units (non-numbers kept as the original object for
    the reject check); ``factors`` from the document's propertyDefinition."""
    for name, f in factors.items():
        if name in wide.columns and f != 1.0:
            num = pd.to_numeric(wide[name], errors="coerce")
            wide[name] = wide[name].where(num.isna(), num * f)
    return wide


class _Flags:
    """Why each row is rejected and which field says so: the first reason a row gets stands."""

    def __init__(self, index: pd.Index):
        self.index = index
        self.reason = pd.Series(pd.NA, index=index, dtype="string")
        self.field = pd.Series(pd.NA, index=index, dtype="string")

    def flag(self, mask, name, why) -> None:
        mask = pd.Series(mask, index=self.index).fillna(False).astype(bool) & self.reason.isna()
        self.reason[mask] = why
        self.field[mask] = name


def _flatten(raw: pd.DataFrame, file: str, energy: str) -> FleetInput:
    """Raw wide records (source field names, values as parsed) -> fleet frame + rejects."""
    n = len(raw)
    flags = _Flags(raw.index)
    reason, fld, flag = flags.reason, flags.field, flags.flag

    if "_bad" in raw.columns:
        flag(raw["_bad"].notna(), "", raw["_bad"].astype("string"))
    out = pd.DataFrame(index=raw.index)
    for src, col in ID_FIELDS.items():
        v = raw[src] if src in raw.columns else pd.Series(None, index=raw.index, dtype="object")
        bad_type = pd.Series([isinstance(x, (dict, list)) for x in v], index=v.index, dtype=bool)
        s = v.where(~bad_type).astype("string").str.strip()
        s = s.mask(s == "")
        out[col] = s
        if src == "PODID":
            flag(s.isna(), "PODID", "no POD id")
    offset = raw["_offset"] if "_offset" in raw.columns else 0
    for src, col in (("start_ts", "ts"), ("end_ts", "ts_end")):
        v = raw[src] if src in raw.columns else pd.Series(None, index=raw.index, dtype="object")
        t = parse_times(v, offset)
        if src == "start_ts":
            flag(t.isna(), src, "missing or unreadable start_ts")
        else:
            flag(v.notna() & t.isna(), src, "unreadable end_ts")
        out[col] = t
    flag(out["ts_end"].notna() & (out["ts_end"] <= out["ts"]), "end_ts", "end_ts not after start_ts")
    nums: dict[str, pd.Series] = {}
    for src, (col, _) in NUMERIC_FIELDS.items():
        if src not in raw.columns:
            continue
        v = raw[src]
        num = pd.to_numeric(v.map(_number, na_action="ignore"), errors="coerce").astype("float64")
        flag(v.notna() & num.isna(), src, "not a number")
        lo, hi = reading_range(col, energy)
        flag(num.notna() & ((num < lo) | (num > hi) | ~np.isfinite(num)), src, f"outside the physical range [{lo:g}, {hi:g}]")
        nums[col] = num
    f = pd.DataFrame(nums, index=raw.index)
    for c in ("v_l1_v", "v_l2_v", "v_l3_v", "i_l1_a", "i_l2_a", "i_l3_a", "p_l1_kw", "p_l2_kw", "p_l3_kw",
              "q_int_kvarh", "height_m"):
        out[c] = f[c] if c in f.columns else np.nan
    out["p_kw"] = _phase_sum(f, "p", "kw", "p_total_kw")
    out["q_kvar"] = _phase_sum(f, "q", "kvar", "q_total_kvar")
    out["s_kva"] = _phase_sum(f, "s", "kva", "s_total_kva")
    pf_phase = f[[c for c in ("pf_l1", "pf_l2", "pf_l3") if c in f.columns]].mean(axis=1) if any(
        c in f.columns for c in ("pf_l1", "pf_l2", "pf_l3")) else pd.Series(np.nan, index=raw.index)
    ratio = out["p_kw"] / out["s_kva"].where(out["s_kva"] > 0)
    out["pf"] = ratio.where(ratio.notna(), pf_phase).clip(-1.0, 1.0)
    e = f["e_field_kwh"] if "e_field_kwh" in f.columns else pd.Series(np.nan, index=raw.index)
    out["e_int_kwh"] = e if energy == "interval" else np.nan
    out["e_kwh"] = e if energy == "register" else np.nan
    bad = reason.notna()
    lines = raw["_line"] if "_line" in raw.columns else pd.Series(np.arange(1, n + 1), index=raw.index)
    rejects = list(zip([file] * int(bad.sum()), lines[bad].astype("int64").tolist(), fld[bad].fillna("").tolist(),
                       reason[bad].tolist()))
    return FleetInput(conform(out[~bad]), rejects)


def _number(x):
    """A JSON value as a number when it is one (a string holding a number counts); else NaN marker."""
    if isinstance(x, bool) or isinstance(x, (dict, list)):
        return "x"
    if isinstance(x, str):
        x = x.strip()
        return np.nan if x == "" else x
    return x


def _phase_sum(f: pd.DataFrame, q: str, unit: str, total: str) -> pd.Series:
    """Sum of the phases present (a single-phase POD has one); the total field when no phase is."""
    cols = [f"{q}_l{k}_{unit}" for k in PHASES if f"{q}_l{k}_{unit}" in f.columns]
    s = f[cols].sum(axis=1, min_count=1) if cols else pd.Series(np.nan, index=f.index)
    if total in f.columns:
        s = s.where(s.notna(), f[total])
    return s


# ---------------------------------------------------------------------------------- any input (pandas)


def read_fleet(paths: Sequence[str | Path] | str | Path, *, mapping=None, energy: str = "interval",
               on_file=None) -> FleetInput:
    """Read every input into one fleet frame (pandas engine).

    Nested/flat PODID JSON goes through :func:`read_fleet_json`; any other file through the
    ``wattwatch ingest`` readers and ``mapping`` (its rejects kept), with ``panel_id``/``town``
    columns of the file kept per meter. A folder is read file by file.

    Raises
    ------
    InputError
        A path that does not exist or cannot be read at all (the message names it).
    """
    from wattwatch import api

    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: list[Path] = []
    for p in items:
        p = Path(p)
        if p.is_dir():
            inside = sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
            if not inside:
                raise InputError(f"{p}: no files in this folder")
            files.extend(inside)
        elif p.exists():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file")
    frames, rejects, notes, unread = [], [], [], []
    for p in files:
        if is_fleet_json(p):
            got = read_fleet_json(p, energy=energy)
        elif mapping is None and _canonical_columns(p):
            got = read_canonical(p)
        else:
            got = _read_ingestable(p, mapping, api)
        frames.append(got.frame)
        rejects.extend(got.rejects)
        notes.extend(got.notes)
        unread.extend(got.unread)
        if on_file:
            on_file(p, len(got.frame))
    frame = pd.concat(frames, ignore_index=True) if frames else empty_fleet_frame()
    notes = unread_notes(unread) + notes
    return FleetInput(conform(frame) if len(frame) else empty_fleet_frame(), rejects, notes)


def _canonical_columns(p: Path) -> bool:
    """Whether a Parquet/CSV file is in canonical columns (``meter_id`` and ``ts``)."""
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            cols = pq.read_schema(p).names
        elif name.endswith((".csv", ".csv.gz")):
            head = _csv_header_bytes(p)
            if head is None:
                return False
            cols = list(pd.read_csv(io.BytesIO(head), nrows=0).columns)
        else:
            return False
    except Exception:  # noqa: BLE001 - unreadable here: the ingest readers say why
        return False
    return "meter_id" in cols and "ts" in cols


def _csv_header_bytes(p: Path, cap: int = 1 << 20) -> bytes | None:
    """The first bytes of a CSV file (a ``.gz`` decompressed) through its header record: the first line end
    after a non-blank byte with the quotes before it even; None past ``cap`` bytes (a header quote never
    closed). rev60: ``pd.read_csv(p, nrows=0)`` read a file whose header opens a quote whole (the driver's
    memory on the Spark engine) and also parsed the first data record, taking a good header for a bad one
    when that record's quote never closes."""
    import gzip

    buf = b""
    with (gzip.open(p, "rb") if p.name.lower().endswith(".gz") else open(p, "rb")) as fh:
        while len(buf) < cap and (chunk := fh.read(1 << 16)):
            buf += chunk
            b = np.frombuffer(buf, dtype=np.uint8)
            ink = np.flatnonzero(~np.isin(b, np.frombuffer(b" \t\r\n\x0b\x0c", dtype=np.uint8)))
            if not len(ink):
                continue
            ends = np.flatnonzero(((b == 10) | (b == 13)) & (np.cumsum(b == 34) % 2 == 0))
            ends = ends[ends > ink[0]]
            if len(ends):
                return buf[: int(ends[0]) + 1]
    return buf if len(buf) < cap and buf.strip() else None


def unread_columns(columns) -> list[str]:
    """The columns of a canonical file that the fleet does not read."""
    return [str(c) for c in columns if c not in FLEET_COLUMNS and c not in CHANNEL_BY_NAME]


def unread_notes(pairs) -> list[str]:
    """One note per set of unread columns, naming its files as given (in the order read, the first
    three and how many more): the same text on both engines. ``pairs``: (file, columns not read)."""
    groups: dict[tuple, list[str]] = {}
    for name, cols in pairs:
        if cols:
            files = groups.setdefault(tuple(cols), [])
            if str(name) not in files:
                files.append(str(name))
    out = []
    for cols, files in groups.items():
        where = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        out.append(unread_columns_note(where, cols))
    return out


def unread_columns_note(where: str, columns) -> str | None:
    """A note naming the columns of a canonical file that the fleet does not read (a power under
    another name, ``Power_W`` for ``p_kw``, would otherwise vanish without a word); None when none."""
    unknown = [str(c) for c in columns if c not in FLEET_COLUMNS and c not in CHANNEL_BY_NAME]
    if not unknown:
        return None
    shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
    return (f"{where}: column(s) not read: {shown} (the fleet reads {', '.join(FLEET_COLUMNS)}; values in kW, "
            "kvar, kWh; --mapping reads other names on the local engine)")


def _file_bytes(p: Path) -> bytes:
    if p.name.lower().endswith(".gz"):
        import gzip

        with gzip.open(p, "rb") as fh:
            return fh.read()
    return p.read_bytes()


def csv_record_lines(data: bytes) -> np.ndarray:
    """The line (1-based) each data record of a CSV text starts on, as pandas reads it: records end at
    a line end outside double quotes (a quoted field may span lines; a doubled quote inside one keeps
    the parity), lines blank or of whitespace only are skipped, the first record left is the header.
    Line ends are ``\n``, ``\r\n`` and a lone ``\r``. Vectorised over the bytes."""
    b = np.frombuffer(data, dtype=np.uint8)
    if not len(b):
        return np.zeros(0, dtype=np.int64)
    nxt = np.append(b[1:], np.uint8(0))
    ends = (b == 10) | ((b == 13) & (nxt != 10))
    line_of = np.cumsum(ends) - ends + 1  # the line each byte is on
    rec_end = ends & (np.cumsum(b == 34) % 2 == 0)
    seg = np.cumsum(rec_end) - rec_end  # the record each byte belongs to (its end byte included)
    ink = ~np.isin(b, np.frombuffer(b" \t\r\n\x0b\x0c", dtype=np.uint8))
    nonblank = np.bincount(seg, weights=ink, minlength=int(seg[-1]) + 1) > 0
    first_byte = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    starts = line_of[first_byte][nonblank[seg[first_byte]]]
    return starts[1:].astype(np.int64)


def _parser_error(p: Path, exc: Exception) -> str:
    """pandas' CSV parser error as the Spark engine words it: a quoted field never closed names the
    line its record starts on (the last record start of :func:`csv_record_lines`' scan)."""
    if "EOF inside string" not in str(exc):
        return str(exc).strip().splitlines()[0]
    data = _file_bytes(p)
    b = np.frombuffer(data, dtype=np.uint8)
    if not len(b) or int((b == 34).sum()) % 2 == 0:  # the scan does not see it open: no line
        return "a quoted field never closed"
    nxt = np.append(b[1:], np.uint8(0))
    ends = (b == 10) | ((b == 13) & (nxt != 10))
    closed_ends = np.flatnonzero(ends & (np.cumsum(b == 34) % 2 == 0))
    # the open record starts after the last record end outside quotes (blank lines before it skipped)
    start = int(closed_ends[-1]) + 1 if len(closed_ends) else 0
    ink = np.flatnonzero(~np.isin(b[start:], np.frombuffer(b" \t\r\n\x0b\x0c", dtype=np.uint8)))
    first = start + (int(ink[0]) if len(ink) else 0)
    line = int(ends[:first].sum()) + 1
    return f"a quoted field never closed (the record from line {line} runs to the end of the file)"


def read_canonical(p: Path) -> FleetInput:
    """A Parquet/CSV file in canonical columns with every fleet column it has (``ts_end``,
    ``e_int_kwh``, ``p_l1_kw`` ..., ``panel_id``, ``town``), the way the Spark engine reads it:
    rows without a meter id or a readable ``ts``, with a ``ts_end`` not after ``ts``, or with a value that
    is not a number or is outside its physical range (infinite included) are rejected (line: the row's
    position in a Parquet file, the line the record starts on in a CSV file); a blank or ``NaN`` value is missing, the reading kept."""
    name = p.name.lower()
    if name.endswith((".parquet", ".pq")):
        raw = pd.read_parquet(p)
        first = 1
    else:
        import warnings

        # index_col=False: a row with a field more than the header keeps its columns (pandas would
        # otherwise take the first column as the index and shift every column), the extra field
        # dropped as Spark's reader drops it (pandas warns of it: said here instead).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            try:
                raw = pd.read_csv(p, dtype=str, keep_default_na=False, index_col=False)
            except pd.errors.ParserError as exc:  # "EOF inside string": a quoted field never closed
                raise InputError(f"{p}: {_parser_error(p, exc)}") from exc
        first = 2
    n = len(raw)
    out = pd.DataFrame(index=raw.index)
    mid = raw["meter_id"].astype("string")
    out["meter_id"] = mid.mask(mid.str.strip() == "")
    for c in ("ts", "ts_end"):
        if c not in raw.columns:
            continue
        v = raw[c]
        if isinstance(v.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(v):
            t = pd.to_datetime(v, utc=True)
        else:
            t = parse_times(v.mask(v.astype("string") == ""), 0)
        out[c] = t.astype("datetime64[us, UTC]")
    for c in ("panel_id", "town"):
        if c in raw.columns:
            g = raw[c].astype("string")
            out[c] = g.mask(g == "")
    flags = _Flags(raw.index)
    reason, fld, flag = flags.reason, flags.field, flags.flag

    flag(out["meter_id"].isna(), "meter_id", "no meter id")
    flag(out["ts"].isna(), "ts", "missing or unreadable timestamp")
    if "ts_end" in out.columns:
        flag(out["ts_end"].notna() & (out["ts_end"] <= out["ts"]), "ts_end", "ts_end not after ts")
    for c in FLOAT_COLUMNS:
        if c in raw.columns:
            v = raw[c]
            text = v.astype("string").str.strip()
            given = v.notna() & (text != "")
            num = pd.to_numeric(v.mask(~given), errors="coerce").astype("float64")
            # A blank or NaN is a missing value (the rest of the reading is kept); anything else that
            # is not a number is a reject, as in the JSON reader, and so is an infinite value.
            flag(given & num.isna() & (text.str.lower() != "nan"), c, "not a number")
            lo, hi = column_range(c)
            flag(num.notna() & ((num < lo) | (num > hi) | ~np.isfinite(num)), c,
                 f"outside the physical range [{lo:g}, {hi:g}]")
            out[c] = num
    bad = reason.notna().to_numpy()
    lines = np.arange(first, first + n)
    if first == 2 and bad.any():
        starts = csv_record_lines(_file_bytes(p))
        if len(starts) == n:  # else a quoting the scan does not follow (a quote inside a bare field): rows
            lines = starts
    rejects = list(zip([str(p)] * int(bad.sum()), lines[bad].tolist(), fld[bad].tolist(), reason[bad].tolist()))
    return FleetInput(conform(out[~bad]), rejects, [], [(str(p), unread_columns(raw.columns))])


def _read_ingestable(p: Path, mapping, api) -> FleetInput:
    """A file ``wattwatch ingest`` reads, through an in-memory store (same checks and rejects)."""
    import tempfile

    from wattwatch.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        rej = Path(tmp) / "rejects.csv"
        store = Store(":memory:")
        try:
            api.ingest(p, store, mapping=mapping, rejects=rej)
            frame = store.query()
        finally:
            store.close()
        rejects = []
        if rej.exists():
            r = pd.read_csv(rej, dtype=str, keep_default_na=False)
            rejects = list(r.itertuples(index=False, name=None))
    frame = frame.rename(columns={"e_kwh": "e_kwh"})
    groups = _groups_of(p)
    if groups is not None and len(frame):
        frame = frame.drop(columns=[c for c in ("panel_id", "town") if c in frame.columns])
        frame = frame.merge(groups, on="meter_id", how="left")
    return FleetInput(conform(frame), rejects)


def _groups_of(p: Path) -> pd.DataFrame | None:
    """``meter_id -> panel_id, town`` from a CSV/Parquet file's own columns (first value per meter)."""
    import duckdb

    name = p.name.lower()
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        cols = pq.read_schema(p).names
        src = "read_parquet(?)"
    elif name.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
        cols = list(pd.read_csv(p, nrows=0, sep=None, engine="python").columns)
        src = "read_csv(?, all_varchar=true)"
    else:
        return None
    id_col = next((c for c in ("meter_id", "pod_id", "PODID") if c in cols), None)
    have = [c for c in ("panel_id", "town") if c in cols]
    if id_col is None or not have:
        return None
    sel = ", ".join(f'min(CAST("{c}" AS VARCHAR)) AS {c}' for c in have)
    with duckdb.connect() as con:
        g = con.execute(f'SELECT CAST("{id_col}" AS VARCHAR) AS meter_id, {sel} FROM {src} GROUP BY 1', [str(p)]).df()
    return g.astype({c: "string" for c in g.columns})


def write_rejects(path: str | Path, rejects: list[tuple]) -> int:
    """Append rejects (file, line, field, reason) to the rejects CSV with this run's ``run`` column, as
    ``ingest`` does ((adv2) both default to ``wattwatch-rejects.csv``: a ``fleet`` run rewrote what an
    ingest had kept); nothing is created when there are none."""
    if not rejects:
        return 0
    from wattwatch.ingest.pipeline import RejectsWriter

    writer = RejectsWriter(path)
    try:
        writer.write(rejects)
    finally:
        writer.close()
    return len(rejects)


__all__ = ["FleetInput", "FLEET_COLUMNS", "FLOAT_COLUMNS", "read_fleet", "read_fleet_json", "write_rejects",
           "parse_times", "tz_offset_minutes", "conform", "empty_fleet_frame", "is_fleet_json"]
