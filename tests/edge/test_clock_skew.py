"""(liv51) A tamper report signed far from the head-end's clock is delivered, not lost.

Before, every report was signed with the meter's wall clock and the head-end refused
``|now - ts| > window_s`` (300 s) as a replay, while the broker had acknowledged it to the meter,
which then marked it delivered in its tamper log: a meter whose clock was off by more than the
window, or a QoS 1 report paho re-sent after a broker outage longer than the window, lost its tamper
event for good (an ``ALRM_SECURITY_EVENT`` instead). Now the head-end judges a known meter's reports
by their monotonic counter (a report taken outside the window raises ``WARN_CLOCK_SKEW``), and the
meter signs anew a report the broker acknowledged later than ``resign_after_s`` after signing it.
Replays stay refused. Against a real mosquitto with TLS and client certificates on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import time
import uuid

import pytest

from tests.edge.pki import hmac_key, make_pki, tls_listener
from tests.edge.test_security import _alerts, _event
from tests.live.test_mqtt import _Watcher
from tests.support.services import Mosquitto, free_port, wait_true as _wait
from wattwatch.edge.publish import Publisher, TamperLog
from wattwatch.edge.signing import Signer
from wattwatch.sources.tamper import TamperSource


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def broker(tmp_path, pki):
    port = free_port()
    b = Mosquitto(free_port(), tmp_path / "broker", extra=tls_listener(port, pki)).start()
    b.tls_port = port
    yield b
    b.stop()


def _tls(broker, pki, **kw):
    return dict(host="127.0.0.1", port=broker.tls_port, tls_ca=str(pki["ca"]), tls_cert=str(pki["client"][0]),
                tls_key=str(pki["client"][1]), **kw)


def _headend(broker, pki, tmp_path, keys, **kw):
    name = f"he{uuid.uuid4().hex[:6]}"
    src = TamperSource(name, keys={m: str(k) for m, k in keys.items()}, client_id=f"he-{name}", batch_s=0.05,
                       **_tls(broker, pki), **kw)
    return src, _Watcher(tmp_path / f"{name}.duckdb", src)


def _hour_start_shift() -> float:
    """Seconds to add to the real clock so that it reads one minute into an hour now. The head-end
    keeps one WARN_CLOCK_SKEW (and ALRM_SECURITY_EVENT) per meter and hour of its clock: a test
    whose reports fell on both sides of an hour's end on the real clock got two alerts (shown by
    moving the head-end's clock to 0.1 s before the hour)."""
    now = time.time()
    return math.floor(now / 3600) * 3600 + 60 - now


def _ev(alerts, code, meter):
    a = alerts[(alerts["code"] == code) & (alerts["meter_id"] == meter)]
    return [json.loads(e) if isinstance(e, str) else e for e in a["evidence"]]


