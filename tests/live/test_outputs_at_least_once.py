"""A step's outputs are at least once across a watcher that dies mid-step (issue 16, live27): the
message of a source is acknowledged only after the step's outputs had what it brought, so a watcher
that dies between the store and the outputs gets the message again from the broker (real mosquitto)
and the outputs have it then; the actions' log in the store makes the repeat run nothing twice."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from tests.edge.pki import hmac_key
from tests.edge.test_security import _event
from tests.live.test_actions import _script
from tests.live.test_mqtt import _publish, _publisher
from tests.support.services import wait_true as _wait
from wattwatch import api
from wattwatch.edge.signing import Signer
from wattwatch.runners import stream
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sinks import Output
from wattwatch.sources.tamper import TamperSource
from wattwatch.store import Store


class Died(BaseException):
    """The watcher's process ends here (as under ``kill -9``: nothing after it runs)."""


class DieAtOutputs(Output):
    """An output placed first: the process dies as the step's outputs begin."""

    def alerts(self, report, engine) -> None:
        if report.alerts or report.new:
            raise Died


def _tamper_source(meter: str, key, broker) -> TamperSource:
    """The head-end's tamper source for one meter, as ``watch`` runs it."""
    return TamperSource("he", keys={meter: str(key)}, topics=[f"meter/{meter}/tamper"], host=broker.host,
                        port=broker.port, client_id=f"he-{meter}", batch_s=0.05)


def _tamper_engine(store: Store, checkpoint_s: float = 3600) -> StreamEngine:
    """A stream engine judging packet loss only (the tamper reports are events, not readings)."""
    return StreamEngine(store, api.build_detectors(["packet_loss"], None), api._engine(None),
                        StreamConfig(checkpoint_s=checkpoint_s, slow_thread=False))


