"""A device-health alert a source raised (a Modbus device whose response time climbed,
``WARN_LINK_SLOW``) across a restart of the watcher, against a real pymodbus gateway on 127.0.0.1:
the alert the store keeps open is the watcher's again after the restart, so a device that
recovered while the watcher was down ends it (once: its ``ended`` action runs once), and a device
still slow keeps the same alert (same id, no second alert, no second ``opened`` action)."""

from __future__ import annotations

import json
import threading
import time

from wattwatch import api
from wattwatch.devices import modbus as dev
from wattwatch.runners.stream import StepReport, StreamConfig, StreamEngine
from wattwatch.sources import modbus as mb
from wattwatch.store import Store
from tests.live.test_actions import _script
from tests.live.test_modbus import REGS, _poll, _until


def _site(tmp_path, d, exe):
    return {"sources": [{"type": "modbus", "name": "plant", "interval_s": 0.1, "timeout_s": 1.0, "retries": 0,
                         "deadline_s": 1.0, "slow_settle": 6, "slow_recent": 3, "slow_min_ms": 100,
                         "models": {"m": {"registers": REGS}},
                         "devices": [{"meter_id": m, "port": d.port, "unit": u, "model": "m"}
                                     for u, m in ((1, "A"), (2, "B"))]}],
            "store": {"path": str(tmp_path / "live.duckdb")}, "detectors": ["supply_outage"],
            "actions": [{"type": "command", "name": "page", "argv": [exe, "{event}", "{id}"], "dry_run": False,
                         "on": ["opened", "ended"], "match": {"code": [mb.SLOW_CODE], "meter": ["B"]}}]}


def _slow_alerts(path) -> list[tuple[str, bool, str]]:
    with Store(path) as s:
        rows = s.con.execute("SELECT id, evidence, status FROM alerts WHERE code = ? AND meter_id = 'B' "
                             "ORDER BY first_seen", [mb.SLOW_CODE]).fetchall()
    return [(i, bool(json.loads(ev).get("ended")), st) for i, ev, st in rows]


def _watch(site, until, timeout_s: float = 30.0, settle_s: float = 0.0):
    """``api.watch(site)`` in a thread until ``until(engine)`` holds (then ``settle_s`` more), stopped
    cleanly; returns its result."""
    stop = threading.Event()
    box, seen = {}, {}
    t = threading.Thread(target=lambda: box.update(w=api.watch(site, stop=stop,
                                                               on_step=lambda e, r, b: seen.update(engine=e))),
                         daemon=True)
    t.start()
    try:
        _until(lambda: "engine" in seen and until(seen["engine"]), timeout_s)
        time.sleep(settle_s)
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive()
    return box["w"]


def _slows_down(d):
    """Once the watcher's source has settled its devices' usual response time (20 readings: more
    than ``slow_settle`` polls of each), device B answers 300 ms later; true once its alert is open.
    (The readings counter is checkpointed: each test's first run starts from 0.)"""
    state = {}

    def until(e) -> bool:
        if not state and e.counters.get("readings", 0) >= 2 * 10:
            d.inject("delay", ms=300, unit=2)
            state["slow"] = True
        return bool(state) and _open_slow(e)
    return until


def _open_slow(e) -> bool:
    return any(a.code == mb.SLOW_CODE and a.meter_id == "B" and not a.evidence.get("ended")
               for a in list(e.alerts.values()))


def _ended_slow(e) -> bool:
    return any(a.code == mb.SLOW_CODE and a.meter_id == "B" and a.evidence.get("ended")
               for a in list(e.alerts.values()))


