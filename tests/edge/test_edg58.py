"""(edg58) The two findings liv51/rev51 left open at the tamper head-end.

1. A meter whose clock is wrong from its very first report was refused for ever: nothing vouched
   for its counter, so only the time could, and the time was wrong. Now its first report ever
   (counter 1), signature verified, from a meter the head-end has never taken a report of, is taken
   on first contact with ``WARN_CLOCK_SKEW`` (``first_contact``); from then on its counter decides.
2. A head-end whose store (and so its checkpoint of each meter's counters) was restored from an
   old backup took recorded reports signed since the backup by their counter. Now the head-end
   keeps a counter record (``state_file``) outside the store, written before each checkpoint, whose
   counters only rise: a restored backup does not roll it back, and reports up to the record's
   counter are refused as replays.

Against a real mosquitto with TLS and client certificates on 127.0.0.1, and the stream loop with
its DuckDB store (the checkpoint is the store's).
"""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from tests.edge.pki import hmac_key
from tests.edge.test_clock_skew import _ev, _hour_start_shift, _tls, broker, pki  # noqa: F401 - fixtures
from tests.edge.test_security import _alerts, _event
from tests.live.test_mqtt import _Watcher
from tests.support.services import wait_true as _wait
from wattwatch.edge.publish import Publisher, TamperLog
from wattwatch.edge.signing import Signer
from wattwatch.sources.tamper import TamperSource


