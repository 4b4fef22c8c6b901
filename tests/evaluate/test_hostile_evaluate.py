"""Hostile labels (issue 12): malformed events.json and NAB corpora are clear errors naming the
file, the event or key and the field; NAB label keys cannot reach outside --data or --out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from wattwatch.app.cli import app
from wattwatch.evaluate.events import evaluate, load_events

GOOD = {"meter_id": "M1", "type": "open_ct", "start": "2025-01-06T10:00:00Z", "end": "2025-01-06T12:00:00Z"}


def _events(tmp_path: Path, doc, raw: str | None = None) -> Path:
    p = tmp_path / "events.json"
    p.write_text(raw if raw is not None else json.dumps(doc))
    return p


@pytest.mark.parametrize("doc, raw, words", [
    (None, "not json at all", ["not JSON", "line 1"]),
    (None, "", ["not JSON"]),
    ({"meter_id": "M1"}, None, ["expected a JSON list"]),
    ("events", None, ["expected a JSON list"]),
    (42, None, ["expected a JSON list"]),
    ([GOOD, 5], None, ["event 1", "expected an object"]),
    ([GOOD, {"meter_id": "M1", "type": "open_ct"}], None, ["event 1", "missing", "end", "start"]),
    ([{**GOOD, "start": None}], None, ["event 0", "start"]),
    ([{**GOOD, "end": None}], None, ["event 0", "end"]),
    ([GOOD, {**GOOD, "start": "2025-01-07T00:00:00Z", "end": "2025-01-06T00:00:00Z"}], None,
     ["event 1", "before start"]),
    ([{**GOOD, "start": 1736157600}], None, ["event 0", "start", "time"]),
    ([{**GOOD, "start": "yesterday-ish"}], None, ["event 0", "start", "not a time"]),
    ([{**GOOD, "meter_id": 7}], None, ["event 0", "meter_id"]),
    ([{**GOOD, "type": ["open_ct"]}], None, ["event 0", "type"]),
    ([{**GOOD, "detail": "x"}], None, ["event 0", "detail"]),
    (None, '[{"meter_id": "M1", "type": "open_ct", "start": NaN, "end": "2025-01-06"}]', ["NaN"]),
    (None, "[" * 100_000, ["events.json"]),
])
def test_malformed_events_files_are_refused_naming_file_event_and_field(tmp_path, doc, raw, words):
    path = _events(tmp_path, doc, raw)
    with pytest.raises(ValueError) as err:
        load_events(path)
    msg = str(err.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg


def test_evaluate_rejects_reversed_and_null_times_given_in_memory():
    with pytest.raises(ValueError, match="event 0: end"):
        evaluate([{**GOOD, "end": "2025-01-06T00:00:00Z"}], [])
    with pytest.raises(ValueError, match="event 0: start"):
        evaluate([{**GOOD, "start": None}], [])


def test_naive_event_times_are_utc_and_compare_with_alerts(tmp_path):
    from wattwatch.alerts.model import Alert

    ev = [{**GOOD, "start": "2025-01-06T10:00:00", "end": "2025-01-06T12:00:00"}]
    a = Alert("M1", "2025-01-06T10:30:00Z", "2025-01-06T11:00:00Z", "WARN_CT_FAULT", "warning", 1.0, "sensor_fault",
              "m")
    from wattwatch.codes import FAULT_CODES

    a.code = FAULT_CODES["open_ct"]
    assert evaluate(ev, [a])["recall"] == 1.0


def test_evaluate_cli_malformed_events_is_a_clear_error(tmp_path):
    path = _events(tmp_path, [{**GOOD, "start": None}])
    alerts = tmp_path / "a.jsonl"
    alerts.write_text("")
    res = CliRunner().invoke(app, ["evaluate", "--events", str(path), "--alerts", str(alerts)])
    assert res.exit_code == 2 and res.exception is None or isinstance(res.exception, SystemExit)
    assert "event 0" in res.stderr and "start" in res.stderr


def test_evaluate_json_is_strict_json_without_nan(tmp_path):
    # Only a normal event: recall, precision and the like are undefined (NaN in Python).
    path = _events(tmp_path, [{**GOOD, "type": "motor_start"}])
    alerts = tmp_path / "a.jsonl"
    alerts.write_text("")
    res = CliRunner().invoke(app, ["evaluate", "--events", str(path), "--alerts", str(alerts), "--json"])
    assert res.exit_code == 0, res.output

    def no_constant(name):
        raise AssertionError(f"{name} in --json output: not JSON")

    doc = json.loads(res.stdout, parse_constant=no_constant)
    assert doc["recall"] is None and doc["precision"] is None


@pytest.mark.parametrize("line, words", [
    ("not json", ["line 1", "not JSON"]),
    ("[1, 2]", ["line 1", "JSON object"]),
    ('{"meter_id": "M1"}', ["line 1", "missing"]),
    ('{"meter_id": "M1", "start": null, "end": "2025-01-06", "code": "C", "severity": "info", "score": 1, '
     '"detector": "d", "message": "m"}', ["line 1", "start"]),
    ('{"meter_id": "M1", "start": "garbage", "end": "2025-01-06", "code": "C", "severity": "info", "score": 1, '
     '"detector": "d", "message": "m"}', ["line 1", "start", "not a time"]),
])
def test_malformed_alert_files_name_the_line(tmp_path, line, words):
    from wattwatch.alerts.model import read_jsonl

    p = tmp_path / "a.jsonl"
    p.write_text(line + "\n")
    with pytest.raises(ValueError) as err:
        read_jsonl(p)
    for w in words:
        assert w in str(err.value), str(err.value)


# ------------------------------------------------------------------------------------ NAB


def _nab(root: Path, labels, files: dict[str, str] | None = None, raw_labels: str | None = None) -> Path:
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(raw_labels if raw_labels is not None else json.dumps(labels))
    for key, text in (files or {}).items():
        p = root / "data" / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def _series(n: int = 200) -> str:
    ts = pd.date_range("2014-01-01", periods=n, freq="5min")
    v = np.sin(np.arange(n) / 10.0) + 5
    return "timestamp,value\n" + "".join(f"{t:%Y-%m-%d %H:%M:%S},{x:.4f}\n" for t, x in zip(ts, v))


@pytest.mark.parametrize("key", ["../outside/x.csv", "cat/../../outside/x.csv", "/ABS/outside/x.csv",
                                 "cat\\..\\..\\outside\\x.csv", "cat//x.csv", "./cat/x.csv"])
def test_nab_label_keys_outside_data_are_refused(tmp_path, key):
    from wattwatch.evaluate.nab.corpus import NabError, load_corpus

    outside = tmp_path / "outside" / "x.csv"
    outside.parent.mkdir()
    outside.write_text(_series())
    key = key.replace("/ABS", str(tmp_path))
    root = _nab(tmp_path / "nab", {key: []})
    (root / "data").mkdir(exist_ok=True)
    with pytest.raises(NabError) as err:
        load_corpus(root)
    assert "label key" in str(err.value) and "combined_windows.json" in str(err.value)


def test_nab_run_writes_nothing_outside_out(tmp_path):
    outside = tmp_path / "outside" / "x.csv"
    outside.parent.mkdir()
    outside.write_text(_series())
    root = _nab(tmp_path / "nab", {"../../outside/x.csv": [], "cat/y.csv": []}, {"cat/y.csv": _series()})
    out = tmp_path / "deep" / "out"
    res = CliRunner().invoke(app, ["nab", "run", "--detector", "window_novelty", "--data", str(root), "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "label key" in res.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "window_novelty" in p.name]
    assert not written, written


def test_nab_data_symlinked_outside_is_refused(tmp_path):
    from wattwatch.evaluate.nab.corpus import NabError, load_corpus

    outside = tmp_path / "secret.csv"
    outside.write_text(_series())
    root = _nab(tmp_path / "nab", {"cat/x.csv": []})
    (root / "data" / "cat").mkdir(parents=True)
    (root / "data" / "cat" / "x.csv").symlink_to(outside)
    with pytest.raises(NabError, match="outside"):
        load_corpus(root)


@pytest.mark.parametrize("labels, raw, files, words", [
    (None, "{not json", {}, ["combined_windows.json", "not JSON"]),
    (["cat/x.csv"], None, {}, ["combined_windows.json", "expected an object"]),
    ({}, None, {}, ["lists no data files"]),
    ({"cat/x.csv": []}, None, {}, ["x.csv", "missing"]),
    ({"cat/x.csv": "all"}, None, {"cat/x.csv": _series()}, ["cat/x.csv", "list of [start, end]"]),
    ({"cat/x.csv": [["2014-01-01 00:00:00"]]}, None, {"cat/x.csv": _series()}, ["window 0", "[start, end]"]),
    ({"cat/x.csv": [["soon", "later"]]}, None, {"cat/x.csv": _series()}, ["window 0", "not a pair of times"]),
    ({"cat/x.csv": [["2014-01-01 05:00:00", "2014-01-01 01:00:00"]]}, None, {"cat/x.csv": _series()},
     ["window 0", "before start"]),
    ({"cat/x.csv": [["2014-01-01 00:01:00", "2014-01-01 01:00:00"]]}, None, {"cat/x.csv": _series()},
     ["window 0", "does not start and end"]),
    ({"cat/x.csv": []}, None, {"cat/x.csv": ""}, ["x.csv", "empty"]),
    ({"cat/x.csv": []}, None, {"cat/x.csv": "a,b\n1,2\n3,4\n"}, ["x.csv", "timestamp,value"]),
    ({"cat/x.csv": []}, None, {"cat/x.csv": "timestamp,value\n2014-01-01 00:00:00,1\nnot a time,2\n"},
     ["x.csv", "line 3", "timestamp"]),
    ({"cat/x.csv": []}, None, {"cat/x.csv": "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,abc\n"},
     ["x.csv", "line 3", "value"]),
    ({"cat/x.csv": []}, None, {"cat/x.csv": 'timestamp,value\n2014-01-01 00:00:00,"1\n'}, ["x.csv"]),
    ({"cat/x.csv": []}, None, {"cat/x.csv": "timestamp,value\n2014-01-01 00:00:00,1\n"}, ["x.csv", "at least 2"]),
])
def test_nab_corpus_faults_are_clear_errors(tmp_path, labels, raw, files, words):
    root = _nab(tmp_path / "nab", labels, files, raw)
    res = CliRunner().invoke(app, ["nab", "run", "--data", str(root), "--out", str(tmp_path / "out")])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, res.output
    err = res.stderr.replace("\n", "")
    for w in words:
        assert w in err, err


def test_nab_bad_profiles_and_results_are_clear_errors(tmp_path):
    root = _nab(tmp_path / "nab", {"cat/x.csv": []}, {"cat/x.csv": _series()})
    (root / "config").mkdir()
    (root / "config" / "profiles.json").write_text('{"standard": {"CostMatrix": {"tpWeight": "x"}}}')
    res = CliRunner().invoke(app, ["nab", "score", "--data", str(root), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "profiles.json" in res.stderr.replace("\n", ""), res.output
    (root / "config" / "profiles.json").unlink()
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["nab", "run", "--data", str(root), "--out", str(out)]).exit_code == 0
    (out / "final_results.json").write_text("[1, 2")
    res = CliRunner().invoke(app, ["nab", "score", "--data", str(root), "--out", str(out)])
    assert res.exit_code == 2 and "final_results.json" in res.stderr.replace("\n", ""), res.output
    (out / "final_results.json").unlink()
    f = out / "window_novelty" / "cat" / "window_novelty_x.csv"
    f.write_text("timestamp,value\n")
    res = CliRunner().invoke(app, ["nab", "score", "--data", str(root), "--out", str(out)])
    assert res.exit_code == 2 and "window_novelty_x.csv" in res.stderr.replace("\n", ""), res.output
