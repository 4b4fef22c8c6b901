"""Real load shapes for the simulated fleet (``SimConfig(shapes="real")``).

The synthetic fleet draws its load from a smooth daily/weekly formula; real load is lumpier,
less periodic and less clean. With ``shapes="real"`` each meter's true load comes from the real
extracts in ``shared/data/real`` (:mod:`wattwatch.evaluate.real_data`) instead, and everything
downstream (per-phase split, voltages, currents, power factor, neutral, temperature, energy
register, faults, normal events) is simulated from it as before:

- homes (single phase): the UCI household (Sceaux, 1-min whole-house power, resampled to 5-min
  means) plus, as one more appliance circuit, the AMPds2 bedroom circuit (1-min, resampled)
  scaled to 0.3-1.5 kW at its peak;
- commercial sites (three phase): the steel plant (15-min) and the BDG2 buildings (hourly),
  linearly interpolated to 5 min. Windows holding zero, missing or flat-lined hours, or hours
  copied from the week before (a gap the publisher filled), or sources whose readings are coarsely
  quantised (a lab metered in steps of 1,000 kWh), are not used: the fleet's labels would not
  know about those real defects.

Each meter takes its own source, start day (a commercial meter's on the same weekday as the
fleet's first day, so weekends stay weekends), minute offset and scale (seeded). Source days wrap
around when a source is shorter than the run. Where the data is: ``real_dir``, else
``$WATTWATCH_REAL_DIR``, else ``../shared/data/real`` (:func:`wattwatch.evaluate.real_data.find_data`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

GRID_S = 300.0  # every source is put on a 5-minute grid of local (wall-clock) time
DAY = int(86400 / GRID_S)


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # residential | commercial | circuit
    values: np.ndarray  # kW on the 5-minute local grid, gap-free, from local midnight
    dow0: int  # weekday (Monday 0) of the first day
    clean_days: np.ndarray  # first days of windows with no defect (commercial), or all days


def _wall(ts, clock: float | str) -> pd.DatetimeIndex:
    """Local wall-clock times of UTC ``ts``: a fixed offset in hours, or an IANA zone (the hour
    skipped in spring is then a gap, the repeated autumn hour two readings at one time)."""
    ts = pd.DatetimeIndex(ts)
    if isinstance(clock, str):
        return ts.tz_convert(clock).tz_localize(None)
    return ts.tz_convert("UTC").tz_localize(None) + pd.Timedelta(hours=clock)


def _grid(ts: pd.Series, p: pd.Series, clock: float | str, cadence_s: float) -> tuple[np.ndarray, int]:
    """Power on the 5-minute local grid from local midnight of the first whole day: 5-minute means
    of finer data, linear interpolation of coarser (values stand at the middle of their interval).
    ``clock``: the source's wall clock (:func:`_wall`). Gaps up to an hour are interpolated; longer
    ones stay NaN."""
    local = _wall(ts, clock)
    s = pd.Series(p.to_numpy(float), index=local).sort_index()
    s = s[~s.index.duplicated()]
    if cadence_s < GRID_S:
        s = s.resample(f"{int(GRID_S)}s").mean()
    else:
        # Interval-end stamps (steel, BDG2 hourly energy): the value belongs to the interval's middle.
        s.index = s.index - pd.Timedelta(seconds=cadence_s / 2)
    day0 = s.index[0].ceil("D")
    grid = pd.date_range(day0, s.index[-1].floor("D"), freq=f"{int(GRID_S)}s", inclusive="left")
    both = s.reindex(s.index.union(grid))
    limit = int(np.ceil(3600 / min(cadence_s, GRID_S)))
    out = both.interpolate(method="time", limit=max(limit, int(np.ceil(cadence_s / GRID_S)) + 1),
                           limit_area="inside").reindex(grid)
    return out.to_numpy(float), int(day0.dayofweek)


def _clean_days(hourly_src: pd.Series, values: np.ndarray, need_days: int, cadence_s: float,
                changes: pd.DatetimeIndex | None = None) -> np.ndarray:
    """Start days of ``need_days``-day windows of ``values`` without a missing, zero or flat-lined
    (equal source readings for three hours) stretch, a stretch copied from the week before (three
    hours equal to the same hours a week earlier: a gap filled by the data's publisher), nor a
    clock change (``changes``, local times: a logger on the site's wall clock writes a short hour
    in spring and a double one in autumn)."""
    n_days = len(values) // DAY
    bad_day = np.zeros(n_days, bool)
    if changes is not None and len(changes) and len(hourly_src):
        idx = ((changes - hourly_src.index[0]).total_seconds() // 86400).astype(int)
        idx = np.asarray(idx)
        bad_day[idx[(idx >= 0) & (idx < n_days)]] = True
    v = values[: n_days * DAY].reshape(n_days, DAY)
    bad_day |= np.isnan(v).any(axis=1) | (v <= 0).any(axis=1)
    k = max(2, int(round(3 * 3600 / cadence_s)))
    same = (hourly_src.diff().abs() < 1e-9).astype(int)
    flat = same.rolling(k - 1, min_periods=k - 1).sum() >= k - 1
    # A gap the data's publisher filled with a copy of an earlier week: three hours or more equal,
    # reading for reading, to the same hours a week before (no meter repeats itself to the Wh).
    week = hourly_src.index - pd.Timedelta(days=7)
    # (A repeated autumn hour on a wall clock looks up its first reading; that day is a clock change.)
    before = hourly_src[~hourly_src.index.duplicated()].reindex(week).to_numpy()
    copy = pd.Series((np.abs(hourly_src.to_numpy() - before) < 1e-9).astype(int), index=hourly_src.index)
    flat |= copy.rolling(k, min_periods=k).sum() >= k
    if flat.any():
        idx = ((hourly_src.index[flat.to_numpy()] - hourly_src.index[0]).total_seconds() // 86400).astype(int)
        bad_day[np.clip(idx, 0, n_days - 1)] = True
    if n_days < need_days:
        return np.array([], int)
    run = np.convolve(bad_day.astype(int), np.ones(need_days, int), mode="valid")
    return np.flatnonzero(run == 0)


@lru_cache(maxsize=4)
def library(root: str, need_days: int) -> tuple[Source, ...]:
    """The real shapes under ``root`` usable for ``need_days``-day windows (cached per process)."""
    from wattwatch.evaluate.real_data import load, zones

    root_p = Path(root)
    sources: list[Source] = []
    uci = load("uci_household", root_p)
    vals, dow0 = _grid(uci["ts"], uci["p_kw"], 1.0, 60.0)  # a fixed CET clock (the loader's README)
    vals = pd.Series(vals).interpolate(limit_direction="both").to_numpy()
    n = len(vals) // DAY * DAY
    sources.append(Source("uci_household", "residential", vals[:n], dow0, np.arange(n // DAY)))
    amp = load("ampds2", root_p)
    vals, dow0 = _grid(amp["ts"], amp["p_kw"].clip(lower=0), -7.0, 60.0)  # Vancouver, PST
    vals = pd.Series(vals).interpolate(limit_direction="both").to_numpy()
    n = len(vals) // DAY * DAY
    sources.append(Source("ampds2_B1E", "circuit", vals[:n], dow0, np.arange(n // DAY)))

    for name, cadence in (("steel", 900.0), ("bdg2", 3600.0)):
        df = load(name, root_p)
        zs = zones(name, root_p)
        for mid, g in df.groupby("meter_id", sort=True):
            p = g["p_kw"].astype(float)
            q = p[p > 0]
            # Coarsely quantised readings (a lab metered in steps of 1,000 kWh, a hotel in 20 kWh)
            # are no shape of a load.
            if len(q) < 24 * need_days or q.round(6).nunique() < 200:
                continue
            clock = zs.get(mid, "UTC")  # the site's wall clock, daylight saving included
            vals, dow0 = _grid(g["ts"], p, clock, cadence)
            src_local = pd.Series(p.to_numpy(), index=_wall(g["ts"], clock) - pd.Timedelta(hours=cadence / 3600 / 2))
            src_local = src_local[src_local.index >= src_local.index[0].ceil("D")]
            wall = _wall(g["ts"], clock)
            shift = (wall - pd.DatetimeIndex(g["ts"]).tz_convert("UTC").tz_localize(None)).to_numpy()
            changes = wall[np.flatnonzero(shift[1:] != shift[:-1]) + 1]  # the site's clock changes
            days = _clean_days(src_local, vals, need_days, cadence, changes)
            if len(days):
                sources.append(Source(f"{name}:{mid}", "commercial", vals[: len(vals) // DAY * DAY], dow0, days))
    if not any(s.kind == "commercial" for s in sources):
        raise ValueError(f"{root}: no commercial load shape with {need_days} clean days (steel, bdg2)")
    return tuple(sources)


def real_load_kw(rng: np.random.Generator, kind: str, peak_kw: float, t_local_h: np.ndarray, days: float,
                 root: str) -> tuple[np.ndarray, dict]:
    """A meter's true load (kW) at local hours ``t_local_h`` from a real shape, scaled so that its
    99th percentile is ``peak_kw``; and where it came from (source, start day, scale)."""
    need = int(np.ceil(days)) + 2
    lib = library(root, need)
    day0_dow = int((np.floor(t_local_h[0] / 24) + 3) % 7)  # 1970-01-01 was a Thursday
    rel_h = t_local_h - np.floor(t_local_h[0] / 24) * 24  # hours from the first local midnight

    def take(src: Source, start_day: int, shift_min: float) -> np.ndarray:
        pos = (rel_h * 3600 + shift_min * 60) / GRID_S + start_day * DAY
        n = len(src.values)
        i0 = np.floor(pos).astype(np.int64)
        f = pos - i0
        a, b = src.values[i0 % n], src.values[(i0 + 1) % n]
        return a + (b - a) * f

    if kind == "residential":
        home = next(s for s in lib if s.kind == "residential")
        circuit = next(s for s in lib if s.kind == "circuit")
        start = int(rng.integers(0, len(home.values) // DAY))
        shift = float(rng.uniform(-60, 60))
        load = take(home, start, shift)
        c_start = int(rng.integers(0, len(circuit.values) // DAY))
        c = take(circuit, c_start, float(rng.uniform(-60, 60)))
        c_peak = float(np.nanmax(circuit.values)) or 1.0
        c_kw = float(rng.uniform(0.3, 1.5))
        scale = peak_kw / float(np.quantile(home.values, 0.99))
        detail = {"source": home.name, "start_day": start, "shift_min": round(shift, 1),
                  "circuit": circuit.name, "circuit_start_day": c_start, "circuit_kw": round(c_kw, 2)}
        return load * scale + c * (c_kw / c_peak), detail
    com = [s for s in lib if s.kind == "commercial"]
    src = com[int(rng.integers(0, len(com)))]
    # A start day on the fleet's first weekday, so that weekends stay weekends.
    same = src.clean_days[(src.dow0 + src.clean_days) % 7 == day0_dow]
    pool = same if len(same) else src.clean_days
    start = int(pool[int(rng.integers(0, len(pool)))])
    shift = float(rng.uniform(-30, 30))
    load = take(src, start, shift)
    window = src.values[start * DAY:(start + need) * DAY]
    scale = peak_kw / float(np.quantile(window, 0.99))
    return load * scale, {"source": src.name, "start_day": start, "shift_min": round(shift, 1)}
