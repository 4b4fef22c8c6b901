"""Map source columns onto the canonical schema.

A source column is matched by its full (dotted, for nested records) name or by its leaf name,
compared after lower-casing and dropping everything that is not a letter or digit, so that
``Phase1Voltage``, ``phase_1_voltage`` and ``measurements.Phase1Voltage`` all match. Users add or
override entries with a TOML file::

    [columns]                 # canonical = source column, or a list of columns to add up
    meter_id = "Device"
    ts = "Time"
    p_kw = ["P_L1", "P_L2", "P_L3"]

    [scale]                   # multiply after reading (W -> kW)
    p_kw = 0.001

    [defaults]                # constant for a column the source does not have
    meter_id = "UPS-1"

    [extra]                   # extra channels (numbers beyond the canonical schema): name = source
    ups_battery_pct = "BatteryCapacity"
    ups_mode_1 = "UPSMode"
    pdu_outlets_a = ["Outlet1Current", "Outlet2Current"]

    [units]                   # the unit a source column is in; converted to the channel's unit
    p_kw = "MW"               # W kW MW GW, var kvar Mvar, VA kVA MVA, Wh kWh MWh GWh, mA A kA,
    temp_c = "degF"           # mV V kV, degC/°C, degF/°F (offset too), K

    [ranges]                  # plausible [low, high] per channel in its canonical unit (outside: a reject)
    p_kw = [-5e6, 5e6]        # default: schema.py, grown by the unit's factor (a MW source: ±1e9 kW)

    [wide]                    # one column per meter (SCADA/AMI export), melted to one row per cell
    meter_columns = "*"       # every column but the time column and `ignore`, or a list of names
    ts = "Datetime"           # default: [columns] ts, else the built-in aliases
    channel = "p_kw"          # what the cells are (canonical or extra channel; default p_kw)
    unit = "MW"               # as [units] for the channel
    meter_prefix = "grid-"    # meter id = prefix + column name ...
    ignore = ["Comment"]
    [wide.meters]             # ... or given per column
    REGION_01 = "north"

    [wide]                    # several channels per meter (m1_P, m1_V, m2_P, m2_V, ...)
    ts = "time"
    meter_columns = "*"       # every column but ts and `ignore` must match a pattern; or a list of meters
    [wide.channels]           # channel = source column pattern; {meter} is the meter's part of the name
    p_kw = "{meter}_P"
    v_l1_v = "{meter}_V"
    [units]                   # units per channel, as for any source
    p_kw = "W"

    [options]
    timezone = "Europe/Rome"  # for timestamps that carry no offset (default UTC)
    ts_format = "%d/%m/%Y %H:%M:%S"
    epoch_unit = "auto"       # s | ms | us | ns | auto
    ts_min = "1990-01-01"     # plausible times (UTC unless an offset is given); earlier is a reject
    ts_max = "2040-01-01"     # default: the time of the ingest plus one day
    delimiter = ";"           # CSV; sniffed from the header when absent
    decimal = ","             # CSV decimal separator
    builtin_aliases = true

Times: a reading before ``ts_min`` (default 1990-01-01) or after ``ts_max`` (default: the time of
the ingest plus one day) is a reject naming its line and ``ts``. With a ``timezone`` other than
UTC, times without an offset are wall-clock times there: one that does not exist (skipped when
clocks go forward) is a reject, never shifted; one that exists twice (clocks go back) is placed by
the order of the meter's rows (its first pass through the repeated hour is summer time, a return
to an earlier wall-clock time inside it is the second pass, standard time), and is a reject when
the meter already reported a time after the repeated hour (not in time order). Times with an
offset or epochs are instants and need none of this.

A blank cell of a wide export is no reading (not an empty row); a rejected cell names its source
line and its column (the meter). A row with no channel value at all (only a meter and a time) is a
reject ("no channel value"); a mapping under which no column maps to a channel is an error before
anything is stored ("maps no channel"). ``[scale]`` multiplies before the unit conversion.

Several channels per meter (``[wide.channels]``): each source column matches one pattern, which
gives its channel and its meter (the part of the name ``{meter}`` stands for; ``[wide.meters]``
renames that part, ``meter_prefix`` is prepended). A line gives one reading per meter with every
channel of that meter; a meter's blank cells are absent channels, all of them blank is no
reading; a bad cell is a reject naming the line, the meter and the channel. With
``meter_columns = "*"`` a column that matches no pattern is an error listing the patterns and the
columns that do match (``ignore`` it if it is not a reading); with a list of meters, a meter
without any column is an error naming the closest columns. ``unit`` is for one channel only;
several channels take ``[units]``.

Extra channel names are user-declared: a lower-case identifier ending in a unit suffix
(:func:`wattwatch.schema.extra_channel_error` says what is allowed). ``[scale]`` applies to extras
as to canonical columns; a ``[defaults]`` entry with an extra channel name not in ``[extra]`` makes
a constant extra channel. Extras go through the same parsing and checks as canonical channels, except
that only infinities are out of range.
"""

