"""detect, evaluate and alerts on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import ww


def test_detect_files_then_store_evaluate_and_lifecycle(tmp_path: Path, small_fleet):
    files = small_fleet["files"]
    out = tmp_path / "a.jsonl"
    # Files straight in (an in-memory store), exit 0, JSONL plus the human log.
    r = ww("detect", files["csv"], "--out", str(out), "--json", "--rejects", str(tmp_path / "rej.csv"))
    summary = json.loads(r.stdout)
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["alerts"] == len(alerts) > 0 and summary["readings"] > 0
    assert {"meter_id", "start", "end", "code", "severity", "score", "detector", "message", "evidence"} <= set(alerts[0])
    log = out.with_suffix(".log").read_text().splitlines()
    assert len(log) == len(alerts) and log[0].split(" ")[1] == alerts[0]["code"]

    ev = json.loads(ww("evaluate", "--events", files["events"], "--alerts", str(out), "--json").stdout)
    assert ev["alerts"] == len(alerts) and 0 <= ev["precision"] <= 1 and "per_type" in ev

    # The same through a store: alerts are kept, a re-run adds none.
    db = tmp_path / "s.duckdb"
    ww("ingest", files["parquet"], "--db", str(db))
    first = json.loads(ww("detect", "--db", str(db), "--out", str(tmp_path / "b.jsonl"), "--json").stdout)
    again = json.loads(ww("detect", str(db), "--out", str(tmp_path / "c.jsonl"), "--json").stdout)
    assert first["stored"]["new"] == first["alerts"] and again["stored"]["new"] == 0
    listed = json.loads(ww("alerts", "list", "--db", str(db), "--json").stdout)
    assert len(listed) == first["alerts"]
    target = listed[0]["id"]
    assert "acknowledged" in ww("alerts", "ack", target, "--db", str(db), "--note", "known").stdout
    assert "cleared" in ww("alerts", "clear", target[:8], "--db", str(db)).stdout
    statuses = {a["id"]: a["status"] for a in json.loads(ww("alerts", "list", "--db", str(db), "--status", "all", "--json").stdout)}
    assert statuses[target] == "cleared"
    assert ww("alerts", "ack", "nope", "--db", str(db), check=False).returncode != 0


def test_detect_exits_zero_without_alerts_and_nonzero_on_bad_input(tmp_path: Path):
    quiet = tmp_path / "quiet.csv"
    # Varying a little, as real readings do (identical readings all day would be a frozen meter).
    rows = "".join(f"M1,2025-01-01T{h:02d}:{m:02d}:00Z,{230 + (h * 12 + m) % 7 / 10:.1f},{2 + m / 100:.2f},{1.99 + m / 100:.2f}\n"
                   for h in range(24) for m in range(0, 60, 5))
    quiet.write_text("meter_id,ts,v_l1_v,i_l1_a,i_n_a\n" + rows)
    r = ww("detect", str(quiet), "--out", str(tmp_path / "q.jsonl"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["alerts"] == 0
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x00\x01binary" * 50)
    r = ww("detect", str(junk), "--out", str(tmp_path / "j.jsonl"), check=False)
    assert r.returncode != 0 and "junk.csv" in r.stderr
    r = ww("detect", str(quiet), "--detectors", "crystal_ball", "--out", str(tmp_path / "x.jsonl"), check=False)
    assert r.returncode != 0 and "unknown detector" in r.stderr


def test_names_with_brackets_are_printed_as_they_are(tmp_path: Path, small_fleet):
    """Paths and meter ids are the user's text, not Rich markup: ``[b]`` must not vanish."""
    d = tmp_path / "[b]site"
    d.mkdir()
    db = d / "s.duckdb"
    ww("ingest", small_fleet["files"]["parquet"], "--db", str(db))
    out = ww("fit", "--db", str(db), "--detectors", "neutral_tamper").stdout
    assert "[b]site" in out.replace("\n", "")
    listed = ww("state", "list", "--db", str(db)).stdout
    assert "[b]site" in listed.replace("\n", "").replace(" ", "")


def test_a_file_whose_every_row_is_rejected_exits_non_zero(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("meter_id,ts,p_kw\nM1,2025-01-06T00:00:00Z,abc\nM1,2025-01-06T00:05:00Z,xyz\n")
    good = tmp_path / "good.csv"
    good.write_text("meter_id,ts,p_kw\nM1,2025-01-06T00:00:00Z,1.5\n")
    r = ww("ingest", str(bad), str(good), "--db", str(tmp_path / "s.duckdb"), "--rejects", str(tmp_path / "r.csv"),
           check=False)
    assert r.returncode == 1 and "nothing usable read from" in r.stderr and "bad.csv" in r.stderr
    assert "good.csv" not in r.stderr.split("nothing usable")[1]
