"""One lasting change, one alert, live (issue 14, xd): a building's consumption drops to 45 % and
stays there; ``seasonal_profile``'s 24-h evidence alerts that evening, ``baseline_macd`` the next
morning. ``detect`` gives one alert (the first's id, the later end, both detectors named); a stream
fed a few hours per step gives the head in one step and its continuation in a later one, under the
same id, and ends with exactly ``detect``'s alerts, in memory and in its store."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.runners import rejudge
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sinks.influx import alert_states
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 14.0}}
# The two consumption detectors alone: no rule with a horizon of days (sensor_fault's 88 h at hourly)
# holds their final verdicts back, so the continuation is written live, not at the stream's end.
DETECTORS = ["seasonal_profile", "baseline_macd"]


def _building(days: float = 30, drop_day: float = 24, share: float = 0.45, seed: int = 3) -> pd.DataFrame:
    """One hourly meter: a working-day peak on a base load, 5 % noise; from ``drop_day`` + 9 h on
    every reading at ``share`` of what it was (a lasting change: a tenant gone, a bypass)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=int(days * 24), freq="60min", tz="UTC")
    h, wd = ts.hour.to_numpy(), ts.dayofweek.to_numpy()
    p = (20 + 30 * np.exp(-((h - 13) / 4) ** 2) * np.where(wd < 5, 1.0, 0.6)) * (1 + 0.05 * rng.standard_normal(len(ts)))
    p = np.where(ts >= ts[0] + pd.Timedelta(days=drop_day, hours=9), p * share, p)
    return pd.DataFrame({"meter_id": "B-1", "ts": ts, "p_kw": p})


def _view(a) -> dict:
    d = json.loads(a.to_json())
    return {k: d[k] for k in ("id", "meter_id", "start", "end", "code", "detector", "severity", "score", "message",
                              "evidence")}


