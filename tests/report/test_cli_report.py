"""`wattwatch report`: sources, bounds and its errors with the CLI's exit codes."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from wattwatch.app.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _doc(path: Path) -> dict:
    """The JSON document embedded in a report, with its channels (their own block)."""
    text = path.read_text()
    block = lambda name: json.loads(gzip.decompress(base64.b64decode(re.search(f"id='{name}'>([^<]+)<", text).group(1))))
    return {**block("ww-data"), "telemetry": block("ww-telemetry")}


def test_report_from_a_store_from_a_file_and_from_both(sim_run, tmp_path):
    db, jsonl = sim_run
    n = sum(1 for _ in open(jsonl))
    r = _run("report", "--db", db, "--out", tmp_path / "a.html")
    assert r.exit_code == 0, r.output
    a = _doc(tmp_path / "a.html")
    assert len(a["alerts"]) == n and a["has_telemetry"] and a["telemetry"] and a["fleet_meters"] == 5
    r = _run("report", "--alerts", jsonl, "--out", tmp_path / "b.html")
    assert r.exit_code == 0, r.output
    b = _doc(tmp_path / "b.html")
    assert not b["has_telemetry"] and not b["telemetry"] and "not available" in b["note"]
    # Both: the alerts of the file, the channels of the store.
    one = next(iter(open(jsonl)))
    (tmp_path / "one.jsonl").write_text(one)
    r = _run("report", "--db", db, "--alerts", tmp_path / "one.jsonl", "--out", tmp_path / "c.html")
    assert r.exit_code == 0, r.output
    c = _doc(tmp_path / "c.html")
    assert len(c["alerts"]) == 1 and list(c["telemetry"]) == [json.loads(one)["meter_id"]]


def test_meters_and_time_bounds(sim_run, tmp_path):
    db, jsonl = sim_run
    alerts = [json.loads(x) for x in open(jsonl)]
    m = alerts[0]["meter_id"]
    r = _run("report", "--db", db, "--meters", m, "--out", tmp_path / "m.html")
    assert r.exit_code == 0, r.output
    d = _doc(tmp_path / "m.html")
    assert {a["meter_id"] for a in d["alerts"]} == {m} and [x["id"] for x in d["meters"]] == [m]
    start = min(a["start"] for a in alerts)
    r = _run("report", "--db", db, "--from", "2024-01-01", "--to", start, "--out", tmp_path / "t.html")
    assert r.exit_code == 1 and "no alerts" in r.stderr and "--from/--to" in r.stderr


def test_errors_name_what_is_wrong(sim_run, tmp_path):
    db, jsonl = sim_run
    out = tmp_path / "x.html"
    cases = [
        (("--db", tmp_path / "nope.duckdb"), 2, "no such store"),
        (("--alerts", tmp_path / "nope.jsonl"), 2, "no such alerts file"),
        (("--db", db, "--meters", "NOPE,ALSO"), 2, "unknown meter(s) NOPE, ALSO"),
        (("--db", db, "--from", "tomorrow-ish"), 2, "cannot read 'tomorrow-ish' as a time"),
        (("--db", db, "--from", "2025-02-01", "--to", "2025-01-01"), 2, "is not before --to"),
        (("--db", db, "--from", "9999-01-01"), 2, "out of range"),
        (("--alerts", jsonl, "--out", jsonl), 2, "would"),
    ]
    for args, code, text in cases:
        r = _run("report", *args, *(() if "--out" in args else ("--out", out)))
        assert r.exit_code == code, (args, r.output)
        assert text in r.stderr, (args, r.stderr)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"meter_id": "M1"}\n')
    r = _run("report", "--alerts", bad, "--out", out)
    assert r.exit_code == 2 and "line 1" in r.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = _run("report", "--alerts", empty, "--out", out)
    assert r.exit_code == 1 and "no alerts" in r.stderr
    assert not out.exists()


def test_bench_report_prints_size_open_time_and_the_floor(tmp_path):
    import os
    import subprocess
    import sys

    import pytest

    import wattwatch
    from wattwatch.app.bench import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (install it with `bash scripts/system-deps.sh`)")
    # Its own process: the bench starts its own Playwright, which cannot run beside the session's.
    env = {**os.environ, "PYTHONPATH": str(Path(wattwatch.__file__).parents[1])}
    r = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "bench", "report", "--meters", "30", "--days", "3",
                        "--alerts", "20", "--cadence-s", "3600", "--repeats", "1", "--workdir", str(tmp_path), "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    x = json.loads(r.stdout)
    assert x["errors"] == [] and x["evidence_tables"] == 20
    assert 0 < x["plotly_bytes"] < x["bytes"] and x["open_s"] > 0 and x["floor_open_s"] > 0 and x["meter_s"] > 0


def test_without_sources_it_reads_the_default_store_or_says_what_to_give(sim_run, tmp_path, monkeypatch):
    import shutil

    db, _ = sim_run
    monkeypatch.chdir(tmp_path)
    r = _run("report", "--out", "r.html")
    assert r.exit_code == 2 and "give --db STORE or --alerts FILE" in r.stderr
    shutil.copy(db, tmp_path / "wattwatch.duckdb")
    r = _run("report")
    assert r.exit_code == 0, r.output
    assert _doc(tmp_path / "report.html")["has_telemetry"]


def test_a_report_to_a_fifo_is_written_into_it_not_put_in_its_place(tmp_path, monkeypatch):
    """rev54: ``--out`` a FIFO (or ``/dev/stdout``, a link to one) passes the CLI's check (it exists
    and is writable), and the report was written to a temporary file renamed over it: the FIFO
    (as root, /dev/stdout itself) replaced by a regular file, the reader left waiting. Like
    ``--out`` of detect and the score table, a destination that is not a regular file is written in
    place."""
    import os
    import stat
    import threading

    from wattwatch.report import html

    monkeypatch.setattr(html, "fit", lambda *a, **k: "<html>report</html>")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    assert html.write(fifo, None) == fifo
    reader.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got == ["<html>report</html>"]
