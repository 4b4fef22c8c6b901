"""A stream step's store path against a growing history: a store holding ``H`` hours of a fleet
(``--meters`` at ``--cadence-s``) takes ``--steps`` pieces of ``--per-step`` readings (the next
readings in time order, as a watcher receives them), each stored through ``ingest_frame`` (check,
de-duplicate, merge) and read back with ``query_windows`` (the step's judging windows), timed
wall and CPU per part. One process, the history sizes interleaved, repeated ``--repeat`` times.
``--live`` stores through ``ingest_live`` instead (the watcher's path since branch live16s), which
returns the rows it stored: the read-back is then still timed, for comparison, though a step no
longer does it.

    python scripts/bench_store_step.py --hours 1,24,168 --per-step 20 [--live]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def fleet(meters: int, start: pd.Timestamp, n: int, cadence_s: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = start + pd.to_timedelta(np.repeat(np.arange(n) * cadence_s, meters), unit="s")
    m = np.tile(np.array([f"m{i:04d}" for i in range(meters)], dtype=object), n)
    p = rng.normal(5.0, 0.5, len(t))
    return pd.DataFrame({"meter_id": m, "ts": t, "v_v": rng.normal(230, 1, len(t)), "i_a": p / 0.23, "p_kw": p,
                         "e_kwh": np.repeat(np.arange(n) * 0.08, meters)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", default="1,24")
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--cadence-s", type=int, default=60)
    ap.add_argument("--per-step", type=int, default=20)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--live", action="store_true", help="store through ingest_live (the watcher's path)")
    a = ap.parse_args()

    from wattwatch.ingest.pipeline import ingest_frame, ingest_live
    from wattwatch.store import Store

    start = pd.Timestamp("2026-01-01", tz="UTC")
    stores = {}
    for h in [float(x) for x in a.hours.split(",")]:
        n = int(h * 3600 / a.cadence_s)
        db = Path(tempfile.mkdtemp(prefix="ww-sstep-")) / "s.duckdb"
        s = Store(db)
        hist = fleet(a.meters, start, n, a.cadence_s, 1)
        for k in range(0, len(hist), 500_000):
            ingest_frame(s, hist.iloc[k:k + 500_000], source="history")
        live = fleet(a.meters, start + pd.Timedelta(seconds=n * a.cadence_s), a.repeat * a.steps * a.per_step
                     // a.meters + 2, a.cadence_s, 2)
        live["e_kwh"] += n * 0.08
        stores[h] = (s, live, n)
    res = {h: [[], []] for h in stores}
    caches: dict = {h: {} for h in stores}
    for r in range(a.repeat):
        for h, (s, live, n) in stores.items():
            for k in range(a.steps):
                i = (r * a.steps + k) * a.per_step
                piece = live.iloc[i:i + a.per_step]
                w = time.process_time()
                if a.live:
                    ingest_live(s, piece, source="watch", cache=caches[h])
                else:
                    ingest_frame(s, piece, source="watch")
                c1 = time.process_time()
                # The judging windows: since the previous reading of each meter in the piece.
                g = piece.groupby("meter_id", sort=False)["ts"]
                win = pd.DataFrame({"meter_id": g.min().index, "start": g.min().to_numpy() - pd.Timedelta(seconds=a.cadence_s - 1),
                                    "end": g.max().to_numpy() + pd.Timedelta(microseconds=1)})
                back = s.query_windows(win)
                c2 = time.process_time()
                assert len(back) >= len(piece), (len(back), len(piece))
                res[h][0].append(c1 - w)
                res[h][1].append(c2 - c1)
    print(f"{a.per_step} readings per step, {a.meters} meters at {a.cadence_s} s; CPU per step (ms), median of "
          f"{a.repeat} x {a.steps} steps, sizes interleaved:")
    for h, (ing, rd) in res.items():
        print(f"  {h:6.0f} h stored ({stores[h][2] * a.meters:>9,} readings): store {np.median(ing) * 1000:7.1f}"
              f"   read back {np.median(rd) * 1000:7.1f}   total {np.median(np.add(ing, rd)) * 1000:7.1f}")
    for s, _, _ in stores.values():
        s.close()


if __name__ == "__main__":
    main()