@pytest.fixture(scope="module")
def building(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("continuation")
    f = _building()
    f.to_parquet(out / "b.parquet")
    det = api.detect(out / "b.parquet", db=out / "batch.duckdb", config=CONFIG, detectors=DETECTORS)
    return {"frame": f, "detect": det}


def test_detect_gives_one_alert_for_the_lasting_drop(building):
    merged = [a for a in building["detect"].alerts if "continued" in a.evidence]
    assert len(merged) == 1, [a.message for a in building["detect"].alerts]
    a = merged[0]
    c = a.evidence["continued"]
    assert a.detector == "seasonal_profile" and c["detectors"] == ["seasonal_profile", "baseline_macd"]
    assert c["change"] == "down"
    head, follower = c["alerts"]
    assert a.id == head["id"] and a.start == head["start"] and a.end == max(head["end"], follower["end"])
    assert follower["start"] > head["start"]
    # The follower is no alert of its own.
    assert not [x for x in building["detect"].alerts if x.detector == "baseline_macd"]
    assert "continued by baseline_macd" in a.message


def _stored_matches(store, eng, ids) -> None:
    """The store keeps each alert's end and score as the engine holds it."""
    rows = {i: (pd.Timestamp(e), sc) for i, e, sc in store.con.execute('SELECT id, "end", score FROM alerts').fetchall()}
    for i in ids:
        assert rows[i] == (pd.Timestamp(eng.alerts[i].end), eng.alerts[i].score), i


def test_a_stream_gives_the_head_first_then_its_continuation_under_the_same_id(building, tmp_path):
    """A stream fed 6-h pieces gives the head alone, then (in a later step, before the stream's end)
    continued under the same id, never a follower's id, and ends with exactly detect's alerts in
    memory and in its store. On the way: stopped (checkpoint, store closed) after the head was
    written alone and closed, resumed by a fresh engine: the follower continues the head as in one
    run (the carry is taken back from the store's alerts); and a reading of the follower's span
    that comes late (after every other) re-judges the meter: the store keeps the continued alert's
    end and score, not its head's (rxd: ``rejudge._exact`` wrote the head's own over them)."""
    frame = building["frame"]
    (head,) = [a for a in building["detect"].alerts if "continued" in a.evidence]
    mid = head.id
    assert mid in building["detect"].open_ids
    follower_start = pd.Timestamp(head.evidence["continued"]["alerts"][1]["start"])
    late = frame["ts"] == follower_start + pd.Timedelta(hours=18)
    assert late.sum() == 1
    t0 = frame["ts"].min()
    cut = t0 + pd.Timedelta(days=20)
    on_time = frame[~late]
    rest = on_time[on_time["ts"] >= cut]
    pieces = [on_time[on_time["ts"] < cut], *[p for _, p in rest.groupby(rest["ts"].dt.floor("6h"), sort=True)]]
    path = tmp_path / "live.duckdb"

    def engine(store):
        return StreamEngine(store, api.build_detectors(DETECTORS, CONFIG), api._engine(CONFIG),
                            StreamConfig(checkpoint_s=0, slow_thread=False))   # (each slow judgement in its step)

    first_plain: dict[str, int] = {}    # id -> step after which the engine first held it without a continuation
    first_merged: dict[str, int] = {}   # id -> ... first held it continued
    followers = set()

    def seen(eng, k):
        followers.update(eng._cont.head_of)
        assert not set(eng.alerts) & followers, "a follower's own id was given"
        for i, a in eng.alerts.items():
            (first_merged if "continued" in a.evidence else first_plain).setdefault(i, k)

    store = Store(path)
    eng = engine(store)
    k = 0
    while mid not in eng.alerts or mid in eng.open_ids:   # the head written and closed, alone
        eng.add(pieces[k])
        eng.step()
        seen(eng, k)
        k += 1
    assert "continued" not in eng.alerts[mid].evidence
    eng.checkpoint()
    store.close()
    store = Store(path)
    eng2 = engine(store)
    assert eng2.resumed
    for k in range(k, len(pieces)):
        eng2.add(pieces[k])
        eng2.step()
        seen(eng2, k)
    eng2.add(frame[late])
    eng2.step()
    assert eng2.counters["rewinds"] >= 1
    _stored_matches(store, eng2, [mid])
    # The drop runs to the end: the continued alert is open (its follower is), as in detect.
    assert mid in eng2.open_ids and not eng2.open_ids & followers
    eng2.flush()
    seen(eng2, len(pieces))
    want = {a.id: _view(a) for a in building["detect"].alerts}
    got = {**{i: _view(a) for i, a in eng.alerts.items()}, **{i: _view(a) for i, a in eng2.alerts.items()}}
    assert got == want
    kept = [r[0] for r in store.con.execute("SELECT id FROM alerts ORDER BY id").fetchall()]
    assert kept == sorted(want)
    _stored_matches(store, eng2, [mid])
    # The two detectors' alerts came in different steps: the head alone first, then continued,
    # before the stream's end (the follower's final verdict came live, not at the flush).
    assert first_plain[mid] < first_merged[mid] < len(pieces)
    store.close()


def test_with_every_detector_a_provisional_follower_gives_way_to_the_continued_alert(tmp_path, tmp_path_factory):
    """Every default detector: the consumption alerts wait for rules of long horizons (sensor_fault's
    81 h here) and are written provisional first. (pf, issues 14/16) The provisional follower is
    written as its head's merged version, under the head's id, never under its own (xd2's item 3:
    it was shown under its own id for days, then withdrawn): at no step does the engine, its store
    or its report hold an id ``detect`` does not give, and the continuation is shown before the
    final verdicts (the follower ``pending``). The engine and its store end with exactly detect's
    alerts."""
    out = tmp_path_factory.mktemp("continuation-all")
    f = _building()
    f.to_parquet(out / "b.parquet")
    want = {a.id: _view(a) for a in api.detect(out / "b.parquet", db=out / "batch.duckdb", config=CONFIG).alerts}
    assert any("continued" in v["evidence"] for v in want.values())
    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                       StreamConfig(checkpoint_s=0, slow_thread=False))
    cut = f["ts"].min() + pd.Timedelta(days=20)
    rest = f[f["ts"] >= cut]
    provisional, pending, shown = set(), set(), set()
    for p in [f[f["ts"] < cut], *[p for _, p in rest.groupby(rest["ts"].dt.floor("12h"), sort=True)]]:
        eng.add(p)
        rep = eng.step()
        provisional |= {i for i, a in eng.alerts.items() if a.evidence.get("provisional")}
        pending |= {i for i, a in eng.alerts.items()
                    if any(m.get("pending") for m in a.evidence.get("continued", {}).get("alerts", []))}
        shown |= set(rep.new) | {a.id for a in rep.alerts} | set(rep.withdrawn)
        shown |= {r[0] for r in store.con.execute("SELECT id FROM alerts").fetchall()}
    rep = eng.flush()
    shown |= set(rep.new) | {a.id for a in rep.alerts} | set(rep.withdrawn)
    (mid,) = [i for i, v in want.items() if "continued" in v["evidence"]]
    assert mid in provisional, "the head was never written provisional: the case is not met"
    assert shown <= set(want), "an id detect does not give was shown (a provisional follower under its own id)"
    assert mid in pending, "the continuation was not shown before the final verdicts"
    assert not eng._pending_final
    assert {i: _view(a) for i, a in eng.alerts.items() if i in want} == want
    kept = [r[0] for r in store.con.execute("SELECT id FROM alerts ORDER BY id").fetchall()]
    assert kept == sorted(want)
    store.close()


