"""Per-POD-per-period consumption features, on pandas or Spark with the same numbers.

The steps, the same on both engines (``pod_periods`` on pandas, ``pod_periods_spark`` with native
Spark aggregations; only small per-POD-per-period partial sums are collected, and the last
arithmetic — ratios, previous periods, peer medians — is one shared pandas function):

1. **Readings -> intervals.** Duplicate ``(meter_id, ts)`` rows are merged (channel means). A reading
   covers ``[ts, ts_end)`` when the source gives the interval (nested JSON); otherwise up to the
   meter's next reading, at most the meter's median step (exact median), so a gap is missing data
   and not the last power stretched over it. The last reading of a meter covers one median step.
   Any cadence from 1 s to 1 day, mixed within and across meters.
2. **Energy of each reading**, in this order: the interval energy field (``e_int_kwh``); the
   register step ``e_kwh(next) - e_kwh`` when the next reading is adjacent and the step is
   consistent (not negative, and within 20 % + 0.01 kWh of ``p_kw`` x duration when power is
   also given — a register reset or a rollover is not consumption); else ``p_kw`` x duration.
3. **Hourly table** (``.hourly``): each reading's energy spread over the UTC hours it overlaps in
   proportion to the overlap; ``coverage`` is the share of the hour covered by readings with an
   energy (0..1). This is the energy balance's input.
4. **Periods** (``month``, ``week`` — ISO, from Monday — or ``day``) are taken in ``tz`` (default
   UTC; ``Europe/Rome`` for Italian data): an hour belongs to the period its local start falls in,
   night is local 22:00-06:00, weekend local Saturday and Sunday. A period's ``coverage`` is the
   covered hours over its hours inside the fleet's data span (so a data set starting on the 15th
   is not a half-empty first month); an edge period the span covers less than half of is left out
   with a note.
5. **Complete-POD filter** (``.excluded``): a POD is scored only with coverage >= ``min_coverage``
   (0.8), and above 0 (some time covered by readings with a value), in every period of the span; otherwise it is listed with the reason (which periods, what
   coverage). Panel meters are listed too (they feed the energy balance, they are not PODs).
6. **Peer group**: the POD's panel when the panel has at least ``min_peers`` (5) scored PODs in the
   period, else its town under the same rule, else the whole fleet.

Panel meters (energy-balance reference meters) are, in this order: the ``panels`` mapping
(``panel_id`` -> ``meter_id``) when given; else a meter whose id equals its own ``panel_id`` (a
record with ``PODID == ElectricPanelID``, how a platform exports the meter at the panel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
NIGHT_HOURS = (22, 23, 0, 1, 2, 3, 4, 5)
PERIODS = ("month", "week", "day")
# A register step agrees with the mean power over it within this share, plus one 0.01 kWh digit.
REGISTER_TOLERANCE = 0.2
REGISTER_DIGIT_KWH = 0.01
# An hour enters the period maximum when at least half of it is covered; a day enters the trend
# when at least half of it is.
MIN_HOUR_COVER = 0.5
MIN_DAY_COVER_H = 12.0
# An edge period enters only when the fleet's data span covers at least this share of it.
MIN_PERIOD_SHARE = 0.5

FEATURES: dict[str, tuple[str, str]] = {
    "coverage": ("share of the period's hours (inside the fleet's data span) covered by readings", "1"),
    "e_kwh_sum": ("energy consumed in the period", "kWh"),
    "p_mean_kw": ("mean power over the covered hours (e_kwh_sum / covered hours)", "kW"),
    "p_max_kw": ("largest hourly mean power (hours at least half covered)", "kW"),
    "load_factor": ("p_mean_kw / p_max_kw", "1"),
    "night_share": ("night mean power / (night + day mean power); night is local 22-06 (the night/day ratio, bounded)", "1"),
    "weekend_share": ("weekend mean power / (weekend + weekday mean power) (the weekend/weekday ratio, bounded)", "1"),
    "phase_l1_share": ("share of |active power| x time on L1 (phase currents when no phase power)", "1"),
    "phase_l2_share": ("share on L2", "1"),
    "phase_l3_share": ("share on L3", "1"),
    "phase_share_max": ("the largest phase share (1/3 balanced, 1 single-phase)", "1"),
    "reactive_ratio": ("sum |q| x time / sum |p| x time (tan phi)", "1"),
    "pf_q10": ("10th percentile of |power factor| over the readings (exact, linear interpolation)", "1"),
    "pf_q50": ("median |power factor|", "1"),
    "trend_rel_per_day": ("least-squares slope of the daily mean power over the period, / p_mean_kw", "1/day"),
    "change_prev": ("p_mean_kw / p_mean_kw of the POD's previous period - 1", "1"),
    "change_own": ("p_mean_kw / mean p_mean_kw of the POD's up to 3 previous periods - 1", "1"),
    "peer_level": ("p_mean_kw / median p_mean_kw of the peer group in the period", "1"),
    "peer_change": ("change_prev - median change_prev of the peer group", "1"),
}
ID_COLUMNS = ("pod_id", "period", "period_start", "panel_id", "town", "peer_group", "n_readings")


@dataclass
class FleetFeatures:
    """What :func:`pod_periods` returns.

    Attributes
    ----------
    features : DataFrame
        One row per scored POD and period: ``ID_COLUMNS`` then the :data:`FEATURES` columns.
        NaN means "not measurable" (no power factor in the source, no previous period).
    hourly : DataFrame
        ``pod_id, panel_id, hour (UTC), e_kwh, coverage, is_panel``: energy per meter per hour.
    excluded : DataFrame
        ``pod_id, reason``: every meter not in ``features``.
    panels : DataFrame
        ``panel_id, meter_id``: the panel meters found (see the module docstring).
    period : str
    notes : list of str
    """

    features: pd.DataFrame
    hourly: pd.DataFrame
    excluded: pd.DataFrame
    panels: pd.DataFrame
    period: str = "month"
    notes: list[str] = field(default_factory=list)


def _check(period: str, tz: str) -> None:
    from wattwatch.errors import InputError

    if period not in PERIODS:
        raise InputError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    try:
        pd.Timestamp("2025-01-01", tz=tz)
    except Exception as exc:  # noqa: BLE001 - any failure means an unknown zone
        raise InputError(f"unknown time zone {tz!r}") from exc


# ------------------------------------------------------------------------------- period helpers


def period_of(local: pd.Series, period: str) -> tuple[pd.Series, pd.Series]:
    """``(label, local start)`` of naive local timestamps: month ``YYYY-MM``, week and day ``YYYY-MM-DD``
    (the Monday for a week)."""
    day = local.dt.floor("D")
    if period == "month":
        start = local.dt.to_period("M").dt.start_time
        label = start.dt.strftime("%Y-%m")
    elif period == "week":
        start = day - pd.to_timedelta(day.dt.dayofweek, unit="D")
        label = start.dt.strftime("%Y-%m-%d")
    else:
        start = day
        label = start.dt.strftime("%Y-%m-%d")
    return label, start


def _local(us: np.ndarray, tz: str) -> pd.Series:
    t = pd.Series(pd.to_datetime(us, unit="us", utc=True))
    return t.dt.tz_convert(tz).dt.tz_localize(None)


def span_hours(first_us: int, last_us: int, period: str, tz: str) -> pd.DataFrame:
    """Hours of the fleet's data span per period: ``period, period_hours, period_start`` (UTC)."""
    h0, h1 = first_us // HOUR_US, -(-last_us // HOUR_US)
    hours = np.arange(h0, max(h1, h0 + 1), dtype=np.int64) * HOUR_US
    local = _local(hours, tz)
    label, start = period_of(local, period)
    df = pd.DataFrame({"period": label, "period_start_local": start})
    out = df.groupby("period", sort=True).agg(period_hours=("period", "size"), period_start_local=("period_start_local", "first"))
    start = out["period_start_local"]
    step = {"month": pd.DateOffset(months=1), "week": pd.Timedelta(days=7), "day": pd.Timedelta(days=1)}[period]
    # A local midnight that happens twice (the Azores and Havana fall back from 01:00 to 00:00) starts
    # its period at the first of the two (True: the earlier, summer-time reading); one that does not
    # happen (a spring-forward at midnight) at the first instant after it.
    first = np.ones(len(start), dtype=bool)
    ps = start.dt.tz_localize(tz, ambiguous=first, nonexistent="shift_forward").dt.tz_convert("UTC")
    pe = (start + step).dt.tz_localize(tz, ambiguous=first, nonexistent="shift_forward").dt.tz_convert("UTC")
    out["period_start"] = ps.astype("datetime64[us, UTC]")
    out["full_hours"] = ((pe - ps).dt.total_seconds() / 3600).round().astype("int64")
    return out.drop(columns="period_start_local").reset_index()