def test_a_meter_whose_clock_is_off_by_more_than_the_window_delivers_its_tamper_event(broker, pki, tmp_path):
    key = hmac_key(tmp_path / "M-7.key")
    shift = _hour_start_shift()              # the head-end's hour (it counts per hour) starts a minute ago
    src, w = _headend(broker, pki, tmp_path, {"M-7": key}, reorder=4, clock=lambda: time.time() + shift)
    skew = {"s": 0.0}
    try:
        pub = Publisher("M-7", Signer.from_file(key), TamperLog(tmp_path / "m7.log"),
                        clock=lambda: time.time() + shift + skew["s"], **_tls(broker, pki, client_id="edge-M-7"))
        first = pub.publish(_event("signal_noisy", start="2026-01-01T00:00:00.000Z"))   # commissioned: clock right
        assert pub.wait_acked(10) and _wait(lambda: src.counters["accepted"] == 1), dict(src.counters)
        skew["s"] = -600.0                                                               # its clock falls 10 min back
        tamper = pub.publish(_event("tamper", start="2026-01-01T01:00:00.000Z"))
        assert pub.wait_acked(10)
        assert _wait(lambda: src.counters["accepted"] == 2, 15), dict(src.counters)
        assert src.counters["replayed"] == 0 and src.counters["clock_skew"] == 1, dict(src.counters)
        skew["s"] = +900.0                                                               # and then 15 min ahead
        pub.publish(_event("cleared", start="2026-01-01T01:00:00.000Z"))
        assert pub.wait_acked(10) and _wait(lambda: src.counters["accepted"] == 3, 15), dict(src.counters)
        # Replay protection is the counter: a recording of an earlier report is still refused.
        # A verbatim copy of an accepted report changes nothing (duplicate) ...
        import paho.mqtt.client as mqtt
        import ssl

        atk = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"atk-{uuid.uuid4().hex[:6]}")
        atk.tls_set(ca_certs=str(pki["ca"]), certfile=str(pki["client"][0]), keyfile=str(pki["client"][1]),
                    cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        atk.connect("127.0.0.1", broker.tls_port)
        atk.loop_start()
        atk.publish("meter/M-7/tamper", json.dumps(tamper), qos=1).wait_for_publish(5)
        assert _wait(lambda: src.counters["duplicate"] == 1, 15), dict(src.counters)
        # ... and once the meter has moved on past the anti-replay window (4 here), its old reports
        # (the first one, signed with its clock right, or the skewed tamper report) are replays.
        for k in range(4):
            pub.publish(_event("signal_ok", start=f"2026-01-01T02:0{k}:00.000Z"))
        assert pub.wait_acked(10) and _wait(lambda: src.counters["accepted"] == 7, 15), dict(src.counters)
        for old in (first, tamper):
            atk.publish("meter/M-7/tamper", json.dumps(old), qos=1).wait_for_publish(5)
        assert _wait(lambda: src.counters["replayed"] == 2, 15), dict(src.counters)
        atk.disconnect()
        atk.loop_stop()
        pub.close()
        assert _wait(lambda: len(_ev(_alerts(w), "ERR_IMBAL_LIMIT_EXCEEDED", "M-7")) == 1
                     and _ev(_alerts(w), "ERR_IMBAL_LIMIT_EXCEEDED", "M-7")[0]["status"] == "cleared", 30)
    finally:
        w.halt()
    alerts = _alerts(w)
    w.store.close()
    imbal = _ev(alerts, "ERR_IMBAL_LIMIT_EXCEEDED", "M-7")
    assert len(imbal) == 1 and imbal[0]["status"] == "cleared" and imbal[0]["i_n_a"] == 0.02
    skews = _ev(alerts, "WARN_CLOCK_SKEW", "M-7")
    assert len(skews) == 1, skews                       # one per meter and hour, its count growing
    s = skews[0]
    assert s["count"] == 6 and 880 < s["offset_s"] < 920 and 880 < s["max_abs_offset_s"] < 920
    sec = alerts[alerts["code"] == "ALRM_SECURITY_EVENT"]
    assert [json.loads(e)["replayed"] if isinstance(e, str) else e["replayed"] for e in sec["evidence"]] == [2]


def test_a_meter_the_head_end_holds_no_report_of_is_still_judged_by_the_time_window(tmp_path):
    # Nothing vouches for its counter: a report signed 600 s ago could be a recording of an old one.
    key = hmac_key(tmp_path / "M-8.key")
    s = Signer.from_file(key)
    now = time.time()
    src = TamperSource("he", keys={"M-8": str(key)}, clock=lambda: now)

    def rep(c, ts):
        return json.dumps(s.sign({**_event(), "v": 1, "meter_id": "M-8", "counter": c, "ts": ts})).encode()

    out = src.handle("meter/M-8/tamper", rep(5, now - 600))
    assert src.counters["replayed"] == 1 and [a.code for a in out] == ["ALRM_SECURITY_EVENT"]
    assert "no earlier report of this meter vouches for its counter" in out[0].evidence["detail"]
    assert "600 s before it arrived" in out[0].evidence["detail"]
    src.handle("meter/M-8/tamper", rep(6, now))                 # in time: taken, and the meter is known
    out = src.handle("meter/M-8/tamper", rep(7, now - 600))     # from now on its counter decides
    assert src.counters["accepted"] == 2 and {a.code for a in out} == {"ERR_IMBAL_LIMIT_EXCEEDED", "WARN_CLOCK_SKEW"}
    # A time no clock gives is malformed (it could not be carried by an alert), not taken by its counter.
    out = src.handle("meter/M-8/tamper", rep(8, 1e15))
    assert src.counters["malformed"] == 1 and src.counters["accepted"] == 2
    # The window of counters survives a restart (checkpoint): a known meter stays known.
    again = TamperSource("he", keys={"M-8": str(key)}, clock=lambda: now)
    again.restore(json.loads(json.dumps(src.position())))
    again.handle("meter/M-8/tamper", rep(9, now + 900))
    assert again.counters["accepted"] == 1 and again.counters["clock_skew"] == 1


def test_a_report_held_up_by_a_broker_outage_longer_than_the_window_is_delivered(broker, pki, tmp_path):
    # The window made small (2 s; the meter signs anew what was acknowledged more than 1.5 s after
    # signing) instead of a 6-minute outage. M-9 is known to the head-end before the outage; M-10's
    # first report ever is the one held up.
    k9, k10 = hmac_key(tmp_path / "M-9.key"), hmac_key(tmp_path / "M-10.key")
    src, w = _headend(broker, pki, tmp_path, {"M-9": k9, "M-10": k10}, window_s=2)
    try:
        p9 = Publisher("M-9", Signer.from_file(k9), TamperLog(tmp_path / "m9.log"), resign_after_s=1.5,
                       **_tls(broker, pki, client_id="edge-M-9"))
        p10 = Publisher("M-10", Signer.from_file(k10), TamperLog(tmp_path / "m10.log"), resign_after_s=1.5,
                        **_tls(broker, pki, client_id="edge-M-10"))
        p9.publish(_event("signal_noisy", start="2026-01-01T00:00:00.000Z"))
        assert p9.wait_acked(10) and _wait(lambda: src.counters["accepted"] == 1), dict(src.counters)
        broker.stop()
        p9.publish(_event("tamper", start="2026-01-01T01:00:00.000Z"))    # queued in paho, signed now
        p10.publish(_event("tamper", start="2026-01-01T01:05:00.000Z"))
        time.sleep(3.5)                                                   # the outage outlasts the window
        broker.start()
        assert p9.wait_acked(30) and p10.wait_acked(30), (p9.log.pending(), p10.log.pending())
        assert p9.resigned == 1 and p10.resigned == 1
        assert _wait(lambda: len(_ev(_alerts(w), "ERR_IMBAL_LIMIT_EXCEEDED", "M-10")) == 1
                     and len(_ev(_alerts(w), "ERR_IMBAL_LIMIT_EXCEEDED", "M-9")) == 1, 30), dict(src.counters)
        p9.close()
        p10.close()
    finally:
        w.halt()
    alerts = _alerts(w)
    w.store.close()
    # M-9's held-up copy was taken by its counter (the time said "late": WARN_CLOCK_SKEW), and its
    # fresh copy is the same alert. M-10's held-up copy was refused (nothing vouched for it), its
    # fresh copy taken: the event is delivered.
    assert [e["status"] for e in _ev(alerts, "ERR_IMBAL_LIMIT_EXCEEDED", "M-9")] == ["tamper"]
    assert [e["status"] for e in _ev(alerts, "ERR_IMBAL_LIMIT_EXCEEDED", "M-10")] == ["tamper"]
    assert _ev(alerts, "WARN_CLOCK_SKEW", "M-9") and not _ev(alerts, "ALRM_SECURITY_EVENT", "M-9")
    assert src.counters["accepted"] >= 4, dict(src.counters)
    # Both logs: nothing pending, each held-up report superseded by its fresh copy.
    for m in ("m9", "m10"):
        lines = [json.loads(x) for x in (tmp_path / f"{m}.log").read_text().splitlines()]
        assert any("superseded" in r for r in lines) and TamperLog(tmp_path / f"{m}.log").pending() == []