from __future__ import annotations

import difflib
import math
import re
from wattwatch.tomlfile import did_you_mean, read_toml
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from wattwatch.schema import CHANNEL_BY_NAME, COLUMNS, KEY_COLUMNS, extra_channel_error, unit_conversion

# Ordered: the first alias present in a source wins (PODID beats ElectricPanelID, a total beats
# the sum of per-phase values).
BUILTIN_ALIASES: dict[str, tuple[str, ...]] = {
    "meter_id": ("meter_id", "meterid", "podid", "pod_id", "pod", "meter", "device_id", "deviceid",
                 "device", "sensor_id", "serial", "serial_number"),
    "ts": ("ts", "timestamp", "time", "datetime", "date_time", "start_ts", "starttime", "start_time",
           "measured_at", "time_utc", "timestamp_utc", "_time"),
    "v_l1_v": ("v_l1_v", "v_l1", "v1", "u1", "ua", "van", "voltage_l1", "voltage1", "voltage_a",
               "phase1voltage", "phase_a_voltage", "voltage"),
    "v_l2_v": ("v_l2_v", "v_l2", "v2", "u2", "ub", "vbn", "voltage_l2", "voltage2", "voltage_b",
               "phase2voltage", "phase_b_voltage"),
    "v_l3_v": ("v_l3_v", "v_l3", "v3", "u3", "uc", "vcn", "voltage_l3", "voltage3", "voltage_c",
               "phase3voltage", "phase_c_voltage"),
    "i_l1_a": ("i_l1_a", "i_l1", "i1", "ia", "current_l1", "current1", "current_a", "line1current",
               "phase1current", "phase_a_current", "current"),
    "i_l2_a": ("i_l2_a", "i_l2", "i2", "ib", "current_l2", "current2", "current_b", "line2current",
               "phase2current", "phase_b_current"),
    "i_l3_a": ("i_l3_a", "i_l3", "i3", "ic", "current_l3", "current3", "current_c", "line3current",
               "phase3current", "phase_c_current"),
    "i_n_a": ("i_n_a", "i_n", "in_a", "neutral_current", "current_n", "neutralcurrent", "lineneutralcurrent",
              "linencurrent"),
    "p_kw": ("p_kw", "totalactivepower", "active_power_kw", "activepower", "active_power", "power_kw", "kw"),
    "q_kvar": ("q_kvar", "totalreactivepower", "reactive_power_kvar", "reactivepower", "reactive_power", "kvar"),
    "s_kva": ("s_kva", "totalapparentpower", "apparent_power_kva", "apparentpower", "apparent_power", "kva"),
    "pf": ("pf", "totalpowerfactor", "powerfactor", "power_factor", "cosphi", "cos_phi"),
    "e_kwh": ("e_kwh", "totalactiveenergy", "active_energy_kwh", "activeenergy", "active_energy",
              "energy_kwh", "import_kwh", "kwh"),
    "temp_c": ("temp_c", "temperature_c", "temperature", "temp", "enclosure_temperature"),
    "thd_i_pct": ("thd_i_pct", "thd_i", "thdi", "current_thd", "thd_current", "thd"),
}

