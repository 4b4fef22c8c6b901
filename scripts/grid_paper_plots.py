"""The paper's case5 scenarios as PNGs for the README (docs/grid-paper-*.png) and their numbers.

    PYTHONPATH=src python scripts/grid_paper_plots.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wattwatch.grid.config import builtin
from wattwatch.grid.plots import plot_run
from wattwatch.grid.simulate import simulate

TITLES = {
    "paper": "case5 (paper): P3 over-generates +60 MW for 10 min and corrects; from 01:00 it under-generates 25 MW",
    "accidental": "case5: accidental over-generation (+60 MW, 10 min), corrected: F and P rise, then decay",
    "persistent": "case5: persistent under-generation (−25 MW from 00:15): isolation, re-dispatch",
    "fdi": "case5: false data injection (P3 reports its agreed value, produces 25 MW less)",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs")
    a = ap.parse_args()
    for name, title in TITLES.items():
        sc = builtin(name)
        run = simulate(sc, "inprocess")
        who = ["P3", "P2"] if name == "fdi" else ["P3"]
        path = plot_run(run.samples, run.intervals, sc.watch, Path(a.out) / f"grid-paper-{name}.png", prosumers=who,
                        title=title)
        p3 = run.intervals[run.intervals["prosumer"] == "P3"]
        others = run.intervals[run.intervals["prosumer"] != "P3"]
        print(json.dumps({"scenario": name, "plot": str(path), "p3_peak_penalty": round(float(p3["penalty"].max()), 3),
                          "p3_peak_f": round(float(p3["f"].max()), 3), "others_peak_penalty":
                          {k: round(float(v), 3) for k, v in others.groupby("prosumer")["penalty"].max().items()},
                          "isolations": [{k: str(v) for k, v in r.items()} for r in run.isolations],
                          "last_p3_penalty_before_isolation_or_end": round(float(p3["penalty"].dropna().iloc[-1]), 4)}))


if __name__ == "__main__":
    main()
