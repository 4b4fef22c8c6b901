"""Progress that says what is happening: stages (learning each detector, training a fleet model,
judging) reported through the API's callbacks and drawn on a terminal; silence in pipes."""

from __future__ import annotations

import io
import os
from pathlib import Path

from rich.console import Console

from tests.app.test_cli import ww
from wattwatch import api
from wattwatch.app.progress import Stages, stages

RULES = ["supply_outage", "neutral_tamper", "packet_loss"]


def test_detect_reports_its_stages_and_the_readings_judged(small_fleet):
    calls = []
    done = []
    res = api.detect(small_fleet["files"]["parquet"], detectors=RULES,
                     on_stage=lambda text, total: calls.append((text, total)), on_progress=done.append)
    texts = [t for t, _ in calls]
    # Every detector's learning is announced as it starts, then the judging with its total.
    for i, name in enumerate(RULES):
        assert any(t.startswith(f"learning {name} on 12 meter(s) ({i + 1}/{len(RULES)}") for t in texts), texts
    judging = [(t, n) for t, n in calls if t.startswith("judging 12 meter(s) with 3 detector(s)")]
    assert judging and judging[-1][1] == sum(done) > 0
    assert res.readings <= sum(done)  # the reach around a window is judged too (here: none)


def test_fit_announces_fleet_model_training(small_fleet, tmp_path: Path):
    calls = []
    api.fit(small_fleet["files"]["parquet"], detectors=["isolation_forest"], keep=False,
            on_stage=lambda text, total: calls.append(text))
    assert calls[0].startswith("reading the normal period of 12 meter(s)")
    assert any(t.startswith("training isolation_forest on 12 meter(s)") and "300 s grid" in t for t in calls), calls


def test_stages_are_drawn_on_a_terminal(small_fleet):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=150)
    with stages("detect", console=console) as st:
        api.detect(small_fleet["files"]["parquet"], detectors=RULES, on_stage=st.stage, on_progress=st.advance)
    out = buf.getvalue()
    assert "detect: learning neutral_tamper on 12 meter(s)" in out and "detect: judging 12 meter(s)" in out
    # The judging stage ends complete: every reading counted.
    text, total, n, _ = st.history[-1]
    assert text.startswith("judging") and n == total > 0


def test_stages_without_a_terminal_record_but_draw_nothing():
    st = Stages("x")
    st.stage("one", 10)
    st(4)
    st.advance(6)
    st.stage("two")
    assert [h[:3] for h in st.history] == [["one", 10, 10], ["two", None, 0]]


def test_cli_progress_shows_stages_when_forced_and_stays_quiet_in_pipes(small_fleet, tmp_path: Path):
    args = ("detect", small_fleet["files"]["parquet"], "--out", str(tmp_path / "a.jsonl"), "--detectors", ",".join(RULES))
    quiet = ww(*args)
    assert "judging" not in quiet.stderr
    env = {**os.environ, "WATTWATCH_PROGRESS": "1"}
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", *args], capture_output=True, text=True, env=env,
                       check=True)
    assert "detect: learning supply_outage on 12 meter(s)" in r.stderr and "detect: judging 12 meter(s)" in r.stderr


def test_store_compact_shows_its_steps_when_forced_and_prints_only_its_result_in_pipes(small_fleet, tmp_path: Path):
    import subprocess
    import sys

    runs = {}
    for forced in ("0", "1"):
        db = tmp_path / f"s{forced}.duckdb"
        ww("ingest", small_fleet["files"]["parquet"], "--db", str(db))
        env = {**os.environ, "WATTWATCH_PROGRESS": forced}
        runs[forced] = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "store", "compact", "--db", str(db),
                                       "--older-than-days", "2", "--as-of", "2025-01-10T00:00:00Z"],
                                      capture_output=True, text=True, env=env, check=True)
    quiet, shown = runs["0"], runs["1"]
    assert quiet.stdout == shown.stdout and quiet.stdout.startswith("compacted ") and quiet.stderr == ""
    for step in ("aggregating the readings before 2025-01-08T00:00:00Z", "removing the compacted raw readings",
                 "committing", "checkpointing"):
        assert f"compact: {step}" in shown.stderr, shown.stderr