# When a source has no total, the total is the sum of its per-phase columns (all of them present).
BUILTIN_PHASE_SUMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "p_kw": (("phase1activepower", "phase2activepower", "phase3activepower"), ("phase1activepower",)),
    "q_kvar": (("phase1reactivepower", "phase2reactivepower", "phase3reactivepower"), ("phase1reactivepower",)),
    "s_kva": (("phase1apparentpower", "phase2apparentpower", "phase3apparentpower"), ("phase1apparentpower",)),
}

_OPTION_KEYS = {"timezone", "ts_format", "epoch_unit", "delimiter", "decimal", "builtin_aliases", "tables",
                "ts_min", "ts_max"}
EPOCH_UNITS = ("s", "ms", "us", "ns", "auto")
# Plausible times: a reading before ts_min or after ts_max is a reject (a clock reset to 1970, an
# epoch in nanoseconds read as microseconds lands in year 56985). ts_max defaults to the time of
# the ingest plus one day (clocks run a little fast; nothing is measured in the future).
DEFAULT_TS_MIN = "1990-01-01T00:00:00Z"
DEFAULT_TS_MAX_AHEAD = timedelta(days=1)


def norm_name(name: str) -> str:
    """Lower-case and keep only letters and digits: the key used for alias matching."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


class MappingError(ValueError):
    """A mapping file or a source's columns cannot be mapped onto the schema."""


def _source_names(value: Any, where: str) -> str | tuple[str, ...]:
    """A source column name, or a tuple of names to add up (a list becomes a tuple)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise MappingError(f"{where}: source must be a column name or a list of column names, not {value!r}")


def _instant(value: Any, key: str) -> datetime | None:
    """A UTC datetime from an ISO-8601 string or a datetime (naive = UTC); None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            dt = None
    else:
        dt = None
    if dt is None:
        raise MappingError(f"[options] {key} must be an ISO-8601 time such as \"1990-01-01\", not {value!r}")
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _number(value: Any, where: str) -> float:
    try:
        x = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:
        x = math.nan
    if not math.isfinite(x):
        raise MappingError(f"{where}: must be a finite number, not {value!r}")
    return x


