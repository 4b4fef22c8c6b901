"""Throughput of the InfluxDB sink, and what it costs the `watch` engine.

Starts its own influxd (tests/support/services.Influxd: 127.0.0.1, free port, temp folder) and measures

1. readings/s the sink writes in batches (poll cycles of ``--meters`` meters appended to the on-disk
   buffer, sent by the writer thread in batches of ``batch_points``), plain and gzip;
2. the engine's time per step of ``wattwatch watch`` on a replayed fleet with the sink on and off
   (the same readings, same detectors), and the time the sink's own calls take in the engine's
   worker thread (encoding + the append to the buffer).

    PYTHONPATH=src python scripts/influx_throughput.py --meters 200 --cycles 500 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.services import Influxd, free_port  # noqa: E402
from wattwatch import api, influx  # noqa: E402
from wattwatch.sinks.influx import InfluxSink  # noqa: E402


def write_rate(server, work: Path, meters: int, cycles: int, gzip: bool, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-11-01", periods=cycles, freq="1min", tz="UTC")
    ids = [f"meter-{i:05d}" for i in range(meters)]
    frames = [pd.DataFrame({"meter_id": ids, "ts": t, "p_kw": rng.normal(5, 1, meters), "q_kvar": rng.normal(1, .2, meters),
                            "v_v": rng.normal(230, 2, meters), "i_a": rng.normal(20, 3, meters)}) for t in ts]
    db = f"bench_{'gz' if gzip else 'plain'}"
    sink = InfluxSink("bench", url=server.url, database=db, buffer=work / db, retention="INF", gzip=gzip,
                      downsample="")
    t0 = time.perf_counter()
    enc = 0.0
    for f in frames:
        a = time.perf_counter()
        sink.readings(f)
        enc += time.perf_counter() - a
    while sink.view()["backlog"]:
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    sink.close()
    n = meters * cycles
    got = influx.Client(server.url).query('SELECT count("p_kw") FROM "readings"', db)[0]["series"][0]["values"][0][1]
    return {"gzip": gzip, "readings": n, "in_influx": int(got), "seconds": round(wall, 2),
            "readings_per_s": round(n / wall), "engine_side_us_per_reading": round(enc / n * 1e6, 2),
            "dropped": sink.counters["dropped"]}


def engine_cost(server, work: Path, meters: int, days: float, seed: int) -> dict:
    from wattwatch.sim import SimConfig, simulate

    simulate(SimConfig(meters=meters, days=days, step="5min", seed=seed, fault_share=0.5, profile_days=1.0), work)
    out = {}
    for on in (False, True):
        run = work / ("on" if on else "off")
        run.mkdir()
        cfg = {"store": {"path": str(run / "s.duckdb")}, "engine": {"profile_days": 1.0},
               "sources": [{"type": "replay", "name": "fleet", "path": str(work / "telemetry.parquet"), "cycle_s": 300}]}
        if on:
            cfg["sinks"] = [{"type": "influx", "name": "tsdb", "url": server.url, "database": "engine",
                             "retention": "INF", "buffer": str(run / "buf")}]
        site = api.load_site(cfg)
        inside = [0.0]
        for o in site.outputs:  # time the sink's calls in the engine's worker thread
            for m in ("readings", "alerts"):
                f = getattr(o, m)

                def timed(*a, _f=f):
                    t = time.perf_counter()
                    try:
                        return _f(*a)
                    finally:
                        inside[0] += time.perf_counter() - t
                setattr(o, m, timed)
        steps = []
        last = [time.perf_counter()]

        def on_step(engine, rep, batches):
            now = time.perf_counter()
            steps.append(now - last[0])
            last[0] = now
        t0 = time.perf_counter()
        res = api.watch(site, until_done=True, on_step=on_step)
        wall = time.perf_counter() - t0
        s = np.array(steps[1:])
        out["on" if on else "off"] = {"steps": len(s), "readings": res.counters.get("readings", 0),
                                      "wall_s": round(wall, 2), "step_ms_mean": round(float(s.mean()) * 1e3, 2),
                                      "step_ms_p50": round(float(np.median(s)) * 1e3, 2),
                                      "sink_ms_per_step": round(inside[0] / max(len(s), 1) * 1e3, 3),
                                      "outputs": res.outputs}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--engine-meters", type=int, default=20)
    ap.add_argument("--engine-days", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = Influxd(free_port(), work / "influxd").start()
        try:
            res = {"write": [write_rate(server, work, a.meters, a.cycles, gz, a.seed) for gz in (False, True)]}
            (work / "fleet").mkdir()
            res["engine"] = engine_cost(server, work / "fleet", a.engine_meters, a.engine_days, a.seed)
        finally:
            server.stop()
    print(json.dumps(res, indent=None if a.json else 2, default=str))


if __name__ == "__main__":
    main()