# ---------------------------------------------------------------------------- panels & readings


def panel_meters(meters: pd.DataFrame, panels: pd.DataFrame | None = None) -> pd.DataFrame:
    """``panel_id, meter_id`` of the panel meters among ``meters`` (``meter_id, panel_id`` per meter)."""
    if panels is not None:
        p = panels[["panel_id", "meter_id"]].astype("string").dropna().drop_duplicates()
        return p.sort_values(["panel_id", "meter_id"]).reset_index(drop=True)
    m = meters[["meter_id", "panel_id"]].dropna()
    p = m[m["meter_id"] == m["panel_id"]][["panel_id", "meter_id"]].drop_duplicates()
    return p.astype("string").sort_values(["panel_id", "meter_id"]).reset_index(drop=True)


def readings(frame: pd.DataFrame) -> pd.DataFrame:
    """Per reading: ``meter_id, t0 (us), dt (us, NaN when unknown), e (kWh, NaN), src`` and the
    channels the features use (step 1 and 2 of the module docstring)."""
    from wattwatch.fleet.readers import conform

    f = conform(frame) if list(frame.columns) != list(_fleet_columns()) else frame
    f = f[f["meter_id"].notna() & f["ts"].notna()]
    key = ["meter_id", "ts"]
    dup = f.duplicated(key, keep=False).to_numpy()
    if dup.any():
        # Only the duplicated rows are merged (channel means, the latest end, the largest group ids).
        d = f[dup]
        num = [c for c in f.columns if c not in ("meter_id", "ts", "ts_end", "panel_id", "town")]
        merged = d.groupby(key, sort=False, observed=True).agg({**{c: "mean" for c in num}, "ts_end": "max"})
        for c in ("panel_id", "town"):
            merged[c] = group_max_str(d, key, c).reindex(merged.index)
        f = pd.concat([f[~dup], merged.reset_index()[list(f.columns)]], ignore_index=True)
    f = f.sort_values(key, kind="stable").reset_index(drop=True)
    t0 = f["ts"].astype("int64").to_numpy()
    mid = f["meter_id"].to_numpy()
    same_next = np.r_[mid[1:] == mid[:-1], False]
    nxt = np.where(same_next, np.r_[t0[1:], 0], -1)
    step = np.where(same_next, (nxt - t0).astype("float64"), np.nan)
    med = pd.Series(step).groupby(f["meter_id"].to_numpy(), sort=False).transform("median").to_numpy()
    med = np.floor(med)
    te = f["ts_end"]
    end = np.where(te.notna(), te.astype("int64").to_numpy(dtype="int64", na_value=0), 0).astype("float64")
    has_end = te.notna().to_numpy() & (end > t0)
    dt = np.where(has_end, end - t0, np.where(np.isnan(step), med, np.fmin(step, med)))
    dt = np.where(dt > 0, dt, np.nan)
    dt_h = dt / HOUR_US
    p = f["p_kw"].to_numpy()
    e_int = f["e_int_kwh"].to_numpy()
    reg = f["e_kwh"].to_numpy()
    reg_next = np.where(same_next, np.r_[reg[1:], np.nan], np.nan)
    diff = reg_next - reg
    adjacent = same_next & (step == dt)
    pe = p * dt_h
    consistent = adjacent & (diff >= 0) & (np.isnan(p) | (np.abs(diff - pe) <= REGISTER_TOLERANCE * np.abs(pe) + REGISTER_DIGIT_KWH))
    e = np.where(~np.isnan(e_int), e_int, np.where(consistent, diff, pe))
    e = np.where(np.isnan(dt), np.nan, e)
    src = np.where(~np.isnan(e_int), 1, np.where(consistent, 2, np.where(~np.isnan(pe), 3, 0)))
    out = pd.DataFrame({"meter_id": f["meter_id"], "panel_id": f["panel_id"], "town": f["town"], "t0": t0,
                        "dt": dt, "e": e, "src": src.astype(np.int8)})
    for c in ("p_kw", "q_kvar", "pf", "p_l1_kw", "p_l2_kw", "p_l3_kw", "i_l1_a", "i_l2_a", "i_l3_a"):
        out[c] = f[c].to_numpy()
    return out