def test_a_head_withdrawn_by_a_late_reading_no_longer_keeps_its_follower(building, tmp_path, caplog):
    """(xd2) A reading of 35 kW at 20:00 on the drop's evening (twice the hour's profile) arrives
    after the continued alert was written: re-judged, the evening's 24-h alert begins at 20:00 (a
    spike in it: no drop to continue) and the head the stream continued (from 21:00) is withdrawn.
    ``detect`` on the same readings gives baseline_macd's alert alone: so must the stream (rxd's
    residual: its carry still held the withdrawn head's event, and the follower's later versions
    came back under the withdrawn head's id, the follower never given as its own)."""
    f = _building()
    late = f["ts"] == pd.Timestamp("2024-01-25T20:00", tz="UTC")
    f.loc[late, "p_kw"] = 35.0
    det = api.detect(f, config={**CONFIG, "engine": {**CONFIG["engine"], "workers": 1}}, detectors=DETECTORS)
    want = {a.id: _view(a) for a in det.alerts}
    assert not any("continued" in v["evidence"] for v in want.values())
    assert any(v["detector"] == "baseline_macd" for v in want.values())
    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(DETECTORS, CONFIG), api._engine(CONFIG),
                       StreamConfig(checkpoint_s=0, slow_thread=False))
    on_time = f[~late]
    cut = f["ts"].min() + pd.Timedelta(days=20)
    rest = on_time[on_time["ts"] >= cut]
    merged = None
    for _, p in [(None, on_time[on_time["ts"] < cut]), *rest.groupby(rest["ts"].dt.floor("12h"), sort=True)]:
        eng.add(p)
        eng.step()
        if merged is None:
            merged = next((i for i, a in eng.alerts.items() if "continued" in a.evidence), None)
            if merged is not None:   # the continuation written: now the late reading
                eng.add(f[late])
                eng.step()
                assert eng.counters["alerts_withdrawn"] >= 1 and merged not in eng.alerts
    assert merged is not None and merged not in want
    eng.flush()
    assert {i: _view(a) for i, a in eng.alerts.items()} == want
    kept = [r[0] for r in store.con.execute("SELECT id FROM alerts ORDER BY id").fetchall()]
    assert kept == sorted(want)
    # (rxd2) ... and back: the readings put right (no feed takes a reading back: the test writes them
    # in the store and marks the meter, as a late reading marks it; 30 kW at 21:00, 31 kW turns the
    # head up) the follower, written alone since, continues the head again under its own id: its own
    # row is withdrawn (``rejudge._withdraw`` reads the ids as given: before, it was found again and
    # its row stayed beside the continued alert's)
    (alone,) = [i for i, a in eng.alerts.items() if a.detector == "baseline_macd"]
    g = building["frame"].copy()
    at = g["ts"] == pd.Timestamp("2024-01-25T21:00", tz="UTC")
    g.loc[at, "p_kw"] = 30.0
    det = api.detect(g, config={**CONFIG, "engine": {**CONFIG["engine"], "workers": 1}}, detectors=DETECTORS)
    want = {a.id: _view(a) for a in det.alerts}
    assert [a for a in det.alerts if alone in [m["id"] for m in a.evidence.get("continued", {}).get("alerts", [])]]
    for k in (late, at):
        store.con.execute("UPDATE readings_raw SET p_kw = ? WHERE ts = ?",
                          [float(g.loc[k, "p_kw"].iloc[0]), g.loc[k, "ts"].iloc[0]])
    rejudge.mark(eng, "B-1", pd.Timestamp("2024-01-25T20:00", tz="UTC").timestamp())
    with caplog.at_level(logging.INFO, logger="wattwatch.watch"):
        rep = eng.flush()
    assert {i: _view(a) for i, a in eng.alerts.items()} == want
    kept = [r[0] for r in store.con.execute("SELECT id FROM alerts ORDER BY id").fetchall()]
    assert kept == sorted(want)
    # (pf) ... and its withdrawal says so: "continued by <head id>", not "not found again" (the console's
    # log, the store's withdrawal kept for the outputs, the InfluxDB point's state)
    (mid,) = [i for i, v in want.items() if "continued" in v["evidence"]]
    told = rep.withdrawn[alone]
    assert told.evidence["withdrawn"].startswith(f"withdrawn: continued by {mid}") and told.evidence["continued_by"] == mid
    (kept_told,) = store.con.execute("SELECT alert FROM stream_withdrawn WHERE id = ?", [alone]).fetchone()
    assert json.loads(kept_told)["evidence"]["withdrawn"] == told.evidence["withdrawn"]
    from wattwatch.alerts import withdrawn   # (al) ... and for `alerts show`, its cause's own text

    assert told.evidence["withdrawn"] == rejudge.CONTINUED.format(head=mid) != withdrawn.CONTINUED_FINAL.format(head=mid)
    assert withdrawn.show(store.con, alone)["withdrawn"]["reason"] == told.evidence["withdrawn"]
    assert f"alert {alone} withdrawn: continued by {mid}" in caplog.text
    assert f"alert {alone} withdrawn: not found again" not in caplog.text
    assert alert_states({}, rep, eng)[alone] == "continued"
    # (rah) the ids told ended that may open again are the engine's alerts': a withdrawn one is gone
    assert eng._told_closed and eng._told_closed <= set(eng.alerts), eng._told_closed - set(eng.alerts)
    store.close()


