"""Grid-watch results as alerts of the common model (SPEC §3): a warning when a prosumer's
penalty starts to grow (one per episode), ``ALRM_PROSUMER_ISOLATE`` when the utility isolates it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert, iso
from wattwatch.codes import severity
from wattwatch.grid.config import WatchConfig

DETECTOR = "grid_neighbour_watch"


def _score(penalty: float, cfg: WatchConfig) -> float:
    """0.5 at C_th, 0.75 at twice it (the project's calibrated-score convention)."""
    return float(1.0 - 2.0 ** (-max(penalty, 0.0) / cfg.c_th))


def alerts_from(intervals: pd.DataFrame, cfg: WatchConfig, prefix: str = "", isolations: list[dict] | None = None) -> list[Alert]:
    """One ``WARN_PROSUMER_PENALTY`` per episode: consecutive intervals in which the neighbours see
    a mismatch beyond the dead zone or the penalty grows (start: the start of the first such
    interval, when the penalty starts to grow; end: the end of the last); one
    ``ALRM_PROSUMER_ISOLATE`` per isolation (span: the episode that led to it)."""
    out: list[Alert] = []
    if not len(intervals):
        return out
    interval = pd.Timedelta(minutes=cfg.interval_min)
    iso_info = {(r["prosumer"], pd.Timestamp(r["ts"])): r for r in (isolations or [])}
    df = intervals.sort_values(["prosumer", "ts"]).reset_index(drop=True)
    who = df["prosumer"].to_numpy()
    pen = df["penalty"].fillna(0.0).to_numpy()
    same = np.r_[False, who[1:] == who[:-1]]
    prev = np.where(same, np.r_[0.0, pen[:-1]], 0.0)
    # An episode: the neighbours see a mismatch beyond the dead zone, or the penalty still grows.
    on = (pen > 0) & ((df["d_mwh"].abs().fillna(0.0).to_numpy() > cfg.delta_mwh) | (pen > prev))
    new_run = on & ~np.r_[False, on[:-1] & (who[1:] == who[:-1])]
    run_id = np.cumsum(new_run)
    df["run"] = np.where(on, run_id, 0)
    for _, g in df[df["run"] > 0].groupby("run", sort=True):
        name = str(g["prosumer"].iloc[0])
        start = g["ts"].iloc[0] - interval
        end = g["ts"].iloc[-1]
        k = int(g["penalty"].to_numpy().argmax())
        peak = float(g["penalty"].iloc[k])
        d_peak = float(g["d_mwh"].iloc[k])
        kind = "over-delivery" if d_peak > 0 else "under-delivery"
        meter = f"{prefix}{name}"
        out.append(Alert(
            meter_id=meter, start=iso(start), end=iso(end), code="WARN_PROSUMER_PENALTY",
            severity=severity("WARN_PROSUMER_PENALTY", _score(peak, cfg)), score=_score(peak, cfg), detector=DETECTOR,
            message=(f"{kind} against the agreed operating point: energy mismatch {d_peak:+.3f} MWh per "
                     f"{cfg.interval_min:g} min, penalty price peaked at {peak:.3g} (isolation at {cfg.c_th:g})"),
            evidence={"peak_penalty": peak, "peak_f": float(g["f"].iloc[k]), "d_mwh_at_peak": d_peak,
                      "intervals": int(len(g)), "watchers": int(g["watchers"].iloc[k]), "c_th": cfg.c_th,
                      "delta_mwh": cfg.delta_mwh, "d_th_mwh": cfg.d_th_mwh},
            action="check the prosumer's dispatch against its agreed reference",
        ))
        dec = g[g["decision"] == "isolate"]
        for _, row in dec.iterrows():
            info = iso_info.get((name, pd.Timestamp(row["ts"])), {})
            score = _score(float(row["penalty"]), cfg)
            ev = {"penalty": float(row["penalty"]), "signals": int(row["signals"]), "watchers": int(row["watchers"]),
                  "rho": cfg.rho, "c_th": cfg.c_th, "d_mwh": float(row["d_mwh"]), "f": float(row["f"])}
            ev.update({k2: info[k2] for k2 in ("redispatch_method", "redispatch_converged", "slack_mw_before",
                                               "slack_mw_after") if k2 in info})
            redisp = ""
            if "redispatch_converged" in info:
                redisp = "; re-dispatch " + ("converged" if info["redispatch_converged"] else "did NOT converge")
            out.append(Alert(
                meter_id=meter, start=iso(start), end=iso(row["ts"]), code="ALRM_PROSUMER_ISOLATE",
                severity=severity("ALRM_PROSUMER_ISOLATE", score, "critical"), score=score, detector=DETECTOR,
                message=(f"isolated: {int(row['signals'])} of {int(row['watchers'])} neighbours put its penalty "
                         f"above {cfg.c_th:g} (more than {cfg.rho:.0%} needed){redisp}"),
                evidence=ev, action="disconnect the prosumer; the slack takes the balance",
            ))
    return sorted(out, key=lambda a: (a.start, a.meter_id, a.code))