def group_max_str(df: pd.DataFrame, key: list[str] | str, col: str) -> pd.Series:
    """The largest non-missing string of ``col`` per ``key`` group (Spark's ``max``), vectorised."""
    key = [key] if isinstance(key, str) else key
    d = df[key + [col]].dropna(subset=[col])
    d = d.sort_values(key + [col], kind="stable").drop_duplicates(key, keep="last")
    return d.set_index(key)[col].astype("string")


def group_conflict_notes(ranges: pd.DataFrame) -> list[str]:
    """Notes on meters whose readings name more than one panel (or town): ``ranges`` holds ``pod_id``
    and ``panel_min, panel_max, town_min, town_max`` (per meter, or per meter and period: both engines
    collect those). The meter is taken under the largest id, as ``meters_of`` does."""
    notes = []
    for col, what in (("panel", "panel"), ("town", "town")):
        g = ranges.groupby("pod_id", sort=True).agg(lo=(f"{col}_min", "min"), hi=(f"{col}_max", "max"))
        g = g[g["lo"].notna() & (g["lo"] != g["hi"])]
        if len(g):
            shown = ", ".join(f"{m} ({r.lo} .. {r.hi})" for m, r in g.head(10).iterrows())
            more = f" and {len(g) - 10} more" if len(g) > 10 else ""
            notes.append(f"{len(g)} meter(s) named under more than one {what} in their readings, taken under the "
                         f"largest id: {shown}{more}")
    return notes


