"""A labelled POD fleet behind panel (feeder) meters, for fleet scoring and energy balance.

Each delivery point (POD) has a true load from the household and commercial load shapes of
:mod:`wattwatch.sim.fleet`, on a 15-minute world grid averaged to the reading cadence (a reading is
the energy of its interval, as a billing meter's is), with a seasonal factor (heating in winter,
cooling in summer; the amplitude is the POD's own). Each panel meter measures the true load of its
PODs plus technical losses (line and transformer losses, ``tech_loss`` share of the load on average,
growing with the load as I²R losses do, around a constant no-load part) and its own metering noise.

Injected, with labels (``labels.json``), all in the last ``fault_months`` months:

- ``theft``: meter bypass / under-registration. From a day on, the POD *registers* ``1 - ratio`` of
  its true load (ratio 0.3..0.8); the panel still measures the true load, so a loss appears there.
- ``level_shift`` (up or down): a real change of consumption (new tenant, heat pump, closed shop).
  The POD and the panel both see it: no loss.
- ``vacation`` (a look-alike of theft for a single-meter detector): the real load drops to a
  fraction of itself for 1-3 weeks; the panel sees the drop too. Anywhere after the first month.

Every random choice comes from ``seed``; the same config gives the same files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.sim.fleet import DEFAULT_KNOBS, _load_kw, _make_meter

WORLD_STEP_S = 900.0  # the load is simulated every 15 min, then summed into readings
FAULT_TYPES = ("theft", "level_shift", "vacation")


@dataclass(frozen=True)
class PodSimConfig:
    """Parameters of a simulated POD fleet."""

    pods: int = 400
    panels: int = 10
    months: int = 6
    step: str = "1h"
    seed: int = 0
    start: str = "2025-01-01T00:00:00Z"
    commercial_share: float = 0.2
    tech_loss: tuple[float, float] = (0.02, 0.05)  # a panel's mean technical-loss share, drawn in this range
    panel_noise: float = 0.005  # the panel meter's relative error per reading (1 sigma)
    theft_share: float = 0.02
    shift_share: float = 0.03
    vacation_share: float = 0.02
    fault_months: int = 2  # theft and level shifts start within the last this many months

    def __post_init__(self):
        if self.pods < 1 or self.panels < 1 or self.panels > self.pods:
            raise ValueError(f"need 1 <= panels <= pods (got pods={self.pods}, panels={self.panels})")
        if self.months < 2 or not 1 <= self.fault_months < self.months:
            raise ValueError("need months >= 2 and 1 <= fault_months < months (the first month is the baseline)")
        step_s = pd.Timedelta(self.step).total_seconds()
        if not WORLD_STEP_S <= step_s <= 86400 or step_s % WORLD_STEP_S:
            raise ValueError(f"step {self.step!r} must be a multiple of 15 min, at most 1 day")
        for name in ("theft_share", "shift_share", "vacation_share", "commercial_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.theft_share + self.shift_share + self.vacation_share > 1:
            raise ValueError("theft, shift and vacation shares add up to more than 1")


def _seasonal(rng: np.random.Generator, t_days: np.ndarray, kind: str) -> np.ndarray:
    """A slow seasonal factor: winter heating (and some summer cooling) for the POD's own amplitudes."""
    doy = t_days % 365.25
    winter = rng.uniform(0.05, 0.35) if kind == "residential" else rng.uniform(0.0, 0.15)
    summer = rng.uniform(0.0, 0.15) if kind == "residential" else rng.uniform(0.05, 0.3)
    return (1 + winter * np.clip(np.cos(2 * np.pi * (doy - 15) / 365.25), 0, None)
            + summer * np.clip(np.cos(2 * np.pi * (doy - 200) / 365.25), 0, None))


