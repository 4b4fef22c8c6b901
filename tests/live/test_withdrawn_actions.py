"""(le3, issue 16; le2's leftover) Actions are told that an alert was withdrawn.

le2's late-reading fleet (``test_rejudge_withdrawn``): the backlog withdraws B's packet-loss alert while
it is open and A's after it ended. Actions were told B's withdrawal as its ``ended`` only, and nothing
of A's (told ``ended`` a day before). With ``on = [.., "withdrawn"]`` each now gets a ``withdrawn``
event (``state`` "withdrawn", ``evidence.withdrawn`` the reason), logged in ``actions_log`` with the
alert, once, also across a watcher killed after the withdrawing step and before its outputs: a real
webhook server, a real mosquitto, a real Modbus server (``modbus_write`` without ``withdrawn_value``:
nothing written, the shed load stays shed, the withdrawal logged ``ok`` "nothing written")."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest

from tests.live.test_actions import Hook, ModbusServer, _read, _replay_file  # noqa: F401 (its autouse fixture)
from tests.live.test_rejudge_withdrawn import replay
from wattwatch import api
from wattwatch.actions.base import actions_for
from wattwatch.runners.rejudge import WITHDRAWN
from wattwatch.store import Store


def _outputs(tmp_path, hook, broker, modbus) -> list:
    (tmp_path / "unused.csv").write_text("meter_id,ts,v_l1_v\nm,2026-01-01T00:00:00Z,230\n")
    return api.load_site({"sources": [{"type": "replay", "path": str(tmp_path / "unused.csv")}], "actions": [
        {"type": "webhook", "name": "hook", "url": hook.url, "on": ["opened", "ended", "withdrawn"],
         "dry_run": False, "retries": 0},
        {"type": "mqtt_publish", "name": "pub", "host": broker.host, "port": broker.port, "on": ["withdrawn"],
         "topic": "ww-withdrawn/{meter_id}/{event}", "dry_run": False},
        {"type": "modbus_write", "name": "shed", "host": "127.0.0.1", "port": modbus.port, "target": "coil",
         "address": 9, "device_id": 3, "value": False, "on": ["opened", "withdrawn"], "dry_run": False,
         "timeout_s": 2, "retries": 1, "allow": [{"device_id": 3, "target": "coil", "address": 9,
                                                   "values": [False, True]}]}]}).outputs


@pytest.fixture(scope="module")
def modbus():
    server = ModbusServer("socket")
    yield server
    server.stop()


def test_actions_are_told_once_that_an_alert_they_saw_was_withdrawn_also_across_a_kill(tmp_path, mqtt_broker, modbus):
    """Killed after each withdrawing step, before its outputs and checkpoint: each withdrawal is told by
    the restart (``stream_withdrawn``). (Without the kill the step's own report tells it: the same
    ``Action.alerts`` code; that case cost as much again and is left out, see docs/live-log.md (le3).)"""
    import paho.mqtt.client as mqtt

    kill = True
    got, ready = [], threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-withdrawn-{int(kill)}")
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("ww-withdrawn/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, codes, p: ready.set()
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.loop_start()
    assert ready.wait(10)
    hook = Hook()
    path = tmp_path / "live.duckdb"
    try:   # killed after each withdrawing step, before its outputs and checkpoint
        opened, killed = replay(path, lambda: _outputs(tmp_path, hook, mqtt_broker, modbus), kill)
    finally:
        hook.stop()
    end = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    sub.loop_stop()
    sub.disconnect()
    a, b = opened.get("A"), opened.get("B")
    assert a and b and (not kill or len(killed) == 2), (opened, killed)
    posts = [json.loads(body) for _, body, _ in hook.got]
    told = sorted((d["alert"]["id"], d["event"], d["state"]) for d in posts)
    # B withdrawn while open: its end, then its withdrawal; A ended a day before: its withdrawal only
    assert told == sorted([(a, "opened", "open"), (a, "ended", "ended"), (a, "withdrawn", "withdrawn"),
                           (b, "opened", "open"), (b, "ended", "withdrawn"), (b, "withdrawn", "withdrawn")]), told
    assert all(d["alert"]["evidence"]["withdrawn"] == WITHDRAWN for d in posts if d["event"] == "withdrawn")
    pub = sorted((t, d["alert"]["id"], d["state"]) for t, d in got)
    assert pub == sorted([("ww-withdrawn/A/withdrawn", a, "withdrawn"), ("ww-withdrawn/B/withdrawn", b, "withdrawn")])
    assert _read(modbus, "coil", 9) is False   # shed at the opening, not restored by the withdrawal
    with Store(path) as s:
        for i in (a, b):
            log = actions_for(s.con, i)
            assert sorted(zip(log["action"], log["event"], log["outcome"])) == sorted(
                [("hook", "opened", "ok"), ("hook", "ended", "ok"), ("hook", "withdrawn", "ok"),
                 ("pub", "withdrawn", "ok"), ("shed", "opened", "ok"), ("shed", "withdrawn", "ok")]), (i, log)
            assert "nothing written" in log[log["action"] == "shed"]["detail"].iloc[-1]
        assert not s.con.execute("SELECT count(*) FROM actions_pending").fetchone()[0]
    # (al) `alerts show` of a withdrawn alert (its row deleted): withdrawn, when, why, and what the actions did
    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    for i in (a, b):
        r = CliRunner().invoke(app, ["alerts", "show", i, "--db", str(path), "--json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["id"] == i and doc["status"] == "withdrawn" and doc["withdrawn"]["reason"] == WITHDRAWN, doc
        assert doc["withdrawn"]["at"] and len(doc["actions"]) == 6
    r = CliRunner().invoke(app, ["alerts", "show", b[:8], "--db", str(path)])
    out = " ".join(r.stdout.split())
    assert r.exit_code == 0 and "withdrawn: not found again" in out and "withdrawn: ok" in out, r.stdout
    assert "nothing written" in out


def test_modbus_withdrawn_value_is_allow_listed_and_written_on_a_withdrawal_once(tmp_path, modbus):
    """``withdrawn_value``: refused at load off the allow-list or without ``withdrawn`` in ``on``; with
    both, a withdrawal writes it (read back), logged, and the same withdrawal told again (a restart
    from a checkpoint before its outputs) does not write again."""
    import dataclasses

    from tests.live.test_actions import Harness, _alert, _shed
    from wattwatch.errors import ConfigError
    from wattwatch.runners.stream import StepReport

    spec = _shed(modbus.port, address=11, name="shed11", on=["opened", "withdrawn"], withdrawn_value=True,
                 allow=[{"device_id": 3, "target": "coil", "address": 11, "values": [False]}])
    with pytest.raises(ConfigError, match=r"withdrawn_value.*allow-list"):
        Harness(tmp_path, {"actions": [spec]})
    spec["allow"][0]["values"] = [False, True]
    with pytest.raises(ConfigError, match=r"add \"withdrawn\" to on"):
        Harness(tmp_path, {"actions": [{**spec, "on": ["opened"]}]})
    a = _alert()
    w = dataclasses.replace(a, evidence={**a.evidence, "withdrawn": WITHDRAWN})
    from tests.live.test_actions import WRITES

    for k in range(2):   # the second: a restart told the same opening and withdrawal again
        h = Harness(tmp_path, {"actions": [spec]})
        before = len(modbus.seen)
        h.opened(a)
        h.log(a)   # (its job done)
        assert _read(modbus, "coil", 11) is (k == 1)   # (shed by the first; restored by its withdrawal)
        h.action.alerts(StepReport(withdrawn={a.id: w}), h.engine)
        log = h.log(a)
        h.close()
        assert list(zip(log["event"], log["outcome"])) == [("opened", "ok"), ("withdrawn", "ok")], log
        assert "wrote coil 11 = True" in log["detail"].iat[1] and _read(modbus, "coil", 11) is True
        assert sum(f in WRITES for f in modbus.seen[before:]) == (2 if k == 0 else 0), modbus.seen[before:]


def test_an_action_is_told_the_withdrawal_only_of_an_alert_it_was_told_of(tmp_path):
    """(rle3) ``on = ["opened", "withdrawn"]``: the withdrawal of an alert whose opening this action
    never acted on (rate-limited; below ``min_severity`` when it opened, grown past it since) would be
    news of something it never sent: not told (a ``modbus_write`` with ``withdrawn_value`` would
    restore a load it never shed). What it was told survives a restart (its log). (al) The same for
    ``ended``; and the action forgets each alert its engine no longer holds (here: none open), so
    every event after the opening step is checked against its log: told once, none missed."""
    import dataclasses
    from types import SimpleNamespace

    from tests.live.test_actions import _REPLAY, Harness, _alert
    from wattwatch.runners.stream import StepReport

    site = {"actions": [{"type": "webhook", "name": "hook", "url": "http://127.0.0.1:1/", "dry_run": True,
                         "on": ["opened", "ended", "withdrawn"], "match": {"min_severity": "critical"},
                         "rate_limit": {"per_meter": 2, "window_s": 3600}}]}
    told, other, limited = (_alert(start=f"2026-01-01T0{h}:00:00.000Z") for h in range(3))
    grown = _alert(meter="pdu-2", severity="warning")
    h = Harness(tmp_path, site)
    h.opened(told, other, limited, grown)
    grown = dataclasses.replace(grown, severity="critical")
    h.action.alerts(StepReport(alerts=[grown]), h.engine)   # (updated: not in on)
    h.log()
    for o in h.actions:
        o.close()
    h2 = Harness.__new__(Harness)   # restarted: what it was told of comes from its log
    h2.store = h.store
    h2.engine = SimpleNamespace(store=h.store, alerts={a.id: a for a in (told, limited, grown)}, open_ids=set())
    h2.actions = api.load_site({"sources": [{"type": "replay", "path": str(_REPLAY)}], **site}).outputs
    h2.action = h2.actions[0]
    fresh = _alert(meter="pdu-3")
    h2.opened(fresh)
    assert not h2.action._acts   # (al) forgotten: its engine holds no alert open
    h2.opened(told, fresh)   # (given again, as a restart's first steps may: not told twice)
    h2.ended(told, limited, grown, fresh)
    gone = {a.id: dataclasses.replace(a, evidence={**a.evidence, "withdrawn": WITHDRAWN})
            for a in (told, limited, grown)}   # (fresh: its meter's rate limit spent by its opening and end)
    h2.action.alerts(StepReport(withdrawn=gone), h2.engine)
    log = h2.log()
    h2.close()
    got = sorted(zip(log["alert_id"], log["event"], log["outcome"]))
    assert got == sorted([(told.id, "opened", "ok"), (other.id, "opened", "ok"), (limited.id, "opened", "rate_limited"),
                          (told.id, "ended", "ok"), (told.id, "withdrawn", "ok"), (fresh.id, "opened", "ok"),
                          (fresh.id, "ended", "ok")]), got
    assert not h2.action._acts and h2.action.counters["ended_untold"] == 2


def test_a_withdrawal_modbus_writes_nothing_for_takes_no_share_of_its_rate_limit(tmp_path, modbus):
    """(rle3) Without ``withdrawn_value`` a withdrawal only logs: counted in ``rate_limit`` it took the
    place of a real shed (per_meter = 2: opened, withdrawn, and the meter's next opening was refused)."""
    import dataclasses

    from tests.live.test_actions import Harness, _alert, _shed
    from wattwatch.runners.stream import StepReport

    h = Harness(tmp_path, {"actions": [_shed(modbus.port, address=13, name="shed13", on=["opened", "withdrawn"],
                                             rate_limit={"per_meter": 2, "window_s": 3600},
                                             allow=[{"device_id": 3, "target": "coil", "address": 13,
                                                     "values": [False]}])]})
    a, b = _alert(), _alert(start="2026-01-01T01:00:00.000Z")
    h.opened(a)
    h.action.alerts(StepReport(withdrawn={a.id: dataclasses.replace(a, evidence={**a.evidence,
                                                                                 "withdrawn": WITHDRAWN})}), h.engine)
    h.opened(b)
    log = h.log()
    h.close()
    got = sorted(zip(log["alert_id"], log["event"], log["outcome"]))
    assert got == sorted([(a.id, "opened", "ok"), (a.id, "withdrawn", "ok"), (b.id, "opened", "ok")]), got


def test_an_alert_found_again_after_its_withdrawal_is_told_opened_again_to_an_action_told_it_closed(tmp_path):
    """(ral) An alert withdrawn and found again (late readings make it again) is a fault again: an
    action told its end or withdrawal (a load restored by ``ended_value``/``withdrawn_value``) is told
    ``opened`` again (the load shed again), then its ``ended``; an action told neither (``on`` =
    ``["opened"]``: for it the alert never closed) is not told ``opened`` twice. The same within one run
    (al skipped it: the load stayed restored through a real fault) and across a restart (al told it
    again to every action); a restart's replay of an alert not withdrawn since is not told again."""
    import dataclasses
    from types import SimpleNamespace

    from tests.live.test_actions import _REPLAY, Harness, _alert
    from wattwatch.alerts import store as alert_store
    from wattwatch.alerts import withdrawn as wd
    from wattwatch.runners.stream import StepReport

    site = {"actions": [{"type": "webhook", "name": "hook", "url": "http://127.0.0.1:1/", "dry_run": True,
                         "on": ["opened", "ended", "withdrawn"]},
                        {"type": "webhook", "name": "note", "url": "http://127.0.0.1:1/", "dry_run": True,
                         "on": ["opened"]}]}
    a, b, c = (_alert(start=f"2026-01-01T0{h}:00:00.000Z") for h in range(3))

    def withdraw(h, *xs):
        for o in h.actions:
            o.alerts(StepReport(withdrawn={x.id: dataclasses.replace(x, evidence={**x.evidence, "withdrawn": wd.LATE})
                                           for x in xs}), h.engine)

    h = Harness(tmp_path, site)
    h.opened(a, b, c)
    h.ended(a, b)
    withdraw(h, a, b)
    h.opened(a)   # found again in this run
    h.ended(a)
    h.log()
    alert_store.upsert(h.store.con, [b])   # b: withdrawn by this run as the store keeps it (alerts_withdrawn)
    wd.keep(h.store.con, {b.id: wd.LATE})
    h.store.con.execute("DELETE FROM alerts WHERE id = ?", [b.id])
    for o in h.actions:
        o.close()
    h2 = Harness.__new__(Harness)   # restarted (no checkpoint): b found again, c given again (a replay)
    h2.store = h.store
    h2.engine = SimpleNamespace(store=h.store, alerts={}, open_ids=set())
    h2.actions = api.load_site({"sources": [{"type": "replay", "path": str(_REPLAY)}], **site}).outputs
    h2.action = h2.actions[0]
    h2.opened(b, c)
    h2.ended(b)
    log = h2.log()
    h2.close()
    got = sorted(zip(log["action"], log["alert_id"], log["event"]))
    want = [("hook", a.id, "opened"), ("hook", a.id, "ended"), ("hook", a.id, "withdrawn"),
            ("hook", a.id, "opened"), ("hook", a.id, "ended"),
            ("hook", b.id, "opened"), ("hook", b.id, "ended"), ("hook", b.id, "withdrawn"),
            ("hook", b.id, "opened"), ("hook", b.id, "ended"), ("hook", c.id, "opened"),
            ("note", a.id, "opened"), ("note", b.id, "opened"), ("note", c.id, "opened")]
    assert got == sorted(want), got


def test_a_withdrawal_just_after_an_alert_ended_is_told_while_its_updated_job_waits(tmp_path):
    """(ral; al's named gap) An ``updated`` job is not kept in ``actions_pending``: an alert forgotten
    when it ended while its only job (updated) still waited for the worker was read back as never
    acted on, and a withdrawal then was not told. Not forgotten until that job is logged."""
    import dataclasses

    from tests.live.test_actions import Harness, _alert
    from wattwatch.alerts import withdrawn as wd
    from wattwatch.runners.stream import StepReport

    h = Harness(tmp_path, {"actions": [{"type": "webhook", "name": "hook", "url": "http://127.0.0.1:1/",
                                        "dry_run": True, "on": ["updated", "withdrawn"]}]})
    a = _alert()
    go = threading.Event()
    perform = h.action.perform
    h.action.perform = lambda *x: (go.wait(10), perform(*x))[1]   # the worker busy with a's update
    h.engine.open_ids = {a.id}
    h.opened(a)
    h.action.alerts(StepReport(alerts=[dataclasses.replace(a, score=0.95)]), h.engine)
    h.engine.open_ids = set()
    h.ended(a)
    h.action.alerts(StepReport(withdrawn={a.id: dataclasses.replace(a, evidence={**a.evidence, "withdrawn": wd.LATE})}),
                    h.engine)
    go.set()
    log = h.log()
    h.close()
    assert sorted(log["event"]) == ["updated", "withdrawn"], log[["event", "outcome"]]


def test_an_opening_logged_after_the_withdrawal_it_came_before_still_counts_as_before_it(tmp_path):
    """(ah; ral's leftover) An ``opened`` job queued before its alert's withdrawal but logged after it
    (the worker busy meanwhile) looked, at the next start, like an opening after the withdrawal
    (``done_at`` later than ``withdrawn_at``): found again after the restart, the action told its
    withdrawal was not told ``opened`` anew (the load its withdrawal restored stayed on through the
    fault). The log keeps when each job was queued (``queued_at``), compared with the withdrawal."""
    import dataclasses
    from types import SimpleNamespace

    from tests.live.test_actions import _REPLAY, Harness, _alert
    from wattwatch.alerts import store as alert_store
    from wattwatch.alerts import withdrawn as wd
    from wattwatch.runners.stream import StepReport

    site = {"actions": [{"type": "webhook", "name": "hook", "url": "http://127.0.0.1:1/", "dry_run": True,
                         "on": ["opened", "ended", "withdrawn"]},
                        {"type": "webhook", "name": "note", "url": "http://127.0.0.1:1/", "dry_run": True,
                         "on": ["opened"]}]}
    a = _alert()
    h = Harness(tmp_path, site)
    go = threading.Event()
    perform = h.action.perform
    h.action.perform = lambda *x: (go.wait(10), perform(*x))[1]   # hook's worker busy: a's opening waits
    h.opened(a)
    alert_store.upsert(h.store.con, [a])   # the engine withdraws a (its row kept in alerts_withdrawn, deleted)
    wd.keep(h.store.con, {a.id: wd.LATE})
    h.store.con.execute("DELETE FROM alerts WHERE id = ?", [a.id])
    time.sleep(0.01)
    for o in h.actions:
        o.alerts(StepReport(withdrawn={a.id: dataclasses.replace(a, evidence={**a.evidence, "withdrawn": wd.LATE})}),
                 h.engine)
    go.set()
    h.log()
    for o in h.actions:
        o.close()
    h2 = Harness.__new__(Harness)   # restarted (no checkpoint): a found again
    h2.store = h.store
    h2.engine = SimpleNamespace(store=h.store, alerts={}, open_ids=set())
    h2.actions = api.load_site({"sources": [{"type": "replay", "path": str(_REPLAY)}], **site}).outputs
    h2.action = h2.actions[0]
    h2.opened(a)
    log = h2.log()
    h2.close()
    got = [(n, e) for n, e in zip(log["action"], log["event"])]
    assert [e for n, e in got if n == "hook"] == ["opened", "withdrawn", "opened"], got
    assert [e for n, e in got if n == "note"] == ["opened"], got


@pytest.mark.parametrize("checkpoint", [False, True])
def test_a_store_older_than_alerts_withdrawn_keeps_its_earlier_withdrawals(tmp_path, checkpoint):
    """(ah; ral's leftover) A store an older wattwatch wrote (``actions_log`` without ``queued_at``, no
    ``alerts_withdrawn``) whose watcher withdrew alert ``a`` (told ``hook``: opened, ended, withdrawn;
    ``note``: opened; its row deleted), resumed by this one, which finds ``a`` again: ``hook`` (told it
    closed) is told ``opened`` anew, ``note`` not twice; ``alerts show`` says it was withdrawn. Before:
    with a checkpoint (``a`` not read back) ``note`` was told again; without one (read back, no
    withdrawal known) ``hook`` was not told anew; ``show`` said "no alert"."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from tests.live.test_actions import _REPLAY, _alert
    from wattwatch.alerts import withdrawn as wd
    from wattwatch.app.cli import app
    from wattwatch.runners.stream import StepReport

    site = {"actions": [{"type": "webhook", "name": "hook", "url": "http://127.0.0.1:1/", "dry_run": True,
                         "on": ["opened", "ended", "withdrawn"]},
                        {"type": "webhook", "name": "note", "url": "http://127.0.0.1:1/", "dry_run": True,
                         "on": ["opened"]}]}
    a, b = _alert(), _alert(meter="pdu-2")
    store = Store(tmp_path / "old.duckdb")
    store.con.execute("CREATE TABLE actions_log (alert_id VARCHAR, action VARCHAR, kind VARCHAR, event VARCHAR, "
                      "done_at TIMESTAMPTZ, dry_run BOOLEAN, outcome VARCHAR, detail VARCHAR, attempts INTEGER, "
                      "ms DOUBLE, meter_id VARCHAR, code VARCHAR)")   # (as 53b7e5d and before made it)
    from wattwatch.alerts import store as alert_store

    alert_store.upsert(store.con, [b])   # b: still stored (not withdrawn)
    # (a: a day before the checkpoint; b, its replay: stored and logged after it)
    rows = [(a, "hook", "opened", 1), (a, "note", "opened", 1), (a, "hook", "ended", 2), (a, "hook", "withdrawn", 3),
            (b, "hook", "opened", 86410), (b, "note", "opened", 86410)]
    store.con.executemany("INSERT INTO actions_log VALUES (?, ?, 'webhook', ?, TIMESTAMPTZ '2026-01-01 00:00:00+00' "
                          "+ to_seconds(?), true, 'ok', 'dry run', 1, 1.0, ?, ?)",
                          [(x.id, n, e, s, x.meter_id, x.code) for x, n, e, s in rows])
    engine = SimpleNamespace(store=store, alerts={a.id: a, b.id: b}, open_ids=set(),
                             _resumed_saved=pd.Timestamp("2026-01-02 00:00:05", tz="UTC") if checkpoint else None)
    outs = api.load_site({"sources": [{"type": "replay", "path": str(_REPLAY)}], **site}).outputs
    for o in outs:   # found again: a; b given again (a restart's replay)
        o.alerts(StepReport(alerts=[a, b], new=[a.id, b.id]), engine)
    for o in outs:
        assert o.flush(30)
        o.close()
    log = store.con.execute("SELECT action, alert_id, event FROM actions_log ORDER BY done_at, action").df()
    got = [(n, "a" if i == a.id else "b", e) for n, i, e in zip(log["action"], log["alert_id"], log["event"])]
    assert sorted(got[6:]) == [("hook", "a", "opened")], got
    w = wd.find(store.con, a.id)
    assert w["reason"] == wd.EARLIER and (w["meter_id"], w["code"]) == (a.meter_id, a.code) and wd.find(store.con, b.id) is None
    store.close()
    r = CliRunner().invoke(app, ["alerts", "show", a.id[:8], "--db", str(tmp_path / "old.duckdb"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["withdrawn"]["reason"] == wd.EARLIER, r.stdout


def test_a_job_of_an_alert_whose_earlier_job_waits_in_the_backlog_runs_after_it(tmp_path):
    """(ah) A restart resumes the jobs an earlier run left pending; those its queue cannot take wait
    in a backlog. A new job of the same alert (its ``ended`` in the first step) went straight to the
    queue: it ran before the alert's ``opened`` (a restored load shed again after the alert ended),
    or, the queue full, was dropped. It now waits behind that alert's jobs."""
    from types import SimpleNamespace

    from tests.live.test_actions import _REPLAY, _alert
    from wattwatch.actions.base import ensure_log

    site = {"actions": [{"type": "webhook", "name": "hook", "url": "http://127.0.0.1:1/", "dry_run": True,
                         "on": ["opened", "ended"], "queue": 2}]}
    alerts = [_alert(start=f"2026-01-01T0{h}:00:00.000Z") for h in range(4)]
    store = Store(tmp_path / "a.duckdb")
    ensure_log(store.con)
    store.con.executemany("INSERT INTO actions_pending VALUES (?, 'hook', 'opened', true, now(), ?)",
                          [(a.id, a.to_json()) for a in alerts])   # left by a run killed before its worker ran them
    engine = SimpleNamespace(store=store, alerts={a.id: a for a in alerts}, open_ids=set())
    (hook,) = api.load_site({"sources": [{"type": "replay", "path": str(_REPLAY)}], **site}).outputs
    go = threading.Event()
    perform = hook.perform
    hook.perform = lambda *x: (go.wait(10), perform(*x))[1]
    from wattwatch.runners.stream import StepReport

    hook.alerts(StepReport(ended=[alerts[-1].id]), engine)   # the first step: the last one ended
    go.set()
    assert hook.flush(30)
    hook.close()
    log = store.con.execute("SELECT alert_id, event, outcome FROM actions_log ORDER BY done_at").df()
    store.close()
    last = [(e, o) for i, e, o in zip(log["alert_id"], log["event"], log["outcome"]) if i == alerts[-1].id]
    assert last == [("opened", "ok"), ("ended", "ok")], log
    assert len(log) == 5 and (log["outcome"] == "ok").all(), log
