"""Hostile alert text (issue 12): one log line per alert whatever the meter id, literal id
prefixes, strict JSON."""

from __future__ import annotations

import json

import pytest

from wattwatch.alerts import store as alert_store
from wattwatch.alerts.model import Alert
from wattwatch.store import Store


def _alert(meter="M1", start="2025-01-06T10:00:00Z", message="neutral current missing", **kw) -> Alert:
    return Alert(meter, start, "2025-01-06T12:00:00Z", "ERR_IMBAL_LIMIT_EXCEEDED", "critical", 0.9, "neutral_tamper",
                 message, kw.pop("evidence", {}), **kw)


@pytest.mark.parametrize("meter", ["M1\n2025-01-06T00:00:00Z ERR_FAKE M9 forged", "M1\r\nx", "M1\x1b[2J", "M1\u2028x",
                                   "M1\x00", "M1\x85x", "M1\\nx"])
def test_a_log_line_is_one_line_whatever_the_meter_id(meter):
    line = _alert(meter=meter, message="msg\nwith ERR_FAKE\nlines").log_line()
    assert len(line.splitlines()) == 1, line
    assert not any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 for c in line), repr(line)
    assert "\u2028" not in line


def test_distinct_meter_ids_give_distinct_log_lines():
    # escaping keeps ids apart: a literal backslash-n is not a newline
    assert _alert(meter="M1\\nx").log_line() != _alert(meter="M1\nx").log_line()


def test_alert_json_never_holds_nan():
    a = _alert(evidence={"x": float("nan"), "y": [1.0, float("inf")]})
    a.score = float("nan")

    def no_constant(name):
        raise AssertionError(f"{name} is not JSON")

    d = json.loads(a.to_json(), parse_constant=no_constant)
    assert d["score"] is None and d["evidence"] == {"x": None, "y": [1.0, None]}


@pytest.mark.parametrize("prefix", ["%", "_", "____", "%%", "_%"])
def test_like_wildcards_in_an_id_prefix_are_literal(tmp_path, prefix):
    with Store(tmp_path / "s.duckdb") as s:
        alert_store.upsert(s.con, [_alert()])
        with pytest.raises(KeyError, match="no alert"):
            alert_store.set_status(s.con, prefix, "acknowledged")
        assert alert_store.list_alerts(s.con, "open").shape[0] == 1


def test_a_real_prefix_still_acknowledges(tmp_path):
    a = _alert()
    with Store(tmp_path / "s.duckdb") as s:
        alert_store.upsert(s.con, [a, _alert(start="2025-01-07T10:00:00Z")])
        res = alert_store.set_status(s.con, a.id[:6], "acknowledged")
        assert res["id"] == a.id


def test_an_empty_id_is_refused(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        alert_store.upsert(s.con, [_alert()])
        with pytest.raises(KeyError):
            alert_store.set_status(s.con, "", "cleared")
        assert alert_store.list_alerts(s.con, "open").shape[0] == 1