def test_a_tamper_report_whose_step_died_before_its_outputs_is_acted_on_once_after_a_restart(mqtt_broker, tmp_path):
    meter = f"M-{uuid.uuid4().hex[:6]}"
    key = hmac_key(tmp_path / f"{meter}.key")
    got = tmp_path / "got.txt"
    exe = _script(tmp_path, f"import sys\nsys.stdin.read()\nopen({str(got)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    path = tmp_path / "live.duckdb"
    actions = {"sources": [{"type": "replay", "path": str(tmp_path / "unused.csv")}],
               "actions": [{"type": "command", "name": "page", "argv": [exe, "{id}"], "dry_run": False}]}
    (tmp_path / "unused.csv").write_text("meter_id,ts,v_l1_v\nm,2026-01-01T00:00:00Z,230\n")

    # Run 1: the head-end subscribes (the broker keeps its session from now on), checkpoints,
    # gets the report, and dies in the step, after the store and before the outputs.
    store, src = Store(path), _tamper_source(meter, key, mqtt_broker)
    eng = _tamper_engine(store)
    eng.checkpoint({src.name: src.position()})
    src._connect()
    assert _wait(lambda: src.status == "subscribed"), src.status
    pub = _publisher(mqtt_broker.host, mqtt_broker.port)
    signer = Signer.from_file(key)
    _publish(pub, f"meter/{meter}/tamper",
             signer.sign({**_event(), "v": 1, "meter_id": meter, "counter": 1, "ts": time.time()}))
    batch = None
    end = time.monotonic() + 20
    while batch is None and time.monotonic() < end:
        batch = src.drain()
        time.sleep(0.05)
    assert batch is not None and len(batch.alerts) == 1
    report = batch.alerts[0]
    outs = [DieAtOutputs("die"), *api.load_site(actions).outputs]
    try:
        stream._work(eng, [batch], [src], outs)
        raise AssertionError("the step did not reach its outputs")
    except Died:
        pass
    src.close()
    eng.close()
    store.close()
    with Store(path) as s:   # the store had it
        assert s.con.execute("SELECT count(*) FROM alerts WHERE id = ?", [report.id]).fetchone()[0] == 1

    # Runs 2 and 3: the real loop, until the action ran (or 15 s): once in all.
    for run_no in (2, 3):
        store, src = Store(path), _tamper_source(meter, key, mqtt_broker)
        eng = _tamper_engine(store)
        outs = api.load_site(actions).outputs
        loop = asyncio.new_event_loop()
        box = {}

        def main():
            asyncio.set_event_loop(loop)

            async def go():
                box["stop"] = asyncio.Event()
                await stream.run(eng, [src], box["stop"], tick_s=0.1, outputs=outs)
            loop.run_until_complete(go())

        t = threading.Thread(target=main, daemon=True)
        t.start()
        assert _wait(lambda: src.status == "subscribed"), src.status
        # run 2: until the action ran (the cap only for a failure: 15 s was tight at load ~20);
        # run 3: 3 s in which it must not run again
        _wait(lambda: got.exists(), 90 if run_no == 2 else 3)
        time.sleep(0.5)
        loop.call_soon_threadsafe(box["stop"].set)
        t.join(30)
        assert not t.is_alive()
        eng.close()
        store.close()
        assert got.exists() and got.read_text().splitlines() == [report.id], \
            f"run {run_no}: the action on the report ran {got.read_text().splitlines() if got.exists() else []}"
    pub.disconnect()
    pub.loop_stop()
    with Store(path) as s:
        log = s.con.execute("SELECT event, outcome FROM actions_log WHERE alert_id = ?", [report.id]).fetchall()
    assert log == [("opened", "ok")]



def test_an_action_queued_but_not_done_when_the_watcher_is_killed_runs_after_the_restart(mqtt_broker, tmp_path):
    """``kill -9`` of ``watch`` while an action's job for a tamper report runs (its step delivered
    it, acknowledged the message and checkpointed; the action's worker not done): the broker does
    not deliver the report again and the restarted watcher has nothing to find it again in, so only
    the action's own record of the queued job brings it back: it runs then, once in the log."""
    import os
    import signal

    from tests.support.cli import popen

    meter = f"M-{uuid.uuid4().hex[:6]}"
    key = hmac_key(tmp_path / f"{meter}.key")
    started, done, block = tmp_path / "started.txt", tmp_path / "done.txt", tmp_path / "block"
    exe = _script(tmp_path, "import os, sys, time\nsys.stdin.read()\n"
                            f"open({str(started)!r}, 'a').write(sys.argv[1] + ' ' + str(os.getpid()) + '\\n')\n"
                            f"while os.path.exists({str(block)!r}):\n    time.sleep(0.05)\n"
                            f"open({str(done)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'''detectors = ["packet_loss"]
[store]
path = "s.duckdb"
[stream]
checkpoint_s = 0
[[sources]]
type = "tamper"
name = "he"
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
topics = ["meter/{meter}/tamper"]
keys = {{ "{meter}" = "{key}" }}
client_id = "he-{meter}"
batch_s = 0.05
[[actions]]
type = "command"
name = "page"
argv = ["{exe}", "{{id}}"]
dry_run = false
timeout_s = 600
close_timeout_s = 600
''')

    def start():
        p = popen("watch", "--config", cfg, cwd=tmp_path)
        for line in p.stderr:
            if "subscribed to" in line:
                return p
        raise AssertionError(f"watch never subscribed: {p.communicate()}")

    block.write_text("")
    p = start()
    try:
        pub = _publisher(mqtt_broker.host, mqtt_broker.port)
        _publish(pub, f"meter/{meter}/tamper", Signer.from_file(key).sign(
            {**_event(), "v": 1, "meter_id": meter, "counter": 1, "ts": time.time()}))
        pub.disconnect()
        pub.loop_stop()
        assert _wait(lambda: started.exists() and started.read_text().strip(), 30)
        time.sleep(1.0)              # the step's ack and checkpoint come right after its deliver
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        for line in started.read_text().splitlines() if started.exists() else ():
            try:
                os.kill(int(line.split()[1]), signal.SIGKILL)   # the program the dead watcher ran
            except ProcessLookupError:
                pass
    [aid] = [line.split()[0] for line in started.read_text().splitlines()]
    assert not done.exists()
    block.unlink()
    for run_no in (2, 3):
        p = start()
        _wait(lambda: done.exists(), 90 if run_no == 2 else 2)   # (flaky) 90: a cap, not a wait
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert done.exists() and done.read_text().splitlines() == [aid], f"run {run_no}"
    with Store(tmp_path / "s.duckdb") as s:
        log = s.con.execute("SELECT alert_id, event, outcome FROM actions_log").fetchall()
    assert log == [(aid, "opened", "ok")]


def test_every_job_left_pending_by_a_killed_watcher_runs_after_the_restart_even_past_the_queue_size(tmp_path):
    """A watcher killed with its action's queue full (``queue`` jobs waiting, one running) leaves
    ``queue + 1`` jobs pending; the restarted action queues them all again at its start: the ones
    its queue cannot take at once wait for room, they are not logged ``dropped`` (never run)."""
    from types import SimpleNamespace

    from wattwatch.runners.stream import StepReport
    from tests.live.test_actions import _alert

    gate, got = tmp_path / "gate", tmp_path / "got.txt"
    blocked = _script(tmp_path, f"import os, sys, time\nsys.stdin.read()\n"
                                f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\n")
    (tmp_path / "unused.csv").write_text("meter_id,ts,v_l1_v\nm,2026-01-01T00:00:00Z,230\n")
    store = Store(tmp_path / "a.duckdb")
    engine = SimpleNamespace(store=store, alerts={})

    def action(argv):
        return api.load_site({"sources": [{"type": "replay", "path": str(tmp_path / "unused.csv")}],
                              "actions": [{"type": "command", "name": "page", "argv": argv, "dry_run": False,
                                           "queue": 2, "close_timeout_s": 0, "timeout_s": 60}]}).outputs[0]
    alerts = [_alert(meter=f"m{k}") for k in range(3)]
    first = action([blocked])
    first.alerts(StepReport(alerts=alerts[:1], new=[alerts[0].id]), engine)
    assert _wait(lambda: first._q.qsize() == 0)           # the worker runs it (blocked)
    first.alerts(StepReport(alerts=alerts[1:], new=[a.id for a in alerts[1:]]), engine)
    assert first.counters["queued"] == 3 and first._q.qsize() == 2   # one runs, two wait
    assert store.con.execute("SELECT count(*) FROM actions_pending").fetchone()[0] == 3
    # The process is killed here: the first action never logs anything. The restarted one:
    p = tmp_path / "act2.py"
    p.write_text(f"#!{__import__('sys').executable}\nimport sys\nsys.stdin.read()\n"
                 f"open({str(got)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    p.chmod(0o755)
    again = action([str(p), "{meter_id}"])
    try:
        again.alerts(StepReport(), engine)
        assert again.flush(30)
        log = store.con.execute("SELECT alert_id, outcome FROM actions_log WHERE outcome <> 'failed' "
                                "ORDER BY alert_id").fetchall()
        assert sorted(log) == sorted((a.id, "ok") for a in alerts), log
        assert sorted(got.read_text().split()) == ["m0", "m1", "m2"]
        assert store.con.execute("SELECT count(*) FROM actions_pending").fetchone()[0] == 0
    finally:
        gate.write_text("")
        again.close()
        first.close()
        store.close()


def test_a_tamper_report_whose_step_raised_before_its_outputs_is_acted_on_after_the_restart(mqtt_broker, tmp_path):
    """The step fails (an exception, not a kill) after the store had the report and before its
    outputs: the watcher stops with the error, the report unacknowledged. Its closing checkpoint
    must not save the source's position past the report (the tamper source's window of accepted
    counters): the broker delivers it again to the restarted watcher, which would refuse it as a
    duplicate, and nothing would ever act on it."""
    meter = f"M-{uuid.uuid4().hex[:6]}"
    key = hmac_key(tmp_path / f"{meter}.key")
    got = tmp_path / "got.txt"
    exe = _script(tmp_path, f"import sys\nsys.stdin.read()\nopen({str(got)!r}, 'a').write(sys.argv[1] + '\\n')\n")
    path = tmp_path / "live.duckdb"
    (tmp_path / "unused.csv").write_text("meter_id,ts,v_l1_v\nm,2026-01-01T00:00:00Z,230\n")
    actions = {"sources": [{"type": "replay", "path": str(tmp_path / "unused.csv")}],
               "actions": [{"type": "command", "name": "page", "argv": [exe, "{id}"], "dry_run": False}]}

    def watch(eng, src, until, timeout_s):
        loop, box = asyncio.new_event_loop(), {}

        def main():
            asyncio.set_event_loop(loop)

            async def go():
                box["stop"] = asyncio.Event()
                await stream.run(eng, [src], box["stop"], tick_s=0.1, outputs=api.load_site(actions).outputs)
            try:
                loop.run_until_complete(go())
            except Exception as exc:  # noqa: BLE001
                box["error"] = exc
        t = threading.Thread(target=main, daemon=True)
        t.start()
        assert _wait(lambda: src.status == "subscribed"), src.status
        until()
        if t.is_alive():
            loop.call_soon_threadsafe(box["stop"].set)
        t.join(30)
        assert not t.is_alive()
        return box

    store, src = Store(path), _tamper_source(meter, key, mqtt_broker)
    eng = _tamper_engine(store, checkpoint_s=0)
    eng.checkpoint({src.name: src.position()})
    add = eng.add_events

    raised = threading.Event()

    def failing(events):
        add(events)
        raised.set()
        raise RuntimeError("the step failed after the store")
    eng.add_events = failing
    pub = _publisher(mqtt_broker.host, mqtt_broker.port)
    signer = Signer.from_file(key)
    report = signer.sign({**_event(), "v": 1, "meter_id": meter, "counter": 1, "ts": time.time()})
    # (flaky) until the step raised (was: 2 s, after which a step not yet run at load ~20 was stopped
    # instead, and no error came); 90 s only caps a failure
    res = watch(eng, src, lambda: (_publish(pub, f"meter/{meter}/tamper", report), raised.wait(90)), 20)
    assert isinstance(res.get("error"), RuntimeError), res
    eng.close()
    store.close()
    assert not got.exists()
    with Store(path) as s:   # the store had it
        [(rid,)] = s.con.execute("SELECT id FROM alerts WHERE meter_id = ?", [meter]).fetchall()

    store, src = Store(path), _tamper_source(meter, key, mqtt_broker)
    eng = _tamper_engine(store, checkpoint_s=0)
    res = watch(eng, src, lambda: _wait(lambda: got.exists(), 30) and time.sleep(0.5), 20)
    eng.close()
    store.close()
    pub.disconnect()
    pub.loop_stop()
    assert "error" not in res, res
    assert got.exists() and got.read_text().splitlines() == [rid], "the report was never acted on"