def _head_and_follower():
    """A seasonal head (a 24-h drop) and a baseline_macd follower of it, as the detectors write them."""
    from wattwatch.alerts.model import Alert

    head = Alert("B-1", "2024-01-25T21:00:00.000Z", "2024-01-26T02:00:00.000Z", "WARN_CONSUMPTION_ANOMALY", "warning",
                 0.65, "seasonal_profile", "the last 24 h ran 40 % below its profile",
                 {"kind": "unusual_day", "value": 12.0, "expected": 20.0})
    follower = Alert("B-1", "2024-01-26T10:00:00.000Z", "2024-01-27T10:00:00.000Z", "WARN_BASELINE_DEVIATION",
                     "warning", 0.78, "baseline_macd", "-55 % below its baseline", {"deviation": -0.55})
    return head, follower


def _prov(a, **kw):
    import dataclasses

    return dataclasses.replace(a, evidence={**a.evidence, "provisional": True, "waits_for": ["sensor_fault"]}, **kw)


def _engine(store):
    return StreamEngine(store, api.build_detectors(DETECTORS, CONFIG), api._engine(CONFIG),
                        StreamConfig(checkpoint_s=0, slow_thread=False))


def _step(eng, store, final=(), prov=(), popen=(), open_=()):
    """One judgement of B-1 given to the engine as a stitcher's step (its final and provisional
    alerts, built by hand; ``open_``: the final ones open); the report and the store's rows after it."""
    from wattwatch.detect.stitch import Step
    from wattwatch.runners.stream import StepReport

    rep = StepReport()
    eng._take(Step(alerts=list(final), open_ids=set(open_), provisional=list(prov), provisional_open=set(popen),
                   judged={"B-1"}), rep, "all")
    rows = {r[0]: r for r in store.con.execute('SELECT id, "end", score, message, evidence FROM alerts').fetchall()}
    return rep, rows


