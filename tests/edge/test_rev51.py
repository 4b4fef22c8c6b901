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
