"""rev29: the stream's calm path (live25) on the whole engine where state changes mid-stream: a
packet-loss fleet at 5 minutes where one meter falls silent for 14 h (longer than packet_loss's
window) and comes back, a quarter of the meters deliver a 3-hour stretch 6 hours late (re-judged
from the store, the fast tier adopting the rewound carry), and the watcher restarts from its
checkpoint in the middle (every meter judged once afresh, then calm again): the store ends with
exactly ``detect``'s alerts on the same readings, and the calm path was taken."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

from tests.live.test_stream_calm import CONFIG, _view


def test_calm_stream_with_a_data_gap_late_readings_and_a_restart(tmp_path):
    simulate(SimConfig(meters=6, days=4.5, step="5min", seed=23, fault_share=0.5, faults=("packet_loss",),
                       profile_days=1.0, background_loss=0.004), tmp_path)
    frame = pd.read_parquet(tmp_path / "telemetry.parquet")
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    meters = sorted(frame["meter_id"].astype(str).unique())
    t0 = frame["ts"].min()
    day = t0.floor("1D") + pd.Timedelta("1D")
    silent = (frame["meter_id"].astype(str) == meters[0]) & (frame["ts"] > day + pd.Timedelta("30h")) \
        & (frame["ts"] < day + pd.Timedelta("44h"))
    frame = frame[~silent].reset_index(drop=True)
    frame.to_parquet(tmp_path / "edges.parquet")
    want = {a.id: _view(a) for a in api.detect(tmp_path / "edges.parquet", db=tmp_path / "batch.duckdb",
                                                 config=CONFIG).alerts}
    assert any(a["detector"] == "packet_loss" and a["meter_id"] == meters[0] for a in want.values())

    frame = api.read_frame(tmp_path / "batch.duckdb").sort_values("ts", kind="stable").reset_index(drop=True)
    due = frame["ts"].copy()
    rng = np.random.default_rng(23)
    for m in rng.choice(meters[1:], 2, replace=False):   # a gateway's backlog: 3 h delivered 6 h late
        back = (frame["meter_id"].astype(str) == m) & (frame["ts"] >= day + pd.Timedelta("46h")) \
            & (frame["ts"] < day + pd.Timedelta("49h"))
        due[back] = day + pd.Timedelta("55h")
    pieces = [frame[frame["ts"] < day]]
    rest = due >= day
    pieces += [frame[rest & (k == due.dt.floor("30min"))] for k in sorted(due[rest].dt.floor("30min").unique())]

    def engine(store):
        return StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                            StreamConfig(checkpoint_s=1e9, slow_thread=False))

    path = tmp_path / "live.duckdb"
    store = Store(path)
    eng = engine(store)
    half = next(k for k, p in enumerate(pieces) if len(p) and p["ts"].max() >= day + pd.Timedelta("60h"))
    calm_fed, late, rewinds = 0, 0, 0
    for k, p in enumerate(pieces):
        if k == half:   # restart from the checkpoint in the middle of calm steps
            calm_fed += sum(s.calm_fed for s in eng.fast.parts)
            late, rewinds = eng.counters["late"], eng.counters["rewinds"]
            eng.checkpoint()
            eng.close()
            store.close()
            store = Store(path)
            eng = engine(store)
        eng.add(p)
        eng.step()
    eng.flush()
    calm_fed += sum(s.calm_fed for s in eng.fast.parts)
    assert eng.tiered and "packet_loss" in eng.fast_names
    assert late > 0 and rewinds > 0, dict(eng.counters)
    got = {r[0]: r for r in store.con.execute('SELECT id FROM alerts').fetchall()}
    live = {i: _view(a) for i, a in eng.alerts.items()}
    eng.close()
    store.close()
    assert set(got) == set(want), (sorted(set(want) - set(got)), sorted(set(got) - set(want)))
    problems = [f"{i}: detect {want.get(i)} != stream {live.get(i)}" for i in sorted(set(want) | set(live))
                if want.get(i) != live.get(i)]
    assert not problems, "\n".join(problems[:10])
    assert calm_fed > 0


def test_clearing_a_packet_loss_alert_live_relearns_calm_meters_like_detect(tmp_path):
    """Clear a packet_loss alert while the stream runs: packet_loss re-learns the meter (its
    cadence and jitter from the window after the alert; ``judge_from``) and the meter is rewound
    while the fast tier takes other meters calm; every alert from then on is ``detect``'s with the
    same reset."""
    import json

    from wattwatch.alerts import store as alert_store
    from wattwatch.runners import control

    simulate(SimConfig(meters=6, days=5.0, step="5min", seed=29, fault_share=0.6, faults=("packet_loss",),
                       profile_days=1.0, background_loss=0.004), tmp_path)
    frame = api.read_frame(tmp_path / "telemetry.parquet")
    # A second loss on every meter late in the stream (half its readings for 5 h), judged with the
    # re-learned state on the cleared meter.
    t0 = frame["ts"].min()
    again = (frame["ts"] > t0 + pd.Timedelta("4.2D")) & (frame["ts"] < t0 + pd.Timedelta("4.2D") + pd.Timedelta("5h")) \
        & (frame["ts"].dt.minute % 10 == 5)
    frame = frame[~again.to_numpy()].reset_index(drop=True)
    frame.to_parquet(tmp_path / "again.parquet")
    frame = frame.sort_values("ts", kind="stable")
    day = (frame["ts"].min() + pd.Timedelta("1D")).ceil("1h")
    last = frame["ts"].max()
    plain = api.detect(tmp_path / "again.parquet", config=CONFIG).alerts
    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                       StreamConfig(checkpoint_s=0, slow_thread=False))
    cleared = None
    rest = frame[frame["ts"] >= day]
    pieces = [frame[frame["ts"] < day]] + [p for _, p in rest.groupby(rest["ts"].dt.floor("1h"), sort=True)]
    for piece in pieces:
        eng.add(piece)
        eng.step()
        if cleared is None:
            ended = [a for a in eng.alerts.values() if a.detector == "packet_loss"
                     and pd.Timestamp(a.end) <= last - pd.Timedelta("2.05D") and a.id not in eng.open_ids
                     # one on a meter that loses readings again later (what the re-learned state judges)
                     and any(p.meter_id == a.meter_id and p.detector == a.detector and p.start > a.end for p in plain)]
            if ended:
                a = sorted(ended, key=lambda a: (a.start, a.id))[0]
                ans = control.apply(eng, control.parse(json.dumps(
                    {"op": "set_status", "id": a.id, "status": "cleared", "note": "new normal"}).encode()))
                assert ans["ok"]
                cleared = (a, pd.Timestamp(ans["reset_at"]))
    eng.flush()
    assert cleared is not None, "no packet-loss alert early enough to clear"
    a, reset_at = cleared
    assert eng.counters["relearned"] == 1 and not eng.resets
    calm_fed = sum(s.calm_fed for s in eng.fast.parts)
    live = {r["id"]: r for r in (json.loads(x.to_json()) for x in eng.alerts.values())}
    store.close()

    batch = tmp_path / "batch.duckdb"
    api.ingest(tmp_path / "again.parquet", db=batch)
    with Store(batch) as b:
        api.detect(b, config=CONFIG, end=day)   # profiles every meter on its first day, as the stream did
        alert_store.ensure_tables(b.con)
        b.con.execute("INSERT INTO rule_resets VALUES (?, ?, ?, ?, 'cleared', now())",
                      [a.meter_id, a.detector, reset_at.to_pydatetime(), a.id])
        want = {x.id: _view(x) for x in api.detect(b, config=CONFIG).alerts}
    got = {i: _view(x) for i, x in eng.alerts.items()
           if not (x.meter_id == a.meter_id and x.detector == a.detector and pd.Timestamp(x.start) <= reset_at)}
    problems = [f"{i}: detect {want.get(i)} != stream {got.get(i)}" for i in sorted(set(want) | set(got))
                if want.get(i) != got.get(i)]
    assert not problems, "\n".join(problems[:10])
    after = lambda xs: sorted(x["id"] for x in xs if x["meter_id"] == a.meter_id  # noqa: E731
                              and x["detector"] == a.detector and pd.Timestamp(x["start"]) > reset_at)
    print("cleared", a.id, reset_at, after(want.values()), after(map(_view, plain)))
    assert calm_fed > 0 and live
