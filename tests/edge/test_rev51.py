"""(rev51) Review of liv51's counter-based replay protection and re-signing at the meter."""

from __future__ import annotations

import json
import time

from tests.edge.pki import hmac_key
from tests.edge.test_security import _event
from wattwatch.edge.signing import Signer
from wattwatch.sources.tamper import TamperSource


def _rep(s, meter, c, ts, status="tamper", start="2026-01-01T00:00:30.000Z"):
    return json.dumps(s.sign({**_event(status, start=start), "v": 1, "meter_id": meter, "counter": c,
                              "ts": ts})).encode()


def test_an_old_report_below_the_latest_counter_is_not_taken_by_its_counter_after_a_lost_checkpoint(tmp_path):
    # A head-end that lost its checkpoint (a new store, a restore from an old backup) learns M-7
    # from its next report, counter 101. An attacker who recorded M-7's reports a day ago
    # (counters 90, 91: a tamper event long cleared) replays them: their counters are within
    # the anti-replay window below 101 and not among the counters this head-end holds, and their
    # signed time is a day old. liv51 took them by their counter (WARN_CLOCK_SKEW) and
    # re-raised the old event as tamper; the time window is what says they are old.
    key = hmac_key(tmp_path / "M-7.key")
    s = Signer.from_file(key)
    now = time.time()
    day_ago = now - 86400
    src = TamperSource("he", keys={"M-7": str(key)}, clock=lambda: now)
    src.handle("meter/M-7/tamper", _rep(s, "M-7", 101, now, "signal_noisy", start="2026-01-02T00:00:00.000Z"))
    assert src.counters["accepted"] == 1
    out = src.handle("meter/M-7/tamper", _rep(s, "M-7", 90, day_ago))
    assert src.counters["accepted"] == 1 and src.counters["replayed"] == 1, dict(src.counters)
    assert [a.code for a in out] == ["ALRM_SECURITY_EVENT"]
    assert "below the latest counter" in out[0].evidence["detail"], out[0].evidence["detail"]
    # A known meter's newer report (counter above the latest) is still taken by its counter when
    # its time is off (liv51's case: a clock that drifted, a report held up by a broker outage).
    out = src.handle("meter/M-7/tamper", _rep(s, "M-7", 102, day_ago, start="2026-01-02T01:00:00.000Z"))
    assert src.counters["accepted"] == 2 and src.counters["clock_skew"] == 1
    assert {a.code for a in out} == {"ERR_IMBAL_LIMIT_EXCEEDED", "WARN_CLOCK_SKEW"}
    # ... and a report below the latest but in the window is still taken out of order.
    src.handle("meter/M-7/tamper", _rep(s, "M-7", 100, now, "signal_ok", start="2026-01-02T00:00:00.000Z"))
    assert src.counters["accepted"] == 3 and src.counters["replayed"] == 1


class _SlowBroker:
    """A broker that acknowledges every report ``delay_s`` after it was handed over (a link or a
    bridge that is always slow), as paho's network thread would: ``on_publish`` from another thread."""

    def __init__(self, pub, delay_s):
        import threading

        self.pub, self.delay_s, self.sent, self._mid, self._t = pub, delay_s, [], 0, threading

    def publish(self, topic, payload, qos=1):
        self._mid += 1
        self.sent.append(json.loads(payload))
        self._t.Timer(self.delay_s, self.pub._on_publish, args=(self, None, self._mid)).start()
        return type("Info", (), {"mid": self._mid})()

    def disconnect(self):
        pass

    def loop_stop(self):
        pass


