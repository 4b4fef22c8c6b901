"""(le2, issue 16; rle's leftovers) A final alert that late readings withdraw, as the outputs see it.

Two meters lose three hours of readings (a gateway's backlog): the packet-loss rule opens an alert on
each. The backlog arrives 6 h late for B (its alert still open) and 30 h late for A (its alert ended
meanwhile); re-judged with them, neither alert is found again and both are withdrawn (deleted).

1. InfluxDB (a real influxd): each alert's point ends ``withdrawn``. A's had ended before its
   withdrawal: its point stayed ``ended`` (rle: told ``ended`` again, actions would act twice): it is
   told as a withdrawal only (``StepReport.withdrawn``, not ``ended``); actions keep one ``ended``.
2. A watcher killed after the re-judging's step and before its outputs (no checkpoint since): the
   withdrawal was not kept (only a provisional alert's was, ``stream_withdrawn``), so the restart never
   told it (B's point ``open`` for good, its action never told ``ended``). Kept now, it reaches the
   outputs once, and the restart's judgement does not bring the withdrawn alert back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api, influx
from wattwatch.actions.base import actions_for
from wattwatch.runners.stream import StepReport, StreamConfig, StreamEngine
from wattwatch.sinks import deliver
from wattwatch.sinks.influx import InfluxSink
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}}
T0 = pd.Timestamp("2026-01-05T00:00:00Z")


def _pieces() -> list[pd.DataFrame]:
    """3 days of 15-min readings of A and B; the first day at once, then 2-hour pieces by arrival;
    each meter's readings of 06:00-09:00 on day 2 arrive late (A 30 h, B 6 h after 09:00)."""
    ts = pd.date_range(T0, T0 + pd.Timedelta("3D"), freq="15min", inclusive="left")
    rng = np.random.default_rng(1)
    frame = pd.concat([pd.DataFrame({"meter_id": m, "ts": ts, "v_l1_v": 230 + rng.normal(0, 0.5, len(ts)),
                                     "p_kw": 2 + 0.3 * np.sin(np.arange(len(ts)) * 2 * np.pi / 96)
                                     + rng.normal(0, 0.05, len(ts))}) for m in ("A", "B")], ignore_index=True)
    due = frame["ts"].copy()
    lo, hi = T0 + pd.Timedelta("30h"), T0 + pd.Timedelta("33h")
    for m, late in (("A", 30), ("B", 6)):
        gap = (frame["meter_id"] == m) & (frame["ts"] >= lo) & (frame["ts"] < hi)
        due[gap] = hi + pd.Timedelta(hours=late)
    day = frame["ts"] < T0 + pd.Timedelta("1D")
    return [frame[day]] + [p for _, p in frame[~day].groupby(due[~day].dt.floor("2h"), sort=True)]


def _outputs(influxd, tmp_path, db: str) -> list:
    site = api.load_site({"sources": [{"type": "replay", "path": str(tmp_path / "unused.csv")}],
                          "actions": [{"type": "command", "argv": ["/bin/true"], "on": ["opened", "ended"],
                                       "name": "tell", "dry_run": False}]})
    return [InfluxSink("tsdb", url=influxd.url, database=db, buffer=tmp_path / f"buf-{db}", retention="INF"),
            *site.outputs]


def _engine(path):
    store = Store(path)
    return store, StreamEngine(store, api.build_detectors(["packet_loss"], None), api._engine(CONFIG),
                               StreamConfig(checkpoint_s=0, slow_thread=False))


def _close(outs, store) -> None:
    for o in outs:
        o.close()
    store.close()


def replay(path, outputs, kill: bool, flushed=lambda outs: outs, told: list | None = None
           ) -> tuple[dict[str, str], list[int]]:
    """Feed :func:`_pieces` to a packet-loss engine on ``path`` step by step, each step's report to
    the outputs ``outputs()`` makes, ``flushed(outs)`` flushed (their jobs done), then a checkpoint.
    ``kill``: after each withdrawing step, before its outputs and checkpoint, the watcher is killed
    and restarted (its store and outputs closed and made again; the source gives the piece again).
    ``told`` gets (id, told ended) of each withdrawal the outputs had. Returns (meter -> its
    alert's id, the pieces killed at); the outputs and the store are closed."""
    store, eng = _engine(path)
    outs = outputs()
    opened: dict[str, str] = {}

    def tell(rep) -> None:
        deliver(outs, "alerts", rep, eng)
        if told is not None:
            told.extend((i, i in rep.ended) for i in rep.withdrawn)
        for o in flushed(outs):
            assert o.flush(30)

    pieces = _pieces()
    k, killed = 0, []
    try:
        while k < len(pieces):
            eng.add(pieces[k])
            rep = eng.step()
            for i in rep.new:
                opened[eng.alerts[i].meter_id] = i
            if kill and rep.withdrawn and k not in killed:
                killed.append(k)
                _close(outs, store)
                store, eng = _engine(path)
                outs = outputs()
                continue
            tell(rep)
            eng.checkpoint()
            k += 1
        tell(eng.flush())
    finally:
        _close(outs, store)
    return opened, killed


