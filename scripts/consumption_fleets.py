"""The fleets of tests/detect/test_fleet_quality.py with the default detector set, printing recall
per fault type and alert precision: ``rules`` (3 seeds, 5 min) or the consumption fleet at a cadence
(``5min``, ``15min``, ``1h``). Usage: PYTHONPATH=src python scripts/consumption_fleets.py 1h"""
import sys, tempfile, warnings, time
warnings.simplefilter("ignore")
from pathlib import Path
from wattwatch.detect.engine import detect
from wattwatch.detect.registry import DEFAULT_DETECTORS, build_all
from wattwatch.evaluate.events import evaluate
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store
which = sys.argv[1]
def run(cfg):
    with tempfile.TemporaryDirectory() as d:
        sim = simulate(cfg, Path(d), formats=("parquet",))
        with Store(Path(d) / "s.duckdb") as s:
            ingest_path(s, sim["files"]["parquet"]); frame = s.query()
        t0 = time.time()
        al = detect(frame, build_all(list(DEFAULT_DETECTORS))).alerts
        return evaluate(sim["events"], al), time.time() - t0
if which == "rules":
    tot = {}
    for seed in (31, 32, 33):
        r, _ = run(SimConfig(meters=48, days=14, seed=seed, fault_share=0.5))
        for k, v in r["per_type"].items():
            t = tot.setdefault(k, [0, 0]); t[0] += v["events"]; t[1] += v["detected"]
        tot.setdefault("_alerts", [0, 0]); tot["_alerts"][0] += r["alerts"]; tot["_alerts"][1] += r["true_alerts"]
    print("rules fleets (3 seeds):", {k: f"{d}/{n}" for k, (n, d) in tot.items() if k != "_alerts"},
          "precision", f"{tot['_alerts'][1]}/{tot['_alerts'][0]}")
else:
    step = which
    r, s = run(SimConfig(meters=80, days=21, seed=5, fault_share=0.6, step=step,
                         faults=("theft_under_registration", "level_shift", "frozen_register")))
    print(f"consumption fleet at {step}: recall", {k: f"{v['detected']}/{v['events']}" for k, v in r["per_type"].items()},
          f"precision {r['true_alerts']}/{r['alerts']} = {r['precision']:.3f}", "false by code", r.get("false_alerts_by_code"), f"{s:.0f}s")
