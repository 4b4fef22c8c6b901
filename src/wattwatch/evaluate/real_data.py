"""The real-data extracts in ``shared/data/real`` read into canonical long frames.

One loader per dataset returns ``meter_id, ts (UTC), <channels>`` with the conversions each
dataset's README documents; the labelled test set (``data/real_labels/``) refers to these meter
ids, channels and UTC times. The mappings in ``data/real_labels/mappings/`` ingest the same files
with ``wattwatch ingest`` where a mapping can express the conversion (see their comments for what
it cannot: UCI's separate date and time columns, the steel plant's midnight rows, OPSD's cumulative
registers as hourly power).

Where the data is: ``--data DIR``, else ``$WATTWATCH_REAL_DIR``, else ``../shared/data/real`` from
the working folder, else next to the wattwatch checkout (:func:`candidates`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["BDG2_ZONE_FIX", "DATASETS", "candidates", "find_data", "load", "zones"]

#: dataset -> (folder, cadence in seconds, the readme's licence)
DATASETS: dict[str, dict] = {
    "uci_household": {"folder": "uci_household_1min", "cadence_s": 60, "licence": "CC BY 4.0 (UCI)"},
    "ampds2": {"folder": "ampds2_b1e_1min", "cadence_s": 60, "licence": "CC BY 4.0 (AMPds2; cite Makonin et al. 2016)"},
    "steel": {"folder": "steel_industry_15min", "cadence_s": 900, "licence": "CC BY 4.0 (UCI)"},
    "bdg2": {"folder": "bdg2_nongepiii_hourly", "cadence_s": 3600,
             "licence": "CC BY-SA 4.0 (BDG2 repository LICENSE; derivatives under the same licence)"},
    "opsd": {"folder": "opsd_household_prosumer_60min", "cadence_s": 3600, "licence": "CC BY 4.0 (OPSD)"},
    "pvdaq": {"folder": "nrel_pvdaq_pv_15min", "cadence_s": 900, "licence": "MIT (pvlib/pvanalytics; NREL PVDAQ)"},
}


def candidates() -> list[Path]:
    """Where the real-data folder is looked for when none is given, in order."""
    if os.environ.get("WATTWATCH_REAL_DIR"):
        return [Path(os.environ["WATTWATCH_REAL_DIR"])]
    checkout = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real"
    return [Path("../shared/data/real"), Path(os.path.normpath(checkout)), Path("/work/shared/data/real")]


def find_data(data: str | Path | None = None) -> Path | None:
    """``data``, or the first default place that holds the extracts (None when there is none)."""
    if data is not None:
        return Path(data)
    for p in candidates():
        if (p / DATASETS["steel"]["folder"]).is_dir() or (p / DATASETS["bdg2"]["folder"]).is_dir():
            return p
    return None


def _file(root: Path, name: str, pattern: str) -> Path:
    folder = Path(root) / DATASETS[name]["folder"]
    found = sorted(folder.glob(pattern))
    if not found:
        raise FileNotFoundError(f"{folder}: no file matching {pattern!r} (the {name} extract)")
    return found[0]


def _uci(root: Path) -> pd.DataFrame:
    df = pd.read_csv(_file(root, "uci_household", "household_power_consumption_*.csv.gz"), na_values=["?"])
    # Naive clock time, gap-free across DST in the full record: a fixed UTC+1 (CET) clock.
    ts = pd.to_datetime(df["Date"] + " " + df["Time"], format="%d/%m/%Y %H:%M:%S") - pd.Timedelta(hours=1)
    return pd.DataFrame({"meter_id": "uci_sceaux", "ts": ts.dt.tz_localize("UTC"),
                         "p_kw": df["Global_active_power"], "q_kvar": df["Global_reactive_power"],
                         "v_l1_v": df["Voltage"], "i_l1_a": df["Global_intensity"]})


def _ampds2(root: Path) -> pd.DataFrame:
    df = pd.read_csv(_file(root, "ampds2", "Electricity_B1E_*.csv.gz"))
    return pd.DataFrame({"meter_id": "ampds2_B1E", "ts": pd.to_datetime(df["unix_ts"], unit="s", utc=True),
                         "v_l1_v": df["V"], "i_l1_a": df["I"], "p_kw": df["P"] / 1000, "q_kvar": df["Q"] / 1000,
                         "s_kva": df["S"] / 1000, "pf": df["APF"], "e_kwh": df["Pt"] / 1000})


def _steel(root: Path) -> pd.DataFrame:
    df = pd.read_csv(_file(root, "steel", "Steel_industry_data*.csv.gz"),
                     usecols=["date", "Usage_kWh", "Lagging_Current_Reactive.Power_kVarh", "Lagging_Current_Power_Factor", "NSM"])
    ts = pd.to_datetime(df["date"], format="%d/%m/%Y %H:%M")
    ts = ts + pd.to_timedelta((df["NSM"] == 0).astype(int), unit="D")  # midnight rows carry the ending day
    ts = ts.dt.tz_localize("Asia/Seoul").dt.tz_convert("UTC")  # KST, interval end
    return pd.DataFrame({"meter_id": "steel_daewoo", "ts": ts, "p_kw": 4 * df["Usage_kWh"],
                         "q_kvar": 4 * df["Lagging_Current_Reactive.Power_kVarh"],
                         "pf": df["Lagging_Current_Power_Factor"] / 100}).sort_values("ts", kind="stable")


#: BDG2 sites whose metadata zone is not the zone of their clock: Fox (Tempe, Arizona, 33.4 N
#: 111.9 W) is listed as US/Mountain, but Arizona keeps no daylight saving and the data agrees (a
#: reading at 02:00 on 2017-03-12, which US/Mountain skips, and no repeated hour in November).
BDG2_ZONE_FIX = {"Fox": "America/Phoenix"}


def _bdg2_zones(root: Path) -> dict[str, str]:
    meta = pd.read_csv(Path(root) / DATASETS["bdg2"]["folder"] / "metadata.csv",
                       usecols=["building_id", "site_id", "timezone"])
    return {b: BDG2_ZONE_FIX.get(site, z) for b, site, z in zip(meta["building_id"], meta["site_id"], meta["timezone"])
            if isinstance(z, str)}


def _bdg2(root: Path) -> pd.DataFrame:
    """Each building's readings at their true UTC times. BDG2 stamps are the site's local
    wall-clock time, daylight saving included: London's spring-forward hour 01:00 carries part of
    an hour next to a short 02:00 (Mouse_health_Justin 2016-03-27: 345 and 239 kWh between hours of
    575), its autumn 01:00 two hours' energy (2016-10-30: 1,145 kWh); the eastern schools have no
    reading at the skipped 02:00 (Rat_education_Eleonora 2016-03-13). The stamp that does not exist
    on the site's clock is dropped; a repeated one is read as the first (daylight-saving) hour."""
    wide = pd.read_csv(_file(root, "bdg2", "bdg2_electricity_*.csv.gz"))
    zones = _bdg2_zones(root)
    naive = pd.to_datetime(wide["timestamp"])
    local = {z: naive.dt.tz_localize(z, ambiguous=np.ones(len(naive), bool), nonexistent="NaT").dt.tz_convert("UTC")
             for z in sorted(set(zones.values()))}
    parts = []
    for col in sorted(c for c in wide.columns if c != "timestamp"):
        v = pd.to_numeric(wide[col], errors="coerce")
        ts = local[zones[col]]
        keep = (v.notna() & ts.notna()).to_numpy()
        parts.append(pd.DataFrame({"meter_id": col, "ts": ts[keep].to_numpy(), "p_kw": v[keep].to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out.reset_index(drop=True)


def _opsd(root: Path) -> pd.DataFrame:
    """Each building's grid-import register: ``e_kwh`` the register, ``p_kw`` the energy of the hour
    ending at ``ts`` (the register's difference to the previous hour's row)."""
    cols = ["utc_timestamp"] + [f"DE_KN_residential{n}_grid_import" for n in range(1, 7)]
    wide = pd.read_csv(_file(root, "opsd", "opsd_household_*.csv.gz"), usecols=cols)
    ts = pd.to_datetime(wide["utc_timestamp"], utc=True)
    parts = []
    for n in range(1, 7):
        col = f"DE_KN_residential{n}_grid_import"
        e = pd.to_numeric(wide[col], errors="coerce")
        p = e.diff()  # a blank hour next to a reading gives no power for either side
        keep = e.notna().to_numpy()
        parts.append(pd.DataFrame({"meter_id": f"opsd_residential{n}", "ts": ts[keep].to_numpy(),
                                   "p_kw": p[keep].to_numpy(), "e_kwh": e[keep].to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out


def _pvdaq(root: Path) -> pd.DataFrame:
    """Generation in kW (positive, as the inverters log it). System 50's rows carry -07:00 but its
    clock follows daylight time (README): kept as written, the DST hour is a real quirk."""
    s50 = pd.read_csv(_file(root, "pvdaq", "pvdaq_system50_*.csv.gz"))
    east = pd.read_csv(_file(root, "pvdaq", "serf_east_*.csv.gz"))
    west = pd.read_csv(_file(root, "pvdaq", "serf_west_*.csv.gz"))
    west_ts = pd.to_datetime(west.iloc[:, 0]).dt.tz_localize("America/Denver").dt.tz_convert("UTC")
    parts = [
        pd.DataFrame({"meter_id": "pvdaq_system50", "ts": pd.to_datetime(s50["measured_on"], utc=True),
                      "p_kw": s50["ac_power_2"] / 1000}),
        pd.DataFrame({"meter_id": "pvdaq_serf_east", "ts": pd.to_datetime(east["measured_on"], utc=True),
                      "p_kw": east["ac_power"] / 1000}),
        pd.DataFrame({"meter_id": "pvdaq_serf_west", "ts": west_ts, "p_kw": west["ac_power__773"] / 1000,
                      "v_l1_v": west["ac_volts__778"], "i_l1_a": west["ac_current__779"],
                      "temp_c": west["inveter_temp__784"]}),
    ]
    out = pd.concat(parts, ignore_index=True)
    return out[out[["p_kw"]].notna().any(axis=1)].reset_index(drop=True)


LOADERS = {"uci_household": _uci, "ampds2": _ampds2, "steel": _steel, "bdg2": _bdg2, "opsd": _opsd, "pvdaq": _pvdaq}


def load(name: str, root: str | Path) -> pd.DataFrame:
    """Dataset ``name`` from the real-data folder ``root`` as a canonical long frame (UTC)."""
    if name not in LOADERS:
        raise ValueError(f"unknown real dataset {name!r}; known: {', '.join(LOADERS)}")
    df = LOADERS[name](Path(root))
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    num = [c for c in df.columns if c not in ("meter_id", "ts")]
    df[num] = df[num].astype("float64").replace([np.inf, -np.inf], np.nan)
    return df.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)


def zones(name: str, root: str | Path) -> dict[str, str]:
    """Per meter of dataset ``name``: the IANA zone of its wall clock, as its loader's UTC times
    must be read to get it back (empty where none is known or the clock that matters is UTC).

    BDG2: each building's zone from ``metadata.csv`` (daylight saving included; Fox in Arizona:
    America/Phoenix, :data:`BDG2_ZONE_FIX`), the clock its stamps were written in. OPSD:
    Europe/Berlin (true UTC times). Steel: Asia/Seoul. PV (pvdaq) none: the sun keeps no daylight
    saving, so its profile is best in UTC."""
    if name == "bdg2":
        return _bdg2_zones(Path(root))
    if name == "opsd":
        return {f"opsd_residential{n}": "Europe/Berlin" for n in range(1, 7)}
    if name == "steel":
        return {"steel_daewoo": "Asia/Seoul"}
    return {}
