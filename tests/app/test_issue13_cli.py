"""Issue 13 (items 3-6): one output model, the alert lifecycle, CLI conventions, severity filters.

Each test fails on 83dfb55 (run with ``PYTHONPATH=<old>/src``: ``ww`` runs that tree's CLI app in the test
process, tests/support/cli.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest

from tests.support.cli import ww

FIELDS = {"id", "meter_id", "start", "end", "code", "severity", "score", "detector", "message", "evidence", "action",
          "status"}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _outage_csv(path: Path) -> Path:
    """One meter, 3 days at 5 min, a 1-hour loss of supply on the third day."""
    rows = ["meter_id,ts,v_l1_v,i_l1_a,i_n_a,p_kw"]
    t0 = dt.datetime(2025, 1, 6)
    for k in range(3 * 288):
        t = t0 + dt.timedelta(minutes=5 * k)
        out = 2 * 288 + 100 <= k < 2 * 288 + 112
        v = 0.0 if out else 230 + (k % 7) / 10
        i = 0.0 if out else 2 + (k % 13) / 10
        rows.append(f"M1,{t:%Y-%m-%dT%H:%M:%S}Z,{v:.1f},{i:.2f},{i:.2f},{v * i / 1000:.3f}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture()
def outage_store(tmp_path: Path) -> dict:
    csv = _outage_csv(tmp_path / "t.csv")
    db = tmp_path / "s.duckdb"
    ww("ingest", str(csv), "--db", str(db), "--rejects", str(tmp_path / "rej.csv"))
    out = tmp_path / "a.jsonl"
    ww("detect", "--db", str(db), "--detectors", "supply_outage", "--out", str(out))
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    assert [a["code"] for a in alerts] == ["INFO_SUPPLY_OUTAGE"]
    return {"db": db, "out": out, "alerts": alerts, "csv": csv, "dir": tmp_path}


# ------------------------------------------------------------------------------ lifecycle (item 4)


def test_clearing_an_alert_then_detecting_again_raises_no_phantom(outage_store):
    db, tmp = outage_store["db"], outage_store["dir"]
    aid = outage_store["alerts"][0]["id"]
    ww("alerts", "clear", aid, "--db", str(db))
    again = tmp / "b.jsonl"
    ww("detect", "--db", str(db), "--detectors", "supply_outage", "--out", str(again))
    # 83dfb55: "supply lost on all phases for 0 min" at the cleared alert's end, open.
    assert again.read_text() == ""
    assert json.loads(ww("alerts", "list", "--db", str(db), "--json").stdout) == []


def test_ack_or_clear_twice_says_so_and_exits_zero(outage_store):
    db, aid = str(outage_store["db"]), outage_store["alerts"][0]["id"]
    ww("alerts", "ack", aid, "--db", db)
    r = ww("alerts", "ack", aid, "--db", db)
    assert r.returncode == 0 and f"alert {aid} is already acknowledged" in r.stderr and "nothing changed" in r.stderr
    ww("alerts", "clear", aid, "--db", db)
    r = ww("alerts", "clear", aid[:6], "--db", db)
    assert r.returncode == 0 and "already cleared" in r.stderr
    r = ww("alerts", "ack", aid, "--db", db, check=False)
    assert r.returncode != 0 and "already cleared" in r.stderr


def test_detect_files_without_a_store_says_where_the_alerts_are(tmp_path: Path):
    csv = _outage_csv(tmp_path / "t.csv")
    r = ww("detect", str(csv), "--detectors", "supply_outage", "--out", str(tmp_path / "a.jsonl"),
           "--rejects", str(tmp_path / "rej.csv"))
    assert "kept only in" in r.stderr and "a.jsonl" in r.stderr and "--db" in r.stderr
    assert not (tmp_path / "wattwatch.duckdb").exists()


# ---------------------------------------------------------------------------- one output model (3)


def test_jsonl_alerts_list_json_and_log_share_one_model(outage_store):
    db = str(outage_store["db"])
    (jl,) = outage_store["alerts"]
    (listed,) = json.loads(ww("alerts", "list", "--db", db, "--json").stdout)
    assert FIELDS <= set(jl) and FIELDS <= set(listed)
    assert isinstance(listed["evidence"], dict) and listed["evidence"] == jl["evidence"]  # was a JSON string
    for k in ("start", "end"):
        assert ISO_Z.match(listed[k]) and listed[k] == jl[k]  # was "2025-01-08 08:20:00+00:00"
    assert {k: listed[k] for k in FIELDS} == {k: jl[k] for k in FIELDS}
    (line,) = outage_store["out"].with_suffix(".log").read_text().splitlines()
    for what in (jl["id"], jl["severity"], jl["code"], jl["meter_id"], jl["start"], jl["end"], jl["action"]):
        assert what in line
    assert line.startswith(f"{jl['start']} {jl['code']} {jl['meter_id']} ")  # SPEC's <time> <code> <meter> <message>
    # The id in the log acks the alert.
    assert "acknowledged" in ww("alerts", "ack", re.search(r"id ([0-9a-f]{16})", line).group(1), "--db", db).stdout


def test_alerts_table_prints_full_ids_in_a_pipe(outage_store):
    aid = outage_store["alerts"][0]["id"]
    out = ww("alerts", "list", "--db", str(outage_store["db"])).stdout  # captured: not a terminal
    assert aid in out


# ----------------------------------------------------------------------------- CLI conventions (5)


def test_version_and_dash_h_everywhere():
    r = ww("--version")
    assert r.returncode == 0 and re.match(r"wattwatch \S+", r.stdout)
    for cmd in ([], ["detect"], ["alerts"], ["alerts", "list"], ["store", "info"], ["nab", "run"], ["state", "list"],
                ["bench", "detect"], ["detectors"]):
        r = ww(*cmd, "-h")
        assert r.returncode == 0 and "Usage:" in r.stdout, cmd


def test_boolean_options_are_shown_as_flags():
    for cmd in (["alerts", "list"], ["detect"], ["detectors"], ["evaluate"]):
        text = ww(*cmd, "--help").stdout
        assert "--json" in text and "<bool>" not in text, cmd


def test_bad_status_lists_the_valid_ones_and_errors_close_their_quotes(outage_store):
    db = str(outage_store["db"])
    r = ww("alerts", "list", "--db", db, "--status", "bogus", check=False)
    assert r.returncode != 0 and "open, acknowledged, cleared or all" in r.stderr and "(" not in r.stderr
    r = ww("alerts", "ack", "zzzz", "--db", db, check=False)
    assert r.returncode != 0 and "no alert 'zzzz'" in r.stderr


def test_detect_help_states_the_default_detector_set():
    text = " ".join(ww("detect", "--help").stdout.replace("│", " ").split())
    assert "detector names (default: the default set)" in text  # 83dfb55: "(default: all)"


def test_nab_data_default_does_not_depend_on_the_working_folder(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "WATTWATCH_NAB_DIR"}
    import subprocess
    import sys

    code = "from wattwatch.app.cli import _nab_data; print(_nab_data(None))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab"
    if (default / "labels").is_dir():
        assert r.returncode == 0 and Path(r.stdout.strip()).resolve() == default.resolve()
    env["WATTWATCH_NAB_DIR"] = str(tmp_path / "nowhere")
    r = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "nab", "run", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode != 0 and "nowhere" in r.stderr and "--data" in r.stderr and "Traceback" not in r.stderr


def test_detectors_name_shows_one_detector():
    out = ww("detectors", "neutral_tamper").stdout
    assert "ERR_IMBAL_LIMIT_EXCEEDED" in out and "i_n_a" in out and "abs_limit_a" in out and "0.5" in out
    one = json.loads(ww("detectors", "neutral_tamper", "--json").stdout)
    assert one["name"] == "neutral_tamper" and one["params"]["abs_limit_a"] == 0.5 and one["requires"]
    assert one["severity"]["ceiling"] == "critical"
    r = ww("detectors", "crystal_ball", check=False)
    assert r.returncode != 0 and "neutral_tamper" in r.stderr


# ------------------------------------------------------------------------------ severity filters (6)


def test_min_severity_and_min_score_on_detect_and_alerts_list(outage_store):
    db, tmp = str(outage_store["db"]), outage_store["dir"]
    # The only alert is an outage: info.
    assert outage_store["alerts"][0]["severity"] == "info"
    out = tmp / "w.jsonl"
    s = json.loads(ww("detect", "--db", db, "--detectors", "supply_outage", "--out", str(out),
                      "--min-severity", "warning", "--json").stdout)
    assert out.read_text() == "" and s["alerts"] == 0 and s["filtered_out"] == 1
    assert json.loads(ww("alerts", "list", "--db", db, "--json", "--min-severity", "info").stdout)
    assert json.loads(ww("alerts", "list", "--db", db, "--json", "--min-severity", "critical").stdout) == []
    score = outage_store["alerts"][0]["score"]
    assert json.loads(ww("alerts", "list", "--db", db, "--json", "--min-score", str(score)).stdout)
    assert json.loads(ww("alerts", "list", "--db", db, "--json", "--min-score", str(min(1.0, score + 0.001))).stdout) == []
    r = ww("alerts", "list", "--db", db, "--min-severity", "loud", check=False)
    assert r.returncode != 0 and "info, warning, critical" in r.stderr
    r = ww("detect", "--db", db, "--out", str(tmp / "x.jsonl"), "--min-score", "7", check=False)
    assert r.returncode != 0 and "between 0 and 1" in r.stderr


def test_alerts_commands_never_create_a_store(tmp_path: Path):
    # 83dfb55: `alerts list` in a fresh folder printed an empty table and left a wattwatch.duckdb behind.
    for cmd in (["alerts", "list"], ["alerts", "ack", "abc"], ["alerts", "clear", "abc"]):
        r = ww(*cmd, check=False, cwd=tmp_path)
        assert r.returncode != 0 and "no such store" in r.stderr and "ingest" in r.stderr, cmd
    assert list(tmp_path.iterdir()) == []