def test_a_device_that_recovered_while_the_watcher_was_down_ends_its_open_alert_once(tmp_path):
    got = tmp_path / "got.txt"
    exe = _script(tmp_path, f"import sys\nsys.stdin.read()\nopen({str(got)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    d = dev.start("gw", {"registers": REGS, "meters": ["A", "B"], "interval_s": 0.05})
    try:
        site = _site(tmp_path, d, exe)
        _watch(site, _slows_down(d), settle_s=0.5)
        [(aid, ended, _)] = _slow_alerts(site["store"]["path"])
        assert not ended
        d.inject("clear")                    # the device recovers while no watcher runs
        w = _watch(site, _ended_slow, settle_s=0.5)
        assert _slow_alerts(site["store"]["path"]) == [(aid, True, "open")], "the stored alert never ended"
        assert aid not in w.open_ids
        _watch(site, lambda e: False, timeout_s=2.0)          # and a restart after that: nothing more
        assert _slow_alerts(site["store"]["path"]) == [(aid, True, "open")]
        assert got.read_text().splitlines() == [f"opened {aid}", f"ended {aid}"]
    finally:
        d.stop()


def test_a_device_still_slow_after_a_restart_keeps_its_alert_then_ends_it_once(tmp_path):
    got = tmp_path / "got.txt"
    exe = _script(tmp_path, f"import sys\nsys.stdin.read()\nopen({str(got)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    d = dev.start("gw", {"registers": REGS, "meters": ["A", "B"], "interval_s": 0.05})
    try:
        site = _site(tmp_path, d, exe)
        _watch(site, _slows_down(d), settle_s=0.5)
        [(aid, _, _)] = _slow_alerts(site["store"]["path"])
        # Still slow through a restart: polled for a while, the same alert goes on (the source
        # would otherwise settle its usual response time on the slow polls and say nothing).
        w = _watch(site, lambda e: aid in e.alerts, settle_s=1.0)   # the source's version of it this run
        assert aid in {a.id for a in w.alerts} and aid in w.open_ids
        assert _slow_alerts(site["store"]["path"]) == [(aid, False, "open")]
        d.inject("clear")
        _watch(site, _ended_slow, settle_s=0.5)
        assert _slow_alerts(site["store"]["path"]) == [(aid, True, "open")]
        assert got.read_text().splitlines() == [f"opened {aid}", f"ended {aid}"]
    finally:
        d.stop()


def test_the_open_health_alerts_are_rebuilt_from_the_store_without_a_checkpoint(tmp_path):
    """Killed (no checkpoint) after the step that stored the alert: the restarted engine still
    holds it open and hands it to its source, whose device, healthy now, ends it once."""
    d = dev.start("gw", {"registers": REGS, "meters": ["A", "B"], "interval_s": 0.05})
    path = tmp_path / "live.duckdb"

    def poller():
        return mb.ModbusPoller("plant", [{"meter_id": m, "port": d.port, "unit": u, "model": "m"}
                                         for u, m in ((1, "A"), (2, "B"))],
                               {"m": mb.parse_model("m", {"registers": REGS})}, interval_s=1, timeout_s=1,
                               slow_settle=6, slow_recent=3, slow_min_ms=100)

    try:
        store, p = Store(path), poller()
        eng = engine(store)
        eng.checkpoint()
        _poll(p, 8)
        d.inject("delay", ms=200, unit=2)
        _poll(p, 3)
        rep = StepReport()
        eng.add_health(p.health(), rep)
        [aid] = rep.new
        _close(eng, store, p)            # no checkpoint after it: as after kill -9
        d.inject("clear")

        store, p = Store(path), poller()
        eng = engine(store)
        assert eng.health_open == {aid}
        eng.resume_sources([p])          # what stream.run does at start
        _ends_once(eng, p, aid)
        _close(eng, store, p)
        _none_open(path)
    finally:
        d.stop()


def engine(store):
    """The engine each run of these tests starts on the store (checkpoints at every step's call)."""
    return StreamEngine(store, api.build_detectors(["supply_outage"], None), api._engine(None),
                        StreamConfig(checkpoint_s=0, slow_thread=False))


def _close(eng, store, p) -> None:
    """The run ends (no checkpoint: as after kill -9 unless the test wrote one)."""
    eng.close()
    store.close()
    p.close()


def _none_open(path) -> None:
    """A later run on the store finds no open health alert."""
    store = Store(path)
    try:
        assert engine(store).health_open == set()
    finally:
        store.close()


def _ends_once(eng, p, aid: str, msg: str = "") -> list:
    """After a restart: the next polls end the resumed alert ``aid`` once (its alerts returned),
    and the polls after them report nothing more about it."""
    _poll(p, 3)
    rep = StepReport()
    eng.add_health(p.health(), rep)
    assert rep.ended == [aid] and eng.health_open == set(), msg
    ended = rep.alerts
    _poll(p, 3)
    rep = StepReport()
    eng.add_health(p.health(), rep)
    assert rep.ended == [] and rep.alerts == []
    return ended


def _health(ended: bool):
    from wattwatch.alerts.model import Alert

    return Alert("gw-1:3", "2025-01-10T11:00:00.000Z", "2025-01-10T11:30:00.000Z", mb.SLOW_CODE, "warning", 0.8,
                 "modbus_response_time", "slow", {"source": "plant", "ended": ended})


def test_a_health_alert_that_ended_after_the_last_checkpoint_is_reported_ended_again_after_a_kill(tmp_path):
    """Its end was stored, then the watcher died before the checkpoint (maybe before the outputs had
    the end): the first step of the restarted engine reports it ended again (at least once; an
    action's log skips an ``ended`` it did). After a checkpoint past it, never again."""
    path = tmp_path / "live.duckdb"

    store = Store(path)
    eng = engine(store)
    rep = StepReport()
    eng.add_health([_health(False)], rep)
    assert rep.new == [_health(False).id]
    eng.checkpoint()
    rep = StepReport()
    eng.add_health([_health(True)], rep)
    assert rep.ended == [_health(True).id]
    eng.close()                               # died before the next checkpoint
    store.close()
    for again in ([_health(True).id], []):
        store = Store(path)
        eng = engine(store)
        assert eng.health_open == set()
        assert eng.step().ended == again
        eng.checkpoint()
        eng.close()
        store.close()


def test_the_open_health_alert_of_a_device_no_longer_configured_ends_once_at_the_restart(tmp_path):
    """Device B, slow when the watcher stopped, is taken out of the source's config: nothing polls
    it any more, so nothing could end its stored alert, which stayed open (in the store and in the
    watcher's open count) for ever. The restarted source ends it once, saying why."""
    d = dev.start("gw", {"registers": REGS, "meters": ["A", "B"], "interval_s": 0.05})
    path = tmp_path / "live.duckdb"

    def poller(meters):
        return mb.ModbusPoller("plant", [{"meter_id": m, "port": d.port, "unit": u, "model": "m"}
                                         for u, m in ((1, "A"), (2, "B")) if m in meters],
                               {"m": mb.parse_model("m", {"registers": REGS})}, interval_s=1, timeout_s=1,
                               slow_settle=6, slow_recent=3, slow_min_ms=100)

    try:
        store, p = Store(path), poller("AB")
        eng = engine(store)
        _poll(p, 8)
        d.inject("delay", ms=200, unit=2)
        _poll(p, 3)
        rep = StepReport()
        eng.add_health(p.health(), rep)
        [aid] = rep.new
        eng.checkpoint()
        _close(eng, store, p)

        store, p = Store(path), poller("A")       # B is no longer configured
        eng = engine(store)
        assert eng.health_open == {aid}
        eng.resume_sources([p])
        [a] = _ends_once(eng, p, aid, "the alert of a device no longer polled stays open")
        assert a.id == aid and a.evidence["ended"] and "no longer" in a.evidence["ended_because"]
        eng.checkpoint()
        _close(eng, store, p)
        _none_open(path)
    finally:
        d.stop()


def test_a_health_alert_that_ended_in_a_run_killed_before_its_first_checkpoint_is_reported_ended_again(tmp_path):
    """As above, the run killed before it wrote any checkpoint (within ``checkpoint_s`` of its
    start): nothing says the outputs had the end, so the restarted engine reports it ended again
    (an alert opened in such a run is new again after the restart, likewise)."""
    path = tmp_path / "live.duckdb"

    store = Store(path)
    eng = engine(store)
    rep = StepReport()
    eng.add_health([_health(False)], rep)
    rep = StepReport()
    eng.add_health([_health(True)], rep)
    assert rep.ended == [_health(True).id]
    eng.close()                               # killed: no checkpoint was ever written
    store.close()
    for again in ([_health(True).id], []):
        store = Store(path)
        eng = engine(store)
        assert eng.health_open == set()
        assert eng.step().ended == again, "the end stored by a run that never checkpointed is never reported"
        eng.checkpoint()
        eng.close()
        store.close()