def test_a_provisional_follower_is_written_as_its_heads_version_and_put_back_when_withdrawn(tmp_path):
    """(pf, issues 14/16) The engine's bookkeeping of a provisional follower, step by step (the
    versions a stitcher gives, built here; real engine and store): never written under its own id;
    a provisional head's version and a final head's version are the merged one (the follower
    ``pending``); a follower withdrawn by its final judgement puts its final head back to its own
    version, its end and score exactly; a follower made final gives the final merge."""
    head, follower = _head_and_follower()
    store = Store(tmp_path / "live.duckdb")
    engine = _engine
    eng = engine(store)

    def step(final=(), prov=(), popen=()):
        return _step(eng, store, final, prov, popen)

    # both provisional: one alert, the head's id, provisional, the follower pending in it; open while it is
    rep, rows = step(prov=[_prov(head), _prov(follower)], popen=[follower.id])
    assert set(rows) == {head.id} and rep.new == [head.id] and follower.id not in eng.alerts
    a = eng.alerts[head.id]
    assert a.evidence["provisional"] and [m["pending"] for m in a.evidence["continued"]["alerts"]] == [True, True]
    assert a.end == follower.end and head.id in eng.provisional_open
    # the head's first final version lags its provisional one (a short spike: no lasting change, so
    # not a head yet; seed 7 at 15 min, M-00103): the follower stays under it, no row of its own
    import dataclasses

    spike = dataclasses.replace(head, end="2024-01-25T21:30:00.000Z", evidence={"kind": "spike"})
    rep, rows = step(final=[spike], prov=[_prov(follower)], popen=[follower.id])
    assert set(rows) == {head.id} and not rep.new and follower.id not in eng.alerts and head.id in rep.confirmed
    assert "continued by baseline_macd" in eng.alerts[head.id].message
    # the head final, the follower still provisional (grown): the head's row is the merged version
    grown = _prov(follower, end="2024-01-28T10:00:00.000Z", score=0.8)
    rep, rows = step(final=[head], prov=[grown], popen=[follower.id])
    assert set(rows) == {head.id} and not rep.new
    assert head.id in eng.open_ids and head.id not in rep.ended   # (al) open while its pending follower is
    a = eng.alerts[head.id]
    assert not a.evidence.get("provisional") and "continued by baseline_macd" in a.message
    assert [m.get("pending", False) for m in a.evidence["continued"]["alerts"]] == [False, True]
    assert pd.Timestamp(rows[head.id][1]) == pd.Timestamp(grown.end) and rows[head.id][2] == 0.8
    # (stopped and resumed: the store's row says what is pending; the carry holds the final head alone)
    eng.checkpoint()
    store.close()
    store = Store(tmp_path / "live.duckdb")
    eng = engine(store)
    assert eng.resumed and set(eng._pending_final) == {head.id} and not eng._cont.head_of
    assert head.id in eng.open_ids and head.id in eng._pending_open   # (al) still held open after the restart
    # the follower withdrawn by its final judgement: the head back to its own version, end and score too
    rep, rows = step(final=[head])
    assert set(rows) == {head.id} and not rep.withdrawn
    assert head.id in rep.ended and head.id not in eng.open_ids   # (al) its end comes with the verdict
    assert eng.alerts[head.id].message == head.message and "continued" not in eng.alerts[head.id].evidence
    assert (pd.Timestamp(rows[head.id][1]), rows[head.id][2]) == (pd.Timestamp(head.end), head.score)
    assert json.loads(rows[head.id][4]) == head.evidence and rows[head.id][3] == head.message
    # ... written again provisional, then final: the final merge, nothing pending
    step(final=[head], prov=[_prov(follower)])
    rep, rows = step(final=[follower])
    a = eng.alerts[head.id]
    assert set(rows) == {head.id} and "pending" not in json.dumps(a.evidence)
    assert a.evidence["continued"]["detectors"] == ["seasonal_profile", "baseline_macd"] and a.end == follower.end
    assert json.loads(rows[head.id][4]) == json.loads(json.dumps(a.evidence, default=str))
    store.close()


def test_a_restarted_stream_keeps_a_provisional_follower_under_the_head_it_was_given_under(tmp_path):
    """(rpf) Which head a provisional follower was last given under is read back at a restart
    (from the store's rows that hold it ``pending``): stopped after both were written provisional
    (one alert, the head's), resumed, the head's first final version a 30-min spike (no head for
    the carry: seed 7 at 15 min, M-00103): the follower stays under the head, no row of its own
    (pf left it not checkpointed: it was shown under its own id until the head grew back)."""
    import dataclasses

    head, follower = _head_and_follower()
    store = Store(tmp_path / "live.duckdb")
    eng = _engine(store)
    _, rows = _step(eng, store, prov=[_prov(head), _prov(follower)], popen=[follower.id])
    assert set(rows) == {head.id}
    eng.checkpoint()
    store.close()
    store = Store(tmp_path / "live.duckdb")
    eng = _engine(store)
    spike = dataclasses.replace(head, end="2024-01-25T21:30:00.000Z", evidence={"kind": "spike"})
    rep, rows = _step(eng, store, final=[spike], prov=[_prov(follower)], popen=[follower.id])
    assert set(rows) == {head.id} and follower.id not in rep.new and follower.id not in eng.alerts
    assert "continued by baseline_macd" in eng.alerts[head.id].message
    store.close()


