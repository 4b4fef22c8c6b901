"""Real prosumer behaviour: daily PV shapes from NREL PVDAQ system 50 (15 min) and household load
shapes from OPSD (Konstanz homes, hourly, on the homes' local clock), picked per prosumer with a seed and resampled to the
simulation's sample cadence.

PV shape: the day's AC power divided by the system's peak (0..1), on the local clock the logger
kept (see the PVDAQ README: the clock follows America/Denver local time; the simulation treats the
time of day as local). Load shape: a home's hourly grid import on one day divided by that day's
mean (mean 1), linearly interpolated to the sample cadence.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from wattwatch.errors import InputError

PV_FILE = ("nrel_pvdaq_pv_15min", "pvdaq_system50_ac_power_15min_20110415_20131231.csv.gz")
LOAD_FILE = ("opsd_household_prosumer_60min", "opsd_household_residential1-6_60min.csv.gz")


def _data_dir():
    from wattwatch.evaluate.real_data import find_data

    d = find_data(None)
    if d is None or not (d / PV_FILE[0]).is_dir():
        raise InputError("the real PV/load data (shared/data/real: nrel_pvdaq_pv_15min, opsd_household_prosumer_60min) "
                         "was not found; set WATTWATCH_REAL_DIR or use profile = \"flat\"")
    return d


@lru_cache(maxsize=1)
def pv_days() -> np.ndarray:
    """(days, 96) PV power per unit of the system's peak, 15-min slots of the logger's local day;
    only complete days with generation."""
    path = _data_dir().joinpath(*PV_FILE)
    df = pd.read_csv(path)
    # The logger's wall clock (the -07:00 offset is not trustworthy, README): time of day as written.
    local = pd.to_datetime(df["measured_on"].str.slice(0, 19))
    p = df["ac_power_2"].to_numpy(dtype=float)
    day = local.dt.normalize()
    slot = (local.dt.hour * 4 + local.dt.minute // 15).to_numpy()
    table = pd.DataFrame({"day": day, "slot": slot, "p": p}).pivot_table(index="day", columns="slot", values="p")
    table = table.reindex(columns=range(96))
    table = table[table.notna().all(axis=1)]
    arr = np.clip(table.to_numpy(), 0.0, None)
    arr = arr[arr.max(axis=1) > 0.2 * np.nanmax(arr)]
    return arr / np.nanmax(arr)


@lru_cache(maxsize=1)
def load_days() -> np.ndarray:
    """(days, 24) household load per unit of the day's mean, from the homes' hourly grid import."""
    path = _data_dir().joinpath(*LOAD_FILE)
    df = pd.read_csv(path, parse_dates=["utc_timestamp"])
    shapes = []
    for col in [c for c in df.columns if c.endswith("_grid_import")]:
        e = df[["utc_timestamp", col]].dropna()
        kw = e[col].diff().to_numpy()[1:]
        ts = e["utc_timestamp"].to_numpy()[1:]
        ok = np.diff(e["utc_timestamp"].to_numpy()) == np.timedelta64(1, "h")
        s = pd.Series(np.where(ok, kw, np.nan), index=pd.DatetimeIndex(ts, tz="UTC") if pd.DatetimeIndex(ts).tz is None else pd.DatetimeIndex(ts))
        # The register marks the end of the hour's energy; the row's timestamp is its start.
        s.index = (s.index - pd.Timedelta(hours=1)).tz_convert("Europe/Berlin").tz_localize(None)
        t = s.to_frame("kw").assign(day=s.index.normalize(), h=s.index.hour)
        wide = t.pivot_table(index="day", columns="h", values="kw").reindex(columns=range(24))
        wide = wide[wide.notna().all(axis=1)]
        wide = wide[(wide.mean(axis=1) > 0.05) & (wide.std(axis=1) > 0)]
        shapes.append(wide.to_numpy())
    arr = np.concatenate(shapes)
    return arr / arr.mean(axis=1, keepdims=True)


def _at_minutes(values: np.ndarray, slot_min: float, minutes: np.ndarray) -> np.ndarray:
    """Values given per slot (starting at minute 0, ``slot_min`` long, taken at the slot's middle)
    at ``minutes`` of the day (wrapping at midnight), linearly interpolated."""
    n = values.shape[-1]
    centres = (np.arange(n) + 0.5) * slot_min
    x = np.concatenate([centres - 1440.0, centres, centres + 1440.0])
    m = np.mod(minutes, 1440.0)
    return np.stack([np.interp(m, x, np.tile(v, 3)) for v in np.atleast_2d(values)])


def prosumer_profiles(n: int, minutes: np.ndarray, seed: int, mix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(pv, load)``, each (n, len(minutes)): PV per unit of peak and load per unit of mean for
    ``n`` prosumers, sampled at ``minutes`` since local midnight of the first day (later days
    reuse the prosumer's day). Prosumer i's shapes are the mean of ``mix[i]`` real days (seeded
    picks; 1 = one home's day, as peaky as a home is): a bus that aggregates many homes and PV
    sites sees their variations partly cancel."""
    rng = np.random.default_rng(seed)
    pv = pv_days()
    load = load_days()
    mix = np.ones(n, int) if mix is None else np.asarray(mix, int)
    pv_pick = np.stack([pv[rng.integers(0, len(pv), m)].mean(axis=0) for m in mix])
    pv_pick = pv_pick / np.maximum(pv_pick.max(axis=1, keepdims=True), 1e-9)
    load_pick = np.stack([load[rng.integers(0, len(load), m)].mean(axis=0) for m in mix])
    return _at_minutes(pv_pick, 15.0, minutes), _at_minutes(load_pick, 60.0, minutes)
