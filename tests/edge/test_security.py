"""Signed tamper reports through a real mosquitto with TLS and client certificates (a CA made by
the test): valid reports become alerts with their evidence; forged, tampered, replayed and
malformed reports are all refused, counted and alerted as security events, none becomes a tamper
alert; a broker restart and a power cut at the meter lose no tamper event."""

from __future__ import annotations

import json
import ssl
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from tests.edge.pki import ed25519_keys, hmac_key, make_pki, tls_listener
from tests.live.test_mqtt import _Watcher
from tests.support.services import Mosquitto, free_port, wait_true as _wait
from wattwatch.alerts import store as alert_store
from wattwatch.edge.publish import Publisher, TamperLog
from wattwatch.edge.signing import Signer
from wattwatch.sources.tamper import TamperSource


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory, pki):
    port = free_port()
    b = Mosquitto(free_port(), tmp_path_factory.mktemp("tls-broker"), extra=tls_listener(port, pki)).start()
    b.tls_port = port
    yield b
    b.stop()


def _tls_client(broker, pki, cert="client"):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"attacker-{uuid.uuid4().hex[:8]}")
    c.tls_set(ca_certs=str(pki["ca"]), certfile=str(pki[cert][0]), keyfile=str(pki[cert][1]),
              cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.connect("127.0.0.1", broker.tls_port)
    c.loop_start()
    return c


def _event(status="tamper", start="2026-01-01T00:00:30.000Z", delta=12.3):
    return {"status": status, "kind": "neutral_bypass", "delta_a": delta, "event": f"tamper@{start}",
            "cycle_start": start, "cycle_end": "2026-01-01T00:01:00.000Z",
            "evidence": {"i_l_a": 12.4, "i_n_a": 0.02, "limit_a": 0.5, "thd_i_pct": 3.1}}


def _headend(broker, pki, tmp_path, keys, name):
    src = TamperSource(name, host="127.0.0.1", port=broker.tls_port, tls_ca=str(pki["ca"]), tls_cert=str(pki["client"][0]),
                       tls_key=str(pki["client"][1]), keys=keys, client_id=f"he-{name}", batch_s=0.05)
    return src, _Watcher(tmp_path / f"{name}.duckdb", src)


def _m1_status(w):
    a = _alerts(w)
    t = a[(a["code"] == "ERR_IMBAL_LIMIT_EXCEEDED") & (a["meter_id"] == "M-1")]
    if not len(t):
        return None
    ev = t.iloc[0]["evidence"]
    return (json.loads(ev) if isinstance(ev, str) else ev).get("status")


def _alerts(w):
    # A connection of its own: the watcher's thread uses ``w.store.con`` meanwhile, and DuckDB
    # refuses a second caller on a busy connection instead of waiting (failed under load).
    cur = w.store.con.cursor()
    try:
        return alert_store.list_alerts(cur, status=None)
    finally:
        cur.close()


def test_forged_tampered_replayed_and_malformed_reports_are_refused_and_never_alerts(tls_broker, pki, tmp_path):
    k1 = hmac_key(tmp_path / "M-1.key")
    priv2, pub2 = ed25519_keys(tmp_path, "M-2")
    priv3, pub3 = ed25519_keys(tmp_path, "M-3")   # a meter the head-end has no report of
    src, w = _headend(tls_broker, pki, tmp_path, {"M-1": str(k1), "M-2": str(pub2), "M-3": str(pub3)},
                      f"he{uuid.uuid4().hex[:6]}")
    try:
        tls = dict(host="127.0.0.1", port=tls_broker.tls_port, tls_ca=str(pki["ca"]), tls_cert=str(pki["client"][0]),
                   tls_key=str(pki["client"][1]))
        p1 = Publisher("M-1", Signer.from_file(k1), TamperLog(tmp_path / "m1.log"), **tls)
        p2 = Publisher("M-2", Signer.from_file(priv2), TamperLog(tmp_path / "m2.log"), **tls)
        good = [p1.publish(_event()), p1.publish(_event("cleared")), p2.publish(_event(start="2026-01-01T00:05:00.000Z"))]
        assert p1.wait_acked(10) and p2.wait_acked(10)
        assert _wait(lambda: src.counters["accepted"] == 3), dict(src.counters)

        wrong = Signer.from_file(hmac_key(tmp_path / "wrong.key"))
        other_priv, _ = ed25519_keys(tmp_path, "X")
        now = time.time()
        base = {**_event(start="2026-01-01T01:00:00.000Z"), "v": 1, "ts": now}
        forged = [
            ("meter/M-1/tamper", wrong.sign({**base, "meter_id": "M-1", "counter": 50})),           # wrong key
            ("meter/M-2/tamper", Signer.from_file(other_priv).sign({**base, "meter_id": "M-2", "counter": 50})),
            ("meter/M-2/tamper", Signer.from_file(k1).sign({**base, "meter_id": "M-2", "counter": 50})),  # alg swap
            ("meter/M-2/tamper", good[0]),                                                         # another meter's topic
            ("meter/M-9/tamper", wrong.sign({**base, "meter_id": "M-9", "counter": 1})),           # unknown meter
            ("meter/M-1/tamper", {**good[1], "sig": ""}),                                          # no signature
        ]
        tampered = [("meter/M-1/tamper", {**good[1], "status": "tamper", "counter": 99}),
                    ("meter/M-1/tamper", {**good[1], "delta_a": 0.01, "counter": 100}),
                    ("meter/M-1/tamper", {**good[1], "counter": good[1]["counter"] + 1}),
                    ("meter/M-2/tamper", {**good[2], "evidence": {**good[2]["evidence"], "i_n_a": 12.4}, "counter": 7}),
                    ("meter/M-2/tamper", {**good[2], "ts": time.time() + 1, "counter": 8})]
        # Replays: genuinely signed reports from outside the time window of a meter none of whose
        # reports the head-end holds (nothing vouches for their counter; liv51: a known meter's
        # report is judged by its counter), and a used counter (as a thief holding an old signed
        # "cleared" report with that counter would send).
        replayed = [("meter/M-3/tamper", Signer.from_file(priv3).sign({**base, "meter_id": "M-3", "counter": 1000,
                                                                       "ts": now - 3600})),
                    ("meter/M-3/tamper", Signer.from_file(priv3).sign({**base, "meter_id": "M-3", "counter": 1001,
                                                                       "ts": now + 3600})),
                    ("meter/M-1/tamper", Signer.from_file(k1).sign({**base, "meter_id": "M-1", "counter": 1,
                                                                    "status": "cleared"}))]
        # Verbatim copies of accepted reports: refused, no effect, counted as duplicates (a QoS 1
        # redelivery is exactly this).
        copies = [("meter/M-1/tamper", good[0]), ("meter/M-1/tamper", good[0]), ("meter/M-2/tamper", good[2])]
        malformed = [("meter/M-1/tamper", b"\x00not json"), ("meter/M-1/tamper", b"[1,2]"),
                     ("meter/M-1/tamper", b'{"meter_id": "M-1"}'), ("meter/M-1/tamper", b'{"meter_id": "M-1", "counter": NaN}'),
                     ("meter/M-1/tamper", json.dumps({**good[1], "counter": "7"}).encode()),
                     # Signed with the meter's own key, yet not a report the store could keep.
                     ("meter/M-1/tamper", json.dumps(Signer.from_file(k1).sign(
                         {**base, "meter_id": "M-1", "counter": 60, "cycle_start": "yesterday"})).encode()),
                     ("meter/M-1/tamper", json.dumps(Signer.from_file(k1).sign(
                         {**base, "meter_id": "M-1", "counter": 61, "delta_a": "12 A"})).encode()),
                     ("meter/M-1/tamper", b"{" + b" " * 70000 + b"}")]
        atk = _tls_client(tls_broker, pki)
        for topic, msg in forged + tampered + replayed + malformed + copies:
            body = msg if isinstance(msg, bytes) else json.dumps(msg)
            atk.publish(topic, body, qos=1).wait_for_publish(5)
        n_bad = len(forged) + len(tampered) + len(replayed) + len(malformed)
        assert _wait(lambda: src.counters["forged"] + src.counters["replayed"] + src.counters["malformed"] == n_bad
                     and src.counters["duplicate"] == len(copies)), dict(src.counters)
        time.sleep(0.5)
        assert src.counters["forged"] == len(forged) + len(tampered)
        assert src.counters["replayed"] == len(replayed)
        assert src.counters["malformed"] == len(malformed)
        assert src.counters["accepted"] == 3
        # The source accepting a report is not the engine having judged it: wait for M-1's alert
        # to carry its cleared report before stopping (under load the stop came first, CI).
        assert _wait(lambda: _m1_status(w) == "cleared", 30), (_m1_status(w), dict(src.counters),
                                                               dict(w.engine.counters))
        atk.disconnect()
        atk.loop_stop()
        # A client certificate from another CA does not even get to publish.
        # (TLS 1.3: the client's handshake may finish before the broker refuses the certificate,
        # so the proof is that no MQTT session comes up.)
        try:
            rogue = _tls_client(tls_broker, pki, "rogue")
            assert not _wait(rogue.is_connected, 3.0)
            rogue.loop_stop()
        except (ssl.SSLError, OSError):
            pass
        p1.close()
        p2.close()
    finally:
        w.halt()
    alerts = _alerts(w)
    w.store.close()
    tamper = alerts[alerts["code"] == "ERR_IMBAL_LIMIT_EXCEEDED"]
    # Exactly the two valid events (M-1's tamper grown by its cleared report, M-2's): nothing forged.
    assert sorted(tamper["meter_id"]) == ["M-1", "M-2"]
    m1 = tamper[tamper["meter_id"] == "M-1"].iloc[0]
    ev = json.loads(m1["evidence"]) if isinstance(m1["evidence"], str) else m1["evidence"]
    assert ev["status"] == "cleared" and ev["i_n_a"] == 0.02 and ev["kind"] == "neutral_bypass"
    assert ev["counter"] == good[1]["counter"]
    sec = alerts[alerts["code"] == "ALRM_SECURITY_EVENT"]
    counts = [json.loads(e)["count"] if isinstance(e, str) else e["count"] for e in sec["evidence"]]
    assert sum(counts) == n_bad and set(sec["detector"]) == {"edge_security"}


def test_broker_restart_and_power_cut_lose_no_tamper_event(tmp_path, pki):
    port = free_port()
    broker = Mosquitto(free_port(), tmp_path / "broker", extra=tls_listener(port, pki)).start()
    broker.tls_port = port
    key = hmac_key(tmp_path / "M-5.key")
    name = f"he{uuid.uuid4().hex[:6]}"
    src, w = _headend(broker, pki, tmp_path, {"M-5": str(key)}, name)
    tls = dict(host="127.0.0.1", port=port, tls_ca=str(pki["ca"]), tls_cert=str(pki["client"][0]),
               tls_key=str(pki["client"][1]), client_id="edge-M-5")
    try:
        pub = Publisher("M-5", Signer.from_file(key), TamperLog(tmp_path / "m5.log"), **tls)
        pub.publish(_event(start="2026-01-01T00:00:00.000Z"))
        assert pub.wait_acked(10)
        broker.stop()
        # The broker is down: two events are logged and queued; the meter then loses power with
        # one of them (a new Publisher on the same log, as after a reboot).
        pub.publish(_event(start="2026-01-01T00:10:00.000Z"))
        pub.close()
        assert TamperLog(tmp_path / "m5.log").pending() == [2]
        broker.start()
        pub = Publisher("M-5", Signer.from_file(key), TamperLog(tmp_path / "m5.log"), **tls)
        assert pub.resend_pending() == 1
        pub.publish(_event(start="2026-01-01T00:20:00.000Z"))
        assert pub.wait_acked(20), pub.log.pending()
        assert _wait(lambda: src.counters["accepted"] == 3, 30), str(dict(src.counters))
        # Once more: the broker restarts while the meter publishes (paho re-sends after reconnecting).
        broker.restart()
        pub.publish(_event("cleared", start="2026-01-01T00:20:00.000Z"))
        assert pub.wait_acked(30), pub.log.pending()
        assert _wait(lambda: src.counters["accepted"] == 4, 30), dict(src.counters)
        pub.close()
        assert src.counters["forged"] == src.counters["replayed"] == src.counters["malformed"] == 0
    finally:
        w.halt()
        broker.stop()
    alerts = _alerts(w)
    w.store.close()
    starts = sorted(str(s)[:19] for s in alerts[alerts["code"] == "ERR_IMBAL_LIMIT_EXCEEDED"]["start"])
    assert len(starts) == 3 and starts[0].startswith("2026-01-01 00:00:00")
    assert (alerts["code"] == "ALRM_SECURITY_EVENT").sum() == 0


def test_a_deeply_nested_report_is_refused_as_malformed(tmp_path):
    src = TamperSource("he", keys={"M-7": str(hmac_key(tmp_path / "M-7.key"))})
    src.handle("meter/M-7/tamper", b"[" * 5000 + b"]" * 5000)
    assert src.counters["malformed"] == 1 and src.counters.get("accepted", 0) == 0


def test_anti_replay_window_takes_reordered_reports_and_survives_a_restart(tmp_path):
    key = hmac_key(tmp_path / "M-7.key")
    s = Signer.from_file(key)
    now = time.time()

    def rep(c, **kw):
        return json.dumps(s.sign({**_event(), "v": 1, "meter_id": "M-7", "counter": c, "ts": now, **kw})).encode()

    src = TamperSource("he", keys={"M-7": str(key)}, reorder=4, clock=lambda: now)
    verdicts = []
    for payload in (rep(1), rep(3), rep(2), rep(2), rep(2, delta_a=0.1), rep(9), rep(4), rep(5)):
        before = dict(src.counters)
        src.handle("meter/M-7/tamper", payload)
        verdicts.append(next(k for k in ("accepted", "duplicate", "replayed") if src.counters[k] != before.get(k, 0)))
    # 2 arrives after 3 and is taken; its copy is a duplicate; another report with counter 2 is a
    # replay; once 9 is in, the window of 4 reaches down to 6: 4 and 5 are refused as too old.
    assert verdicts == ["accepted", "accepted", "accepted", "duplicate", "replayed", "accepted", "replayed", "replayed"]
    again = TamperSource("he", keys={"M-7": str(key)}, reorder=4, clock=lambda: now)
    again.restore(json.loads(json.dumps(src.position())))
    again.handle("meter/M-7/tamper", rep(9))
    again.handle("meter/M-7/tamper", rep(8))
    assert again.counters["duplicate"] == 1 and again.counters["accepted"] == 1


def test_a_tamper_report_overtaken_by_its_cleared_report_does_not_reopen_the_event(tmp_path):
    """Reports of one event out of order (paho may send a report published while the connection
    comes up after the next one; CI saw M-1's alert stay 'tamper'): the highest counter decides,
    also after a restart from the checkpointed position; another event is not affected."""
    key = hmac_key(tmp_path / "M-7.key")
    s = Signer.from_file(key)
    now = time.time()

    def rep(c, status="tamper", start="2026-01-01T00:00:30.000Z"):
        return json.dumps(s.sign({**_event(status, start=start), "v": 1, "meter_id": "M-7", "counter": c,
                                  "ts": now})).encode()

    src = TamperSource("he", keys={"M-7": str(key)}, clock=lambda: now)
    cleared = src.handle("meter/M-7/tamper", rep(5, "cleared"))
    assert [a.evidence["status"] for a in cleared] == ["cleared"]
    assert src.handle("meter/M-7/tamper", rep(4)) == []          # older: the cleared report stands
    assert src.counters["accepted"] == 2 and src.counters["stale"] == 1
    other = src.handle("meter/M-7/tamper", rep(6, start="2026-01-01T02:00:00.000Z"))
    assert [a.evidence["status"] for a in other] == ["tamper"] and other[0].id != cleared[0].id
    again = TamperSource("he", keys={"M-7": str(key)}, clock=lambda: now)
    again.restore(json.loads(json.dumps(src.position())))
    assert again.handle("meter/M-7/tamper", rep(3)) == [] and again.counters["stale"] == 1
    later = again.handle("meter/M-7/tamper", rep(7, "cleared", start="2026-01-01T02:00:00.000Z"))
    assert [a.evidence["status"] for a in later] == ["cleared"]


def test_meter_to_head_end_end_to_end_with_a_site_config(tls_broker, pki, tmp_path):
    """``wattwatch edge`` on a simulated partial earth return, publishing over TLS with a client
    certificate, and the head-end built from a site config's ``type = "tamper"`` source: one
    alert with the meter's evidence, its id stable when the report comes again."""
    from wattwatch import api
    from wattwatch.edge import run as edge_run

    (tmp_path / "keys").mkdir()
    priv, pub = ed25519_keys(tmp_path / "keys", "M-3")
    pub.rename(tmp_path / "keys" / "M-3.pub.pem")
    name = f"he{uuid.uuid4().hex[:6]}"
    site = api.load_site({"sources": [{"type": "tamper", "name": name, "host": "127.0.0.1", "port": tls_broker.tls_port,
                                       "tls_ca": str(pki["ca"]), "tls_cert": str(pki["client"][0]),
                                       "tls_key": str(pki["client"][1]), "keys_dir": str(tmp_path / "keys"),
                                       "client_id": name, "batch_s": 0.05}],
                          "store": {"path": str(tmp_path / "site.duckdb")}})
    src = site.sources[0]
    assert isinstance(src, TamperSource)
    w = _Watcher(tmp_path / "he.duckdb", src)
    try:
        (tmp_path / "meter.toml").write_text(
            f'meter_id = "M-3"\n[simulate]\nscenario = "partial_earth_return"\nseconds = 60\nseed = 3\n'
            f'[tamper]\npersistence_s = 10\n[signing]\nkey_file = "{priv}"\n[log]\npath = "m3.log"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {tls_broker.tls_port}\ntls_ca = "{pki["ca"]}"\n'
            f'tls_cert = "{pki["client"][0]}"\ntls_key = "{pki["client"][1]}"\nclient_id = "edge-M-3"\n')
        summary = edge_run.run(edge_run.load(tmp_path / "meter.toml"))
        assert summary["all_acknowledged"] and [e["status"] for e in summary["events"]] == ["tamper"]
        assert _wait(lambda: src.counters["accepted"] == 1)
        assert _wait(lambda: len(_alerts(w)) == 1)
    finally:
        w.halt()
    alerts = _alerts(w)
    w.store.close()
    a = alerts.iloc[0]
    ev = json.loads(a["evidence"])
    assert a["code"] == "ERR_IMBAL_LIMIT_EXCEEDED" and a["meter_id"] == "M-3" and a["severity"] == "warning"
    assert ev["kind"] == "partial_earth_return" and 2 < ev["delta_a"] < 6 and ev["source"] == "edge"
    assert str(a["start"]).startswith("2026-01-01 00:00:15")


def test_harmonic_reports_become_one_signal_noisy_alert(tmp_path):
    key = hmac_key(tmp_path / "M-8.key")
    s = Signer.from_file(key)
    now = time.time()
    src = TamperSource("he", keys={"M-8": str(key)}, clock=lambda: now)
    common = {"v": 1, "meter_id": "M-8", "ts": now, "kind": "harmonics", "event": "noisy@t",
              "cycle_start": "2026-01-01T00:00:00.000Z", "evidence": {"thd_i_pct": 96.0, "h3_pct": 75.0, "h5_pct": 50.0}}
    on = src.handle("meter/M-8/tamper", json.dumps(s.sign({**common, "counter": 1, "status": "signal_noisy",
                                                           "cycle_end": "2026-01-01T00:00:10.000Z"})).encode())
    off = src.handle("meter/M-8/tamper", json.dumps(s.sign({**common, "counter": 2, "status": "signal_ok",
                                                            "cycle_end": "2026-01-01T00:05:00.000Z"})).encode())
    assert [a.code for a in on + off] == ["STATUS_SIGNAL_NOISY"] * 2 and on[0].id == off[0].id
    assert off[0].end == "2026-01-01T00:05:00.000Z" and "96.0" in on[0].message


def test_telemetry_topics_are_readings_and_report_topics_are_reports(tmp_path):
    from types import SimpleNamespace

    key = hmac_key(tmp_path / "M-1.key")
    src = TamperSource("he", keys={"M-1": str(key)}, telemetry=["meter/+/telemetry"], meter="topic:1")
    acks = []
    client = SimpleNamespace(ack=lambda mid, qos: acks.append(mid))
    src._on_message(client, None, SimpleNamespace(topic="meter/M-1/telemetry", payload=b'{"p_kw": 1.5, "i_n_a": 6.1}',
                                                  qos=1, mid=1))
    src._on_message(client, None, SimpleNamespace(topic="meter/M-1/tamper", payload=b'{"status": "tamper"}', qos=1, mid=2))
    b = src.drain()
    assert list(b.frame["meter_id"]) == ["M-1"] and b.frame["i_n_a"].iloc[0] == 6.1
    assert [a.code for a in b.alerts] == ["ALRM_SECURITY_EVENT"] and src.counters["malformed"] == 1
    assert sorted(m for m, _ in b.token) == [1, 2] and acks == []  # both acknowledged once stored


def test_a_report_the_broker_holds_for_an_offline_head_end_survives_a_broker_restart(tmp_path, pki):
    """The other half of "a broker restart loses no tamper event": a report the broker has
    acknowledged to the meter but not yet delivered (the head-end is down) is kept across the
    restart (QoS 1 on the head-end's persistent session, broker persistence on) and arrives once
    the head-end is back."""
    port = free_port()
    broker = Mosquitto(free_port(), tmp_path / "broker", extra=tls_listener(port, pki)).start()
    key = hmac_key(tmp_path / "M-6.key")
    name = f"he{uuid.uuid4().hex[:6]}"
    tls = dict(host="127.0.0.1", port=port, tls_ca=str(pki["ca"]), tls_cert=str(pki["client"][0]),
               tls_key=str(pki["client"][1]))

    def headend():
        src = TamperSource(name, keys={"M-6": str(key)}, client_id=f"he-{name}", batch_s=0.05, **tls)
        return src, _Watcher(tmp_path / "he.duckdb", src)
    try:
        src, w = headend()          # subscribes once: the broker now keeps its session
        w.stop()
        pub = Publisher("M-6", Signer.from_file(key), TamperLog(tmp_path / "m6.log"), client_id="edge-M-6", **tls)
        sent = pub.publish(_event(start="2026-01-01T00:30:00.000Z"))
        assert pub.wait_acked(10)   # acknowledged by the broker, delivered to nobody yet
        pub.close()
        broker.restart()
        src, w = headend()
        try:
            assert _wait(lambda: src.counters["accepted"] == 1, 20), dict(src.counters)
            assert _wait(lambda: len(_alerts(w)) == 1)
        finally:
            w.halt()
        alerts = _alerts(w)
        w.store.close()
    finally:
        broker.stop()
    a = alerts.iloc[0]
    assert a["code"] == "ERR_IMBAL_LIMIT_EXCEEDED" and json.loads(a["evidence"])["counter"] == sent["counter"]
    assert src.counters["forged"] == src.counters["replayed"] == src.counters["malformed"] == 0


def test_a_damaged_key_file_refuses_that_meter_s_reports_without_stopping_the_head_end(tmp_path):
    """A key file in keys_dir that cannot be read raised out of the MQTT callback (the source's
    thread) on that meter's first report; now the report is refused and alerted, and the other
    meters' reports go on."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "M-9.key").write_text("not hex\n")
    good = hmac_key(tmp_path / "keys" / "M-1.key")
    now = time.time()
    src = TamperSource("he", keys_dir=str(tmp_path / "keys"), clock=lambda: now)

    def rep(meter, signer):
        return json.dumps(signer.sign({**_event(), "v": 1, "meter_id": meter, "counter": 1, "ts": now})).encode()
    bad = src.handle("meter/M-9/tamper", rep("M-9", Signer.from_file(good)))
    ok = src.handle("meter/M-1/tamper", rep("M-1", Signer.from_file(good)))
    assert [a.code for a in bad] == ["ALRM_SECURITY_EVENT"] and "no usable key" in bad[0].message
    assert [a.code for a in ok] == ["ERR_IMBAL_LIMIT_EXCEEDED"] and src.counters["forged"] == 1


@pytest.mark.parametrize("spec, why", [
    ({"keys_dir": "nokeys"}, "nokeys: no such folder"),
    ({"keys": {"M-1": 5}}, "keys must be a table"),
    ({"window_s": "x"}, "window_s must be a number >= 1"),
    ({"reorder": -1}, "reorder must be an integer >= 1"),
    ({"max_bytes": "big"}, "max_bytes must be an integer"),
])
def test_tamper_source_config_errors_name_the_key(tmp_path, spec, why):
    from wattwatch import api
    from wattwatch.errors import ConfigError

    (tmp_path / "keys").mkdir()
    spec = {"keys_dir": str(tmp_path / "keys"), **spec}
    if spec["keys_dir"] == "nokeys":
        spec["keys_dir"] = str(tmp_path / "nokeys")
    with pytest.raises(ConfigError, match=why):
        api.load_site({"sources": [{"type": "tamper", "name": "t", **spec}], "store": {"path": str(tmp_path / "s.duckdb")}})