@dataclass(frozen=True)
class Wide:
    """A wide export: one time column, one column per meter holding one channel.

    Parameters
    ----------
    meter_columns : "*" or tuple of str
        The meter columns; ``"*"`` is every column but the time column and ``ignore``.
    channel : str
        Canonical or extra channel the cells are (default ``p_kw``).
    ts : str or None
        The time column (default: ``[columns] ts``, else the built-in aliases).
    meter_prefix : str
        Prepended to a column name to make its meter id.
    meters : dict
        Source column -> meter id (overrides the column name and the prefix).
    ignore : tuple of str
        Columns that are neither time nor meter (with ``meter_columns = "*"``).
    unit : str or None
        Unit of the cells (``MW``, ``kW``, ...), converted to the channel's unit.
    channels : dict
        Several channels per meter: channel -> source column pattern with one ``{meter}``
        (``{"p_kw": "{meter}_P", "v_l1_v": "{meter}_V"}``). Then ``meter_columns`` lists meters
        (the ``{meter}`` parts), ``meters`` renames them, and ``channel``/``unit`` are not used.
    """

    meter_columns: Any = "*"
    channel: str | None = None
    ts: str | None = None
    meter_prefix: str = ""
    meters: dict[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    unit: str | None = None
    channels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.channels, dict):
            raise MappingError("[wide] channels must be a table of channel = \"column pattern with {meter}\"")
        if self.channels:
            if self.channel is not None or self.unit is not None:
                raise MappingError("[wide] channel and unit are for one channel per meter; with [wide.channels] "
                                   "the channels are its keys and their units go in [units]")
            for ch, pat in self.channels.items():
                if ch in KEY_COLUMNS or (ch not in COLUMNS and extra_channel_error(ch)):
                    raise MappingError(f"[wide.channels] {ch}: not a channel (p_kw, v_l1_v, ... or an extra "
                                       f"channel name): {extra_channel_error(ch)}")
                if not isinstance(pat, str) or pat.count("{meter}") != 1 or pat == "{meter}":
                    raise MappingError(f"[wide.channels] {ch}: a pattern is a column name with one {{meter}} and "
                                       f"more around it, such as \"{{meter}}_P\", not {pat!r}")
            pats = list(self.channels.values())
            if len(set(pats)) != len(pats):
                raise MappingError("[wide.channels]: two channels have the same pattern")
            object.__setattr__(self, "channels", dict(self.channels))
        elif self.channel is None:
            object.__setattr__(self, "channel", "p_kw")
        mc = self.meter_columns
        if isinstance(mc, list):
            mc = tuple(mc)
        if not (mc == "*" or (isinstance(mc, tuple) and mc and all(isinstance(c, str) and c for c in mc))):
            raise MappingError(f"[wide] meter_columns must be \"*\" or a list of column names, not {mc!r}")
        object.__setattr__(self, "meter_columns", mc)
        if self.channels:
            pass
        elif not isinstance(self.channel, str) or (self.channel not in COLUMNS and extra_channel_error(self.channel)):
            raise MappingError(f"[wide] channel: {self.channel!r} is neither a canonical channel nor a valid "
                               f"extra channel name: {extra_channel_error(self.channel)}")
        if self.channel in KEY_COLUMNS:
            raise MappingError(f"[wide] channel must be a channel (p_kw, e_kwh, ...), not {self.channel!r}")
        for key in ("ts", "unit"):
            v = getattr(self, key)
            if v is not None and not (isinstance(v, str) and v):
                raise MappingError(f"[wide] {key} must be a string, not {v!r}")
        if not isinstance(self.meter_prefix, str):
            raise MappingError(f"[wide] meter_prefix must be a string, not {self.meter_prefix!r}")
        if not isinstance(self.meters, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                        for k, v in self.meters.items()):
            raise MappingError("[wide] meters must be a table of source column = \"meter id\"")
        ig = tuple(self.ignore) if isinstance(self.ignore, (list, tuple)) else self.ignore
        if not (isinstance(ig, tuple) and all(isinstance(c, str) for c in ig)):
            raise MappingError(f"[wide] ignore must be a list of column names, not {self.ignore!r}")
        object.__setattr__(self, "ignore", ig)

    def layout(self, source_columns: list[str], ts_col: str) -> list[str]:
        """The meter columns of a source whose time column is ``ts_col``."""
        if self.meter_columns == "*":
            skip = {ts_col, *self.ignore}
            # (pandas writes a named or non-range index to Parquet as __index_level_N__)
            return [c for c in source_columns if c not in skip and not c.startswith("__index_level_")]
        missing = [c for c in self.meter_columns if c not in source_columns]
        if missing:
            raise MappingError(f"[wide] meter_columns names column(s) {missing} not in source"
                               + _suggest(missing[0], source_columns))
        return list(self.meter_columns)

    def meter_id(self, column: str) -> str:
        return self.meters.get(column) or f"{self.meter_prefix}{column}"

    @property
    def channel_names(self) -> tuple[str, ...]:
        """The channels the cells hold."""
        return tuple(self.channels) if self.channels else (self.channel,)

    def groups(self, source_columns: list[str], ts_col: str) -> dict[str, dict[str, str]]:
        """With ``channels``: meter part -> {channel: source column}, meters in order of first column."""
        regex = {ch: re.compile(re.escape(p).replace(re.escape("{meter}"), "(.+)")) for ch, p in self.channels.items()}
        patterns = ", ".join(f"{ch} = {p!r}" for ch, p in self.channels.items())
        out: dict[str, dict[str, str]] = {}
        if self.meter_columns == "*":
            skip = {ts_col, *self.ignore}
            unknown = []
            for c in source_columns:
                if c in skip or c.startswith("__index_level_"):
                    continue
                hits = [(ch, m.group(1)) for ch, r in regex.items() if (m := r.fullmatch(c))]
                if not hits:
                    unknown.append(c)
                    continue
                if len(hits) > 1:
                    raise MappingError(f"[wide.channels] column {c!r} matches several patterns "
                                       f"({', '.join(ch for ch, _ in hits)}); make the patterns distinct")
                ch, meter = hits[0]
                out.setdefault(meter, {})[ch] = c
            if unknown:
                good = [c for g in out.values() for c in g.values()]
                shown = ", ".join(good[:12]) + (f", ... ({len(good) - 12} more)" if len(good) > 12 else "")
                raise MappingError(f"[wide] column(s) {', '.join(repr(c) for c in unknown[:10])} match no "
                                   f"[wide.channels] pattern ({patterns}); list them in [wide] ignore if they are "
                                   f"not readings, or fix the patterns (columns that match: {shown or 'none'})")
            return out
        for meter in self.meter_columns:
            cols = {ch: p.replace("{meter}", meter) for ch, p in self.channels.items()}
            cols = {ch: c for ch, c in cols.items() if c in source_columns}
            if not cols:
                want = next(iter(self.channels.values())).replace("{meter}", meter)
                raise MappingError(f"[wide] meter {meter!r} has no column ({patterns})" + _suggest(want, source_columns))
            out[meter] = cols
        return out