def _states(influxd, db: str) -> dict[str, str]:
    res = influx.Client(influxd.url).query('SELECT "id", "state" FROM "alerts"', db)
    return {i: s for _, i, s in res[0]["series"][0]["values"]} if res[0].get("series") else {}


@pytest.mark.parametrize("kill", [False, True])
def test_a_final_alert_late_readings_withdraw_reaches_influx_and_actions_once(influxd, tmp_path, kill):
    (tmp_path / "unused.csv").write_text("meter_id,ts,v_l1_v\nm,2026-01-01T00:00:00Z,230\n")
    db = f"rw{int(kill)}"
    told: list[tuple[str, bool]] = []   # (id, told ended) of each withdrawal the outputs had
    # killed after the re-judging's step (its deletion stored), before its outputs and checkpoint;
    # (the action's jobs flushed each step: a kill then loses none of them)
    path = tmp_path / "live.duckdb"
    opened, killed = replay(path, lambda: _outputs(influxd, tmp_path, db), kill, flushed=lambda outs: outs[1:],
                            told=told)
    a, b = opened.get("A"), opened.get("B")
    assert a and b and (not kill or len(killed) == 2), (opened, killed)
    # each withdrawal told once: B's (open) as its end, A's (ended before) as a withdrawal only
    assert sorted(told) == sorted([(a, False), (b, True)]), told
    states = _states(influxd, db)
    assert states[a] == "withdrawn" and states[b] == "withdrawn", states
    with Store(path) as s:
        for i in (a, b):
            assert sorted(actions_for(s.con, i)["event"]) == ["ended", "opened"], i
        # not brought back by the restart's judgement: the readings are whole, no alert stands
        assert not s.con.execute("SELECT count(*) FROM alerts").fetchone()[0]
        assert not s.con.execute("SELECT count(*) FROM stream_withdrawn").fetchone()[0]


def test_a_restart_stopped_before_its_first_step_tells_a_withdrawal_after_an_end(influxd, tmp_path):
    """(rle2) The restart's held report of a watcher killed after a re-judging withdrew an alert that
    had ended before (``stream_withdrawn.ended_before``: a withdrawal only, no ``ended``), stopped
    before its first step: the shutdown's ``_deliver_held`` took it and, finding no alert and nothing
    ended, told no output, and the checkpoint after it forgot the row (InfluxDB's point ``ended`` for
    good). One row as :func:`rejudge._keep_for_outputs` writes it; the late readings' meter is marked
    to be re-judged (:func:`rejudge.resume_withdrawn`)."""
    from wattwatch.alerts.model import Alert
    from wattwatch.runners import rejudge
    from wattwatch.runners.stream import _deliver_held

    path, db = tmp_path / "live.duckdb", "rw_held"
    a = Alert("A", "2026-01-06 06:00:00+00:00", "2026-01-06 09:00:00+00:00", "packet_loss", "warning", 1.0,
              "packet_loss", "m")
    store, eng = _engine(path)
    sink = InfluxSink("tsdb", url=influxd.url, database=db, buffer=tmp_path / "buf1", retention="INF")
    sink.alerts(StepReport(alerts=[a], ended=[a.id]), eng)   # told ``ended`` when it ended
    sink.close()
    assert _states(influxd, db) == {a.id: "ended"}
    w = Alert(**{**a.__dict__, "evidence": {"withdrawn": rejudge.WITHDRAWN}})
    rejudge._keep_for_outputs(eng, {a.id: w}, {a.id})
    store.close()
    store, eng = _engine(path)
    assert eng.rewinds.get("A") == (pd.Timestamp(a.start).timestamp(),) * 2, eng.rewinds
    sink = InfluxSink("tsdb", url=influxd.url, database=db, buffer=tmp_path / "buf2", retention="INF")
    held = _deliver_held(eng, [sink])
    assert held is not None and list(held.withdrawn) == [a.id] and not held.ended, held
    eng.checkpoint()
    sink.close()
    store.close()
    assert _states(influxd, db) == {a.id: "withdrawn"}