def test_an_action_that_waits_for_final_alerts_never_sees_a_pending_continuation(tmp_path):
    """(rpf) A final head written with a provisional follower ``pending`` (its merged version: the
    follower's end, score and a critical severity) is no final judgement: a command action
    (``on_provisional = false``) is not told that version; when the follower is withdrawn the head's
    own version is written again. One with ``on_provisional = true`` is told each version (the pending
    one says so). ``{severity}`` in argv shows which version was told. (al) The head, its own final
    part closed while the follower is pending and open, stays open (console, dashboard, InfluxDB) and
    ends only at the follower's verdict; its own part's growth meanwhile is told to the waiting action
    as an ``updated`` of that final part."""
    import dataclasses

    from wattwatch.actions.base import actions_for
    from wattwatch.sinks import deliver

    src = tmp_path / "t.csv"
    pd.DataFrame({"meter_id": ["B-1"], "ts": ["2024-01-20T00:00:00Z"], "p_kw": [1.0]}).to_csv(src, index=False)
    spec = {"type": "command", "argv": ["/bin/true", "{severity}"], "on": ["opened", "updated", "ended"]}
    site = api.load_site({"sources": [{"type": "replay", "path": str(src)}],
                          "actions": [{**spec, "name": "shed"}, {**spec, "name": "tell", "on_provisional": True}]})
    shed = site.outputs[0]
    head, follower = _head_and_follower()
    follower = dataclasses.replace(follower, severity="critical")
    grown = dataclasses.replace(head, end="2024-01-26T03:00:00.000Z", score=0.7)   # its own readings, still final
    store = Store(tmp_path / "live.duckdb")
    eng = _engine(store)
    steps = [([head], [], (), {head.id}),                              # open
             ([head], [_prov(follower)], {follower.id}, ()),          # its own part closed, the follower pending, open
             ([grown], [_prov(follower)], {follower.id}, ()),         # its own part grew
             ([grown], [], (), ())]                                   # the follower withdrawn: back to its own, ended
    for k, (final, prov, popen, open_) in enumerate(steps):
        rep, _ = _step(eng, store, final, prov, popen, open_)
        deliver(site.outputs, "alerts", rep, eng)
        for o in site.outputs:
            assert o.flush(30)
        held = k in (1, 2)
        assert (head.id in eng.open_ids) == (k < 3) and (head.id in rep.ended) == (k == 3), k
        if held:
            assert alert_states({head.id: eng.alerts[head.id]}, rep, eng)[head.id] == "open"
        if k == 2:   # told the final part's growth, not the merged version
            assert shed._last[head.id] == ((grown.end, grown.score, "warning", grown.message), True)
    told = actions_for(store.con, head.id)
    seen = {n: [(e, d.split()[-1].strip("[]'\",")) for e, d in zip(g["event"], g["detail"])]
            for n, g in told.groupby("action")}
    assert seen["tell"] == [("opened", "warning"), ("updated", "critical"), ("updated", "critical"),
                            ("updated", "warning"), ("ended", "warning")], seen["tell"]
    assert seen["shed"] == [("opened", "warning"), ("updated", "warning"), ("ended", "warning")], seen["shed"]
    store.close()


def test_a_fast_step_leaves_a_head_with_a_pending_follower_to_the_slow_tier(tmp_path):
    """(rpf) Tiered (a head's detector in the fast tier, its follower's slow and provisional): the
    fast step, which sees no provisional alerts, does not write the head's own version back over
    its merged one (the slow step wrote the merged version again: two versions a step, an
    ``updated`` each way to the outputs)."""
    from wattwatch.detect.stitch import Step
    from wattwatch.runners.stream import StepReport

    head, follower = _head_and_follower()
    store = Store(tmp_path / "live.duckdb")
    eng = _engine(store)
    rep, _ = _step(eng, store, [head], [_prov(follower)])
    assert [a.id for a in rep.alerts] == [head.id] and rep.alerts[0].evidence["continued"]   # (told once: merged)
    rep = StepReport()
    eng._take(Step(alerts=[head], open_ids={head.id}, provisional=[], provisional_open=set(), judged={"B-1"}), rep,
              "fast")
    (msg,) = store.con.execute("SELECT message FROM alerts WHERE id = ?", [head.id]).fetchone()
    assert not rep.alerts and "continued by baseline_macd" in msg
    # (ral) its own part closed, its follower pending and open: held open (al), also by a fast step,
    # which judges no provisional alert (it ended the head there, open again at the next slow step)
    _step(eng, store, [head], [_prov(follower)], {follower.id})
    assert head.id in eng.open_ids
    rep = StepReport()
    eng._take(Step(alerts=[head], open_ids=set(), provisional=[], provisional_open=set(), judged={"B-1"}), rep, "fast")
    assert head.id in eng.open_ids and head.id not in rep.ended
    store.close()