def simulate_pods(cfg: PodSimConfig, out: str | Path | None = None, json_records: bool = False) -> dict:
    """Simulate the fleet; return its tables and, with ``out``, write them.

    Returns
    -------
    dict
        ``hourly``: one row per POD and reading: ``pod_id, panel_id, hour`` (interval start, UTC),
        ``e_kwh`` (registered energy in the interval), ``coverage`` (1.0); ``panel_hourly``: the
        panel meters' ``panel_id, hour, e_kwh``; ``panels``: the mapping (``meter_id, panel_id,
        role``: "pod" or "panel", a panel meter's panel_id is its own id); ``labels``: the injected events; ``pods``: the
        POD descriptions; ``files``: what was written. With ``out``: ``telemetry.parquet``
        (canonical schema: ``meter_id, ts, p_kw`` mean power over the interval, ``e_kwh`` cumulative
        register, ``pf``, ``q_kvar``; ``panel_id`` and ``town`` columns), ``panels.csv`` (the panel
        meters, ``panel_id, meter_id``: what ``wattwatch fleet --panels`` takes), ``pods.csv`` (every
        meter's ``meter_id, panel_id, role``), ``labels.json``, and with ``json_records``
        the nested smart-meter JSON under ``json/`` (see :func:`write_nested_json`).
    """
    rng = np.random.default_rng(cfg.seed)
    t0 = pd.Timestamp(cfg.start)
    t0 = t0.tz_localize("UTC") if t0.tz is None else t0.tz_convert("UTC")
    t1 = t0 + pd.DateOffset(months=cfg.months)
    step_s = pd.Timedelta(cfg.step).total_seconds()
    per = int(round(step_s / WORLD_STEP_S))
    n_read = int((t1 - t0).total_seconds() // step_s)
    world = pd.date_range(t0, periods=n_read * per, freq=pd.Timedelta(seconds=WORLD_STEP_S))
    ts = world[::per]
    t_ns = world.asi8
    meta = type("C", (), {"commercial_share": cfg.commercial_share, "k": DEFAULT_KNOBS})()   # the fleet simulator's default world

    # Panels of uneven size (Dirichlet shares), every panel with at least 3 PODs when there are enough.
    share = rng.dirichlet(np.full(cfg.panels, 4.0))
    panel_of = np.repeat(np.arange(cfg.panels), np.maximum(1 if cfg.pods < 3 * cfg.panels else 3,
                                                           np.floor(share * cfg.pods).astype(int)))[:cfg.pods]
    if len(panel_of) < cfg.pods:
        panel_of = np.concatenate([panel_of, rng.integers(0, cfg.panels, cfg.pods - len(panel_of))])
    panel_of = rng.permutation(panel_of)
    panel_ids = np.array([f"PNL-{j + 1:03d}" for j in range(cfg.panels)])
    pod_ids = np.array([f"POD-{i + 1:06d}" for i in range(cfg.pods)])

    # Faults: disjoint sets of PODs.
    order = rng.permutation(cfg.pods)
    n_theft, n_shift, n_vac = (int(round(s * cfg.pods)) for s in (cfg.theft_share, cfg.shift_share, cfg.vacation_share))
    kind_of = np.array([""] * cfg.pods, dtype=object)
    kind_of[order[:n_theft]] = "theft"
    kind_of[order[n_theft:n_theft + n_shift]] = "level_shift"
    kind_of[order[n_theft + n_shift:n_theft + n_shift + n_vac]] = "vacation"
    fault_from = t0 + pd.DateOffset(months=cfg.months - cfg.fault_months)
    day_ns = 86400 * 10 ** 9
    first_day = (fault_from - t0).days
    last_day = (t1 - t0).days - 7  # at least a week of fault before the end

    true = np.empty((cfg.pods, n_read))
    registered = np.empty((cfg.pods, n_read))
    pods, labels = [], []
    seeds = rng.spawn(cfg.pods)
    for i in range(cfg.pods):
        g = seeds[i]
        m = replace(_make_meter(g, i + 1, meta), meter_id=str(pod_ids[i]))
        t_local_h = t_ns / 3.6e12 + m.utc_offset_h
        dow = ((np.floor(t_local_h / 24) + 3) % 7).astype(int)
        load, _ = _load_kw(g, m, t_local_h, dow, WORLD_STEP_S, t_ns)
        load = load * _seasonal(g, t_ns / 8.64e13, m.kind)
        kw = load.reshape(n_read, per).mean(axis=1)
        reg_gain = np.ones(n_read)
        kind = kind_of[i]
        if kind:
            if kind == "vacation":
                d0 = int(g.integers(31, max(32, (t1 - t0).days - 21)))
                length = int(g.integers(7, 22))
            else:
                d0 = int(g.integers(first_day, max(first_day + 1, last_day)))
                length = (t1 - t0).days - d0
            s = t0 + pd.Timedelta(days=d0)
            e = min(t1, s + pd.Timedelta(days=length))
            on = (ts >= s) & (ts < e)
            detail = {}
            if kind == "theft":
                ratio = float(g.uniform(0.3, 0.8))
                reg_gain[on] = 1 - ratio
                detail = {"ratio": round(ratio, 3)}
            elif kind == "level_shift":
                up = bool(g.random() < 0.5)
                f = float(g.uniform(1.4, 2.0)) if up else float(g.uniform(0.4, 0.7))
                kw = np.where(on, kw * f, kw)
                detail = {"factor": round(f, 3), "direction": "up" if up else "down"}
            else:
                f = float(g.uniform(0.15, 0.4))
                kw = np.where(on, np.maximum(kw * f, m.base_kw * 0.8), kw)
                detail = {"factor": round(f, 3)}
            labels.append({"pod_id": str(pod_ids[i]), "panel_id": str(panel_ids[panel_of[i]]), "type": kind,
                           "start": _iso(s), "end": _iso(e), "detail": detail})
        true[i] = kw * step_s / 3600.0
        registered[i] = true[i] * reg_gain * m.cal_gain
        pods.append({"pod_id": str(pod_ids[i]), "panel_id": str(panel_ids[panel_of[i]]), "kind": m.kind,
                     "pf": round(m.pf_mean, 4), "fault": kind or None})

    # Panel meters: the true load of their PODs, technical losses, metering noise.
    onehot = np.zeros((cfg.panels, cfg.pods))
    onehot[panel_of, np.arange(cfg.pods)] = 1.0
    load_sum = onehot @ true
    ell = rng.uniform(*cfg.tech_loss, cfg.panels)[:, None]
    rel = load_sum / np.maximum(load_sum.mean(axis=1, keepdims=True), 1e-9)
    tech = ell * load_sum * (0.4 + 0.6 * rel)  # a constant no-load part plus an I²R part
    tech *= load_sum.sum(axis=1, keepdims=True) / np.maximum((0.4 + 0.6 * rel) * load_sum, 1e-12).sum(
        axis=1, keepdims=True)  # so the mean share is ell
    panel_e = (load_sum + tech) * (1 + rng.normal(0, cfg.panel_noise, load_sum.shape))

    hourly = pd.DataFrame({
        "pod_id": np.repeat(pod_ids, n_read),
        "panel_id": np.repeat(panel_ids[panel_of], n_read),
        "hour": np.tile(ts, cfg.pods),
        "e_kwh": registered.ravel(),
        "coverage": 1.0,
    })
    panel_hourly = pd.DataFrame({"panel_id": np.repeat(panel_ids, n_read), "hour": np.tile(ts, cfg.panels),
                                 "e_kwh": panel_e.ravel()})
    mapping = pd.DataFrame({"meter_id": np.concatenate([pod_ids, panel_ids]),
                            "panel_id": np.concatenate([panel_ids[panel_of], panel_ids]),
                            "role": ["pod"] * cfg.pods + ["panel"] * cfg.panels})
    result = {"hourly": hourly, "panel_hourly": panel_hourly, "panels": mapping, "labels": labels, "pods": pods, "files": {},
              "config": asdict(cfg), "tech_loss": dict(zip(panel_ids.tolist(), ell[:, 0].round(4).tolist()))}
    if out is not None:
        result["files"] = write_pods(result, Path(out), cfg, json_records=json_records)
    return result


def _iso(t: pd.Timestamp) -> str:
    return t.tz_convert("UTC").isoformat().replace("+00:00", "Z")


def canonical(hourly: pd.DataFrame, pf: dict[str, float], step_s: float) -> pd.DataFrame:
    """The canonical telemetry of ``hourly``: mean power, a cumulative register, pf and reactive power."""
    from wattwatch.schema import CHANNEL_NAMES
    f = hourly.rename(columns={"pod_id": "meter_id", "hour": "ts"}).sort_values(["meter_id", "ts"], kind="mergesort")
    p_kw = f["e_kwh"].to_numpy() * 3600.0 / step_s
    pfs = f["meter_id"].map(pf).fillna(0.98).to_numpy()
    out = pd.DataFrame({"meter_id": f["meter_id"].to_numpy(), "ts": f["ts"].to_numpy()})
    for c in CHANNEL_NAMES:
        out[c] = np.nan
    out["p_kw"] = p_kw
    out["pf"] = pfs
    out["q_kvar"] = p_kw * np.tan(np.arccos(pfs))
    out["s_kva"] = p_kw / pfs
    out["e_kwh"] = f.groupby("meter_id", sort=False)["e_kwh"].cumsum().to_numpy()
    return out


def write_pods(result: dict, out: Path, cfg: PodSimConfig, json_records: bool = False) -> dict:
    """Write ``telemetry.parquet``, ``panels.csv``, ``pods.csv``, ``labels.json`` (and the nested JSON) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    step_s = pd.Timedelta(cfg.step).total_seconds()
    pf = {p["pod_id"]: p["pf"] for p in result["pods"]}
    both = pd.concat([result["hourly"][["pod_id", "hour", "e_kwh"]],
                      result["panel_hourly"].rename(columns={"panel_id": "pod_id"})], ignore_index=True)
    frame = canonical(both, pf, step_s)
    files = {"parquet": str(out / "telemetry.parquet"), "panels": str(out / "panels.csv"), "pods": str(out / "pods.csv"),
             "labels": str(out / "labels.json")}
    # panel_id and town ride along as columns of the file (the fleet readers keep them per meter).
    frame = frame.merge(result["panels"][["meter_id", "panel_id"]], on="meter_id", how="left")
    frame["town"] = "T000"
    frame.to_parquet(files["parquet"], index=False)
    m = result["panels"]
    m.loc[m["role"] == "panel", ["panel_id", "meter_id"]].to_csv(files["panels"], index=False)
    m.to_csv(files["pods"], index=False)
    (out / "labels.json").write_text(json.dumps({"config": asdict(cfg), "tech_loss": result["tech_loss"],
                                                 "labels": result["labels"]}, indent=1))
    if json_records:
        files["json"] = write_nested_json(frame, result["panels"], out / "json", step_s)
    return files


def write_nested_json(frame: pd.DataFrame, mapping: pd.DataFrame, folder: Path, step_s: float,
                      town_code: str = "T000") -> str:
    """Write the readings as SCPS *UrbanDataset* documents (the nested layout of seed 002 that
    :func:`wattwatch.fleet.readers.read_fleet_json` reads): one ``.json`` file per panel, one
    ``values.line`` per reading with its ``period`` (``start_ts``, ``end_ts``, UTC) and a
    ``property`` list (``PODID``, ``ElectricPanelID``, ``TownCode``, phase powers, voltage, current,
    power factor, ``TotalActiveEnergy`` of the interval in kWh). Units are declared in
    ``propertyDefinition``."""
    folder.mkdir(parents=True, exist_ok=True)
    f = frame if "panel_id" in frame.columns else frame.merge(mapping[["meter_id", "panel_id"]], on="meter_id", how="left")
    f = f.sort_values(["panel_id", "meter_id", "ts"], kind="mergesort")
    start = f["ts"].dt.tz_convert("UTC")
    fmt = "%Y-%m-%dT%H:%M:%S"
    cols = {
        "start_ts": start.dt.strftime(fmt).to_numpy(),
        "end_ts": (start + pd.Timedelta(seconds=step_s)).dt.strftime(fmt).to_numpy(),
        "PODID": f["meter_id"].to_numpy(), "ElectricPanelID": f["panel_id"].to_numpy(),
        "Phase1ActivePower": f["p_kw"].round(5).to_numpy(), "Phase1ReactivePower": f["q_kvar"].round(5).to_numpy(),
        "Phase1ApparentPower": f["s_kva"].round(5).to_numpy(), "Phase1PowerFactor": f["pf"].round(4).to_numpy(),
        "Phase1Voltage": np.full(len(f), 230.0), "Line1Current": (f["s_kva"] * 1000 / 230.0).round(4).to_numpy(),
        "TotalActiveEnergy": (f["p_kw"] * step_s / 3600.0).round(6).to_numpy(),
    }
    units = {"Phase1ActivePower": "kilowatt", "Phase1ReactivePower": "kilovoltAmpereReactive",
             "Phase1ApparentPower": "kilovoltAmpere", "Phase1PowerFactor": "dimensionless",
             "Phase1Voltage": "volt", "Line1Current": "ampere", "TotalActiveEnergy": "kilowattHour"}
    numeric = list(units)
    panel_col = cols["ElectricPanelID"]
    for pid in pd.unique(panel_col):
        idx = np.flatnonzero(panel_col == pid)
        lines = [{"id": int(j + 1), "period": {"start_ts": cols["start_ts"][i], "end_ts": cols["end_ts"][i]},
                  "property": [{"name": "PODID", "val": str(cols["PODID"][i])},
                               {"name": "ElectricPanelID", "val": str(pid)},
                               {"name": "TownCode", "val": town_code}]
                  + [{"name": k, "val": f"{cols[k][i]:.6g}"} for k in numeric]}
                 for j, i in enumerate(idx)]  # document building: one dict per reading is what JSON is
        doc = {"UrbanDataset": {
            "specification": {"id": {"value": "SmartMeterMonitoring"}, "properties": {"propertyDefinition": [
                {"propertyName": k, "unitOfMeasure": u} for k, u in units.items()]}},
            "context": {"producer": {"id": "wattwatch-sim"}, "timeZone": "UTC"},
            "values": {"line": lines}}}
        (folder / f"{pid}.json").write_text(json.dumps(doc))
    return str(folder)


def period_labels(labels: list[dict], features: pd.DataFrame, period: str = "month") -> pd.DataFrame:
    """Per (pod_id, period) of ``features``: the fault type active in it ("" if none)."""
    keys = features[["pod_id", "period"]].drop_duplicates().copy()
    p = keys["period"].astype(str)
    start = pd.to_datetime(p, utc=True, errors="coerce")
    freq = {"month": "MS", "week": "W-MON", "day": "D"}.get(period, period)
    end = start + pd.tseries.frequencies.to_offset(freq)
    keys["fault"] = ""
    lab = pd.DataFrame(labels) if labels else pd.DataFrame(columns=["pod_id", "type", "start", "end"])
    if len(lab):
        m = keys.reset_index().merge(lab[["pod_id", "type", "start", "end"]], on="pod_id")
        ls, le = pd.to_datetime(m["start"], utc=True), pd.to_datetime(m["end"], utc=True)
        ps = start.loc[m["index"]].to_numpy()
        pe = end.loc[m["index"]].to_numpy()
        hit = (ls.to_numpy() < pe) & (le.to_numpy() > ps)
        keys.loc[m.loc[hit, "index"].to_numpy(), "fault"] = m.loc[hit, "type"].to_numpy()
    return keys.reset_index(drop=True)
