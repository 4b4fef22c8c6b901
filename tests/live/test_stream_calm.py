"""Calm meters in the stream's fast tier (issue 16, live25): ``packet_loss``'s stitcher does not
judge a meter that has lost too few readings near the readings its post-rules use, while nothing
of it is open (``tests/detect/test_stitch_calm.py`` checks the stitcher piece by piece). Here the
whole engine: a fleet where some meters lose readings and one meter starts reporting a day and a
half after the others (profiled when its own first day is stored, while the fast tier's meters and
detectors stay the same, so its first readings reach a tail that does not hold it yet), streamed
in half-hour steps, gives exactly ``detect``'s alerts, and the calm path was taken."""

from __future__ import annotations

import json

import pandas as pd

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}, "detectors": ["supply_outage", "packet_loss", "frozen_readings"]}


def _view(a) -> dict:
    d = json.loads(a.to_json())
    return {k: d[k] for k in ("id", "meter_id", "start", "end", "code", "detector", "severity", "score", "message",
                              "evidence")}


def test_a_meter_joining_mid_stream_beside_calm_meters_gives_detects_alerts(tmp_path):
    simulate(SimConfig(meters=6, days=3.5, step="5min", seed=21, fault_share=0.6, faults=("packet_loss",),
                       profile_days=1.0, background_loss=0.004), tmp_path)
    frame = pd.read_parquet(tmp_path / "telemetry.parquet")
    last = sorted(frame["meter_id"].astype(str).unique())[-1]
    t0 = pd.to_datetime(frame["ts"], utc=True).min()
    late = (frame["meter_id"].astype(str) == last) & (pd.to_datetime(frame["ts"], utc=True) < t0 + pd.Timedelta("36h"))
    frame = frame[~late].reset_index(drop=True)
    frame.to_parquet(tmp_path / "joined.parquet")
    want = {a.id: _view(a) for a in api.detect(tmp_path / "joined.parquet", db=tmp_path / "batch.duckdb",
                                                 config=CONFIG).alerts}
    assert any(a["detector"] == "packet_loss" for a in want.values())

    frame = api.read_frame(tmp_path / "batch.duckdb").sort_values("ts", kind="stable")
    day = t0.floor("1D") + pd.Timedelta("1D")
    pieces = [frame[frame["ts"] < day]]
    rest = frame[frame["ts"] >= day]
    pieces += [p for _, p in rest.groupby(rest["ts"].dt.floor("30min"), sort=True)]
    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG), StreamConfig(checkpoint_s=1e9))
    joined_at = None

    def carried() -> set:   # meters the fast tier's packet_loss stitcher carries a tail of
        st = [s for s in (eng.fast.parts if eng.fast else []) if s.detectors[0].name == "packet_loss"]
        return set(st[0].tail["meter_id"].astype(str)) if st and st[0].tail is not None else set()

    for k, p in enumerate(pieces):
        had, adopted = carried(), eng.counters["fast_adopted"]
        eng.add(p)
        eng.step()
        if joined_at is None and last in eng.profiled:
            joined_at = k
            # Its readings reached the fast tier's stitcher, which held no tail of it, without a
            # resync (no carry adopted from the slow tier at that step).
            assert last not in had and last in carried() and eng.counters["fast_adopted"] == adopted
    eng.flush()
    got = {i: _view(a) for i, a in eng.alerts.items()}
    store.close()
    assert eng.tiered and "packet_loss" in eng.fast_names
    assert joined_at is not None and 0 < joined_at < len(pieces) - 10
    problems = [f"{i}: detect {want.get(i)} != stream {got.get(i)}" for i in sorted(set(want) | set(got))
                if want.get(i) != got.get(i)]
    assert not problems, "\n".join(problems[:10])
    assert sum(p.calm_fed for p in eng.fast.parts) > 0
