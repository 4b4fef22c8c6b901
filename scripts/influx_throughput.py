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
    # The writer alone: the same cycles already on disk (a backlog after an outage), sent from there.
    sink2 = InfluxSink("bench", url=server.url, database=db + "_backlog", buffer=work / (db + "_backlog"),
                       retention="INF", gzip=gzip, downsample="")
    for f in frames:
        body, k, _ = influx.reading_lines(f, "readings", "ms")
        sink2.buf.append(body, k)
    t0 = time.perf_counter()
    sink2._start()
    while sink2.view()["backlog"]:
        time.sleep(0.01)
    flush = time.perf_counter() - t0
    sink2.close()
    return {"gzip": gzip, "readings": n, "in_influx": int(got), "seconds": round(wall, 2),
            "readings_per_s": round(n / wall), "engine_side_us_per_reading": round(enc / n * 1e6, 2),
            "backlog_flush_readings_per_s": round(n / flush), "dropped": sink.counters["dropped"] + sink2.counters["dropped"]}


def engine_cost(server, work: Path, meters: int, days: float, seed: int) -> dict:
    """The same poll cycles through a StreamEngine with and without the sink: the profiling day as
    one backfill piece, then one 5-minute cycle per step (as `watch` does: store, outputs' readings,
    judge, outputs' alerts). Per step: the engine's own time and the sink's calls."""
    from wattwatch.detect.engine import EngineConfig
    from wattwatch.runners.stream import StreamEngine
    from wattwatch.sim import SimConfig, simulate
    from wattwatch.sinks import deliver
    from wattwatch.store import Store

    simulate(SimConfig(meters=meters, days=days, step="5min", seed=seed, fault_share=0.5, profile_days=1.0), work)
    frame = api.read_frame(work / "telemetry.parquet")
    day = frame["ts"].min().floor("1D") + pd.Timedelta("1D")
    pieces = [frame[frame["ts"] < day]] + [p for _, p in frame[frame["ts"] >= day].groupby(
        frame["ts"][frame["ts"] >= day].dt.round("5min"), sort=True)]
    out = {}
    for on in (False, True):
        run = work / ("on" if on else "off")
        run.mkdir()
        store = Store(run / "s.duckdb")
        engine = StreamEngine(store, api.build_detectors(None, {}), EngineConfig(profile_days=1.0))
        outputs = [InfluxSink("tsdb", url=server.url, database=f"engine_{seed}", retention="INF",
                              buffer=run / "buf")] if on else []
        eng, sink = [], []
        for i, piece in enumerate(pieces):
            t0 = time.perf_counter()
            engine.add(piece)
            t1 = time.perf_counter()
            deliver(outputs, "readings", piece)
            t2 = time.perf_counter()
            rep = engine.step()
            t3 = time.perf_counter()
            deliver(outputs, "alerts", rep, engine)
            t4 = time.perf_counter()
            if i:  # the backfill piece (profiling) is not a live step
                eng.append((t1 - t0) + (t3 - t2))
                sink.append((t2 - t1) + (t4 - t3))
        for o in outputs:
            o.close()
        store.close()
        e, k = np.array(eng), np.array(sink)
        out["on" if on else "off"] = {"steps": len(e), "readings_per_step": round(float(np.mean([len(p) for p in pieces[1:]])), 1),
                                      "engine_ms_p50": round(float(np.median(e)) * 1e3, 2),
                                      "engine_ms_mean": round(float(e.mean()) * 1e3, 2),
                                      "sink_ms_p50": round(float(np.median(k)) * 1e3, 3),
                                      "sink_ms_mean": round(float(k.mean()) * 1e3, 3),
                                      "step_ms_mean": round(float((e + k).mean()) * 1e3, 2),
                                      "outputs": [o.view() for o in outputs]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--engine-meters", type=int, default=20)
    ap.add_argument("--engine-days", type=float, default=1.5, help="0: skip the engine comparison")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = Influxd(free_port(), work / "influxd").start()
        try:
            res = {"write": [write_rate(server, work, a.meters, a.cycles, gz, a.seed) for gz in (False, True)]}
            if a.engine_days > 0:
                (work / "fleet").mkdir()
                res["engine"] = engine_cost(server, work / "fleet", a.engine_meters, a.engine_days, a.seed)
        finally:
            server.stop()
    print(json.dumps(res, indent=None if a.json else 2, default=str))


if __name__ == "__main__":
    main()
