"""(rev58) Adversarial review of edg58's first contact and counter record (tamper head-end).

1. A report the head-end had taken but whose alert was not yet in the store (accepted in paho's
   thread, its alert waiting for the next step, its PUBACK held until then) was written into the
   counter record and the checkpoint by the next ``position()``. After a crash (or a stop) before
   its step, the broker sends it again (never acknowledged): refused as ``replayed`` by the record
   (a false security event and the tamper event lost), or a ``duplicate`` by the checkpoint (lost).
2. The clock alert of a report taken on first contact said ``{how}`` literally.
3. The record was read whatever it is: a FIFO hung the head-end's start, a huge file was read whole,
   an entry that is not a counter was dropped silently; its temporary file was opened through a
   symlink.
4. Two sources (of one config, or of two watchers) writing one record overwrote each other's
   meters; a source name with ``/`` or ``..`` put the default record outside the config's folder.
"""

from __future__ import annotations

import json
import os
import threading
import time
from types import SimpleNamespace

import pytest

from tests.edge.pki import hmac_key
from tests.edge.test_security import _event
from wattwatch import api
from wattwatch.edge.signing import Signer
from wattwatch.errors import ConfigError
from wattwatch.sources.tamper import TamperSource


class _Client:
    def __init__(self):
        self.acked = []

    def ack(self, mid, qos):
        self.acked.append(mid)


def _rep(s, meter, c, ts, status="tamper"):
    return json.dumps(s.sign({**_event(status), "v": 1, "meter_id": meter, "counter": c, "ts": ts})).encode()


def _arrive(src, client, payload, mid, meter):
    src._on_message(client, None, SimpleNamespace(topic=f"meter/{meter}/tamper", payload=payload, qos=1, mid=mid))


def test_a_report_whose_alert_is_not_stored_yet_is_in_neither_the_record_nor_the_checkpoint(tmp_path):
    key = hmac_key(tmp_path / "M-30.key")
    s = Signer.from_file(key)
    now = time.time()
    rec = tmp_path / "he.counters.json"
    src = TamperSource("he", keys={"M-30": str(key)}, clock=lambda: now, state_file=str(rec))
    cl = src._client = _Client()               # the connected paho client (acknowledges)
    _arrive(src, cl, _rep(s, "M-30", 1, now, "signal_noisy"), 1, "M-30")
    b = src.drain()
    src.committed(b.token)                      # step 1: its alert stored, acknowledged
    assert cl.acked == [1]
    late = _rep(s, "M-30", 2, now)
    _arrive(src, cl, late, 2, "M-30")           # taken while step 1 ran: its alert waits for step 2
    pos = src.position()                        # step 1's checkpoint
    assert json.loads(rec.read_text())["meters"] == {"M-30": 1}, "the record holds a report not stored"
    assert [c for c, _ in pos["seen"]["M-30"]] == [1]
    # The watcher dies before step 2: the broker sends report 2 again (never acknowledged). It is
    # taken (once: its alert never reached the store), not refused as a replay nor a duplicate.
    for restored in (pos, None):                # the checkpoint committed, or the crash came before it
        again = TamperSource("he", keys={"M-30": str(key)}, clock=lambda: now, state_file=str(rec))
        if restored is not None:
            again.restore(restored)
        out = again.handle("meter/M-30/tamper", late)
        assert again.counters["accepted"] == 1 and [a.code for a in out] == ["ERR_IMBAL_LIMIT_EXCEEDED"], \
            dict(again.counters)
    # Once its step commits it, the record and the checkpoint hold it.
    b = src.drain()
    src.committed(b.token)
    pos = src.position()
    assert json.loads(rec.read_text())["meters"] == {"M-30": 2} and cl.acked == [1, 2]
    assert [c for c, _ in pos["seen"]["M-30"]] == [1, 2]
    # A report taken with nothing to store (acknowledged at once) is recorded at once.
    _arrive(src, cl, _rep(s, "M-30", 3, now, "report"), 3, "M-30")
    src.position()
    assert json.loads(rec.read_text())["meters"] == {"M-30": 3} and cl.acked == [1, 2, 3]


def test_the_first_contact_clock_alert_says_how_it_was_taken(tmp_path):
    key = hmac_key(tmp_path / "M-31.key")
    now = time.time()
    src = TamperSource("he", keys={"M-31": str(key)}, clock=lambda: now)
    out = src.handle("meter/M-31/tamper", _rep(Signer.from_file(key), "M-31", 1, now - 900))
    msg = [a.message for a in out if a.code == "WARN_CLOCK_SKEW"][0]
    assert "{how}" not in msg and "first contact" in msg, msg


