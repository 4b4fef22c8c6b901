"""(rev59) Review of edg59: the counter record's digests must not make a record the next start refuses.

edg59 writes each meter's 64-hex digest beside its counter (~5x the bytes a meter), while the
reader refuses a record larger than ``RECORD_MAX_BYTES`` (64 MiB) as damaged. The writer did not
check: a head-end with enough meters (~300,000 with 64-character ids) wrote a record its next start
refused ("damaged"), stopping the head-end. Now a record that would be too large is written without
its digests (counters only, as edg58 wrote: the crash-window redelivery is then ``replayed`` again,
nothing is taken), said once; one too large even so is not written (the old, loadable one stays).
"""

from __future__ import annotations

import json
import logging
import time

from tests.edge.pki import hmac_key
from tests.edge.test_edg59 import _rep
from wattwatch.edge.signing import Signer
from wattwatch.sources import tamper
from wattwatch.sources.tamper import TamperSource


def _source(tmp_path, n, rec):
    keys, signers = {}, {}
    for i in range(n):
        m = f"M-{i:02d}"
        keys[m] = str(hmac_key(tmp_path / f"{m}.key"))
        signers[m] = Signer.from_file(keys[m])
    now = time.time()
    src = TamperSource("he", keys=keys, clock=lambda: now, state_file=str(rec))
    return src, keys, signers, now


def test_a_record_too_large_with_digests_is_written_without_them_and_still_loads(tmp_path, monkeypatch, caplog):
    rec = tmp_path / "r.json"
    # 8 meters: ~150 bytes of counters, ~700 with digests; the cap between the two.
    monkeypatch.setattr(tamper, "RECORD_MAX_BYTES", 400)
    src, keys, signers, now = _source(tmp_path, 8, rec)
    for m, s in signers.items():
        src.handle(f"meter/{m}/tamper", _rep(s, m, 3, now))
    with caplog.at_level(logging.ERROR, logger="wattwatch"):
        src.position()
    assert rec.stat().st_size <= 400
    doc = json.loads(rec.read_text())
    assert doc["meters"] == {m: 3 for m in signers} and doc["digests"] == {}
    assert src.digests == {} and src.counters["record_digests_dropped"] == 1
    assert any("without its digests" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    again = TamperSource("he", keys=keys, clock=lambda: now, state_file=str(rec))   # was: "damaged"
    assert again.record == {m: 3 for m in signers}
    # The report at the record's counter is refused (no digest to match), never taken.
    again.handle("meter/M-00/tamper", _rep(signers["M-00"], "M-00", 3, now))
    assert again.counters["replayed"] == 1 and again.counters["accepted"] == 0


def test_a_record_too_large_even_without_digests_is_not_written(tmp_path, monkeypatch, caplog):
    rec = tmp_path / "r.json"
    monkeypatch.setattr(tamper, "RECORD_MAX_BYTES", 400)
    src, keys, signers, now = _source(tmp_path, 4, rec)
    for m, s in list(signers.items())[:4]:
        src.handle(f"meter/{m}/tamper", _rep(s, m, 3, now))
    src.position()
    before = rec.read_bytes()
    monkeypatch.setattr(tamper, "RECORD_MAX_BYTES", 60)   # now even the counters do not fit
    for m, s in signers.items():
        src.handle(f"meter/{m}/tamper", _rep(s, m, 4, now))
    with caplog.at_level(logging.ERROR, logger="wattwatch"):
        src.position()
    assert rec.read_bytes() == before, "a record the next start refuses was written"
    assert src.counters["record_failed"] == 1
    assert any("larger than" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
