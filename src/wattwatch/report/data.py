"""What the report shows, prepared as plain data: the alerts, the fleet overview (meters x days,
counts by code and severity) and, per alerting meter, its channels binned to a bounded number of
points (each bin drawn as its minimum and its maximum, so a one-reading spike stays visible).

The telemetry is binned inside DuckDB (one ``GROUP BY`` over the reported meters), never loaded
reading by reading. The number of points is bounded by a budget over the whole report: a fleet of
a few meters gets fine bins, a fleet of a thousand gets coarser ones, and past a floor of
resolution only the most severe meters are drawn (the page says which and how to draw the rest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert, iso
from wattwatch.codes import SEVERITIES, SEVERITY_POLICY
from wattwatch.errors import InputError

# Panels of a meter's figure: title, channels (in order). Extra channels go in panels by unit.
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("power (kW)", ("p_kw",)),
    ("reactive / apparent power (kvar, kVA)", ("q_kvar", "s_kva")),
    ("current (A)", ("i_l1_a", "i_l2_a", "i_l3_a", "i_n_a")),
    ("voltage (V)", ("v_l1_v", "v_l2_v", "v_l3_v")),
    ("energy register (kWh)", ("e_kwh",)),
    ("temperature (°C)", ("temp_c",)),
    ("current THD (%)", ("thd_i_pct",)),
    ("power factor", ("pf",)),
)
_EXTRA_UNITS = {"_v": "V", "_a": "A", "_kw": "kW", "_kvar": "kvar", "_kva": "kVA", "_kwh": "kWh", "_w": "W",
                "_wh": "Wh", "_hz": "Hz", "_c": "°C", "_pct": "%", "_s": "s", "_rpm": "rpm", "_1": ""}
# Bin widths the report picks from (seconds): the smallest one that keeps a meter within its share
# of the point budget.
NICE_BINS_S = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 14400, 21600, 28800, 43200, 86400,
               172800, 604800)
# Values (two per bin per channel) the whole report may embed, and the fewest bins a drawn meter
# gets over the report's period: below that a figure no longer shows the shape of a day.
POINT_BUDGET = 380_000
MIN_BINS = 120
MAX_BINS = 2000
SIGNIFICANT = 4


class NothingToReport(InputError):
    """No alert (and no requested meter) falls within the report's bounds."""


@dataclass
class Telemetry:
    """One meter's channels binned on a regular grid: bin ``k`` covers ``[t0 + k*step, t0 + (k+1)*step)``;
    ``series[c]`` holds ``2*bins`` values (each bin's minimum, then its maximum; None where empty)."""

    t0: float
    step_s: float
    bins: int
    series: dict[str, list]
    readings: int

    def to_json(self) -> dict:
        return {"t0": self.t0, "step": self.step_s, "bins": self.bins, "series": self.series, "n": self.readings}