def _build(path, **kw):
    """The source built in a thread: True if it raised ValueError, None if it hung (5 s)."""
    box = []

    def go():
        try:
            TamperSource("he", keys=kw["keys"], state_file=str(path))
            box.append(False)
        except ValueError as exc:
            box.append(str(exc))

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(5)
    return box[0] if box else None


def test_a_record_that_is_not_a_small_regular_file_of_counters_is_an_error(tmp_path):
    key = {"M-32": str(hmac_key(tmp_path / "M-32.key"))}
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    said = _build(fifo, keys=key)
    assert said is not None, "a FIFO as the counter record hung the head-end's start"
    assert said and "not a regular file" in said, said
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(200 * 2**20)                 # sparse: no disk used
    said = _build(huge, keys=key)
    assert said and "larger than" in said, said
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"meters": {"M-32": 40, "M-33": "41"}}))
    said = _build(bad, keys=key)
    assert said and "M-33" in said and "damaged" in said, said


def test_the_records_temporary_file_is_not_written_through_a_symlink(tmp_path):
    key = hmac_key(tmp_path / "M-34.key")
    now = time.time()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    rec = tmp_path / "he.counters.json"
    os.symlink(victim, tmp_path / "he.counters.json.tmp")
    src = TamperSource("he", keys={"M-34": str(key)}, clock=lambda: now, state_file=str(rec))
    src.handle("meter/M-34/tamper", _rep(Signer.from_file(key), "M-34", 1, now))
    src.position()
    assert victim.read_text() == "keep me"
    assert json.loads(rec.read_text())["meters"] == {"M-34": 1}


def _site(tmp_path, sources):
    lines = []
    for name, extra in sources:
        lines += ["[[sources]]", 'type = "tamper"', f"name = {json.dumps(name)}", 'keys_dir = "keys"', *extra, ""]
    cfg = tmp_path / "site.toml"
    cfg.write_text("\n".join(lines))
    return cfg


def test_two_sources_cannot_share_one_counter_record_and_the_default_stays_in_the_config_folder(tmp_path):
    (tmp_path / "keys").mkdir()
    hmac_key(tmp_path / "keys" / "M-35.key")
    cfg = _site(tmp_path, [("a", ['state_file = "one.json"']), ("b", ['state_file = "./one.json"'])])
    with pytest.raises(ConfigError, match="counter record"):
        api.load_site(cfg)
    # A name that is no file name: the default record is still a file of the config's folder.
    for name in ("../../escape", "a/b"):
        s = api.load_site(_site(tmp_path, [(name, [])])).sources[0]
        assert s.state_file.parent == tmp_path.resolve(), s.state_file
    # Two watchers (or sources) running on one record: the second is refused while the first runs.
    key = {"M-35": str(tmp_path / "keys" / "M-35.key")}
    one = TamperSource("a", keys=key, state_file=str(tmp_path / "r.json"))
    two = TamperSource("b", keys=key, state_file=str(tmp_path / "r.json"))
    one.hold_record()
    try:
        with pytest.raises(ValueError, match="in use"):
            two.hold_record()
    finally:
        one.close()
    two.hold_record()                           # the first one stopped: free
    two.close()


def test_a_meter_id_with_a_trailing_newline_is_not_a_meter_id(tmp_path):
    # METER_ID ended in "$", which also matches before a final newline: "M-36\n" was a meter id
    # (a key table entry, a report's meter_id, a topic's meter), and a record holding it would
    # then be refused as damaged at the next start.
    key = str(hmac_key(tmp_path / "M-36.key"))
    with pytest.raises(ValueError, match="meter id"):
        TamperSource("he", keys={"M-36\n": key})
    now = time.time()
    src = TamperSource("he", keys={"M-36": key}, clock=lambda: now)
    doc = json.loads(_rep(Signer.from_file(key), "M-36", 1, now))
    doc["meter_id"] = "M-36\n"
    src.handle("meter/M-36\n/tamper", json.dumps(doc).encode())
    assert src.counters["malformed"] == 1, dict(src.counters)


def test_two_site_configs_in_one_folder_do_not_share_a_default_counter_record(tmp_path):
    # Each config's unnamed tamper source (name "tamper") took "tamper.counters.json": the second
    # watcher inherited the first's meters (logged as its checkpoint being behind) and refused
    # reports of a meter both serve up to the other's counter.
    (tmp_path / "keys").mkdir()
    hmac_key(tmp_path / "keys" / "M-37.key")
    files = []
    for cfg in ("site-a.toml", "site-b.toml"):
        (tmp_path / cfg).write_text('[[sources]]\ntype = "tamper"\nkeys_dir = "keys"\n')
        s = api.load_site(tmp_path / cfg).sources[0]
        assert s.state_file.parent == tmp_path.resolve() and s.state_file.name.endswith(".counters.json")
        files.append(s.state_file)
    assert files[0] != files[1], files