def test_a_broker_that_always_acknowledges_late_does_not_make_the_meter_resign_forever(tmp_path, caplog):
    # liv51 signs anew a report acknowledged more than resign_after_s after signing. When every
    # acknowledgement is late (a slow link, not an outage), each new copy is late too: liv51 signed
    # and sent the same event again and again, a new counter and two log lines each time, for as
    # long as the meter ran. The copies are the same event at the head-end: after a few the late
    # acknowledgement is taken as delivered (and said), and the report is no longer pending.
    from wattwatch.edge.publish import Publisher, TamperLog

    key = hmac_key(tmp_path / "M-7.key")
    pub = Publisher("M-7", Signer.from_file(key), TamperLog(tmp_path / "m7.log"), resign_after_s=0.05)
    pub.client = broker = _SlowBroker(pub, 0.15)
    with caplog.at_level("WARNING", logger="wattwatch.edge"):
        pub.publish(_event("tamper"))
        assert pub.wait_acked(5), (pub.log.pending(), len(broker.sent))
        time.sleep(0.5)                                  # nothing more is sent once it is taken as delivered
    sent = len(broker.sent)
    from wattwatch.edge.publish import RESIGN_MAX

    assert sent == 1 + RESIGN_MAX and pub.resigned == RESIGN_MAX, (sent, pub.resigned)
    assert {m["event"] for m in broker.sent} == {"tamper@2026-01-01T00:00:30.000Z"}
    assert any("taken as delivered" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    pub.close()
    assert TamperLog(tmp_path / "m7.log").pending() == []


class _HeldBroker(_SlowBroker):
    """Holds the acknowledgements until :meth:`release`, then gives them in order from one thread
    (paho's network thread after a reconnect)."""

    def __init__(self, pub):
        super().__init__(pub, 0.0)
        self.held = []

    def publish(self, topic, payload, qos=1):
        self._mid += 1
        self.sent.append(json.loads(payload))
        self.held.append(self._mid)
        return type("Info", (), {"mid": self._mid})()

    def release(self):
        held, self.held = self.held, []
        for mid in held:
            self.pub._on_publish(self, None, mid)


def test_a_tamper_report_and_its_cleared_report_signed_anew_keep_their_order(tmp_path):
    # An outage holds a tamper report and its cleared report; both are acknowledged late and signed
    # anew. liv51 signed each anew on its own thread, so the copies' counters followed the threads'
    # scheduling: when the tamper report's thread ran late (a loaded meter), its copy took the
    # higher counter and the head-end (the highest counter of an event decides) turned the cleared
    # event back to tamper. Here the first re-sign is slowed by 0.2 s, as a busy CPU may.
    from wattwatch.edge.publish import Publisher, TamperLog

    key = hmac_key(tmp_path / "M-7.key")
    pub = Publisher("M-7", Signer.from_file(key), TamperLog(tmp_path / "m7.log"), resign_after_s=0.05)
    pub.client = broker = _HeldBroker(pub)
    real, armed = pub.publish, []

    def slow_first(event, **kw):                       # only re-signs call it (the first two are real())
        if armed and event["status"] == "tamper":
            time.sleep(0.2)
        return real(event, **kw)

    pub.publish = slow_first
    real(_event("tamper"))
    real(_event("cleared"))
    armed.append(True)
    time.sleep(0.1)
    broker.release()
    end = time.monotonic() + 5
    while (len(broker.sent) < 4 or pub.log.pending() != [3, 4]) and time.monotonic() < end:
        time.sleep(0.01)
    copies = sorted(broker.sent[2:], key=lambda m: m["counter"])
    assert [m["status"] for m in copies] == ["tamper", "cleared"], [(m["counter"], m["status"]) for m in copies]
    # At a head-end that refused the held-up copies (their time), the event ends cleared.
    now = time.time()
    src = TamperSource("he", keys={"M-7": str(key)}, clock=lambda: now)
    last = {}
    for m in broker.sent[2:]:                          # in the order they were sent
        for a in src.handle("meter/M-7/tamper", json.dumps(m).encode()):
            last[a.id] = a.evidence["status"]
    assert list(last.values()) == ["cleared"], last
    pub.close()


def test_the_hourly_clock_skew_and_security_tallies_do_not_grow_with_the_hours(tmp_path):
    # One WARN_CLOCK_SKEW (and ALRM_SECURITY_EVENT) per meter and hour: liv51 kept every past
    # hour's tally for the life of the head-end (a fleet of skewed meters: one entry per meter per
    # hour, never dropped). Only the current hour's are needed (the hour is the head-end's own).
    key = hmac_key(tmp_path / "M-7.key")
    s = Signer.from_file(key)
    clock = {"now": 1_800_000_000.0}
    src = TamperSource("he", keys={"M-7": str(key)}, clock=lambda: clock["now"])
    src.handle("meter/M-7/tamper", _rep(s, "M-7", 1, clock["now"]))
    for h in range(1, 49):
        clock["now"] += 3600
        out = src.handle("meter/M-7/tamper", _rep(s, "M-7", 1 + h, clock["now"] - 900))   # 15 min behind
        assert [a.code for a in out if a.code == "WARN_CLOCK_SKEW"] and out[-1].evidence["count"] == 1
        src.handle("meter/M-8/tamper", b"{}")                                             # refused: malformed
    assert src.counters["clock_skew"] == 48 and src.counters["malformed"] == 48
    assert len(src._skew) <= 2 and len(src._security) <= 2, (len(src._skew), len(src._security))
    # Within an hour the tally grows as before.
    out = src.handle("meter/M-7/tamper", _rep(s, "M-7", 60, clock["now"] - 900))
    assert out[-1].code == "WARN_CLOCK_SKEW" and out[-1].evidence["count"] == 2
