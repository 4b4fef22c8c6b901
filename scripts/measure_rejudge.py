"""What judging late readings live costs: a simulated fleet streamed one 15-minute poll cycle per
step, on time and with late deliveries (a quarter of the meters send a 3-hour stretch 6 hours
late, 2 % of readings come a day late), alternately in one process; and whether each run's
alerts equal `detect` on the same readings.

    python scripts/measure_rejudge.py --meters 16 --days 3 --repeat 2 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.live
from tests.live.test_rejudge import _late_schedule  # noqa: E402

CONFIG = {"engine": {"profile_days": 1.0}}


def schedule(frame: pd.DataFrame, late: bool, seed: int = 5):
    """The test's late schedule (tests/live/test_rejudge.py), or the same 15-minute cycles on time."""
    if late:
        yield from _late_schedule(frame, seed)
        return
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    day = (frame["ts"].min() + pd.Timedelta("1D")).ceil("1h")
    yield frame[frame["ts"] < day]
    rest = frame[frame["ts"] >= day]
    for _, piece in rest.groupby(rest["ts"].dt.floor("15min"), sort=True):
        yield piece


def run(frame, late: bool, folder: Path, want: dict) -> dict:
    path = folder / f"live-{'late' if late else 'ontime'}-{time.monotonic_ns()}.duckdb"
    store = Store(path)
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG), StreamConfig(checkpoint_s=1e9))
    t0, c0 = time.perf_counter(), time.process_time()
    steps = 0
    for piece in schedule(frame, late):
        eng.add(piece)
        eng.step()
        steps += 1
    eng.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    got = {a.id: (a.start, a.end, round(a.score, 6), a.message) for a in eng.alerts.values()}
    c = eng.counters
    store.close()
    return {"late": late, "steps": steps, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "late_readings": int(c.get("late", 0)), "rewinds": int(c.get("rewinds", 0)),
            "rejudged_rows": int(c.get("rejudged", 0)), "judged_rows": int(c.get("judged", 0)),
            "withdrawn": int(c.get("alerts_withdrawn", 0)), "alerts": len(got), "equal_to_detect": got == want}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters", type=int, default=16)
    ap.add_argument("--days", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        simulate(SimConfig(meters=a.meters, days=a.days, step="15min", seed=a.seed, fault_share=0.9,
                           profile_days=1.0, outage_share=0.5), tmp)
        det = api.detect(tmp / "telemetry.parquet", config=CONFIG)
        want = {x.id: (x.start, x.end, round(x.score, 6), x.message) for x in det.alerts}
        frame = api.read_frame(tmp / "telemetry.parquet")
        rows = []
        for _ in range(a.repeat):
            for late in (False, True):
                rows.append(run(frame, late, tmp, want))
                if not a.json:
                    print(rows[-1], flush=True)
    if a.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
