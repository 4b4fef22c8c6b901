"""(edg59) The false alarm rev58 left at the tamper head-end's counter record.

A report whose alert is stored and acknowledged inside the head-end, whose PUBACK has not left
when the watcher dies after the counter record is written and before the checkpoint is saved: the
broker sends that very report again, and the record (holding its counter, above the checkpoint)
refused it as ``replayed`` — an ``ALRM_SECURITY_EVENT`` for the meter's own report. The record now
keeps, per meter, the digest of the report at its highest counter: that report again is a
``duplicate`` (dropped, acknowledged); any other report at or below the recorded counter is still
``replayed``. A record without digests (as edg58/rev58 wrote) still loads and works.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.edge.pki import hmac_key
from tests.edge.test_rev58 import _arrive, _Client, _rep
from wattwatch.edge.signing import Signer, digest
from wattwatch.sources.tamper import TamperSource


def _step(src):
    """One step of the engine: the batch stored and acknowledged (inside the head-end)."""
    b = src.drain()
    src.committed(b.token)


def test_the_redelivery_of_a_report_recorded_but_not_checkpointed_is_a_duplicate(tmp_path):
    key = hmac_key(tmp_path / "M-40.key")
    s = Signer.from_file(key)
    now = time.time()
    rec = tmp_path / "he.counters.json"

    def source():
        return TamperSource("he", keys={"M-40": str(key)}, clock=lambda: now, state_file=str(rec))

    src = source()
    cl = src._client = _Client()
    _arrive(src, cl, _rep(s, "M-40", 1, now, "signal_noisy"), 1, "M-40")
    _step(src)
    pos = src.position()                         # step 1's checkpoint, committed: holds 1
    two = _rep(s, "M-40", 2, now)
    _arrive(src, cl, two, 2, "M-40")
    _step(src)                                   # its alert stored, its PUBACK handed to paho ...
    src.position()                               # ... the record written (2) ...
    assert json.loads(rec.read_text())["meters"] == {"M-40": 2}
    # ... and the watcher dies before the PUBACK leaves and the checkpoint (holding 2) is saved.
    for restored in (pos, None):                 # the step-1 checkpoint, or none at all
        again = source()
        if restored is not None:
            again.restore(restored)
        assert again.handle("meter/M-40/tamper", two) == [], dict(again.counters)
        assert again.counters["duplicate"] == 1 and again.counters["replayed"] == 0, dict(again.counters)
        assert again.counters["accepted"] == 0
        # Any other report at the recorded counter (the same counter, another report) or below it
        # (outside the window) is still a replay.
        out = again.handle("meter/M-40/tamper", _rep(s, "M-40", 2, now, "cleared"))
        assert again.counters["replayed"] == 1 and out[0].code == "ALRM_SECURITY_EVENT"
        again.handle("meter/M-40/tamper", _rep(s, "M-40", 1, now - 900, "cleared"))
        assert again.counters["replayed"] == 2 and again.counters["accepted"] == 0
    # The redelivery through paho's callback: dropped, acknowledged at once (the broker stops).
    again = source()
    again.restore(pos)
    cl2 = again._client = _Client()
    _arrive(again, cl2, two, 7, "M-40")
    assert cl2.acked == [7] and again.drain() is None and again.counters["duplicate"] == 1


def test_the_record_keeps_the_digest_of_each_meters_latest_report_and_only_a_rising_counter_changes_it(tmp_path):
    key = hmac_key(tmp_path / "M-41.key")
    s = Signer.from_file(key)
    now = time.time()
    rec = tmp_path / "r.json"
    src = TamperSource("he", keys={"M-41": str(key)}, clock=lambda: now, state_file=str(rec))
    reps = {c: _rep(s, "M-41", c, now) for c in (5, 6)}
    for c in (6, 5):                             # out of order: 6 is the latest
        src.handle("meter/M-41/tamper", reps[c])
    src.position()
    doc = json.loads(rec.read_text())
    assert doc["meters"] == {"M-41": 6}
    assert doc["digests"] == {"M-41": digest(json.loads(reps[6]))}
    # A checkpoint restored with lower counters changes neither the counter nor its digest.
    again = TamperSource("he", keys={"M-41": str(key)}, clock=lambda: now, state_file=str(rec))
    again.restore({"seen": {"M-41": [[3, "x"]]}})
    again.position()
    assert json.loads(rec.read_text())["digests"] == doc["digests"]


def test_a_record_without_digests_still_loads_and_works(tmp_path):
    # As edg58/rev58 wrote it: counters only.
    key = hmac_key(tmp_path / "M-42.key")
    s = Signer.from_file(key)
    now = time.time()
    rec = tmp_path / "r.json"
    rec.write_text(json.dumps({"meters": {"M-42": 40}, "written": "2026-12-05T00:00:00.000Z"}))
    src = TamperSource("he", keys={"M-42": str(key)}, clock=lambda: now, state_file=str(rec))
    src.hold_record()
    try:
        src.handle("meter/M-42/tamper", _rep(s, "M-42", 40, now))   # no digest to match: a replay, as before
        assert src.counters["replayed"] == 1 and src.counters["duplicate"] == 0
        latest = _rep(s, "M-42", 41, now)
        src.handle("meter/M-42/tamper", latest)
        assert src.counters["accepted"] == 1
        src.position()
    finally:
        src.close()
    doc = json.loads(rec.read_text())
    assert doc["meters"] == {"M-42": 41} and doc["digests"] == {"M-42": digest(json.loads(latest))}
    again = TamperSource("he", keys={"M-42": str(key)}, clock=lambda: now, state_file=str(rec))
    again.handle("meter/M-42/tamper", latest)
    assert again.counters["duplicate"] == 1 and again.counters["replayed"] == 0


@pytest.mark.parametrize("digests", [
    ["x"],                                       # not a table
    {"M-43": "ab"},                              # not a SHA-256 digest
    {"M-43": 7},
    {"M-44": "0" * 64},                          # a meter the record holds no counter of
])
def test_a_record_with_a_digest_that_is_not_one_is_damaged(tmp_path, digests):
    key = {"M-43": str(hmac_key(tmp_path / "M-43.key"))}
    rec = tmp_path / "r.json"
    rec.write_text(json.dumps({"meters": {"M-43": 3}, "digests": digests}))
    with pytest.raises(ValueError, match="counter record is damaged"):
        TamperSource("he", keys=key, state_file=str(rec))


def test_a_checkpoint_digest_that_is_not_one_does_not_go_into_the_record(tmp_path):
    # restore() keeps a checkpoint's digests as strings, unchecked: one written into the record
    # would make the next start refuse the record as damaged.
    key = {"M-45": str(hmac_key(tmp_path / "M-45.key"))}
    rec = tmp_path / "r.json"
    src = TamperSource("he", keys=key, state_file=str(rec))
    src.restore({"seen": {"M-45": [[3, "not a digest"]]}})
    src.position()
    assert json.loads(rec.read_text()) | {"written": None} == {"meters": {"M-45": 3}, "digests": {},
                                                              "written": None}
    TamperSource("he", keys=key, state_file=str(rec))   # loads
