"""Energy balance: a panel (feeder) meter against the sum of the PODs behind it.

The utilities' standard check for non-technical losses. Per panel and hour the loss is the panel's
energy minus the energy its PODs registered. Part of it is technical (line and transformer losses):
a no-load part plus an I²R part, so the allowance is learned per panel as
``tech_kwh = a + b·P + c·P²`` (P = the panel's energy in the hour), fitted by least squares on the
panel's first ``baseline_days`` days (its own early periods, assumed clean; a loss that was already
there then is part of the allowance and cannot be found this way). What the allowance does not
explain is the *unexplained* loss.

A persistent loss is found on the daily unexplained share (unexplained kWh / panel kWh of the day)
by a one-sided CUSUM (Page, 1954) on the share standardised by its baseline spread (median and
MAD): ``S_d = max(0, S_{d-1} + z_d - k)``, alarm when ``S_d > h``; the loss began the day after the
last ``S = 0`` before the alarm (the CUSUM's own change-time estimate). A panel is flagged when the
CUSUM alarms and the unexplained share from the start on averages at least ``min_share`` (a loss
too small to send an inspector for is not flagged however steady).

The PODs behind the panel are then ranked by how well a change in their registered energy when the
loss began explains it: each POD's *missing* energy per hour after the start is its expected energy
(its own mean for that hour of the week over the ``before_days`` before the start; with
``seasonal``, times the day's seasonal factor the panel meter shows) minus what it registered.
``suspicion = max(0, ρ) · clip(missing / unexplained, 0, 1)`` with ρ the correlation, over the
hours after the start, of the POD's missing energy with the panel's unexplained loss. A
POD whose real consumption dropped (vacation, a closed shop) also "misses" energy, but the panel saw
the drop too, so the unexplained loss does not follow it: ρ stays near 0. The ranking explains away:
the first POD's missing energy is taken out of the loss before the second is chosen, and so on.

Everything is vectorised over panels and PODs (the CUSUM steps over days, over all panels at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PERIOD_FREQ = {"month": "M", "week": "W", "day": "D", "quarter": "Q", "year": "Y"}


@dataclass(frozen=True)
class BalanceResult:
    """What :func:`energy_balance` returns.

    Attributes
    ----------
    periods : DataFrame
        Per panel_id and period: ``panel_kwh, pods_kwh, loss_kwh, loss_share, tech_kwh,
        unexplained_kwh, unexplained_share, valid_hours, flagged, loss_start``.
    hourly : DataFrame
        Per panel_id and hour (hours where the panel and every POD have a reading): ``panel_kwh,
        pods_kwh, loss_kwh, tech_kwh, unexplained_kwh``.
    panels : DataFrame
        Per panel_id: the allowance fit (``a_kwh, b, c_per_kwh``), baseline median and spread of the daily
        unexplained share, ``cusum_max``, ``flagged``, ``loss_start``, ``unexplained_share_after``.
    suspects : DataFrame
        Per POD: ``panel_id, pod_id, rank`` (1 = most suspect in its panel), ``suspicion``,
        ``missing_kwh``, ``corr``, ``explained_share``, ``panel_flagged``.
    notes : list of str
        Panels skipped and why.
    """

    periods: pd.DataFrame
    hourly: pd.DataFrame
    panels: pd.DataFrame
    suspects: pd.DataFrame
    notes: list = field(default_factory=list)


def _period(ts: pd.Series, period: str, tz: str = "UTC") -> pd.Series:
    """The period label of each hour, as the feature table labels it (``fleet.features.period_of``:
    month ``YYYY-MM``, week and day ``YYYY-MM-DD``) in the run's time zone; another pandas period
    alias gives pandas' own label."""
    local = ts.dt.tz_convert(tz).dt.tz_localize(None)
    if period in ("month", "week", "day"):
        from wattwatch.fleet.features import period_of

        return period_of(local, period)[0]
    return local.dt.to_period(PERIOD_FREQ.get(period, period)).astype(str)