def _told_in_order(events: list[str]) -> bool:
    """An alert's life as one output was told it: an opening, updates, an end; again only after an end."""
    state = "closed"
    for ev in events:
        if ev == "opened" and state == "closed" or ev == "updated" and state == "open" or \
                ev == "ended" and state == "open":
            state = "closed" if ev == "ended" else "open"
        else:
            return False
    return state == "closed"


@pytest.mark.parametrize("follower_kind", ["pending", "final", "confirmed"])
def test_a_head_told_ended_then_continued_is_told_open_again_before_it_ends_again(tmp_path, follower_kind):
    """(ah; al's leftover) A head that ended (told so) and is then continued by a follower (final:
    xd's merge; provisional and pending: al's hold) is open again (console list, dashboard, InfluxDB
    ``state``): the console said "alert ended" a second time with no opening between, an action that
    acts on it (``tell``; ``shed`` too for a final follower) was told ``updated`` (state "open") after
    its ``ended`` and never its second end. Now the step reports it ``reopened``: "alert open again"
    on the console, ``opened`` anew to an action told its end, then its second end; an action that
    waits for final alerts hears nothing of a pending member (its final part stays closed). And an
    alert new and already closed in one step is told ended in that step (it was never told ended).
    (rah) A pending member that is then confirmed final and open ("confirmed") reopens the head for
    an action that waits for final alerts too: ``shed`` is told ``opened`` anew and its second end
    (it heard neither: its load stayed restored through the change). An action never told an
    alert's opening (``lim``: rate-limited) is not told its end (the new and closed alert)."""
    import dataclasses

    from wattwatch.app.watchview import LogLines
    from wattwatch.sinks import deliver

    src = tmp_path / "t.csv"
    pd.DataFrame({"meter_id": ["B-1"], "ts": ["2024-01-20T00:00:00Z"], "p_kw": [1.0]}).to_csv(src, index=False)
    spec = {"type": "webhook", "url": "http://127.0.0.1:1/", "dry_run": True, "on": ["opened", "updated", "ended"]}
    site = api.load_site({"sources": [{"type": "replay", "path": str(src)}],
                          "actions": [{**spec, "name": "shed", "on_provisional": False},
                                      {**spec, "name": "tell", "on_provisional": True},
                                      {**spec, "name": "lim", "on": ["opened", "ended"], "rate_limit": {"max": 1}}]})
    head, follower = _head_and_follower()
    other = dataclasses.replace(head, meter_id="B-2")   # new and closed in its first step
    store = Store(tmp_path / "live.duckdb")
    eng = _engine(store)
    lines: list[str] = []
    view = LogLines(lines.append, every_s=1e9)
    view.last = float("inf")
    # (first provisional and open, then confirmed open: not told open again, it never ended)
    steps = [([], [_prov(head)], {head.id}, ()), ([head], [], (), {head.id}), ([head, other], [], (), ())]
    if follower_kind == "pending":
        steps += [([head], [_prov(follower)], {follower.id}, ()), ([head], [], (), ())]
    elif follower_kind == "confirmed":
        steps += [([head], [_prov(follower)], {follower.id}, ()), ([head, follower], [], (), {follower.id}),
                  ([head, follower], [], (), ())]
    else:
        steps += [([head, follower], [], (), {follower.id}), ([head, follower], [], (), ())]
    states = []
    for k, (final, prov, popen, open_) in enumerate(steps):
        rep, _ = _step(eng, store, final, prov, popen, open_)
        assert (head.id in getattr(rep, "reopened", ())) == (k == 3) or not hasattr(rep, "reopened"), k
        view(eng, rep, [])
        deliver(site.outputs, "alerts", rep, eng)
        for o in site.outputs:
            assert o.flush(30)
        states.append(alert_states({head.id: eng.alerts[head.id]}, rep, eng)[head.id])
    for o in site.outputs:
        o.close()
    assert states == ["open", "open", "ended", "open"] + ["open"] * (follower_kind == "confirmed") + ["ended"], states
    said = [x.split()[1:3] if x.startswith("alert open again") else x.split()[1:2] for x in lines
            if x.startswith("alert ") and head.id in x]
    assert said == [["open"], ["confirmed"], ["ended"], ["open", "again"], ["ended"]], lines
    assert [x.split()[1] for x in lines if other.id in x] == ["open", "ended"], lines
    log = store.con.execute("SELECT action, alert_id, event FROM actions_log ORDER BY done_at").df()
    told = {(n, i): list(g["event"]) for (n, i), g in log.groupby(["action", "alert_id"])}
    assert all(_told_in_order(evs) for (n, _), evs in told.items() if n != "lim"), told
    assert told[("tell", head.id)].count("ended") == 2 and told[("tell", other.id)] == ["opened", "ended"], told
    assert told[("shed", head.id)].count("ended") == (1 if follower_kind == "pending" else 2), told
    assert told[("lim", other.id)] == ["opened"], told   # (rate-limited: logged so; its end untold)
    assert site.outputs[2].counters["ended_untold"] >= 1
    store.close()


