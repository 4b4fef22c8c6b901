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
