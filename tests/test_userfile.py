"""One reader for the files a user names (wattwatch.userfile): the same ladder of errors naming the
file, in the caller's exception type, for the TOML configs, events, alerts, real-data labels, NAB
corpus files and the grid monitor's tables."""

from __future__ import annotations

import json
import os

import pytest

from wattwatch.alerts.model import read_jsonl
from wattwatch.evaluate.events import load_events
from wattwatch.evaluate.real import load_labels
from wattwatch.userfile import open_file, read_bytes, read_text

ALERT = {"meter_id": "M1", "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T01:00:00Z", "code": "X",
         "severity": "warning", "score": 1.0, "detector": "d", "message": "m"}


class Boom(ValueError):
    pass


def test_the_ladder(tmp_path):
    with pytest.raises(Boom, match=r"nope\.json: no such events file$"):
        read_text(tmp_path / "nope.json", "events file", Boom)
    with pytest.raises(Boom, match="is a folder, not an events file$"):
        read_text(tmp_path, "events file", Boom, article="an")
    with pytest.raises(Boom, match="is a folder, not the data file$"):
        with open_file(tmp_path, "data file", Boom, article="the"):
            pass
    f = tmp_path / "x.txt"
    f.write_bytes(b"ab\xffc")
    with pytest.raises(Boom, match=r"x\.txt: not UTF-8 text \(byte 2\); a users file is UTF-8 text$"):
        read_text(f, "users file", Boom)
    with pytest.raises(Boom, match=r"\(byte 2\); expected JSON$"):
        read_text(f, "users file", Boom, expect="expected JSON")
    assert read_bytes(f, "users file", Boom) == b"ab\xffc"
    f.write_bytes("\ufeffhé".encode())
    assert read_text(f, "users file", Boom) == "hé"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions that bind")
def test_unreadable(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text("a = 1\n")
    f.chmod(0)
    with pytest.raises(Boom, match="x.toml: cannot read site config: Permission denied"):
        read_text(f, "site config", Boom)


def test_labels_file_that_is_a_folder_is_an_error_naming_it(tmp_path):
    # Was an IsADirectoryError traceback (load_labels read with Path.read_text and caught only a missing file).
    with pytest.raises(ValueError, match="is a folder, not a labels file"):
        load_labels(tmp_path)
    (tmp_path / "l.json").write_bytes(b"\xff[]")
    with pytest.raises(ValueError, match=r"l\.json: not UTF-8 text \(byte 0\)"):
        load_labels(tmp_path / "l.json")


def test_alerts_file_lines(tmp_path):
    f = tmp_path / "a.jsonl"
    # A byte-order mark is accepted (as for events and configs; it was 'line 1: not JSON'), lines end in
    # \n, \r\n or \r, and U+2028 inside a message is not a line break.
    rows = [dict(ALERT, message="one\u2028two"), dict(ALERT, meter_id="M2")]
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(rows[0], ensure_ascii=False).encode() + b"\r\n\n"
                  + json.dumps(rows[1]).encode() + b"\r")
    got = read_jsonl(f)
    assert [(a.meter_id, a.message) for a in got] == [("M1", "one\u2028two"), ("M2", "m")]
    f.write_bytes(json.dumps(ALERT).encode() + b"\n\n{\n")
    with pytest.raises(ValueError, match=r"a\.jsonl: line 3: not JSON"):
        read_jsonl(f)
    with pytest.raises(ValueError, match="is a folder, not an alerts file"):
        read_jsonl(tmp_path)


def test_events_file(tmp_path):
    with pytest.raises(ValueError, match="no such events file"):
        load_events(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="is a folder, not an events file"):
        load_events(tmp_path)
