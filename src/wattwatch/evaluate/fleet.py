"""The default configuration on a simulated labelled fleet at one cadence, end to end as a user
runs it: simulate (``wattwatch simulate --step``), ingest the messy Parquet into a store, ``detect``
with defaults (each meter profiled on its own first days), evaluate against ``events.json``.

Per fault type: events, found, recall (and over the events the cadence can show), and the
precision of the alerts carrying the type's code(s) (correct / all alerts with those codes);
overall: recall, alert precision, F1, false alerts by code. A crash is a result: the error and its
traceback are returned instead of an evaluation."""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path

from wattwatch.evaluate.events import FAULT_CODES, compatible_codes, evaluate

__all__ = ["quality", "per_type_precision"]


def per_type_precision(result: dict, alerts: list) -> dict[str, float]:
    """Per fault type in ``result["per_type"]``: the share of alerts with one of its codes that
    are correct (``result`` from :func:`wattwatch.evaluate.events.evaluate` on ``alerts``)."""
    by_code: dict[str, int] = {}
    for a in alerts:
        by_code[a.code] = by_code.get(a.code, 0) + 1
    false = result["false_alerts_by_code"]
    out = {}
    for k in result["per_type"]:
        codes = compatible_codes(k)
        n = sum(by_code.get(c, 0) for c in codes)
        out[k] = (n - sum(false.get(c, 0) for c in codes)) / n if n else float("nan")
    return out


def quality(step: str = "5min", meters: int = 60, days: float = 21.0, seed: int = 42, fault_share: float = 0.5,
            workdir: str | Path | None = None, shapes: str = "synthetic", data: str | Path | None = None,
            knobs=None, sim_overrides: dict | None = None) -> dict:
    """``shapes="real"``: the meters' load comes from real load shapes (:mod:`wattwatch.sim.shapes`,
    read from ``data``), half homes and half three-phase commercial sites. ``knobs``
    (:class:`wattwatch.sim.fleet.SimKnobs`) and ``sim_overrides`` (other ``SimConfig`` fields, e.g.
    ``jitter_s``) vary the simulated world (``scripts/quality_sweep.py``); None: the defaults."""
    from wattwatch import api
    from wattwatch.sim import SimConfig, simulate
    from wattwatch.sim.fleet import real_root

    extra = {}
    if shapes == "real":
        extra = {"shapes": "real", "commercial_share": 0.5}
        extra["real_dir"] = real_root(SimConfig(shapes="real", real_dir=str(data) if data else None))
    cfg = SimConfig(meters=meters, days=days, seed=seed, step=step, fault_share=fault_share, knobs=knobs,
                    **extra, **(sim_overrides or {}))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ww-quality-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        sim = simulate(cfg, work / "fleet", formats=("parquet",))
        db = work / "store.duckdb"
        if db.exists():
            db.unlink()
        api.ingest(sim["files"]["parquet"], db)
        out = {"config": {"step": step, "meters": meters, "days": days, "seed": seed, "fault_share": fault_share,
                          "shapes": shapes, **({"data": extra["real_dir"]} if extra else {})},
               "simulate_ingest_s": time.perf_counter() - t0}
        t1 = time.perf_counter()
        try:
            alerts = list(api.detect(db).alerts)
        except Exception as exc:  # noqa: BLE001 - the crash is the result
            out.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(),
                       seconds=time.perf_counter() - t0)
            return out
        out["detect_s"] = time.perf_counter() - t1
        if workdir:  # kept with the fleet and the store, to look at every miss and false alert
            (work / "alerts.json").write_text("[\n" + ",\n".join(a.to_json() for a in alerts) + "\n]\n")
        ev = evaluate(sim["events"], alerts, cadence_s=cfg.step_s)
        prec = per_type_precision(ev, alerts)
        for k, r in ev["per_type"].items():
            r["precision"] = prec[k]
            p, rc = prec[k], r["recall"]
            r["f1"] = 2 * p * rc / (p + rc) if p == p and (p + rc) > 0 else float("nan")
        out["evaluation"] = ev
        out["fault_types"] = sorted(k for k in ev["per_type"] if k in FAULT_CODES)
        out["seconds"] = time.perf_counter() - t0
        return out
