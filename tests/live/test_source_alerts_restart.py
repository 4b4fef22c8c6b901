"""Alerts the sources raise themselves (a signed tamper report from the edge, a Modbus device whose
response time climbs) across a watcher's restart: a report delivered again after the restart (an
MQTT QoS 1 redelivery, the edge re-sending what was never acknowledged) or a device still slow is the
alert the store keeps, not a new one (``watch`` printed "alert open" again), and it keeps the status
it was given (acknowledged or cleared) in the engine's view as in the store."""

from __future__ import annotations

from wattwatch import api
from wattwatch.alerts.model import Alert
from wattwatch.runners.stream import StepReport, StreamConfig, StreamEngine
from wattwatch.store import Store


def _engine(store):
    return StreamEngine(store, api.build_detectors(["packet_loss"], None), api._engine(None),
                        StreamConfig(checkpoint_s=0, slow_thread=False))


def _tamper(end="2025-01-10T12:00:00+00:00"):
    return Alert("M-00001", "2025-01-10T11:00:00+00:00", end, "ERR_TAMPER_REPORTED", "critical", 1.0, "edge_tamper",
                 "the meter reported its cover opened", {"kind": "cover_open"})


def _slow(ended=False):
    ev = {"kind": "response_time", "ended": True} if ended else {"kind": "response_time"}
    return Alert("gw-1:3", "2025-01-10T11:00:00+00:00", "2025-01-10T11:30:00+00:00", "WARN_DEVICE_SLOW", "warning",
                 1.0, "modbus_health", "response time 480 ms (normally 40 ms)", ev)


def test_a_source_alert_delivered_again_after_a_restart_is_not_new_and_keeps_its_status(tmp_path):
    path = tmp_path / "live.duckdb"
    store = Store(path)
    eng = _engine(store)
    changed, new = eng.add_events([_tamper()])
    assert new == [_tamper().id] and len(changed) == 1
    rep = StepReport()
    eng.add_health([_slow()], rep)
    assert rep.new == [_slow().id]
    for a in (_tamper(), _slow()):
        store.con.execute("UPDATE alerts SET status = 'acknowledged' WHERE id = ?", [a.id])
    eng.checkpoint()
    eng.close()
    store.close()

    store = Store(path)
    eng = _engine(store)
    changed, new = eng.add_events([_tamper()])            # the same report, delivered again
    assert new == [], "a report the store keeps was reported new after the restart"
    assert eng.alerts[_tamper().id].status == "acknowledged"
    changed, new = eng.add_events([_tamper(end="2025-01-10T12:30:00+00:00")])   # and a later version of it
    assert new == [] and eng.alerts[_tamper().id].status == "acknowledged"
    rep = StepReport()
    eng.add_health([_slow()], rep)                        # the device still slow
    assert rep.new == [] and eng.alerts[_slow().id].status == "acknowledged"
    rep = StepReport()
    eng.add_health([_slow(ended=True)], rep)              # and back to normal: it ends
    assert rep.ended == [_slow().id]
    rows = dict(store.con.execute("SELECT id, status FROM alerts").fetchall())
    assert rows == {_tamper().id: "acknowledged", _slow().id: "acknowledged"}
    eng.close()
    store.close()


def test_a_new_source_alert_after_a_restart_is_still_new(tmp_path):
    path = tmp_path / "live.duckdb"
    store = Store(path)
    eng = _engine(store)
    eng.add_events([_tamper()])
    eng.checkpoint()
    eng.close()
    store.close()
    store = Store(path)
    eng = _engine(store)
    other = Alert("M-00002", "2025-01-11T08:00:00+00:00", "2025-01-11T08:05:00+00:00", "ERR_TAMPER_REPORTED",
                  "critical", 1.0, "edge_tamper", "the meter reported its cover opened", {"kind": "cover_open"})
    changed, new = eng.add_events([_tamper(), other])
    assert new == [other.id] and eng.alerts[other.id].status == "open"
    eng.close()
    store.close()


def test_a_source_alert_stored_after_the_last_checkpoint_is_new_again_after_a_restart(tmp_path):
    """The watcher stopped after the store kept a report but before the outputs had it (the step's
    deliver comes after the store, the checkpoint after the deliver): the source delivers it again
    (the MQTT ack goes after the store too), and it is new, so an action on "opened" still runs
    (at least once, as for a core alert found again; the action's log skips one it did). One a
    person settled meanwhile is not new and keeps its status; one kept before the checkpoint is
    not new either."""
    path = tmp_path / "live.duckdb"
    store = Store(path)
    eng = _engine(store)
    early = _tamper()
    eng.add_events([early])
    eng.checkpoint()                                   # the outputs had `early` before this
    late = Alert("M-00002", "2025-01-11T08:00:00+00:00", "2025-01-11T08:05:00+00:00", "ERR_TAMPER_REPORTED",
                 "critical", 1.0, "edge_tamper", "the meter reported its cover opened", {"kind": "cover_open"})
    settled = Alert("M-00003", "2025-01-11T09:00:00+00:00", "2025-01-11T09:05:00+00:00", "ERR_TAMPER_REPORTED",
                    "critical", 1.0, "edge_tamper", "the meter reported its cover opened", {"kind": "cover_open"})
    eng.add_events([late, settled])
    eng.add_health([_slow()], StepReport())
    store.con.execute("UPDATE alerts SET status = 'acknowledged' WHERE id = ?", [settled.id])
    eng.close()                                         # stopped before the next checkpoint
    store.close()

    store = Store(path)
    eng = _engine(store)
    changed, new = eng.add_events([early, late, settled])   # all delivered again
    assert sorted(new) == sorted([late.id]), "a report the outputs may never have had was not new"
    assert eng.alerts[late.id].status == "open" and eng.alerts[settled.id].status == "acknowledged"
    assert eng.alerts[early.id].status == "open"
    rep = StepReport()
    eng.add_health([_slow()], rep)
    assert rep.new == [_slow().id]
    eng.close()
    store.close()


def test_a_source_alert_acknowledged_by_request_keeps_its_status_through_later_versions_and_a_restart(tmp_path):
    """Acknowledged through the watcher's control (``control.apply``, as ``wattwatch alerts ack``
    on a running watcher), then a later version from the source, then a restart before any
    checkpoint: acknowledged throughout, in the engine's view and in the store, and never new."""
    import json

    from wattwatch.runners import control

    path = tmp_path / "live.duckdb"
    store = Store(path)
    eng = _engine(store)
    eng.add_events([_tamper()])
    ans = control.apply(eng, control.parse(json.dumps(
        {"op": "set_status", "id": _tamper().id, "status": "acknowledged"}).encode()))
    assert ans["ok"] and ans["status"] == "acknowledged"
    changed, new = eng.add_events([_tamper(end="2025-01-10T12:30:00+00:00")])
    assert new == [] and len(changed) == 1 and eng.alerts[_tamper().id].status == "acknowledged"
    eng.close()
    store.close()

    store = Store(path)
    eng = _engine(store)
    changed, new = eng.add_events([_tamper(end="2025-01-10T12:45:00+00:00")])
    assert new == [] and eng.alerts[_tamper().id].status == "acknowledged"
    row = store.con.execute('SELECT status, "end" FROM alerts').fetchall()
    assert len(row) == 1 and row[0][0] == "acknowledged"
    eng.close()
    store.close()
