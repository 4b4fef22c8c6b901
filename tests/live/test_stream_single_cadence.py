"""neutral_tamper's one-reading alert at the cadence of the reading's stretch (q67) in the stream
engine (review rev67): tiered (the rule is in the slow tier), stopped after a checkpoint just past
the reconfigurations and restarted from it, a reconfigured fleet gives ``detect``'s alerts."""

from __future__ import annotations

import json

import pandas as pd

from tests.detect.test_neutral_single_edges import _reconfigured
from tests.detect.test_neutral_single_reading import T0, _meter
from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}}


def _view(a) -> dict:
    d = json.loads(a.to_json())
    return {k: d[k] for k in ("id", "meter_id", "start", "end", "code", "detector", "severity", "score", "message",
                              "evidence")}


def test_tiered_and_restarted_stream_of_reconfigured_meters_equals_detect(tmp_path):
    """h2f (learned hourly, 5 min from day 5) and f2h (learned at 5 min, hourly from day 5), each
    with a lone neutral-gone reading on either side of the change and a day later, and a steady
    hourly meter: every default detector, 1-hour pieces, the slow tier every 3 h of data, a
    checkpoint 1.5 h after the change (f2h's first hourly reading is in, not yet final: its
    reach ahead is 24 readings), a piece judged after it and lost, a restart: detect's alerts."""
    frame = pd.concat([
        _reconfigured("h2f", "60min", "5min", 5.0, [(4.5, 1, 1.0), (5.0, 1, 1.0)],
                      [(5.0 + 1 / 288, 1, 1.0), (5.0 + 3 / 288, 1, 1.0), (6.5, 1, 1.0)], seed=40),
        _reconfigured("f2h", "5min", "60min", 5.0, [(5.0 - 1 / 288, 1, 1.0)],
                      [(5.0 + 1 / 24, 1, 1.0), (6.5, 1, 1.0)], seed=41),
        _meter("steady", "60min", [(5.5, 1, 1.0)], seed=45)], ignore_index=True)
    frame.to_parquet(tmp_path / "t.parquet")
    det = api.detect(tmp_path / "t.parquet", db=tmp_path / "batch.duckdb", config=CONFIG)
    want = {a.id: _view(a) for a in det.alerts}
    lone = {(a.meter_id, pd.Timestamp(a.start).round("5min")) for a in det.alerts if a.detector == "neutral_tamper"}
    at = lambda h: T0 + pd.Timedelta(days=5, hours=h)  # noqa: E731
    # (the lone readings at the stretch's cadence: q67; not h2f's lone 5-minute reading)
    assert {("h2f", at(0)), ("f2h", at(1)), ("f2h", at(36)), ("h2f", at(-12))} <= lone
    assert ("h2f", at(0.25)) not in lone and ("h2f", at(36)) not in lone
    fr = api.read_frame(tmp_path / "batch.duckdb").sort_values("ts", kind="stable")
    day = fr["ts"].min().floor("1D") + pd.Timedelta("1D")
    rest = fr[fr["ts"] >= day]
    pieces = [fr[fr["ts"] < day]] + [p for _, p in rest.groupby(rest["ts"].dt.floor("1h"), sort=True)]

    def engine(s):
        return StreamEngine(s, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                            StreamConfig(checkpoint_s=1e9, slow_every_s=3 * 3600.0, slow_thread=False))

    path = tmp_path / "live.duckdb"
    store = Store(path)
    eng = engine(store)
    k = 0
    while pieces[k]["ts"].min() < at(1.5):   # up to the piece holding f2h's first hourly reading
        eng.add(pieces[k])
        eng.step()
        k += 1
    eng.checkpoint()
    got = dict(eng.alerts)
    eng.add(pieces[k])   # judged, not checkpointed: lost in the restart
    eng.step()
    store.close()
    store = Store(path)
    eng = engine(store)
    assert eng.resumed and eng.tiered and "neutral_tamper" not in eng.fast_names
    for p in pieces[k:]:
        eng.add(p)
        eng.step()
    eng.flush()
    got.update(eng.alerts)
    store.close()
    G = {i: _view(a) for i, a in got.items()}
    problems = [f"{i}: detect {want.get(i)} != stream {G.get(i)}" for i in sorted(set(want) | set(G))
                if want.get(i) != G.get(i)]
    assert not problems, "\n".join(problems[:10])