def _utc(s: pd.Series) -> pd.Series:
    s = pd.to_datetime(s, utc=True)
    return s


def energy_balance(hourly: pd.DataFrame, panels: pd.DataFrame | None, period: str = "month", *,
                   baseline_days: int = 28, before_days: int = 28, k: float | None = None, h: float = 8.0,
                   min_share: float = 0.005, min_coverage: float = 0.9, explain_rounds: int = 5,
                   seasonal: bool = False, tz: str = "UTC") -> BalanceResult:
    """Balance every panel meter against its PODs; find persistent losses and rank the PODs.

    Parameters
    ----------
    hourly : DataFrame
        ``pod_id, panel_id, hour, e_kwh`` and optionally ``coverage`` (share of the hour the reading
        covers). A row whose ``pod_id`` equals its ``panel_id`` is the panel meter itself.
    panels : DataFrame or None
        The panel meters' readings (``panel_id, hour, e_kwh``), or a mapping ``panel_id, meter_id``
        naming the panel meters among ``hourly``'s rows (``FleetFeatures.panels``); None: the rows
        with ``is_panel`` true, else those whose ``pod_id`` equals their ``panel_id``.
    period : str
        "month", "week", "day" (or a pandas period alias) for the per-period table, taken in ``tz``
        and labelled as the feature table labels its periods.
    baseline_days, before_days : int
        Days that train the technical-loss allowance; days before a loss's start that give each
        POD's expected energy.
    k, h : float
        CUSUM reference value and decision threshold, in baseline standard deviations of the daily
        unexplained share. By default ``k`` is half the smallest shift worth flagging,
        ``max(0.5, min_share / (2·sigma))``, per panel (the textbook CUSUM design for a shift of
        ``min_share``): a drift of a few hundredths of a percent is real but not a theft.
    min_share : float
        Smallest mean unexplained share after the start that is flagged.
    min_coverage : float
        A POD's hour counts only with at least this coverage.
    explain_rounds : int
        PODs placed per panel by explaining away (see the module docstring).
    seasonal : bool
        Scale each POD's expectation by the panel's seasonal factor (see ``_suspects``).
    """
    need = {"pod_id", "panel_id", "hour", "e_kwh"}
    missing = need - set(hourly.columns)
    if missing:
        raise ValueError(f"hourly: missing column(s) {sorted(missing)}")
    hourly = hourly[hourly["panel_id"].notna() & hourly["pod_id"].notna()].copy()  # a POD on no panel: nothing to balance
    hourly["hour"] = _utc(hourly["hour"])
    hourly["pod_id"] = hourly["pod_id"].astype(str)
    hourly["panel_id"] = hourly["panel_id"].astype(str)
    pan = None
    if panels is not None and "hour" not in panels.columns and {"panel_id", "meter_id"} <= set(panels.columns):
        # A mapping panel_id -> meter_id (``FleetFeatures.panels``): the panel meters' rows are in ``hourly``.
        pm = panels[["panel_id", "meter_id"]].astype(str).drop_duplicates("meter_id")
        is_panel = hourly["pod_id"].isin(set(pm["meter_id"]))
        pan = hourly.loc[is_panel, ["pod_id", "hour", "e_kwh"]].merge(
            pm, left_on="pod_id", right_on="meter_id")[["panel_id", "hour", "e_kwh"]]
    elif "is_panel" in hourly.columns:
        is_panel = hourly["is_panel"].fillna(False).astype(bool)
    else:
        is_panel = hourly["pod_id"] == hourly["panel_id"]
    if pan is None and panels is None:
        pan = hourly.loc[is_panel, ["panel_id", "hour", "e_kwh"]]
    elif pan is None:
        miss = {"panel_id", "hour", "e_kwh"} - set(panels.columns)
        if miss:
            raise ValueError(f"panels: missing column(s) {sorted(miss)} (need the panel meters' readings "
                             "panel_id, hour, e_kwh or a mapping panel_id, meter_id)")
        pan = panels[["panel_id", "hour", "e_kwh"]].copy()
        pan["panel_id"] = pan["panel_id"].astype(str)
        pan["hour"] = _utc(pan["hour"])
    pods = hourly.loc[~is_panel]
    notes = []
    no_meter = sorted(set(pods["panel_id"]) - set(pan["panel_id"]))
    if no_meter:
        notes.append(f"{len(no_meter)} panel(s) without a panel meter reading, not balanced: "
                     f"{', '.join(no_meter[:10])}{' …' if len(no_meter) > 10 else ''}")
    pan = pan.groupby(["panel_id", "hour"], as_index=False)["e_kwh"].sum(min_count=1)

    # Hours where the panel and every POD behind it have a (well covered) reading.
    ok = pods["e_kwh"].notna()
    if "coverage" in pods.columns:
        ok &= pods["coverage"].fillna(0) >= min_coverage
    expected = pods.groupby("panel_id")["pod_id"].nunique().rename("n_expected")
    agg = (pods.assign(e=pods["e_kwh"].where(ok), ok=ok)
           .groupby(["panel_id", "hour"], as_index=False).agg(pods_kwh=("e", "sum"), n_ok=("ok", "sum")))
    hb = agg.merge(expected, on="panel_id").merge(pan.rename(columns={"e_kwh": "panel_kwh"}),
                                                 on=["panel_id", "hour"], how="inner")
    hb = hb[(hb["n_ok"] == hb["n_expected"]) & hb["panel_kwh"].notna()].drop(columns=["n_ok", "n_expected"])
    hb = hb.sort_values(["panel_id", "hour"], kind="mergesort").reset_index(drop=True)
    hb["loss_kwh"] = hb["panel_kwh"] - hb["pods_kwh"]
    hb["day"] = hb["hour"].dt.floor("D")

    empty_cols = ["panel_id", "period", "panel_kwh", "pods_kwh", "loss_kwh", "loss_share", "tech_kwh",
                  "unexplained_kwh", "unexplained_share", "valid_hours", "flagged", "loss_start"]
    if hb.empty:
        notes.append("no hour with a panel reading and every POD's reading: nothing balanced")
        return BalanceResult(pd.DataFrame(columns=empty_cols), hb, pd.DataFrame(), pd.DataFrame(), notes)

    # Technical-loss allowance: loss = a + b·P + c·P² on the baseline days (P scaled by its mean).
    first_day = hb.groupby("panel_id")["day"].transform("min")
    base = hb["day"] < first_day + pd.Timedelta(days=baseline_days)
    scale = hb[base].groupby("panel_id")["panel_kwh"].mean().rename("p_scale")
    hb = hb.merge(scale, on="panel_id", how="left")
    x = (hb["panel_kwh"] / hb["p_scale"]).to_numpy()
    y = hb["loss_kwh"].to_numpy()
    mom = pd.DataFrame({"panel_id": hb["panel_id"], "base": base.to_numpy(), "x0": 1.0, "x1": x, "x2": x ** 2,
                        "x3": x ** 3, "x4": x ** 4, "y0": y, "y1": y * x, "y2": y * x ** 2})
    m = mom[mom["base"]].groupby("panel_id")[["x0", "x1", "x2", "x3", "x4", "y0", "y1", "y2"]].sum()
    a_mat = np.stack([m[["x0", "x1", "x2"]].to_numpy(), m[["x1", "x2", "x3"]].to_numpy(),
                      m[["x2", "x3", "x4"]].to_numpy()], axis=1)
    rhs = m[["y0", "y1", "y2"]].to_numpy()
    # A tiny ridge keeps a panel whose load barely varies (singular moments) solvable.
    coef = np.linalg.solve(a_mat + 1e-9 * np.eye(3) * a_mat[:, :1, :1], rhs[..., None])[..., 0]
    coef = pd.DataFrame(coef, index=m.index, columns=["a", "b", "c"])
    hb = hb.merge(coef, left_on="panel_id", right_index=True, how="left")
    hb["tech_kwh"] = hb["a"] + hb["b"] * x + hb["c"] * x ** 2
    hb["unexplained_kwh"] = hb["loss_kwh"] - hb["tech_kwh"]

    # Daily unexplained share; CUSUM over days for all panels at once.
    daily = hb.groupby(["panel_id", "day"], as_index=False).agg(
        panel_kwh=("panel_kwh", "sum"), unexplained_kwh=("unexplained_kwh", "sum"), hours=("hour", "size"))
    full = daily.groupby("panel_id")["hours"].transform("max")
    daily = daily[daily["hours"] >= 0.8 * full].copy()  # a day with a fifth of its hours missing says little
    daily["u"] = daily["unexplained_kwh"] / daily["panel_kwh"].where(daily["panel_kwh"] > 0)
    d0 = daily.groupby("panel_id")["day"].transform("min")
    in_base = daily["day"] < d0 + pd.Timedelta(days=baseline_days)
    bstats = daily[in_base].groupby("panel_id")["u"].agg(
        base_median="median", base_mad=lambda s: 1.4826 * (s - s.median()).abs().median())
    bstats["base_sigma"] = np.maximum(bstats["base_mad"], 1e-3)  # a floor: 0.1 % of the panel's energy
    wide = daily.pivot(index="day", columns="panel_id", values="u").sort_index()
    pids = wide.columns.to_numpy()
    z = ((wide - bstats.loc[pids, "base_median"].to_numpy()) / bstats.loc[pids, "base_sigma"].to_numpy()).to_numpy()
    days = wide.index
    n_days, n_pan = z.shape
    sig = bstats.loc[pids, "base_sigma"].to_numpy()
    kk = np.maximum(0.5, min_share / (2 * sig)) if k is None else np.full(n_pan, float(k))
    # Two CUSUMs side by side: the detector (k from min_share) and a sensitive one (k = 0.5) whose
    # largest excursion dates the most likely change on a panel the detector left alone, so that its
    # PODs can still be ranked ("if there is something here, look there first").
    kk2 = np.stack([kk, np.full(n_pan, 0.5)])
    s = np.zeros((2, n_pan))
    last_zero = np.full((2, n_pan), -1)
    alarm = np.full(n_pan, -1)
    start = np.full(n_pan, -1)
    s_max = np.zeros((2, n_pan))
    arg_start = np.zeros(n_pan, dtype=int)
    for t in range(n_days):  # a step per day, all panels at once
        zt = np.nan_to_num(z[t], nan=0.0)
        s = np.maximum(0.0, s + zt - kk2)
        last_zero = np.where(s == 0, t, last_zero)
        new = (s[0] > h) & (alarm < 0)
        alarm = np.where(new, t, alarm)
        start = np.where(new, last_zero[0] + 1, start)
        bigger = s[1] > s_max[1]
        arg_start = np.where(bigger, last_zero[1] + 1, arg_start)
        s_max = np.maximum(s_max, s)
    s_max = s_max[0]
    est = np.where(start >= 0, start, arg_start)
    est = np.clip(est, 0, n_days - 1)
    pinfo = pd.DataFrame({"panel_id": pids, "cusum_k": kk, "cusum_max": s_max, "alarm": alarm >= 0,
                          "start_day": days[est]}).set_index("panel_id")
    after_u = np.array([np.nanmean(np.where(np.arange(n_days) >= est[j], wide.to_numpy()[:, j], np.nan))
                        - bstats.loc[pids[j], "base_median"] if np.isfinite(wide.to_numpy()[est[j]:, j]).any()
                        else np.nan for j in range(n_pan)])  # one value per panel, not per reading
    pinfo["unexplained_share_after"] = after_u
    pinfo["flagged"] = pinfo["alarm"] & (pinfo["unexplained_share_after"] >= min_share)
    pinfo["loss_start"] = pinfo["start_day"].where(pinfo["flagged"])
    pinfo = pinfo.join(bstats[["base_median", "base_sigma"]]).join(
        coef.rename(columns={"a": "a_kwh", "c": "c_per_kwh"}))

    # Per panel and period.
    hb["period"] = _period(hb["hour"], period, tz)
    per = hb.groupby(["panel_id", "period"], as_index=False).agg(
        panel_kwh=("panel_kwh", "sum"), pods_kwh=("pods_kwh", "sum"), loss_kwh=("loss_kwh", "sum"),
        tech_kwh=("tech_kwh", "sum"), unexplained_kwh=("unexplained_kwh", "sum"), valid_hours=("hour", "size"),
        period_end=("hour", "max"))
    per["loss_share"] = per["loss_kwh"] / per["panel_kwh"].where(per["panel_kwh"] > 0)
    per["unexplained_share"] = per["unexplained_kwh"] / per["panel_kwh"].where(per["panel_kwh"] > 0)
    per = per.merge(pinfo[["flagged", "loss_start"]], left_on="panel_id", right_index=True, how="left")
    per["flagged"] = per["flagged"].fillna(False).astype(bool) & (per["period_end"] >= per["loss_start"])
    per["loss_start"] = per["loss_start"].where(per["flagged"])
    per = per[empty_cols]

    suspects = _suspects(pods[ok], hb, pinfo, before_days, explain_rounds, seasonal)
    hourly_out = hb[["panel_id", "hour", "panel_kwh", "pods_kwh", "loss_kwh", "tech_kwh", "unexplained_kwh"]]
    return BalanceResult(per, hourly_out, pinfo.reset_index(), suspects, notes)