def _attacker(broker, pki):
    atk = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"atk-{uuid.uuid4().hex[:6]}")
    atk.tls_set(ca_certs=str(pki["ca"]), certfile=str(pki["client"][0]), keyfile=str(pki["client"][1]),
                cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    atk.connect("127.0.0.1", broker.tls_port)
    atk.loop_start()
    return atk


def test_a_meter_whose_clock_is_wrong_from_its_first_report_delivers_its_tamper_event(broker, pki, tmp_path):
    key = hmac_key(tmp_path / "M-20.key")
    shift = _hour_start_shift()              # the head-end's hour (it counts per hour) starts a minute ago
    src = TamperSource("he", keys={"M-20": str(key)}, client_id=f"he-{uuid.uuid4().hex[:6]}", batch_s=0.05,
                       clock=lambda: time.time() + shift, **_tls(broker, pki))
    w = _Watcher(tmp_path / "he.duckdb", src)
    try:
        # Its clock is 10 min behind from the start (an RTC never set): its first report ever ...
        pub = Publisher("M-20", Signer.from_file(key), TamperLog(tmp_path / "m20.log"),
                        clock=lambda: time.time() + shift - 600, **_tls(broker, pki, client_id="edge-M-20"))
        first = pub.publish(_event("tamper", start="2026-01-01T01:00:00.000Z"))
        assert first["counter"] == 1
        assert pub.wait_acked(10) and _wait(lambda: src.counters["accepted"] == 1, 15), dict(src.counters)
        # ... and the ones after it (taken by their counter: the meter is known now).
        pub.publish(_event("cleared", start="2026-01-01T01:00:00.000Z"))
        assert pub.wait_acked(10) and _wait(lambda: src.counters["accepted"] == 2, 15), dict(src.counters)
        # The first report replayed is a duplicate (its counter is held), not a new first contact.
        atk = _attacker(broker, pki)
        atk.publish("meter/M-20/tamper", json.dumps(first), qos=1).wait_for_publish(5)
        assert _wait(lambda: src.counters["duplicate"] == 1, 15), dict(src.counters)
        atk.disconnect()
        atk.loop_stop()
        pub.close()
        assert _wait(lambda: [e["status"] for e in _ev(_alerts(w), "ERR_IMBAL_LIMIT_EXCEEDED", "M-20")]
                     == ["cleared"], 30), dict(src.counters)
    finally:
        w.halt()
    alerts = _alerts(w)
    w.store.close()
    assert src.counters["replayed"] == 0 and src.counters["clock_skew"] == 2, dict(src.counters)
    skew = _ev(alerts, "WARN_CLOCK_SKEW", "M-20")
    assert len(skew) == 1 and skew[0]["first_contact"] is True and -620 < skew[0]["offset_s"] < -580, skew
    assert not _ev(alerts, "ALRM_SECURITY_EVENT", "M-20")


def test_first_contact_is_the_first_report_only_and_only_for_a_meter_never_heard_of(tmp_path):
    key = hmac_key(tmp_path / "M-21.key")
    s = Signer.from_file(key)
    now = time.time()

    def rep(c, ts, start="2026-01-01T00:00:30.000Z"):
        return json.dumps(s.sign({**_event(start=start), "v": 1, "meter_id": "M-21", "counter": c, "ts": ts})).encode()

    # A counter above 1 from a meter never heard of: nothing vouches for it (a recording of any
    # later report), refused as before.
    src = TamperSource("he", keys={"M-21": str(key)}, clock=lambda: now)
    out = src.handle("meter/M-21/tamper", rep(2, now - 600))
    assert src.counters["replayed"] == 1 and [a.code for a in out] == ["ALRM_SECURITY_EVENT"]
    # Counter 1 of a meter the head-end's counter record knows (its checkpoint was lost): refused,
    # the meter has been heard of.
    rec = tmp_path / "he.counters.json"
    rec.write_text(json.dumps({"meters": {"M-21": 40}}))
    src = TamperSource("he", keys={"M-21": str(key)}, clock=lambda: now, state_file=str(rec))
    out = src.handle("meter/M-21/tamper", rep(1, now - 600))
    assert src.counters["replayed"] == 1 and src.counters["accepted"] == 0, dict(src.counters)
    # Switched off: the time decides for counter 1 too.
    src = TamperSource("he", keys={"M-21": str(key)}, clock=lambda: now, first_contact=False)
    src.handle("meter/M-21/tamper", rep(1, now - 600))
    assert src.counters["replayed"] == 1 and src.counters["accepted"] == 0
    # In time, counter 1 is an ordinary report (no clock alert).
    src = TamperSource("he", keys={"M-21": str(key)}, clock=lambda: now)
    out = src.handle("meter/M-21/tamper", rep(1, now))
    assert src.counters["accepted"] == 1 and src.counters["clock_skew"] == 0
    assert [a.code for a in out] == ["ERR_IMBAL_LIMIT_EXCEEDED"]


def _watch(tmp_path, broker, pki, key, record, clock=None):
    src = TamperSource("he", keys={"M-22": str(key)}, client_id="he-edg58", batch_s=0.05, state_file=str(record),
                       clock=clock, **_tls(broker, pki))
    return src, _Watcher(tmp_path / "he.duckdb", src)


def test_a_head_end_restored_from_an_old_backup_refuses_reports_recorded_since(broker, pki, tmp_path, caplog):
    key = hmac_key(tmp_path / "M-22.key")
    record = tmp_path / "he.counters.json"
    pub = Publisher("M-22", Signer.from_file(key), TamperLog(tmp_path / "m22.log"),
                    **_tls(broker, pki, client_id="edge-M-22"))
    # Day 1: three reports taken; the store is backed up after the run (its checkpoint holds 1..3).
    src, w = _watch(tmp_path, broker, pki, key, record)
    try:
        for k in range(3):
            pub.publish(_event("signal_noisy", start=f"2026-01-01T00:0{k}:00.000Z"))
        assert pub.wait_acked(10) and _wait(lambda: src.counters["accepted"] == 3, 15), dict(src.counters)
    finally:
        w.halt()
    w.store.close()
    shutil.copy(tmp_path / "he.duckdb", tmp_path / "backup.duckdb")
    # Day 2: a tamper event (4) and its cleared report (5), which an attacker on the path records.
    src, w = _watch(tmp_path, broker, pki, key, record)
    try:
        recorded = [pub.publish(_event("tamper", start="2026-01-02T00:00:00.000Z")),
                    pub.publish(_event("cleared", start="2026-01-02T00:00:00.000Z"))]
        assert pub.wait_acked(10) and _wait(lambda: src.counters["accepted"] == 2, 15), dict(src.counters)
    finally:
        w.halt()
    w.store.close()
    assert json.loads(record.read_text())["meters"] == {"M-22": 5}
    # Later the store is restored from day 1's backup (its checkpoint knows counters 1..3 only),
    # and the attacker replays the recorded reports once they are outside the window. Before
    # edg58 they were taken by their counter (above the checkpoint's 3): the old tamper event was
    # raised again, only flagged WARN_CLOCK_SKEW.
    shutil.copy(tmp_path / "backup.duckdb", tmp_path / "he.duckdb")
    for f in tmp_path.glob("he.duckdb.wal"):
        f.unlink()
    later = lambda: time.time() + 3600                              # noqa: E731 - an hour on
    with caplog.at_level(logging.ERROR, logger="wattwatch"):
        src, w = _watch(tmp_path, broker, pki, key, record, clock=later)
        try:
            atk = _attacker(broker, pki)
            for m in recorded:
                atk.publish("meter/M-22/tamper", json.dumps(m), qos=1).wait_for_publish(5)
            # (edg59) 5, the record's latest, is the very report whose digest the record holds: a
            # quiet duplicate (the broker's redelivery after a crash looks exactly like it); 4 is a replay.
            assert _wait(lambda: src.counters["replayed"] == 1 and src.counters["duplicate"] == 1, 15), \
                dict(src.counters)
            atk.disconnect()
            atk.loop_stop()
            # The meter's own next report (its clock agrees with the head-end's) is taken as usual.
            pub.clock = later
            pub.publish(_event("signal_ok", start="2026-01-03T00:00:00.000Z"))
            assert pub.wait_acked(10) and _wait(lambda: src.counters["accepted"] == 1, 15), dict(src.counters)
            pub.close()
            time.sleep(1.0)                                          # a checkpoint (0.5 s) after it
        finally:
            w.halt()
    alerts = _alerts(w)
    w.store.close()
    assert src.counters["accepted"] == 1 and src.counters["clock_skew"] == 0, dict(src.counters)
    assert src.counters["checkpoint_behind"] == 1
    assert not _ev(alerts, "ERR_IMBAL_LIMIT_EXCEEDED", "M-22"), "the restored store raised the old event again"
    sec = _ev(alerts, "ALRM_SECURITY_EVENT", "M-22")
    assert len(sec) == 1 and sec[0]["replayed"] == 1 and "counter record" in sec[0]["detail"], sec
    said = [r.getMessage() for r in caplog.records if "older than the counter record" in r.getMessage()]
    assert said and "M-22: checkpoint 3, record 5" in said[0] and "restored from a backup" in said[0], said
    assert json.loads(record.read_text())["meters"] == {"M-22": 6}


def test_the_counter_record_only_rises_and_a_damaged_one_is_an_error(tmp_path):
    key = hmac_key(tmp_path / "M-23.key")
    s = Signer.from_file(key)
    now = time.time()
    rec = tmp_path / "r.json"
    src = TamperSource("he", keys={"M-23": str(key)}, clock=lambda: now, state_file=str(rec))
    for c in (7, 8):
        src.handle("meter/M-23/tamper", json.dumps(s.sign({**_event(), "v": 1, "meter_id": "M-23", "counter": c,
                                                             "ts": now})).encode())
    src.position()
    assert json.loads(rec.read_text())["meters"] == {"M-23": 8}
    # A position with lower counters (a checkpoint restored from a backup) does not lower it.
    again = TamperSource("he", keys={"M-23": str(key)}, clock=lambda: now, state_file=str(rec))
    again.restore({"seen": {"M-23": [[3, "x"]]}})
    again.position()
    assert json.loads(rec.read_text())["meters"] == {"M-23": 8}
    rec.write_text("{not json")
    with pytest.raises(ValueError, match="counter record is damaged"):
        TamperSource("he", keys={"M-23": str(key)}, state_file=str(rec))


def test_a_lost_checkpoint_with_the_record_kept_knows_the_meter(tmp_path, caplog):
    # The store is new (no checkpoint), the counter record says M-24 was last at 40.
    key = hmac_key(tmp_path / "M-24.key")
    s = Signer.from_file(key)
    now = time.time()
    rec = tmp_path / "r.json"
    rec.write_text(json.dumps({"meters": {"M-24": 40}}))

    def rep(c, ts):
        return json.dumps(s.sign({**_event(), "v": 1, "meter_id": "M-24", "counter": c, "ts": ts})).encode()

    src = TamperSource("he", keys={"M-24": str(key)}, clock=lambda: now, state_file=str(rec))
    with caplog.at_level(logging.ERROR, logger="wattwatch"):
        out = src.handle("meter/M-24/tamper", rep(40, now))          # the record's latest, in time: taken before
    assert src.counters["replayed"] == 1 and "counter record" in out[0].evidence["detail"]
    assert any("M-24: checkpoint none, record 40" in r.getMessage() for r in caplog.records)
    src.handle("meter/M-24/tamper", rep(39, now - 900))               # below it, outside the window
    assert src.counters["replayed"] == 2 and src.counters["accepted"] == 0
    out = src.handle("meter/M-24/tamper", rep(41, now - 900))         # newer: the record vouches (no first contact)
    assert src.counters["accepted"] == 1 and src.counters["clock_skew"] == 1
    assert out[-1].evidence["first_contact"] is False