def _suggest(name: str, columns: list[str], limit: int = 30) -> str:
    """" (closest: ...; columns: ...)": the source's columns, those most like ``name`` first."""
    close = difflib.get_close_matches(name, columns, n=5, cutoff=0.5)
    by_norm = [c for c in columns if norm_name(c) == norm_name(name) and c not in close]
    close = by_norm + close
    rest = [c for c in columns if c not in close]
    shown = ", ".join(rest[:limit]) + (f", ... ({len(rest) - limit} more)" if len(rest) > limit else "")
    head = f"closest: {', '.join(repr(c) for c in close)}; " if close else ""
    return f" ({head}columns: {shown})"


@dataclass(frozen=True)
class Mapping:
    """How a source's columns become canonical columns.

    Parameters
    ----------
    columns : dict
        Canonical name -> source column name, or a tuple of names to add up.
    scale : dict
        Canonical name -> multiplier applied after parsing.
    defaults : dict
        Canonical name -> constant for sources that lack the column.
    timezone : str
        Zone for timestamps without an offset.
    ts_format : str or None
        strptime format for timestamps that are not ISO-8601 or epoch.
    epoch_unit : str
        ``s``, ``ms``, ``us``, ``ns`` or ``auto`` (from magnitude: s, ms, then us).
    ts_min, ts_max : str, datetime or None
        Plausible times (ISO-8601, UTC unless an offset is given): a reading outside is a reject
        naming its line. ``ts_min`` defaults to 1990-01-01, ``ts_max`` (None) to the time of the
        ingest plus one day.
    delimiter, decimal : str or None
        CSV options; the delimiter is sniffed when None.
    builtin_aliases : bool
        Whether built-in aliases fill columns the user did not map.
    tables : tuple of str or None
        For SQLite exports, the tables to read (all when None).
    extra : dict
        Extra channel name -> source column name, or a tuple of names to add up. Names must pass
        :func:`wattwatch.schema.extra_channel_error`; ``scale`` and ``defaults`` may name extras.

    Raises
    ------
    MappingError
        A name in ``columns``, ``scale``, ``defaults`` or ``extra`` is neither canonical nor a valid
        extra channel, or a value is of the wrong kind; the message names the section and the key.
    """

    columns: dict[str, Any] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    ts_format: str | None = None
    epoch_unit: str = "auto"
    delimiter: str | None = None
    decimal: str = "."
    builtin_aliases: bool = True
    tables: tuple[str, ...] | None = None
    extra: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    ts_min: Any = DEFAULT_TS_MIN
    ts_max: Any = None
    units: dict[str, str] = field(default_factory=dict)
    ranges: dict[str, Any] = field(default_factory=dict)
    wide: Wide | None = None

    def __post_init__(self) -> None:
        self._check_options()
        if self.wide is not None and not isinstance(self.wide, Wide):
            raise MappingError("[wide] must be a table")
        bad = sorted(set(self.columns) - set(COLUMNS))
        if bad:
            hint = (" (extra channels go under [extra])"
                    if any(extra_channel_error(b) is None for b in bad) else "")
            raise MappingError(f"[columns] names unknown canonical column(s) {bad}{hint}")
        columns = {k: _source_names(v, f"[columns] {k}") for k, v in self.columns.items()}
        extra = {}
        for name, src in self.extra.items():
            err = extra_channel_error(name)
            if err is not None:
                raise MappingError(f"[extra] {name}: {err}")
            extra[name] = _source_names(src, f"[extra] {name}")
        for section in ("scale", "defaults"):
            for key in getattr(self, section):
                if key in COLUMNS:
                    continue
                err = extra_channel_error(key)
                if err is not None:
                    raise MappingError(f"[{section}] {key}: not a canonical column, nor an extra channel: {err}")
        scale = {}
        for key, value in self.scale.items():
            if key not in COLUMNS and key not in extra and key not in self.defaults:
                raise MappingError(f"[scale] {key}: extra channel not declared in [extra]")
            scale[key] = _number(value, f"[scale] {key}")
        if "ts" in self.defaults:
            raise MappingError("[defaults] ts: a constant time is not a reading time; map a column to ts")
        mid = self.defaults.get("meter_id")
        if mid is not None and not ((isinstance(mid, str) and mid.strip()) or
                                    (isinstance(mid, int) and not isinstance(mid, bool))):
            raise MappingError(f"[defaults] meter_id must be a non-empty string, not {mid!r}")
        defaults = {k: (str(v).strip() if k in KEY_COLUMNS else _number(v, f"[defaults] {k}"))
                    for k, v in self.defaults.items()}
        units: dict[str, str] = dict(self.units)
        if self.wide is not None and self.wide.unit is not None and not self.wide.channels:
            units.setdefault(self.wide.channel, self.wide.unit)
        conv = {}
        for key, unit in units.items():
            where = f"[units] {key}" if key in self.units else f"[wide] unit ({key})"
            if key in KEY_COLUMNS or (key not in COLUMNS and extra_channel_error(key)):
                raise MappingError(f"{where}: not a channel")
            if not isinstance(unit, str):
                raise MappingError(f"{where}: a unit is a string such as \"MW\", not {unit!r}")
            try:
                conv[key] = unit_conversion(unit, key)
            except ValueError as exc:
                raise MappingError(f"{where}: {exc}") from None
        ranges = {}
        for key, rng in self.ranges.items():
            if key in KEY_COLUMNS or (key not in COLUMNS and extra_channel_error(key)):
                raise MappingError(f"[ranges] {key}: not a channel")
            if not (isinstance(rng, (list, tuple)) and len(rng) == 2):
                raise MappingError(f"[ranges] {key} must be [low, high], not {rng!r}")
            lo, hi = (_number(v, f"[ranges] {key}") if v is not None else None for v in rng)
            ch = CHANNEL_BY_NAME.get(key)
            lo = lo if lo is not None else (ch.low if ch else -math.inf)
            hi = hi if hi is not None else (ch.high if ch else math.inf)
            if lo > hi:
                raise MappingError(f"[ranges] {key}: low {lo:g} is above high {hi:g}")
            ranges[key] = (lo, hi)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "conversions", conv)
        object.__setattr__(self, "ranges", ranges)
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "extra", extra)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "defaults", defaults)

    def _check_options(self) -> None:
        """Options of the wrong kind are errors naming the option (not tracebacks at ingest)."""
        for key in ("timezone", "epoch_unit", "decimal"):
            if not isinstance(getattr(self, key), str):
                raise MappingError(f"[options] {key} must be a string, not {getattr(self, key)!r}")
        for key in ("ts_format", "delimiter"):
            v = getattr(self, key)
            if v is not None and not isinstance(v, str):
                raise MappingError(f"[options] {key} must be a string, not {v!r}")
        try:
            from zoneinfo import ZoneInfo

            if not self.timezone or self.timezone != self.timezone.strip() or "\x00" in self.timezone:
                raise ValueError
            ZoneInfo(self.timezone)
        except Exception:  # noqa: BLE001 - zoneinfo raises several kinds for a bad key
            raise MappingError(f"[options] timezone: unknown time zone {self.timezone!r} "
                               "(an IANA name such as \"Europe/Rome\", or \"UTC\")") from None
        if self.epoch_unit not in EPOCH_UNITS:
            raise MappingError(f"[options] epoch_unit must be one of {', '.join(EPOCH_UNITS)}, not {self.epoch_unit!r}")
        for key in ("delimiter", "decimal"):
            v = getattr(self, key)
            if v is not None and (len(v) != 1 or v in ("\n", "\r", '"') or not v.isprintable() and v != "\t"):
                raise MappingError(f"[options] {key} must be one character (not a quote or a line break), not {v!r}")
        if self.delimiter is not None and self.delimiter == self.decimal:
            raise MappingError(f"[options] delimiter and decimal are both {self.delimiter!r}")
        if self.ts_format is not None and (not self.ts_format or "%" not in self.ts_format):
            raise MappingError(f"[options] ts_format must be a strptime format such as \"%d/%m/%Y %H:%M\", "
                               f"not {self.ts_format!r}")
        if not isinstance(self.builtin_aliases, bool):
            raise MappingError(f"[options] builtin_aliases must be true or false, not {self.builtin_aliases!r}")
        if self.tables is not None and not (isinstance(self.tables, tuple)
                                            and all(isinstance(t, str) and t for t in self.tables)):
            raise MappingError(f"[options] tables must be a list of table names, not {self.tables!r}")
        lo = _instant(self.ts_min, "ts_min")
        hi = _instant(self.ts_max, "ts_max")
        if lo is not None and hi is not None and lo >= hi:
            raise MappingError(f"[options] ts_min ({lo.isoformat()}) must be before ts_max ({hi.isoformat()})")

    def time_bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """(earliest, latest) plausible reading time, UTC; the latest defaults to ``now`` (the
        time of the call) plus one day."""
        lo = _instant(self.ts_min, "ts_min") or datetime(1, 1, 1, tzinfo=timezone.utc)
        hi = _instant(self.ts_max, "ts_max")
        if hi is None:
            hi = (now or datetime.now(timezone.utc)).astimezone(timezone.utc) + DEFAULT_TS_MAX_AHEAD
            hi = hi.replace(microsecond=0)
        return max(lo, datetime(1, 1, 1, tzinfo=timezone.utc)), min(hi, datetime(9999, 12, 31, tzinfo=timezone.utc))

    @property
    def extra_channels(self) -> tuple[str, ...]:
        """Names of the extra channels a mapped source yields: ``extra`` in order, then the
        constant ones ``defaults`` declares."""
        names = tuple(self.extra) + tuple(k for k in self.defaults if k not in COLUMNS and k not in self.extra)
        if self.wide is not None:
            names += tuple(ch for ch in self.wide.channel_names if ch not in COLUMNS and ch not in names)
        return names

    def range_of(self, name: str) -> tuple[float, float]:
        """Plausible (low, high) of a channel in its canonical unit: ``[ranges]``, else schema.py."""
        if name in self.ranges:
            return self.ranges[name]
        ch = CHANNEL_BY_NAME.get(name)
        if ch is None:
            return (-math.inf, math.inf)
        # A source declared in larger units (MW, kV, kA; or scaled up) is a larger installation:
        # the default range grows with the factor (1,500 MW of regional load is not implausible).
        factor, offset = self.conversion(name)
        grow = abs(factor) if abs(factor) > 1 and offset == 0 else 1.0
        return (ch.low * grow, ch.high * grow)

    def conversion(self, name: str) -> tuple[float, float]:
        """(factor, offset) taking a channel's source value to its canonical unit, ``[scale]`` included."""
        factor, offset = getattr(self, "conversions", {}).get(name, (1.0, 0.0))
        scale = self.scale.get(name, 1.0)
        return scale * factor, offset

    @classmethod
    def from_toml(cls, path: str | Path) -> "Mapping":
        """Read a mapping file; unknown canonical names or options are errors naming the key."""
        path = Path(path)
        doc = read_toml(path, "mapping", MappingError)
        sections = ("columns", "scale", "defaults", "extra", "options", "units", "ranges", "wide")
        unknown_sections = set(doc) - set(sections)
        if unknown_sections:
            raise MappingError(f"{path}: unknown section(s) {sorted(unknown_sections)}"
                               f"{did_you_mean(unknown_sections, sections, '[{}]')}; known: {', '.join(sections)}")
        for section in sections:
            if not isinstance(doc.get(section, {}), dict):
                raise MappingError(f"{path}: {section} must be a table ([{section}])")
        opts = doc.get("options", {})
        bad = set(opts) - _OPTION_KEYS
        if bad:
            raise MappingError(f"{path}: [options] has unknown key(s) {sorted(bad)}{did_you_mean(bad, _OPTION_KEYS)}; "
                               f"known: {', '.join(sorted(_OPTION_KEYS))}")
        tables = opts.get("tables")
        if isinstance(tables, str):
            tables = [tables]
        if tables is not None and not isinstance(tables, list):
            raise MappingError(f"{path}: [options] tables must be a list of table names, not {tables!r}")
        for key in ("ts_min", "ts_max"):  # TOML dates and date-times are fine as they are
            v = opts.get(key)
            if v is not None and not isinstance(v, (str, datetime)):
                if hasattr(v, "isoformat") and not isinstance(v, bool):
                    opts[key] = v.isoformat()
        try:
            wide = None
            if "wide" in doc:
                w = dict(doc["wide"])
                bad = set(w) - {"meter_columns", "channel", "ts", "meter_prefix", "meters", "ignore", "unit", "channels"}
                if bad:
                    raise MappingError(f"[wide] has unknown key(s) {sorted(bad)} (keys: meter_columns, channel, "
                                       "ts, meter_prefix, meters, ignore, unit, channels)")
                wide = Wide(**w)
            return cls(
                units=dict(doc.get("units", {})),
                ranges=dict(doc.get("ranges", {})),
                wide=wide,
                columns=dict(doc.get("columns", {})),
                scale=dict(doc.get("scale", {})),
                defaults=dict(doc.get("defaults", {})),
                extra=dict(doc.get("extra", {})),
                timezone=opts.get("timezone", "UTC"),
                ts_format=opts.get("ts_format"),
                epoch_unit=opts.get("epoch_unit", "auto"),
                delimiter=opts.get("delimiter"),
                decimal=opts.get("decimal", "."),
                builtin_aliases=opts.get("builtin_aliases", True),
                tables=tuple(tables) if tables else None,
                ts_min=opts.get("ts_min", DEFAULT_TS_MIN),
                ts_max=opts.get("ts_max"),
            )
        except MappingError as exc:
            raise MappingError(f"{path}: {exc}") from None

    def resolve(self, source_columns: list[str]) -> dict[str, tuple[str, ...]]:
        """Pick the source column(s) for each canonical column this source can fill, and for each
        extra channel in ``extra``.

        Returns
        -------
        dict
            Canonical or extra channel name -> tuple of source column names (summed when more
            than one). Columns an extra takes are not matched by built-in aliases.

        Raises
        ------
        MappingError
            If a column named in the user mapping (``columns`` or ``extra``) is not in the source.
        """
        present = set(source_columns)
        by_key: dict[str, str] = {}
        # Full-path matches take precedence over leaf-name matches.
        for col in source_columns:
            by_key.setdefault(norm_name(col), col)
        for col in source_columns:
            by_key.setdefault(norm_name(col.rsplit(".", 1)[-1]), col)

        out: dict[str, tuple[str, ...]] = {}
        for kind, entries in (("", self.columns), ("extra channel ", self.extra)):
            for canon, src in entries.items():
                names = src if isinstance(src, tuple) else (src,)
                missing = [n for n in names if n not in present]
                if missing:
                    raise MappingError(f"mapping for {kind}{canon!r} names column(s) {missing} not in source"
                                       + _suggest(missing[0], list(source_columns)))
                out[canon] = tuple(names)
        if not self.builtin_aliases:
            return out
        used = {n for names in out.values() for n in names}
        for canon, aliases in BUILTIN_ALIASES.items():
            if canon in out:
                continue
            for alias in aliases:
                col = by_key.get(norm_name(alias))
                if col is not None and col not in used:
                    out[canon] = (col,)
                    used.add(col)
                    break
        for canon, options in BUILTIN_PHASE_SUMS.items():
            if canon in out:
                continue
            for names in options:
                cols = [by_key.get(n) for n in names]
                if all(c is not None for c in cols):
                    out[canon] = tuple(cols)  # type: ignore[arg-type]
                    used.update(cols)  # type: ignore[arg-type]
                    break
        return out