def _suspects(pods: pd.DataFrame, hb: pd.DataFrame, pinfo: pd.DataFrame, before_days: int,
              explain_rounds: int = 5, seasonal: bool = False) -> pd.DataFrame:
    """Rank each panel's PODs by how well their drop in registered energy explains the loss."""
    p = pods[["pod_id", "panel_id", "hour", "e_kwh"]].merge(
        pinfo[["start_day", "flagged"]], left_on="panel_id", right_index=True, how="inner")
    how = p["hour"].dt.dayofweek * 24 + p["hour"].dt.hour
    before = (p["hour"] < p["start_day"]) & (p["hour"] >= p["start_day"] - pd.Timedelta(days=before_days))
    after = p["hour"] >= p["start_day"]
    prof = (p[before].assign(how=how[before]).groupby(["pod_id", "how"])["e_kwh"].mean().rename("expected"))
    pa_ = p[after].assign(how=how[after]).join(prof, on=["pod_id", "how"])
    # An hour of the week the POD had no reading for before: its own mean before stands in.
    mean_before = p[before].groupby("pod_id")["e_kwh"].mean().rename("mean_before")
    pa_ = pa_.join(mean_before, on="pod_id")
    pa_["expected"] = pa_["expected"].fillna(pa_["mean_before"])
    # Optional: scale each POD's expectation by the day's seasonal factor the panel meter shows
    # against its own hour-of-week profile before the start. Off by default: it helps when the
    # PODs share the panel's season (Jan-Apr fleets: top-5 localisation 0.74 -> 0.81) and hurts when
    # they do not (Jan-Jun, heating households and cooling shops on one panel: 0.87 -> 0.75).
    hp = hb[["panel_id", "hour", "panel_kwh"]].merge(pinfo[["start_day"]], left_on="panel_id", right_index=True)
    hhow = hp["hour"].dt.dayofweek * 24 + hp["hour"].dt.hour
    hbefore = (hp["hour"] < hp["start_day"]) & (hp["hour"] >= hp["start_day"] - pd.Timedelta(days=before_days))
    pprof = hp[hbefore].assign(how=hhow[hbefore]).groupby(["panel_id", "how"])["panel_kwh"].mean().rename("p_exp")
    hp = hp.assign(how=hhow, day=hp["hour"].dt.floor("D")).join(pprof, on=["panel_id", "how"])
    dd = hp.dropna(subset=["p_exp"]).groupby(["panel_id", "day"])[["panel_kwh", "p_exp"]].sum()
    season = (dd["panel_kwh"] / dd["p_exp"].where(dd["p_exp"] > 0)).rename("season")
    pa_ = pa_.assign(day=pa_["hour"].dt.floor("D")).join(season, on=["panel_id", "day"])
    if seasonal:
        pa_["expected"] = pa_["expected"] * pa_["season"].fillna(1.0)
    pa_["missing"] = pa_["expected"] - pa_["e_kwh"]
    pa_ = pa_.merge(hb[["panel_id", "hour", "unexplained_kwh"]], on=["panel_id", "hour"], how="inner")
    pa_ = pa_[["panel_id", "pod_id", "hour", "missing", "unexplained_kwh"]].reset_index(drop=True)

    def stats(frame: pd.DataFrame) -> pd.DataFrame:
        mm, uu = frame["missing"], frame["u"]
        g = frame.assign(m=mm, mu=mm * uu, m2=mm * mm, u2=uu * uu).groupby(["panel_id", "pod_id"])
        sums = g[["m", "u", "mu", "m2", "u2"]].sum()
        n = g.size()
        cov = sums["mu"] - sums["m"] * sums["u"] / n
        var_m = sums["m2"] - sums["m"] ** 2 / n
        var_u = sums["u2"] - sums["u"] ** 2 / n
        with np.errstate(all="ignore"):
            corr = (cov / np.sqrt(var_m * var_u)).where((var_m > 0) & (var_u > 0))
            unexpl = sums["u"]  # the panel's unexplained kWh over the same hours
            explained = (sums["m"] / unexpl.where(unexpl > 0)).clip(0, 1)
        o = pd.DataFrame({"missing_kwh": sums["m"], "corr": corr, "explained_share": explained}).reset_index()
        o["suspicion"] = o["corr"].clip(lower=0).fillna(0) * o["explained_share"].fillna(0)
        return o

    # Explaining away: the most suspect POD of each panel is ranked, its missing energy taken out of
    # the panel's unexplained loss, and the rest scored again (a big theft hides a small one on the
    # same panel otherwise: the loss follows the big one's hours and the small one's correlation is
    # near 0). ``explain_rounds`` places per panel; the rest keep the order of the last round.
    work = pa_.assign(u=pa_["unexplained_kwh"])
    placed = []
    for r in range(explain_rounds):
        o = stats(work)
        if o.empty:
            break
        o = o.sort_values(["panel_id", "suspicion", "missing_kwh", "pod_id"], ascending=[True, False, False, True],
                          kind="mergesort")
        top = o.groupby("panel_id", sort=False).head(1)
        top = top[top["suspicion"] > 0]
        if top.empty:
            break
        placed.append(top.assign(rank=r + 1))
        gone = work["pod_id"].isin(set(top["pod_id"]))
        took = work[gone].groupby(["panel_id", "hour"])["missing"].sum().rename("took")
        work = work[~gone].join(took, on=["panel_id", "hour"])
        work["u"] = work["u"] - work["took"].fillna(0.0)
        work = work.drop(columns="took")
    rest = stats(work) if len(work) else pd.DataFrame(columns=["panel_id", "pod_id", "missing_kwh", "corr",
                                                                "explained_share", "suspicion"])
    rest = rest.sort_values(["panel_id", "suspicion", "missing_kwh", "pod_id"], ascending=[True, False, False, True],
                            kind="mergesort")
    n_placed = (pd.concat(placed).groupby("panel_id").size() if placed else pd.Series(dtype=int))
    rest["rank"] = rest.groupby("panel_id").cumcount() + 1 + rest["panel_id"].map(n_placed).fillna(0).astype(int)
    out = pd.concat(placed + [rest], ignore_index=True)
    out = out.merge(pinfo[["flagged"]].rename(columns={"flagged": "panel_flagged"}), left_on="panel_id",
                    right_index=True, how="left")
    out = out.sort_values(["panel_id", "rank"], kind="mergesort")
    out["rank"] = out["rank"].astype(np.int64)
    return out[["panel_id", "pod_id", "rank", "suspicion", "missing_kwh", "corr", "explained_share",
                "panel_flagged"]].reset_index(drop=True)