def _ranges(df: pd.DataFrame, key: str) -> pd.DataFrame:
    d = df[[key, "panel_id", "town"]].astype({key: "string", "panel_id": "string", "town": "string"})
    g = d.groupby(key, sort=True)
    out = pd.DataFrame({"panel_min": g["panel_id"].min(), "panel_max": g["panel_id"].max(),
                        "town_min": g["town"].min(), "town_max": g["town"].max()})
    return out.rename_axis("pod_id").reset_index()


def _fleet_columns():
    from wattwatch.fleet.readers import FLEET_COLUMNS

    return FLEET_COLUMNS


def hourly_table(r: pd.DataFrame) -> pd.DataFrame:
    """Step 3: ``meter_id, h (hour index), e_kwh, cover_us`` from :func:`readings` output."""
    ok = ~np.isnan(r["e"].to_numpy()) & ~np.isnan(r["dt"].to_numpy())
    t0 = r["t0"].to_numpy()[ok]
    dt = r["dt"].to_numpy()[ok].astype(np.int64)
    e = r["e"].to_numpy()[ok]
    mid = r["meter_id"].to_numpy()[ok]
    h0 = t0 // HOUR_US
    h1 = (t0 + dt - 1) // HOUR_US
    n = (h1 - h0 + 1).astype(np.int64)
    idx = np.repeat(np.arange(len(t0)), n)
    k = np.arange(len(idx)) - np.repeat(np.cumsum(n) - n, n)
    h = h0[idx] + k
    a = np.maximum(t0[idx], h * HOUR_US)
    b = np.minimum(t0[idx] + dt[idx], (h + 1) * HOUR_US)
    ov = b - a
    piece = pd.DataFrame({"meter_id": mid[idx], "h": h, "e_kwh": e[idx] * ov / dt[idx], "cover_us": ov})
    return piece.groupby(["meter_id", "h"], sort=True, observed=True).agg(
        e_kwh=("e_kwh", "sum"), cover_us=("cover_us", "sum")).reset_index()


# ------------------------------------------------------------------------------------ pandas


