"""(le2, issue 16; rle's leftover) The ``watch`` console's open alerts and an edge meter's tamper report.

A signed tamper report from a meter (``status = "tamper"``) says the meter is in that state until its
``cleared`` report of the same event (one alert id): InfluxDB writes it ``open`` meanwhile (rle). The
console's open-alert table, its summary line and the stop line counted the engine's open set only, so
an ongoing neutral bypass was not among the open alerts a facility engineer reads, nor after a restart.
Real mosquitto; the head-end source as ``watch`` runs it."""

from __future__ import annotations

import time
import uuid

from rich.console import Console

from tests.edge.pki import hmac_key
from tests.edge.test_security import _event
from tests.live.test_mqtt import _publish, _publisher
from tests.live.test_outputs_at_least_once import _tamper_engine, _tamper_source
from tests.support.services import wait_true as _wait
from wattwatch.app.watchview import LogLines, open_alert_ids, render
from wattwatch.edge.signing import Signer
from wattwatch.runners import stream
from wattwatch.runners.stream import StepReport
from wattwatch.store import Store


def _table(eng, src) -> str:
    con = Console(width=250, record=True)
    con.print(render(eng, [src]))
    return con.export_text()


def test_an_ongoing_tamper_report_is_among_the_open_alerts_until_its_cleared_report_also_after_a_restart(
        mqtt_broker, tmp_path):
    meter = f"M-{uuid.uuid4().hex[:6]}"
    key = hmac_key(tmp_path / f"{meter}.key")
    path = tmp_path / "live.duckdb"
    signer = Signer.from_file(key)
    pub = _publisher(mqtt_broker.host, mqtt_broker.port)

    def report(src, n: int, status: str):
        _publish(pub, f"meter/{meter}/tamper",
                 signer.sign({**_event(status), "v": 1, "meter_id": meter, "counter": n, "ts": time.time(),
                              **({"cleared_at": "2026-01-01T00:05:00.000Z"} if status == "cleared" else {})}))
        end = time.monotonic() + 20
        while time.monotonic() < end:
            batch = src.drain()
            if batch is not None:
                return batch
            time.sleep(0.05)
        raise AssertionError(f"the {status} report never arrived")

    try:
        store, src = Store(path), _tamper_source(meter, key, mqtt_broker)
        eng = _tamper_engine(store)
        src._connect()
        assert _wait(lambda: src.status == "subscribed"), src.status
        batch = report(src, 1, "tamper")
        assert len(batch.alerts) == 1
        aid = batch.alerts[0].id
        stream._work(eng, [batch], [src], [])
        eng.checkpoint({src.name: src.position()})
        text = _table(eng, src)
        assert "open alerts (1)" in text and aid in text, text
        out = []
        LogLines(out.append, every_s=0)(eng, StepReport(), [])
        assert out[-1].endswith("open alerts 1"), out
        src.close()
        eng.close()
        store.close()
        # restarted (the report was acknowledged to the broker: not delivered again): still open
        store, src = Store(path), _tamper_source(meter, key, mqtt_broker)
        eng = _tamper_engine(store)
        assert aid in open_alert_ids(eng)[0] and aid in _table(eng, src)
        src._connect()
        assert _wait(lambda: src.status == "subscribed"), src.status
        batch = report(src, 2, "cleared")   # the meter leaves the state: no longer open
        assert [a.id for a in batch.alerts] == [aid]
        stream._work(eng, [batch], [src], [])
        text = _table(eng, src)
        assert "open alerts (0)" in text and aid not in text, text
        src.close()
        eng.close()
        store.close()
    finally:
        pub.disconnect()
        pub.loop_stop()
