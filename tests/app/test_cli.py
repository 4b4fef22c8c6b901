"""The command line end to end, as a user (or a script) runs it. ``ww`` runs a real ``python -m
wattwatch.app.cli`` process (other modules import it for that); ``here`` runs the same Typer app in
this process (``tests.support.cli.ww``: stdout, stderr and the exit status kept apart), for checks
of what a command says and does rather than how a process starts, which saves a Python start-up and
the imports (~1.5 s on CI) per call (tt11). Each behaviour only a process shows keeps one: the
package's ``python -m`` entry (every command registered), the demo's output in a pipe (no
terminal codes), and an ``ingest --json`` that does DuckDB work (its stdout is the JSON alone:
nothing a library prints to the process's fd 1 mixed in)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.support.cli import ww as here


def ww(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wattwatch.app.cli", *args], capture_output=True, text=True,
                          check=check, cwd=cwd)


def test_simulate_ingest_info_compact(tmp_path: Path):
    out = tmp_path / "fleet"
    r = here("simulate", str(out), "--meters", "5", "--days", "2", "--seed", "4")
    assert "simulated 5 meters" in r.stdout
    assert (out / "telemetry.parquet").exists() and (out / "telemetry.csv").exists()
    events = json.loads((out / "events.json").read_text())
    assert all({"meter_id", "type", "start", "end"} <= set(e) for e in events)

    db = tmp_path / "s.duckdb"
    r = ww("ingest", str(out), "--db", str(db), "--json")  # a folder: its telemetry files (a real process)
    files = json.loads(r.stdout)["files"]
    assert [Path(f["source"]).name for f in files] == ["telemetry.csv", "telemetry.parquet"]
    assert files[1]["stored"] == 0 and files[1]["duplicates"] == files[1]["read"]

    info = json.loads(here("store", "info", "--json", "--db", str(db)).stdout)
    frame = pd.read_parquet(out / "telemetry.parquet")
    assert info["meters"] == 5
    assert info["readings"] == files[0]["stored"]
    assert pd.Timestamp(info["first"]) == frame.ts.min() and pd.Timestamp(info["last"]) == frame.ts.max()

    c = json.loads(here("store", "compact", "--db", str(db), "--older-than-days", "1",
                      "--as-of", info["last"], "--json").stdout)
    assert c["readings_compacted"] > 0
    after = json.loads(here("store", "info", "--json", "--db", str(db)).stdout)
    assert after["readings"] == info["readings"] - c["readings_compacted"] and after["hourly_rows"] > 0


def test_simulate_rejects_bad_arguments(tmp_path: Path):
    r = here("simulate", str(tmp_path / "x"), "--faults", "gremlins", check=False)
    assert r.returncode != 0 and "unknown fault type" in r.stderr


def test_store_info_on_a_missing_store_is_a_clear_error(tmp_path: Path):
    r = here("store", "info", "--db", str(tmp_path / "nope.duckdb"), check=False)
    assert r.returncode != 0 and "no such store" in r.stderr


def test_demo_runs_offline_and_quietly_in_a_pipe(tmp_path: Path):
    r = ww("demo", "--out", str(tmp_path / "demo"), "--meters", "8", "--days", "3")
    assert "wattwatch demo" in r.stdout and "ingest" in r.stdout
    assert "\x1b[" not in r.stderr  # no progress bar escape codes outside a terminal
    assert (tmp_path / "demo" / "wattwatch.duckdb").exists()


def test_bench_ingest_prints_rates_and_ratios(tmp_path: Path):
    r = here("bench", "ingest", "--rows", "20000", "--workdir", str(tmp_path), "--formats", "parquet,csv,wide",
             "--json")
    result = json.loads(r.stdout)
    assert {x["format"] for x in result["results"]} == {"parquet", "csv", "wide"}
    for x in result["results"]:
        assert x["rows"] > 15000 and x["rows_per_s"] > 0 and x["ratio_to_baseline"] > 0 and x["peak_rss_mb"] > 0


def test_bench_stream_streams_the_hours_after_the_profile_day_through_the_engine(tmp_path: Path):
    """`bench stream` and the stream scripts share the simulated fleet's split: the first profile
    day(s) learned, every later reading (once, in arrival order) offered to the engine."""
    import pandas as pd

    from wattwatch.app.benchstream import simulated_stream

    prof, live = simulated_stream(6, 1 + 1 / 24, 1, 60.0, seed=7)
    split = prof["ts"].min() + pd.Timedelta(days=1)
    assert (prof["ts"] < split).all() and (live["ts"] >= split).all() and live["ts"].is_monotonic_increasing
    assert not live.duplicated(["meter_id", "ts"]).any() and 6 * 55 <= len(live) <= 6 * 60
    # one rate with --hours: the whole stream offered at it (never stopped: --max-backlog-s 0)
    r = here("bench", "stream", "--meters", "6", "--hours", "1", "--rate", "20000", "--max-backlog-s", "0",
             "--workdir", str(tmp_path), "--json")
    result = json.loads(r.stdout)
    (w,) = result["windows"]
    assert w["readings"] == len(live) and w["steps"] >= 1 and w["readings_per_cpu_s"] > 0
    assert w["offered_per_s"] == 20000 and w["reading_latency_ms"]["p99"] > 0 and w["kept_up"] in (True, False, None)
    assert set(result["tiers"]) >= {"fast", "slow"} and result["river"] and w["ratio_to_river"] > 0
    assert result["state_bytes_per_meter"] > 0 and result["checkpoint_bytes_per_meter"] > result["carry_bytes_per_meter"]
    # (rbs) its final alerts (after a flush) are detect's on the same readings with the same learned
    # state, whatever the steps' split (the new alerts reported during the run are not)
    from wattwatch import api
    from wattwatch.app.benchstream import alerts_digest

    cfg = {"engine": {"profile_days": 1}}
    api.ingest(prof, tmp_path / "profile.duckdb")
    fitted = api.fit(tmp_path / "profile.duckdb", days=1, config=cfg)
    want = api.detect(pd.concat([prof, live], ignore_index=True), state=fitted, config=cfg).alerts
    assert len(want) >= 3 and result["alerts_final"] == len(want)
    assert result["alerts_final_digest"] == alerts_digest(want)


def test_bench_learned_scores_the_same_rows_as_the_library(tmp_path: Path):
    r = here("bench", "learned", "--rows", "20000", "--detectors", "isolation_forest,pca_reconstruction", "--json")
    result = json.loads(r.stdout)
    got = {x["detector"]: x for x in result["results"]}
    assert set(got) == {"isolation_forest", "pca_reconstruction"}
    for x in got.values():
        assert x["rows"] == result["rows"] > 15000
        assert x["ours_rows_per_s"] > 0 and x["library_rows_per_s"] > 0 and x["ratio"] > 0
        assert x["features_rows_per_s"] > 0 and 0 < x["end_to_end_rows_per_s"] < x["ours_rows_per_s"]
        assert x["load_bytes"] > 0 and x["load_s"] > 0 and x["pickle_load_s"] >= 0 and x["load_ratio"] >= 0
    # The same forest (same rows, seed, trees) on the same scaled rows: ours is the library's
    # score through a monotone calibration (flat below the lowest training score), so the two
    # rank the rows alike.
    assert got["isolation_forest"]["rank_correlation"] > 0.95


def test_bench_detect_reports_the_rule_set_and_the_default_set(tmp_path: Path):
    # 40 meters x 3.5 days: the profiling period (~70 meter-days) is enough for the engine to train
    # the ensemble's fleet model, so the default run really includes it.
    r = here("bench", "detect", "--rows", "40000", "--repeats", "1", "--workdir", str(tmp_path), "--json")
    x = json.loads(r.stdout)
    assert x["readings"] > 35000 and x["meters"] == 40
    assert "learned_ensemble" not in x["rules"] and "neutral_tamper" in x["rules"]
    assert x["readings_per_s"] > 0 and x["floor_readings_per_s"] > 0 and x["peak_rss_mb"] > 0
    assert x["default_readings_per_s"] > 0 and x["default_alerts"] >= x["alerts"]
    assert x["default_not_run"] == []


def test_python_m_runs_every_registered_command():
    # `python -m wattwatch.app.cli` ran a second copy of the module without the commands other modules
    # register on import: "No such command 'quality'".
    for argv in (["bench", "quality", "--help"], ["edge", "--help"], ["bench", "quality-real", "--help"]):
        r = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (argv, r.stderr[-500:])


def test_ingest_of_a_folder_without_telemetry_is_an_error_naming_it(tmp_path: Path):
    """A folder stands for its data files; one that holds files but none of them telemetry by name
    was ingested as nothing with exit 0, nothing said and a new empty store made: now an error. An
    empty folder (a scheduled ingest's drop folder on a day nothing arrived) is a note, exit 0."""
    empty, texts, data = tmp_path / "empty", tmp_path / "texts", tmp_path / "data"
    for d in (empty, texts, data):
        d.mkdir()
    (texts / "readings.txt").write_text("meter_id,ts,p_kw\nM1,2025-01-06T00:00:00Z,1\n")
    (data / "a.csv").write_text("meter_id,ts,p_kw\nM1,2025-01-06T00:00:00Z,1\nM1,2025-01-06T00:05:00Z,1\n")
    (data / "notes.txt").write_text("hello\n")
    db = tmp_path / "s.duckdb"
    r = here("ingest", str(empty), "--db", str(db), "--json", check=False)
    assert r.returncode == 0 and "holds no files, nothing to ingest" in r.stderr and str(empty) in r.stderr
    assert json.loads(r.stdout)["files"] == [] and json.loads(r.stdout)["errors"] == []
    assert not db.exists()   # nothing to ingest: no store made
    r = here("ingest", str(texts), "--db", str(db), check=False)
    assert r.returncode == 1 and "no telemetry files in this folder" in r.stderr and "readings.txt" in r.stderr
    assert not db.exists()
    r = here("ingest", str(texts), str(data), "--db", str(db), "--json", check=False)
    assert r.returncode == 1   # the other folder's file is ingested, the empty one is an error
    out = json.loads(r.stdout)
    assert [f["stored"] for f in out["files"]] == [2]
    assert len(out["errors"]) == 1 and "readings.txt" in out["errors"][0] and str(texts) in out["errors"][0]
    assert "skipped 1 file(s) that are not telemetry by their name: notes.txt" in r.stderr


def test_ingest_of_a_header_only_file_says_it_held_no_rows(tmp_path: Path):
    """A CSV header without rows, a Parquet file of no rows: ingested as nothing, exit 0 (an empty
    day's export), but said; the table's zeros were all a user saw."""
    (tmp_path / "h.csv").write_text("meter_id,ts,p_kw\n")
    pd.DataFrame({"meter_id": pd.Series([], dtype=str), "ts": pd.Series([], dtype="datetime64[ns, UTC]"),
                  "p_kw": pd.Series([], dtype=float)}).to_parquet(tmp_path / "e.parquet")
    r = here("ingest", str(tmp_path / "h.csv"), str(tmp_path / "e.parquet"), "--db", str(tmp_path / "s.duckdb"))
    assert r.returncode == 0
    for name in ("h.csv", "e.parquet"):
        assert f"{name}: no rows to read" in r.stderr.replace("\n", "")