def meters_of(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """``meter_id, panel_id, town`` per meter (the largest id when a meter's rows disagree)."""
    ids = pd.Index(pd.unique(df[key].astype("string").dropna()), dtype="string").sort_values()
    out = pd.DataFrame({"meter_id": ids})
    d = df.assign(**{key: df[key].astype("string")})
    for c in ("panel_id", "town"):
        out[c] = group_max_str(d, key, c).reindex(ids).to_numpy()
    return out.astype({"meter_id": "string", "panel_id": "string", "town": "string"})



def pod_periods(frame: pd.DataFrame, period: str = "month", *, tz: str = "UTC", min_coverage: float = 0.8,
                min_peers: int = 5, panels: pd.DataFrame | None = None, hourly: str = "all") -> FleetFeatures:
    """Features per POD and period from a fleet frame (see :mod:`wattwatch.fleet.readers`).

    Parameters
    ----------
    frame
        The fleet frame (``meter_id, ts`` and any of the fleet columns).
    period
        ``month``, ``week`` or ``day``, in ``tz``.
    tz
        Time zone of periods, night and weekend (IANA name).
    min_coverage
        The complete-POD threshold for every period.
    min_peers
        Smallest panel or town that is a peer group of its own.
    panels
        ``panel_id, meter_id`` of the panel meters (default: the naming rule).
    hourly
        ``"all"`` meters in ``.hourly``, or ``"balance"``: only panels with a panel meter.
    """
    _check(period, tz)
    r = readings(frame)
    meters = meters_of(r, "meter_id")
    pan = panel_meters(meters, panels)
    hr = hourly_table(r)
    if len(hr):
        first = int(r["t0"].min())
        last = int(np.nanmax(r["t0"].to_numpy() + np.nan_to_num(r["dt"].to_numpy())))
        spans = span_hours(first, last, period, tz)
    else:
        spans = pd.DataFrame({"period": pd.Series([], dtype=object), "period_hours": [], "period_start": [], "full_hours": []})
    # per POD-period partial sums from the hourly table
    hr_local = _local(hr["h"].to_numpy() * HOUR_US, tz)
    label, pstart = period_of(hr_local, period)
    cov_h = hr["cover_us"].to_numpy() / HOUR_US
    cov_c = np.minimum(cov_h, 1.0)
    e = hr["e_kwh"].to_numpy()
    night = hr_local.dt.hour.isin(NIGHT_HOURS).to_numpy()
    weekend = (hr_local.dt.dayofweek >= 5).to_numpy()
    hmax = np.where(cov_h >= MIN_HOUR_COVER, e / np.where(cov_h > 0, cov_h, np.nan), np.nan)
    H = pd.DataFrame({"pod_id": hr["meter_id"].to_numpy(), "period": label.to_numpy(), "e": e, "cov": cov_c,
                      "raw": cov_h, "e_n": np.where(night, e, 0.0), "c_n": np.where(night, cov_h, 0.0),
                      "e_we": np.where(weekend, e, 0.0), "c_we": np.where(weekend, cov_h, 0.0), "hmax": hmax})
    agg = H.groupby(["pod_id", "period"], sort=True, observed=True).agg(
        e_sum=("e", "sum"), cov_sum=("cov", "sum"), cov_raw=("raw", "sum"), e_n=("e_n", "sum"), c_n=("c_n", "sum"),
        e_we=("e_we", "sum"), c_we=("c_we", "sum"), p_max_kw=("hmax", "max")).reset_index()
    # daily regression sums
    day = hr_local.dt.floor("D")
    didx = ((day - pstart).dt.days).to_numpy()
    D = pd.DataFrame({"pod_id": hr["meter_id"].to_numpy(), "period": label.to_numpy(), "d": didx, "e": e, "c": cov_h})
    D = D.groupby(["pod_id", "period", "d"], sort=True, observed=True).agg(e=("e", "sum"), c=("c", "sum")).reset_index()
    D = D[D["c"] >= MIN_DAY_COVER_H]
    D["y"] = D["e"] / D["c"]
    D["x"] = D["d"].astype("float64")
    D["xy"] = D["x"] * D["y"]
    D["xx"] = D["x"] * D["x"]
    reg = D.groupby(["pod_id", "period"], sort=True, observed=True).agg(
        n_d=("y", "size"), sx=("x", "sum"), sy=("y", "sum"), sxy=("xy", "sum"), sxx=("xx", "sum")).reset_index()
    # reading-level sums per POD-period (period of the reading's start)
    rl = _local(r["t0"].to_numpy(), tz)
    rlabel, _ = period_of(rl, period)
    R = _reading_terms(r)
    R["pod_id"] = r["meter_id"].to_numpy()
    R["period"] = rlabel.to_numpy()
    rsum = R.groupby(["pod_id", "period"], sort=True, observed=True).agg(
        n_readings=("one", "sum"), ph1=("ph1", "sum"), ph2=("ph2", "sum"), ph3=("ph3", "sum"),
        q_abs=("q_abs", "sum"), p_abs=("p_abs", "sum")).reset_index()
    pfq = R.dropna(subset=["pf_abs"]).groupby(["pod_id", "period"], sort=True, observed=True)["pf_abs"]
    q = pd.DataFrame({"pf_q10": pfq.quantile(0.1), "pf_q50": pfq.quantile(0.5)}).reset_index()
    parts = Partials(agg=agg, reg=reg, rsum=rsum, pfq=q, spans=spans, meters=meters, panels=pan)
    feats, excluded, notes = finish(parts, period, min_coverage=min_coverage, min_peers=min_peers)
    notes = group_conflict_notes(_ranges(r, "meter_id")) + notes
    hourly_out = _hourly_out(hr, meters, pan, hourly)
    return FleetFeatures(feats, hourly_out, excluded, pan, period, notes)


def _reading_terms(r: pd.DataFrame) -> pd.DataFrame:
    """Per reading: the duration-weighted terms of the phase shares and the reactive ratio."""
    w = r["dt"].to_numpy() / HOUR_US
    pcols = ["p_l1_kw", "p_l2_kw", "p_l3_kw"]
    icols = ["i_l1_a", "i_l2_a", "i_l3_a"]
    has_p = r[pcols].notna().any(axis=1).to_numpy()
    out = pd.DataFrame({"one": np.ones(len(r), dtype=np.int64)})
    for k in range(3):
        x = np.where(has_p, r[pcols[k]].to_numpy(), r[icols[k]].to_numpy())
        out[f"ph{k + 1}"] = np.abs(np.nan_to_num(x)) * np.nan_to_num(w)
    both = ~np.isnan(r["q_kvar"].to_numpy()) & ~np.isnan(r["p_kw"].to_numpy()) & ~np.isnan(w)
    out["q_abs"] = np.where(both, np.abs(r["q_kvar"].to_numpy()) * np.nan_to_num(w), 0.0)
    out["p_abs"] = np.where(both, np.abs(r["p_kw"].to_numpy()) * np.nan_to_num(w), 0.0)
    out["pf_abs"] = np.abs(r["pf"].to_numpy())
    return out


def _hourly_out(hr: pd.DataFrame, meters: pd.DataFrame, pan: pd.DataFrame, which: str) -> pd.DataFrame:
    out = hr.merge(meters[["meter_id", "panel_id"]], on="meter_id", how="left")
    out = pd.DataFrame({"pod_id": out["meter_id"].astype("string"), "panel_id": out["panel_id"].astype("string"),
                        "hour": pd.to_datetime(out["h"].to_numpy() * HOUR_US, unit="us", utc=True).astype("datetime64[us, UTC]"),
                        "e_kwh": out["e_kwh"].to_numpy(),
                        "coverage": np.minimum(out["cover_us"].to_numpy() / HOUR_US, 1.0)})
    out["is_panel"] = out["pod_id"].isin(set(pan["meter_id"])).to_numpy()
    if which == "balance":
        out = out[out["panel_id"].isin(set(pan["panel_id"])) | out["is_panel"]]
    return out.sort_values(["pod_id", "hour"]).reset_index(drop=True)


# ------------------------------------------------------------------------- shared last step


@dataclass
class Partials:
    """Per POD-period partial sums both engines compute (small; collected on Spark)."""

    agg: pd.DataFrame    # pod_id, period, e_sum, cov_sum (hours clipped at 1), cov_raw, e_n, c_n, e_we, c_we, p_max_kw
    reg: pd.DataFrame    # pod_id, period, n_d, sx, sy, sxy, sxx
    rsum: pd.DataFrame   # pod_id, period, n_readings, ph1, ph2, ph3, q_abs, p_abs
    pfq: pd.DataFrame    # pod_id, period, pf_q10, pf_q50
    spans: pd.DataFrame  # period, period_hours, period_start
    meters: pd.DataFrame  # meter_id, panel_id, town
    panels: pd.DataFrame  # panel_id, meter_id


def _ratio(a, b):
    a = np.asarray(a, dtype="float64")
    b = np.asarray(b, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)


def finish(p: Partials, period: str, *, min_coverage: float, min_peers: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Partial sums -> features, excluded PODs and notes (the one step both engines share)."""
    notes: list[str] = []
    key = ["pod_id", "period"]
    agg, reg, rsum, pfq = (d.copy() for d in (p.agg, p.reg, p.rsum, p.pfq))
    for d in (agg, reg, rsum, pfq):
        d["pod_id"] = d["pod_id"].astype("string")
        d["period"] = d["period"].astype(str)
    df = agg.merge(reg, on=key, how="left").merge(rsum, on=key, how="outer").merge(pfq, on=key, how="left")
    spans = p.spans.copy()
    spans["period"] = spans["period"].astype(str)
    # An edge period the data span covers less than half of (data ending at 01:00 on the 1st) is
    # not a period to judge a POD on: dropped from the features and the filter, said in a note.
    short = spans["period_hours"] < MIN_PERIOD_SHARE * spans["full_hours"]
    for _, row in spans[short].iterrows():
        notes.append(f"period {row['period']} left out: the data span covers {int(row['period_hours'])} of its "
                     f"{int(row['full_hours'])} hours (less than {MIN_PERIOD_SHARE:.0%})")
    left_out = spans[short]
    spans = spans[~short]
    df = df.merge(spans.drop(columns="full_hours"), on="period", how="left")
    df = df[df["period_hours"].notna()]
    meters = p.meters.copy()
    meters["meter_id"] = meters["meter_id"].astype("string")
    panel_ids = set(p.panels["meter_id"].astype(str))
    excluded: list[tuple[str, str]] = []
    all_meters = sorted(set(meters["meter_id"].astype(str)))
    for m in all_meters:
        if m in panel_ids:
            pid = p.panels.loc[p.panels["meter_id"].astype(str) == m, "panel_id"].astype(str).tolist()
            excluded.append((m, f"panel meter of {', '.join(pid)} (energy balance only)"))
    df["cov_sum"] = df["cov_sum"].fillna(0.0)
    df["coverage"] = df["cov_sum"] / df["period_hours"]
    required = list(spans["period"])
    pods = [m for m in all_meters if m not in panel_ids]
    cov = df.pivot_table(index="pod_id", columns="period", values="coverage", aggfunc="first", observed=True)
    cov = cov.reindex(index=pd.Index(pods, dtype="string"), columns=required)
    # A period with no time covered by readings with a value (every channel NaN, one reading alone)
    # has no consumption to compare, whatever the threshold: at min_coverage 0 such a POD was scored
    # on features that were all missing (imputed to the fleet's median: the most normal POD).
    bad_cells = cov.isna() | (cov < min_coverage) | (cov <= 0)
    bad_pods = bad_cells.any(axis=1)
    if not required:  # no period to judge: every POD listed, with the reason
        if len(left_out):  # the data span covers less than half of each of its periods
            per = "; ".join(f"{r['period']}: {int(r['period_hours'])} of its {int(r['full_hours'])} hours"
                            for _, r in left_out.iterrows())
            why = f"no {period} to judge: the data span covers less than {MIN_PERIOD_SHARE:.0%} of each ({per})"
        else:  # not one reading of the fleet has a value
            why = "no time covered by readings with a value (every value channel missing)"
        for m in pods:
            excluded.append((m, why))
        bad_pods = pd.Series(True, index=cov.index)
    for m in cov.index[bad_pods.to_numpy()] if required else []:
        row = cov.loc[m]
        why = [f"{per}: no data" if np.isnan(v) else f"{per}: no time covered by readings with a value" if v <= 0 else
               f"{per}: coverage {v:.2f}" for per, v in row.items() if np.isnan(v) or v < min_coverage or v <= 0]
        shown = "; ".join(why[:4]) + (f"; and {len(why) - 4} more" if len(why) > 4 else "")
        excluded.append((str(m), f"incomplete (coverage under {min_coverage:g}, or none, in "
                                 f"{len(why)} of {len(required)} periods): {shown}"))
    keep = set(str(m) for m in cov.index[~bad_pods.to_numpy()])
    df = df[df["pod_id"].isin(keep)].copy()
    df = df.merge(meters.rename(columns={"meter_id": "pod_id"}), on="pod_id", how="left")
    f = pd.DataFrame({"pod_id": df["pod_id"].astype("string"), "period": df["period"].astype(str),
                      "period_start": df["period_start"], "panel_id": df["panel_id"].astype("string"),
                      "town": df["town"].astype("string")})
    f["n_readings"] = df["n_readings"].fillna(0).astype("int64").to_numpy()
    f["coverage"] = df["coverage"].to_numpy()
    f["e_kwh_sum"] = df["e_sum"].to_numpy()
    # Mean powers divide by the hours readings cover (overlapping interval records count twice, as
    # their energy does); the coverage feature counts each hour at most once.
    f["p_mean_kw"] = _ratio(df["e_sum"], df["cov_raw"])
    f["p_max_kw"] = df["p_max_kw"].to_numpy()
    f["load_factor"] = _ratio(f["p_mean_kw"], f["p_max_kw"])
    mn = _ratio(df["e_n"], df["c_n"])
    md = _ratio(df["e_sum"] - df["e_n"], df["cov_raw"] - df["c_n"])
    f["night_share"] = _ratio(mn, mn + md)
    mwe = _ratio(df["e_we"], df["c_we"])
    mwd = _ratio(df["e_sum"] - df["e_we"], df["cov_raw"] - df["c_we"])
    f["weekend_share"] = _ratio(mwe, mwe + mwd)
    tot = df["ph1"].to_numpy() + df["ph2"].to_numpy() + df["ph3"].to_numpy()
    for k in (1, 2, 3):
        f[f"phase_l{k}_share"] = _ratio(df[f"ph{k}"], tot)
    f["phase_share_max"] = f[["phase_l1_share", "phase_l2_share", "phase_l3_share"]].max(axis=1, skipna=False).to_numpy()
    f["reactive_ratio"] = np.where(df["p_abs"].to_numpy() > 0, _ratio(df["q_abs"], df["p_abs"]), np.nan)
    f["pf_q10"] = df["pf_q10"].to_numpy()
    f["pf_q50"] = df["pf_q50"].to_numpy()
    n = df["n_d"].to_numpy(dtype="float64")
    den = n * df["sxx"].to_numpy() - df["sx"].to_numpy() ** 2
    slope = np.where((n >= 2) & (den > 0), _ratio(n * df["sxy"] - df["sx"] * df["sy"], den), np.nan)
    f["trend_rel_per_day"] = _ratio(slope, f["p_mean_kw"])
    f = f.sort_values(["pod_id", "period_start"]).reset_index(drop=True)
    g = f.groupby("pod_id", sort=False)["p_mean_kw"]
    prev = g.shift(1)
    own = pd.concat([g.shift(k) for k in (1, 2, 3)], axis=1).mean(axis=1, skipna=True)
    f["change_prev"] = _ratio(f["p_mean_kw"], prev) - 1.0
    f["change_own"] = _ratio(f["p_mean_kw"], own) - 1.0
    # peer group per period: panel with >= min_peers scored PODs, else town, else the fleet
    n_panel = f.groupby(["period", "panel_id"], dropna=True)["pod_id"].transform("size")
    n_town = f.groupby(["period", "town"], dropna=True)["pod_id"].transform("size")
    peer = np.where(f["panel_id"].notna() & (n_panel.reindex(f.index).fillna(0) >= min_peers),
                    "panel:" + f["panel_id"].fillna(""),
                    np.where(f["town"].notna() & (n_town.reindex(f.index).fillna(0) >= min_peers),
                             "town:" + f["town"].fillna(""), "fleet"))
    f["peer_group"] = pd.Series(peer, index=f.index).astype("string")
    gp = f.groupby(["period", "peer_group"], sort=False)
    f["peer_level"] = _ratio(f["p_mean_kw"], gp["p_mean_kw"].transform("median"))
    f["peer_change"] = f["change_prev"] - gp["change_prev"].transform("median")
    f = f[list(ID_COLUMNS) + list(FEATURES)].sort_values(["pod_id", "period_start"]).reset_index(drop=True)
    ex = pd.DataFrame(excluded, columns=["pod_id", "reason"]).astype({"pod_id": "string", "reason": "string"})
    ex = ex.sort_values("pod_id").reset_index(drop=True)
    if len(ex):
        notes.append(f"{len(ex)} meter(s) excluded (see the excluded list)")
    return f, ex, notes


__all__ = ["FEATURES", "FleetFeatures", "pod_periods", "pod_periods_spark", "readings", "hourly_table",
           "panel_meters", "finish", "Partials", "span_hours", "period_of"]


def pod_periods_spark(sdf, period: str = "month", **opts) -> FleetFeatures:
    """The Spark twin of :func:`pod_periods` (see :mod:`wattwatch.fleet.spark`)."""
    from wattwatch.fleet.spark import pod_periods_spark as impl

    return impl(sdf, period, **opts)
