"""Fleet scoring quality: simulated POD fleet (per fault type, each model vs the consensus; energy-
balance localisation) and real BDG2 buildings (labels used only to evaluate).

    PYTHONPATH=src python scripts/fleet_quality.py --pods 2000 --panels 50 --months 6 --seed 0
    PYTHONPATH=src python scripts/fleet_quality.py --real-only
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from wattwatch.fleet.quality import real_bdg2, simulated
from wattwatch.sim.pods import PodSimConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--panels", type=int, default=50)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--fault-months", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="simulation seed")
    ap.add_argument("--model-seed", type=int, default=0)
    ap.add_argument("--theft", type=float, default=0.03)
    ap.add_argument("--shift", type=float, default=0.03)
    ap.add_argument("--vacation", type=float, default=0.03)
    ap.add_argument("--real-only", action="store_true")
    ap.add_argument("--sim-only", action="store_true")
    ap.add_argument("--data", default=None, help="the real-data folder (default: the usual places)")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    ap.add_argument("--cache", default=None, help="keep/reuse the simulated fleet's features in this folder")
    a = ap.parse_args()
    pd.set_option("display.width", 200)
    out = {}
    if not a.real_only:
        cfg = PodSimConfig(pods=a.pods, panels=a.panels, months=a.months, fault_months=a.fault_months, seed=a.seed,
                           theft_share=a.theft, shift_share=a.shift, vacation_share=a.vacation)
        r = simulated(cfg, seed=a.model_seed, cache=a.cache)
        piv = r["ranking"].pivot_table(index=["fault", "positives"], columns="model",
                                       values=["roc_auc", "precision_at_k"])
        print("\nsimulated fleet: ROC-AUC and precision@k (k = positives) per fault type")
        print(piv.round(3).to_string())
        cons = r["chosen"].get("consensus", {})
        print(f"\nconsensus chosen by stability: {'+'.join(cons.get('models', []))} ({cons.get('rule')}); "
              f"label: {r['chosen'].get('label', 'votes >= 2')}")
        print("\nenergy balance localisation:")
        for k, v in r["localisation"].items():
            print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
        out["simulated"] = {"config": vars(a), "ranking": r["ranking"].to_dict("records"),
                            "localisation": r["localisation"], "silhouette": r["silhouette"],
                            "chosen": {m: {k: v for k, v in r["chosen"][m].items() if k != "values"}
                                       for m in ("pca", "iforest", "lof")}}
    if not a.sim_only:
        r = real_bdg2(a.data, seed=a.model_seed)
        print(f"\nBDG2 buildings x months: {r['rows']} rows, {r['positives']} with a labelled event")
        print(r["ranking"][["model", "positives", "negatives", "roc_auc", "precision_at_k"]].round(3).to_string(index=False))
        print(f"silhouette {r['silhouette']:.3f}; chosen: " + ", ".join(
            f"{m} {k}={r['chosen'][m][k]}" for m, k in (("pca", "n_components"), ("iforest", "max_samples"),
                                                        ("lof", "n_neighbors"))))
        out["bdg2"] = {"rows": r["rows"], "positives": r["positives"], "ranking": r["ranking"].to_dict("records"),
                       "silhouette": r["silhouette"]}
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