def test_a_head_told_ended_before_a_restart_and_continued_after_it_is_told_open_again(tmp_path):
    """(rah; ah's leftover) A head ended (told so) before a restart, continued by a final follower
    after it: the restarted engine did not know it had been told ended (``_told_closed`` is a run's),
    so the head went back into the open set untold: the console said "alert ended" twice, and no
    action heard its reopening or its second end (a load its ``ended_value`` restored stayed
    restored through the continued change). Now one the store kept before the checkpoint, closed in
    it, is reported open again too."""
    import dataclasses

    from wattwatch.app.watchview import LogLines
    from wattwatch.sinks import deliver

    src = tmp_path / "t.csv"
    pd.DataFrame({"meter_id": ["B-1"], "ts": ["2024-01-20T00:00:00Z"], "p_kw": [1.0]}).to_csv(src, index=False)
    spec = {"type": "webhook", "url": "http://127.0.0.1:1/", "dry_run": True}
    doc = {"sources": [{"type": "replay", "path": str(src)}],
           "actions": [{**spec, "name": "shed", "on": ["opened", "ended"], "on_provisional": False},
                       {**spec, "name": "tell", "on": ["opened", "updated", "ended"]}]}
    head, follower = _head_and_follower()
    lines: list[str] = []
    reopened = []
    # (and a provisional alert written before the restart, confirmed open after it: never told ended,
    # not open again)
    other = dataclasses.replace(head, meter_id="B-2")
    prov = ([_prov(other)], {other.id})
    for run, steps in enumerate(([([head], *prov, {head.id}), ([head], *prov, ())],
                                 [([head, follower, other], (), (), {follower.id, other.id}),
                                  ([head, follower, other], (), (), {other.id})])):
        site = api.load_site(doc)
        store = Store(tmp_path / "live.duckdb")
        eng = _engine(store)
        view = LogLines(lines.append, every_s=1e9)
        view.last = float("inf")
        for final, prov, popen, open_ in steps:
            rep, _ = _step(eng, store, final, prov, popen, open_)
            reopened.append(list(rep.reopened))
            view(eng, rep, [])
            deliver(site.outputs, "alerts", rep, eng)
        for o in site.outputs:
            assert o.flush(30)
            o.close()
        eng.checkpoint()
        if run == 0:
            store.close()
    assert reopened == [[], [], [head.id], []], reopened
    said = [x.split()[1:3] if x.startswith("alert open again") else x.split()[1:2] for x in lines
            if x.startswith("alert ") and head.id in x]
    assert said == [["open"], ["ended"], ["open", "again"], ["ended"]], lines
    log = store.con.execute("SELECT action, event FROM actions_log WHERE alert_id = ? ORDER BY done_at",
                            [head.id]).df()
    for n in ("shed", "tell"):
        evs = list(log[log["action"] == n]["event"])
        assert _told_in_order(evs) and evs.count("ended") == 2, (n, evs)
    store.close()
