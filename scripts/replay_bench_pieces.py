"""``wattwatch bench stream``'s readings (200 meters at 60 s, 6 h after a profiling day, seed 7)
fed to one StreamEngine in fixed pieces, so that two checkouts can be compared step for step
(rev50): run it once per checkout (``PYTHONPATH=<checkout>/src``) on a copy of the same fitted
store and compare the JSON files (every alert version of every step, what the slow tier's worker
left, what a final flush adds, the counters).

    python scripts/replay_bench_pieces.py FITTED.duckdb WORKDIR OUT.json CUTS [--thread] [--inject]

``FITTED.duckdb`` is made (profiling day ingested and fitted) when missing. ``CUTS``: the row
numbers where a piece ends (``25232,50464``) or ``every:N``. ``--thread``: the slow tier in its
worker thread, as in the bench (its timing then varies with the machine; alerts counted after
``settle``, as the bench counts them); without it the slow tier judges in the step (deterministic).
``--wait-last`` (with ``--thread``): the worker's judgement settled before the last piece (as when
the readings' arrival leaves it the time), so the last step finds it free. ``--inject``: 80 added readings of each of five kinds (seeded), each arriving 1-600 rows after the
reading it copies: exact copies and copies filling a channel the original lacks, conflicting with
it or lacking one of its channels (jittered up to 4 s), and late readings (30 s before one, no copy).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd


def injected(live: pd.DataFrame, seed: int = 11, per_kind: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    live = live.copy()
    n = len(live)
    kinds = ["exact", "fill", "conflict", "lacking", "late"]
    picks = rng.choice(np.arange(2000, n - 700), size=per_kind * len(kinds), replace=False)
    extra, pos = [], []
    for k, r in enumerate(picks):   # 400 rows: built once, not a batch path
        kind = kinds[k % len(kinds)]
        row = live.iloc[[r]].copy()
        jit = pd.Timedelta(seconds=float(rng.uniform(-4, 4)))
        if kind == "late":
            row["ts"] -= pd.Timedelta(seconds=30)
            row["p_kw"] = row["p_kw"] + 0.01
        else:
            row["ts"] += jit
        if kind == "fill":
            c = ["q_kvar", "pf", "temp_c", "thd_i_pct"][k % 4]
            live.iloc[r, live.columns.get_loc(c)] = np.nan
        elif kind == "conflict":
            row["p_kw"] = row["p_kw"] * 1.1 + 0.5
        elif kind == "lacking":
            row["v_l1_v"] = np.nan
        extra.append(row)
        pos.append(r + int(rng.integers(1, 600)) + 0.5)
    order = np.concatenate([np.arange(n, dtype=float), np.asarray(pos)])
    out = pd.concat([live, *extra], ignore_index=True)
    return out.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fitted", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("cuts")
    ap.add_argument("--thread", action="store_true")
    ap.add_argument("--inject", action="store_true")
    ap.add_argument("--wait-last", action="store_true")
    a = ap.parse_args()

    import wattwatch
    from wattwatch import api
    from wattwatch.app.benchstream import simulated_stream
    from wattwatch.runners.stream import StepReport, StreamConfig, StreamEngine
    from wattwatch.store import Store

    cfg = {"engine": {"profile_days": 1}}
    prof, live = simulated_stream(200, 1 + 6 / 24, 1, 60.0, 7)
    if not a.fitted.exists():
        api.ingest(prof, a.fitted)
        api.fit(a.fitted, days=1, config=cfg)
    if a.inject:
        live = injected(live)
    n = len(live)
    cuts = list(range(int(a.cuts[6:]), n, int(a.cuts[6:]))) if a.cuts.startswith("every:") else \
        [int(x) for x in a.cuts.split(",") if x]
    bounds = [0, *[c for c in cuts if 0 < c < n], n]
    a.work.mkdir(parents=True, exist_ok=True)
    db = a.work / "s.duckdb"
    shutil.copy(a.fitted, db)
    eng = StreamEngine(Store(db), api.build_detectors(None, cfg), api._engine(cfg),
                       StreamConfig(checkpoint_s=1e9, slow_thread=a.thread))
    eng.step()   # the profiling day, as a backfill

    def v(al):
        return [al.id, al.meter_id, al.code, str(al.start), str(al.end), al.severity, repr(al.score), al.message,
                json.dumps(al.evidence, sort_keys=True, default=str)]

    steps = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        waited = []
        if a.thread and a.wait_last and hi == n:
            got = eng.settle(StepReport())
            waited = [v(al) for al in got.alerts] if got is not None else []
        eng.add(live.iloc[lo:hi])
        rep = eng.step()
        steps.append({"rows": [lo, hi], "alerts": waited + [v(al) for al in rep.alerts], "new": sorted(rep.new),
                      "slow": bool(rep.slow)})
    pre = {k: int(x) for k, x in eng.counters.items()}
    settled, settled_new = [], None
    if a.thread:
        last = eng.settle(StepReport())
        settled = [v(al) for al in last.alerts] if last is not None else []
        settled_new = int(eng.counters["alerts_new"])
    fl = eng.flush()
    res = {"code": wattwatch.__file__, "bounds": bounds, "steps": steps, "counters_before_flush": pre,
           "settled": settled, "settled_new": settled_new, "flush": [v(al) for al in fl.alerts],
           "counters": {k: int(x) for k, x in eng.counters.items()}}
    eng.store.close()
    a.out.write_text(json.dumps(res))
    print(json.dumps({"out": str(a.out), "steps": len(steps), "alerts_new_before_flush": pre.get("alerts_new"),
                      "alerts_new_after_settle": settled_new, "alerts_new_after_flush": int(eng.counters["alerts_new"]),
                      "alert_versions": sum(len(s["alerts"]) for s in steps) + len(settled) + len(res["flush"]),
                      "handed": int(eng.counters["handed"])}))


if __name__ == "__main__":
    main()
