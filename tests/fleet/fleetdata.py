"""A small messy POD fleet for the fleet tests: mixed cadences (1 min .. 1 day), interval records,
a cumulative register, gaps, duplicates, a panel meter, an incomplete POD and a single-phase POD."""

from __future__ import annotations

import numpy as np
import pandas as pd

STEPS_S = (60, 900, 3600, 86400, 300, 1800)


def messy_fleet(seed: int = 0, days: int = 21, n: int = 14, start: str = "2025-03-03") -> pd.DataFrame:
    """Canonical fleet rows (``meter_id, ts, ts_end, panel_id, town``, powers, pf, energies)."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC")
    frames = []
    for i in range(n):
        step = STEPS_S[i % len(STEPS_S)]
        ts = pd.date_range(t0, t0 + pd.Timedelta(days=days) - pd.Timedelta(seconds=1), freq=f"{step}s")
        ts = ts + pd.to_timedelta(rng.integers(0, 3, len(ts)) * (step >= 60), unit="s")  # jitter
        hour = ts.hour.to_numpy()
        night = (hour >= 18) | (hour < 6)
        level = 0.5 + i / 7
        p = np.where(night, level * 2.0, level * 0.2) * (1 + rng.normal(0, 0.03, len(ts)))
        if i == 3:  # a level shift half-way
            p = np.where(ts >= t0 + pd.Timedelta(days=days / 2), p * 0.4, p)
        shares = (0.5, 0.3, 0.2) if i != 4 else (1.0, np.nan, np.nan)  # POD 4 is single-phase
        d = pd.DataFrame({"meter_id": f"POD{i:02d}", "ts": ts, "panel_id": f"QE{i % 2}", "town": "T1" if i < 10 else "T2",
                          "p_kw": p, "q_kvar": p * (0.3 + 0.01 * i), "pf": np.clip(0.92 + rng.normal(0, 0.02, len(ts)), 0, 1)})
        for k, s in enumerate(shares, start=1):
            d[f"p_l{k}_kw"] = p * s
        if i % 3 == 0:  # interval records with their end and the interval's energy
            d["ts_end"] = ts + pd.Timedelta(seconds=step)
            d["e_int_kwh"] = p * step / 3600
        if i == 5:  # a cumulative register (0.01 kWh resolution) with one reset
            e = np.cumsum(p * step / 3600)
            e[len(e) // 2:] -= e[len(e) // 2]
            d["e_kwh"] = np.floor(e * 100) / 100 + 1000
        if i == 6:  # a 2-day gap
            d = d[(d["ts"] < t0 + pd.Timedelta(days=5)) | (d["ts"] >= t0 + pd.Timedelta(days=7))]
        if i == 7:  # incomplete: only the first 5 days
            d = d[d["ts"] < t0 + pd.Timedelta(days=5)]
        if i == 8:  # duplicates
            d = pd.concat([d, d.iloc[::50].assign(p_kw=lambda x: x["p_kw"] * 1.01)])
        frames.append(d)
    # the panel meter of QE0: the sum of its PODs' hourly energy plus a 5 % loss
    panel = pd.DataFrame({"ts": pd.date_range(t0, t0 + pd.Timedelta(days=days) - pd.Timedelta(hours=1), freq="h")})
    frames.append(panel.assign(meter_id="QE0", panel_id="QE0", town="T1", p_kw=8.0 + np.sin(np.arange(len(panel)) / 5)))
    out = pd.concat(frames, ignore_index=True)
    return out.sample(frac=1.0, random_state=seed).reset_index(drop=True)


# field -> (column, factor from the column to the unit the document declares)
URBAN_FIELDS = {"Phase1ActivePower": ("p_l1_kw", 1.0), "Phase2ActivePower": ("p_l2_kw", 1.0),
                "Phase3ActivePower": ("p_l3_kw", 1.0), "TotalReactivePower": ("q_kvar", 1.0),
                "Phase1PowerFactor": ("pf", 1.0), "TotalActiveEnergy": ("e_int_kwh", 1.0)}


def write_urban(frame: pd.DataFrame, path, tz_hours: int = 1, watts: bool = False, lines_per_doc: int | None = None,
                jsonl: bool = False) -> None:
    """Write fleet rows as SCPS UrbanDataset documents (local times in ``UTC+tz_hours``; active
    powers declared in watts when ``watts``). Records without ``ts_end`` get ``ts`` + 1 h."""
    import json
    import math

    rows = frame.sort_values(["meter_id", "ts"]).to_dict("records")
    lines = []
    for i, r in enumerate(rows, start=1):
        ts = r["ts"] + pd.Timedelta(hours=tz_hours)
        te = r.get("ts_end")
        te = (te if isinstance(te, pd.Timestamp) and not pd.isna(te) else r["ts"] + pd.Timedelta(hours=1)) + pd.Timedelta(hours=tz_hours)
        props = [{"name": "PODID", "val": r["meter_id"]}]
        if isinstance(r.get("panel_id"), str):
            props.append({"name": "ElectricPanelID", "val": r["panel_id"]})
        if isinstance(r.get("town"), str):
            props.append({"name": "TownCode", "val": r["town"]})
        for name, (col, _) in URBAN_FIELDS.items():
            v = r.get(col)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                if watts and name.endswith("ActivePower"):
                    v = v * 1000.0
                props.append({"name": name, "val": repr(float(v))})
        lines.append({"id": i, "period": {"start_ts": ts.strftime("%Y-%m-%dT%H:%M:%S"),
                                          "end_ts": te.strftime("%Y-%m-%dT%H:%M:%S")}, "property": props})
    unit = "watt" if watts else "kilowatt"
    defs = [{"propertyName": f"Phase{k}ActivePower", "unitOfMeasure": unit, "dataType": "double"} for k in (1, 2, 3)]
    defs.append({"propertyName": "TotalActiveEnergy", "unitOfMeasure": "kilowattHour", "dataType": "double"})
    step = lines_per_doc or max(len(lines), 1)
    docs = [{"UrbanDataset": {"specification": {"version": "2.0", "properties": {"propertyDefinition": defs}},
                              "context": {"timeZone": f"UTC+{tz_hours}", "timestamp": "2025-04-01T00:00:00"},
                              "values": {"line": lines[k:k + step]}}} for k in range(0, len(lines), step)]
    with open(path, "w") as fh:
        if jsonl:
            fh.write("".join(json.dumps(d) + "\n" for d in docs))
        else:
            json.dump(docs[0] if len(docs) == 1 else docs, fh)
