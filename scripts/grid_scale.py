"""Scale of the neighbour watch: case118 and case300 with every bus a prosumer (the slack bus
balances), one day at 1-minute samples (T = 15 min, K = 15), real PV/load profiles, the reference
re-agreed by OPF every hour, three persistent deviators. Prints one JSON line per run.

    PYTHONPATH=src python scripts/grid_scale.py [--cases case118,case300] [--transports batch,inprocess]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from wattwatch.grid.config import Deviation, Scenario, WatchConfig
from wattwatch.grid.network import load_case
from wattwatch.grid.simulate import simulate


def scenario(case: str, seed: int) -> Scenario:
    g = load_case(case)
    rng = np.random.default_rng(seed)
    names = [n for k, n in enumerate(g.names()) if k != g.slack]
    bad = rng.choice(names, 3, replace=False)
    devs = tuple(Deviation(str(n), float(s * rng.uniform(15, 30)), float(rng.uniform(360, 900)))
                 for n, s in zip(bad, rng.choice([-1.0, 1.0], 3)))
    return Scenario(case=case, hours=24.0, profile="real", pv_share=0.3, load_share=0.2, line_noise_mw=0.5, seed=seed,
                    start="2024-06-01T00:00:00Z", dispatch_hours=1.0, deviations=devs,
                    watch=WatchConfig(interval_min=15, samples=15, delta_mwh=1.0, d_th_mwh=2.0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="case118,case300")
    ap.add_argument("--transports", default="batch,inprocess")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    for case in a.cases.split(","):
        sc = scenario(case, a.seed)
        for transport in a.transports.split(","):
            t0 = time.perf_counter()
            run = simulate(sc, transport)
            total = time.perf_counter() - t0
            opf = sum(d["seconds"] for d in run.dispatches)
            methods = sorted({d["method"] for d in run.dispatches})
            print(json.dumps({
                "case": case, "transport": transport, "prosumers": run.meta["prosumers"], "buses": run.meta["buses"],
                "branches": run.meta["branches"], "samples": int(len(run.samples)), "intervals": run.meta["intervals"],
                "pairs_rows": int(len(run.pairs)), "seconds_total": round(total, 2), "seconds_opf": round(opf, 2),
                "seconds_watch_and_flows": round(total - opf, 2), "dispatches": len(run.dispatches),
                "opf_methods": methods, "all_converged": all(d["converged"] for d in run.dispatches),
                "deviators": sorted(d.prosumer for d in sc.deviations),
                "isolated": [r["prosumer"] for r in run.isolations],
            }), flush=True)


if __name__ == "__main__":
    main()