@dataclass
class ReportData:
    alerts: list[dict]
    period: tuple[pd.Timestamp, pd.Timestamp]
    fleet_meters: int | None
    meters: list[str]                       # alerting (or requested) meters, worst first
    telemetry: dict[str, Telemetry] = field(default_factory=dict)
    panels: list[tuple[str, list[str]]] = field(default_factory=list)
    not_drawn: list[str] = field(default_factory=list)
    telemetry_note: str = ""
    source: str = ""
    db: str | None = None
    missing: list[str] = field(default_factory=list)

    def write_note(self) -> None:
        """Say which meters' channels are not drawn (size budget, or no readings) and how to draw them."""
        note = ""
        if self.not_drawn:
            drawn = len(self.meters) - len(self.not_drawn)
            note = (f"the channels of the {drawn} most severe of {len(self.meters)} meters are drawn (the report "
                    f"keeps under its size budget); the other {len(self.not_drawn)} list their alerts with evidence: "
                    "draw them with `wattwatch report --meters A,B,...`")
        if self.missing:
            note += (" " if note else "") + (f"{len(self.missing)} meter(s) have no readings in the store in this "
                                             "period: " + ", ".join(self.missing[:10])
                                             + (", ..." if len(self.missing) > 10 else ""))
        self.telemetry_note = note

    def undraw(self, k: int) -> None:
        """Leave out the channels of the ``k`` least severe drawn meters (they keep their sections)."""
        drawn = [m for m in self.meters if m in self.telemetry]
        for m in drawn[max(0, len(drawn) - k):]:
            del self.telemetry[m]
        self.not_drawn = [m for m in self.meters if m not in self.telemetry and m not in set(self.missing)]
        self.write_note()

    def overview(self) -> dict:
        """Counts by code and severity, and the meters x days strip (worst severity per day,
        0 none .. 3 critical, and the number of alerts that touch that day)."""
        start, end = self.period
        day0 = start.floor("D")
        days = max(1, int(math.ceil((end - day0) / pd.Timedelta("1D"))))
        index = {m: i for i, m in enumerate(self.meters)}
        worst = np.zeros((len(self.meters), days), np.int8)
        count = np.zeros((len(self.meters), days), np.int32)
        by_code: dict[str, dict[str, int]] = {}
        for a in self.alerts:
            by_code.setdefault(a["code"], dict.fromkeys(SEVERITIES, 0))
            by_code[a["code"]][a["severity"] if a["severity"] in SEVERITIES else "info"] += 1
            i = index.get(a["meter_id"])
            if i is None:
                continue
            s = max(0, int((pd.Timestamp(a["start"]) - day0) // pd.Timedelta("1D")))
            e = min(days - 1, int((pd.Timestamp(a["end"]) - day0) // pd.Timedelta("1D")))
            rank = SEVERITIES.index(a["severity"]) + 1 if a["severity"] in SEVERITIES else 1
            worst[i, s:e + 1] = np.maximum(worst[i, s:e + 1], rank)
            count[i, s:e + 1] += 1
        by_severity = {s: sum(c[s] for c in by_code.values()) for s in SEVERITIES}
        return {"day0": iso(day0), "days": days, "worst": worst.tolist(), "count": count.tolist(),
                "by_code": dict(sorted(by_code.items())), "by_severity": by_severity}


def _utc(x, what: str) -> pd.Timestamp | None:
    if x is None:
        return None
    try:
        t = pd.Timestamp(x)
    except (ValueError, TypeError, OverflowError):
        raise InputError(f"{what}: cannot read {x!r} as a time (ISO-8601, e.g. 2025-01-31T00:00:00Z)") from None
    if t is pd.NaT:
        raise InputError(f"{what}: cannot read {x!r} as a time (ISO-8601, e.g. 2025-01-31T00:00:00Z)")
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    if not pd.Timestamp("1900-01-01", tz="UTC") <= t <= pd.Timestamp("2200-01-01", tz="UTC"):
        raise InputError(f"{what}: {x!r} is outside 1900..2200 (a typo in the year?)")
    return t


def alert_dicts(alerts: list[Alert | dict]) -> list[dict]:
    """Alerts in the output model (``…Z`` times, evidence an object, action and status)."""
    out = []
    for a in alerts:
        d = a.to_dict() if isinstance(a, Alert) else dict(a)
        d["start"], d["end"] = iso(d["start"]), iso(d["end"])
        if not d.get("action"):
            d["action"] = ""
        d.setdefault("status", "open")
        out.append(d)
    return out


def _rank(a: dict) -> tuple:
    sev = SEVERITIES.index(a["severity"]) if a["severity"] in SEVERITIES else 0
    score = a.get("score")
    return (-sev, -(score if isinstance(score, (int, float)) and score == score else 0.0))


def order_meters(alerts: list[dict]) -> list[str]:
    """Meters worst first: highest severity, then highest score, then most alerts, then id."""
    best: dict[str, tuple] = {}
    n: dict[str, int] = {}
    for a in alerts:
        m = a["meter_id"]
        n[m] = n.get(m, 0) + 1
        best[m] = min(best.get(m, (0, 0.0)), _rank(a))
    return sorted(best, key=lambda m: (*best[m], -n[m], m))


def select(alerts: list[dict], meters: list[str] | None, start: pd.Timestamp | None, end: pd.Timestamp | None) -> list[dict]:
    """Alerts of ``meters`` (all when None) that overlap ``[start, end)``."""
    keep = set(meters) if meters else None
    out = []
    for a in alerts:
        if keep is not None and a["meter_id"] not in keep:
            continue
        if start is not None and pd.Timestamp(a["end"]) < start:
            continue
        if end is not None and pd.Timestamp(a["start"]) >= end:
            continue
        out.append(a)
    return out


def bin_width(period_s: float, bins: int, cadence_s: float | None = None) -> float:
    """The smallest nice bin width that covers ``period_s`` in at most ``bins`` bins (never finer
    than the readings' cadence: a bin then holds one reading)."""
    need = period_s / max(1, bins)
    floor = cadence_s or 0.0
    for w in NICE_BINS_S:
        if w >= need and w >= floor * 0.999:
            return float(w)
    return float(max(need, floor))


def plan(n_meters: int, n_series: float, period_s: float, cadence_s: float | None,
         budget: int = POINT_BUDGET) -> tuple[int, float]:
    """How many meters (worst first) get figures and at which bin width, within ``budget`` values.

    Each meter gets ``budget / (meters * series * 2)`` bins, at most :data:`MAX_BINS`; when that
    falls below :data:`MIN_BINS`, only as many meters as fit at :data:`MIN_BINS` are drawn."""
    per_meter = budget / max(1.0, n_meters * max(1.0, n_series) * 2)
    step = bin_width(period_s, int(min(MAX_BINS, max(MIN_BINS, per_meter))), cadence_s)
    # The nice width holds fewer bins than asked for: as many meters as the budget holds at it.
    bins = math.ceil(period_s / step)
    drawn = int(budget // (bins * max(1.0, n_series) * 2))
    return max(0, min(n_meters, drawn)), step


def _round(values: np.ndarray) -> list:
    """Values to :data:`SIGNIFICANT` significant digits of the series' range, NaN as None: short
    JSON, the same picture (a figure is a few hundred pixels tall), and an energy register of
    16,071.3 kWh that moves by 10 kWh keeps its steps (digits of the value would round them away)."""
    v = np.asarray(values, dtype="float64")
    finite = np.isfinite(v)
    if not finite.any():
        return [None] * len(v)
    lo, hi = float(v[finite].min()), float(v[finite].max())
    span = hi - lo if hi > lo else max(abs(hi), 1e-9)
    decimals = int(SIGNIFICANT - 1 - math.floor(math.log10(span)))
    out = np.round(v, decimals)
    return [None if not f else (int(x) if decimals <= 0 or x.is_integer() else float(x))
            for x, f in zip(out.tolist(), finite.tolist())]


def store_telemetry(store, meters: list[str], start: pd.Timestamp, end: pd.Timestamp, step_s: float,
                    channels: list[str]) -> dict[str, Telemetry]:
    """Each meter's channels binned on ``step_s`` over ``[start, end)``, by DuckDB (min and max per bin)."""
    from wattwatch.store.duck import _q

    if not meters or not channels:
        return {}
    t0 = float(start.timestamp())
    bins = int(math.ceil((end - start).total_seconds() / step_s))
    aggs = ", ".join(f"min({_q(c)}) AS {_q(c + '__min')}, max({_q(c)}) AS {_q(c + '__max')}" for c in channels)
    import pyarrow as pa

    mt = pa.table({"meter_id": pa.array(meters, pa.string())})
    con = store.con
    con.register("_report_meters", mt)
    try:
        df = con.execute(
            f"SELECT r.meter_id, CAST(floor((epoch(r.ts) - ?) / ?) AS BIGINT) AS b, count(*) AS n, {aggs} "
            "FROM readings r JOIN _report_meters m ON m.meter_id = r.meter_id WHERE r.ts >= ? AND r.ts < ? "
            "GROUP BY 1, 2", [t0, step_s, start.to_pydatetime(), end.to_pydatetime()]).df()
        hourly = _compacted(con, channels, t0, step_s, start, end)
    finally:
        con.unregister("_report_meters")
    if hourly is not None and len(hourly):
        # Readings compacted into hourly aggregates (`store compact`) keep their min and max: the
        # same picture for the hours they cover.
        both = pd.concat([df, hourly], ignore_index=True)
        how = {"n": "sum", **{f"{c}__min": "min" for c in channels}, **{f"{c}__max": "max" for c in channels}}
        df = both.groupby(["meter_id", "b"], as_index=False, sort=False).agg(how)
    out: dict[str, Telemetry] = {}
    for m, g in df.groupby("meter_id", sort=False):
        b = g["b"].to_numpy()
        series = {}
        for c in channels:
            lo, hi = g[c + "__min"].to_numpy(), g[c + "__max"].to_numpy()
            if not np.isfinite(lo).any():
                continue
            vals = np.full(2 * bins, np.nan)
            vals[2 * b], vals[2 * b + 1] = lo, hi
            series[c] = _round(vals)
        if series:
            out[str(m)] = Telemetry(t0=t0, step_s=step_s, bins=bins, series=series, readings=int(g["n"].sum()))
    return out


def _compacted(con, channels: list[str], t0: float, step_s: float, start: pd.Timestamp, end: pd.Timestamp):
    """Hourly aggregates of ``_report_meters`` in ``[start, end)`` binned like the raw readings,
    or None when the store has none there."""
    from wattwatch.store.duck import AGG_CHANNELS, _q

    (n,) = con.execute("SELECT count(*) FROM readings_hourly WHERE hour >= ? AND hour < ?",
                       [start.to_pydatetime(), end.to_pydatetime()]).fetchall()[0]
    if not n:
        return None
    have = {r[0] for r in con.execute("SELECT name FROM pragma_table_info('readings_hourly')").fetchall()}

    def agg(c: str) -> str:
        lo, hi = (("e_kwh_first", "e_kwh_last") if c == "e_kwh" else (f"{c}_min", f"{c}_max"))
        if (c not in AGG_CHANNELS and c != "e_kwh") or lo not in have or hi not in have:
            return f"CAST(NULL AS DOUBLE) AS {_q(c + '__min')}, CAST(NULL AS DOUBLE) AS {_q(c + '__max')}"
        return f"min({_q(lo)}) AS {_q(c + '__min')}, max({_q(hi)}) AS {_q(c + '__max')}"

    return con.execute(
        f"SELECT h.meter_id, CAST(floor((epoch(h.hour) - ?) / ?) AS BIGINT) AS b, sum(h.n) AS n, "
        f"{', '.join(agg(c) for c in channels)} FROM readings_hourly h JOIN _report_meters m ON m.meter_id = h.meter_id "
        "WHERE h.hour >= ? AND h.hour < ? GROUP BY 1, 2", [t0, step_s, start.to_pydatetime(), end.to_pydatetime()]).df()


def panels_for(channels: list[str]) -> list[tuple[str, list[str]]]:
    """The figure's panels for the channels a report has (extra channels grouped by unit)."""
    have = set(channels)
    out = [(t, [c for c in cols if c in have]) for t, cols in PANELS]
    out = [(t, cols) for t, cols in out if cols]
    canon = {c for _, cols in PANELS for c in cols}
    extras: dict[str, list[str]] = {}
    for c in channels:
        if c in canon:
            continue
        unit = next((u for s, u in sorted(_EXTRA_UNITS.items(), key=lambda kv: -len(kv[0])) if c.endswith(s)), "")
        extras.setdefault(unit, []).append(c)
    for unit, cols in extras.items():
        out.append((f"extra channels ({unit})" if unit else "extra channels", cols))
    return out


def prepare(alerts: list[Alert | dict] | None = None, store=None, *, meters: list[str] | None = None,
            start=None, end=None, budget: int = POINT_BUDGET, source: str = "") -> ReportData:
    """Everything the report shows.

    Parameters
    ----------
    alerts : list of Alert or dict, optional
        The run's alerts; None reads them from ``store`` (every status).
    store : Store, optional
        Telemetry (and alerts when ``alerts`` is None); without it the report draws the alerts only.
    meters : list of str, optional
        Only these meters; each must be known (in the alerts or the store).
    start, end : time, optional
        Only alerts overlapping ``[start, end)`` and readings in it.
    budget : int
        Values (two per bin per channel) the telemetry may take over the whole report.

    Raises
    ------
    InputError
        Unknown meters, an unreadable time, ``start >= end``, or no alert to report.
    """
    from wattwatch.alerts.model import record
    from wattwatch.alerts.store import list_alerts

    t_start, t_end = _utc(start, "--from"), _utc(end, "--to")
    if t_start is not None and t_end is not None and t_start >= t_end:
        raise InputError(f"--from {start} is not before --to {end}")
    if alerts is None:
        if store is None:
            raise InputError("no alerts given: pass alerts or a store that keeps them")
        rows = list_alerts(store.con, status="all")
        alerts = [record(r) for r in rows.to_dict("records")]
        where = f"{store.path} (alerts table)"
    else:
        where = source or "the alerts given"
    al = alert_dicts(alerts)
    fleet = store.meters() if store is not None else None
    if meters:
        known = set(fleet or []) | {a["meter_id"] for a in al}
        unknown = [m for m in meters if m not in known]
        if unknown:
            shown = ", ".join(sorted(known)[:10]) + (", ..." if len(known) > 10 else "")
            raise InputError(f"--meters: unknown meter(s) {', '.join(unknown)} (not in {where}"
                             + (f" nor in the store {store.path}" if store is not None else "")
                             + f"; known: {shown or 'none'})")
    al = select(al, meters, t_start, t_end)
    if not al and not (meters and store is not None):
        bounds = []
        if meters:
            bounds.append("--meters")
        if t_start is not None or t_end is not None:
            bounds.append("--from/--to")
        raise NothingToReport(f"no alerts in {where}" + (f" within {' and '.join(bounds)}" if bounds else "")
                         + "; nothing to report")
    order = order_meters(al)
    if meters:  # requested meters without alerts in the period still get a section (their telemetry)
        order += [m for m in meters if m not in set(order)]
    # The period: the bounds given, else the alerts' span widened to the readings of the reported meters.
    lo = min(pd.Timestamp(a["start"]) for a in al) if al else None
    hi = max(pd.Timestamp(a["end"]) for a in al) if al else None
    cadence = None
    channels: list[str] = []
    if store is not None:
        cat = store.catalogue(order)
        if len(cat):
            lo = min(x for x in (lo, pd.Timestamp(cat["first_ts"].min()).tz_convert("UTC")) if x is not None)
            hi = max(x for x in (hi, pd.Timestamp(cat["last_ts"].max()).tz_convert("UTC")) if x is not None)
            c = cat["cadence_s"].dropna()
            cadence = float(c.median()) if len(c) else None
        channels = _present_channels(store, order)
    if lo is None:
        raise InputError(f"no readings of {', '.join(meters or [])} in {getattr(store, 'path', '')}; nothing to report")
    p_start = t_start if t_start is not None else lo.floor("h")
    p_end = t_end if t_end is not None else (hi + pd.Timedelta(seconds=1)).ceil("h")
    data = ReportData(alerts=al, period=(p_start, p_end), fleet_meters=len(fleet) if fleet is not None else None,
                      meters=order, source=where, db=str(store.path) if store is not None else None)
    if store is None:
        data.telemetry_note = ("telemetry was not available (the report was made from an alerts file alone): "
                               "the figures show the alert spans only; give --db STORE to draw the channels")
        return data
    data.panels = panels_for(channels)
    n_series = max(1, len(channels))
    period_s = max(1.0, (p_end - p_start).total_seconds())
    drawn, step = plan(len(order), n_series, period_s, cadence, budget)
    data.telemetry = store_telemetry(store, order[:drawn], p_start, p_end, step, channels)
    data.not_drawn = order[drawn:]
    data.missing = [m for m in order[:drawn] if m not in data.telemetry]
    data.write_note()
    return data


def _present_channels(store, meters: list[str]) -> list[str]:
    """The store's channels that hold a value for at least one of ``meters``."""
    from wattwatch.store.duck import _q

    chans = store.channels()
    if not meters:
        return []
    import pyarrow as pa

    store.con.register("_report_meters", pa.table({"meter_id": pa.array(meters, pa.string())}))
    try:
        row = store.con.execute(
            "SELECT " + ", ".join(f"count({_q(c)})" for c in chans)
            + " FROM readings r JOIN _report_meters m ON m.meter_id = r.meter_id").fetchall()[0]
    finally:
        store.con.unregister("_report_meters")
    return [c for c, n in zip(chans, row) if n]


def consequence(code: str) -> str:
    """What a fault of ``code`` costs if nobody acts (codes.SEVERITY_POLICY)."""
    return SEVERITY_POLICY.get(code, ("", "", False, ""))[3]
