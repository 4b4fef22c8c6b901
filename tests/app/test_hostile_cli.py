"""Hostile and careless command lines (issue 12): user text never read as Rich markup, a typo'd
--db never creates a store, outputs that cannot be written are clear errors that say what is
kept, configs are checked key by key, no numpy warning reaches the terminal."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import wattwatch
from wattwatch.app.cli import app

HEADER = ["meter_id", "ts", "v_l1_v", "i_l1_a", "i_n_a", "p_kw", "e_kwh"]


def _csv(path: Path, meters=("M1", "M2"), hours=24, bad_rows=0) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for m in meters:
            for h in range(hours):
                v = "-5" if h < bad_rows else "230"
                w.writerow([m, f"2025-01-06T{h:02d}:00:00Z", v, "2.0", "2.0", "0.45", f"{100 + 0.45 * h:.2f}"])
    return path


def _is_device(path: str) -> bool:
    import stat

    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def _run(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), \
        f"{args}: {type(res.exception).__name__}: {res.exception}"
    return res


def _err(res) -> str:
    return res.stderr.replace("\n", "")


def _store_with_alerts(tmp_path: Path, meters: tuple[str, ...]) -> tuple[Path, list]:
    from wattwatch.alerts import store as alert_store
    from wattwatch.alerts.model import Alert
    from wattwatch.store import Store

    db = tmp_path / "s.duckdb"
    assert _run("ingest", _csv(tmp_path / "t.csv", meters), "--db", db).exit_code == 0
    alerts = [Alert(m, "2025-01-06T10:00:00Z", "2025-01-06T12:00:00Z", "ERR_IMBAL_LIMIT_EXCEEDED", "critical", 0.9,
                    "neutral_tamper", f"[bold]neutral[/] of {m}") for m in meters]
    with Store(db) as s:
        alert_store.upsert(s.con, alerts)
    return db, alerts


MARKUP_IDS = ("[/bold]M1", "[red]M2[/red]", "M3[/]", "[link=file:///etc/passwd]M4")


def test_markup_in_meter_ids_is_printed_as_text_by_alerts_list_ack_and_clear(tmp_path, monkeypatch):
    from wattwatch.app import cli

    monkeypatch.setattr(cli.console, "width", 300)  # cells in full
    db, alerts = _store_with_alerts(tmp_path, MARKUP_IDS)
    res = _run("alerts", "list", "--db", db)
    assert res.exit_code == 0, res.output
    for m in ("[/bold]M1", "[red]M2[/red]", "M3[/]"):
        assert m in res.stdout, res.stdout
    res = _run("alerts", "ack", alerts[0].id, "--db", db)
    assert res.exit_code == 0 and "[/bold]M1" in res.stdout, res.output
    res = _run("alerts", "clear", alerts[1].id[:8], "--db", db)
    assert res.exit_code == 0 and "[red]M2[/red]" in res.stdout, res.output
    res = _run("state", "show", "[/bold]M1", "--db", db)
    assert res.exit_code == 2 and "[/bold]M1" in _err(res)


def test_a_newline_in_a_meter_id_cannot_forge_table_rows_or_log_lines(tmp_path):
    db, alerts = _store_with_alerts(tmp_path, ("M1\nFORGED ROW",))
    res = _run("alerts", "list", "--db", db)
    assert res.exit_code == 0
    assert not any(line.strip().startswith("FORGED") for line in res.stdout.splitlines()), res.stdout


def test_a_db_path_with_markup_does_not_crash_ingest_after_its_commit(tmp_path):
    (tmp_path / "[").mkdir()
    db = tmp_path / "[" / "b]s.duckdb"
    res = _run("ingest", _csv(tmp_path / "t.csv"), "--db", db)
    assert res.exit_code == 0, res.output
    assert "[/b]s.duckdb" in res.stdout.replace("\n", "")
    assert _run("detect", "--db", db, "--out", tmp_path / "[" / "b]a.jsonl", "--detectors", "supply_outage").exit_code == 0


def test_a_file_name_with_markup_is_printed_as_text(tmp_path):
    res = _run("ingest", _csv(tmp_path / "[red]x[bold].csv"), "--db", tmp_path / "s.duckdb")
    assert res.exit_code == 0 and "[red]x[bold].csv" in res.stdout, res.output


@pytest.mark.parametrize("cmd", [
    ["alerts", "list"], ["alerts", "list", "--json"], ["alerts", "ack", "abc"], ["alerts", "clear", "abc"],
    ["state", "list"], ["state", "show", "M1"], ["state", "drop", "M1"], ["detect", "--out", "{tmp}/a.jsonl"],
    ["fit"], ["train", "--out", "{tmp}/models"],
])
def test_a_typo_in_db_never_creates_a_store(tmp_path, cmd):
    db = tmp_path / "typo.duckdb"
    res = _run(*[c.replace("{tmp}", str(tmp_path)) for c in cmd], "--db", db)
    assert res.exit_code != 0, res.output
    assert "no such store" in _err(res), res.output
    assert not db.exists() and not Path(str(db) + ".wal").exists()


def test_a_store_given_as_a_path_must_exist_too(tmp_path):
    res = _run("detect", tmp_path / "nope.duckdb", "--out", tmp_path / "a.jsonl")
    assert res.exit_code == 2 and "no such store" in _err(res)
    assert not (tmp_path / "nope.duckdb").exists()


def test_files_with_an_explicit_db_may_create_it(tmp_path):
    db = tmp_path / "new.duckdb"
    res = _run("detect", _csv(tmp_path / "t.csv"), "--db", db, "--out", tmp_path / "a.jsonl", "--detectors",
               "supply_outage")
    assert res.exit_code == 0, res.output
    assert db.exists()


def test_detect_out_a_folder_is_refused_before_any_work(tmp_path):
    db, _ = _store_with_alerts(tmp_path, ("M1",))
    folder = tmp_path / "outdir"
    folder.mkdir()
    res = _run("detect", "--db", db, "--out", folder, "--detectors", "supply_outage")
    assert res.exit_code == 2 and "is a folder" in _err(res), res.output
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(not _is_device("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_when_writing_out_says_so_and_keeps_the_alerts_in_the_store(tmp_path):
    from wattwatch.alerts import store as alert_store
    from wattwatch.store import Store

    data = _csv(tmp_path / "t.csv", ("M1",))
    db = tmp_path / "s.duckdb"
    assert _run("ingest", data, "--db", db).exit_code == 0
    with open(data, "a", newline="") as fh:  # an outage: alerts to keep
        w = csv.writer(fh)
        for h in range(24, 30):
            w.writerow(["M1", f"2025-01-07T{h - 24:02d}:00:00Z", "0", "0", "0", "0", "110.80"])
        for h in range(30, 40):
            w.writerow(["M1", f"2025-01-07T{h - 24:02d}:00:00Z", "230", "2.0", "2.0", "0.45", "110.80"])
    assert _run("ingest", data, "--db", db).exit_code == 0
    res = _run("detect", "--db", db, "--out", "/dev/full", "--log", tmp_path / "a.log", "--detectors", "supply_outage")
    assert res.exit_code == 1, res.output
    assert "disk is full" in _err(res) and "kept in the store" in _err(res), res.stderr
    with Store(db, read_only=True) as s:
        assert len(alert_store.list_alerts(s.con, "all")) >= 1


@pytest.mark.skipif(not _is_device("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_when_writing_rejects_says_so_and_keeps_the_readings(tmp_path):
    import duckdb

    db = tmp_path / "s.duckdb"
    res = _run("ingest", _csv(tmp_path / "t.csv", ("M1",), bad_rows=2), "--db", db, "--rejects", "/dev/full")
    assert res.exit_code == 1, res.output
    assert "disk is full" in _err(res) and "were stored and are kept" in _err(res), res.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        # (fld46) the two rows with a voltage of -5 V are kept without it (their other channels are good).
        assert con.execute("SELECT count(*), count(v_l1_v) FROM readings_raw").fetchone() == (24, 22)
    finally:
        con.close()


def test_train_with_negative_days_is_a_clear_error(tmp_path):
    db, _ = _store_with_alerts(tmp_path, ("M1",))
    res = _run("train", "--db", db, "--days", "-1", "--out", tmp_path / "m")
    assert res.exit_code == 2 and "days" in _err(res), res.output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("toml, words", [
    ("[engine]\nprofile_days = -1\n", ["profile_days"]),
    ("[engine]\nprofile_days = \"week\"\n", ["profile_days"]),
    ("[engine]\nmax_trace_days = nan\n", ["max_trace_days"]),
    ("[neutral_tamper]\nabs_limit_a = -0.5\n", ["neutral_tamper", "abs_limit_a", ">= 0"]),
    ("[neutral_tamper]\nabs_limit_a = nan\n", ["abs_limit_a", "finite"]),
    ("[neutral_tamper]\nabs_limit_a = \"high\"\n", ["abs_limit_a", "number"]),
    ("[neutral_tamper.post]\nthreshold = nan\n", ["threshold"]),
    ("[neutral_tamper.post]\nthreshold = -1.0\n", ["threshold"]),
    ("[packet_loss]\nwindow_s = 0\n", ["window_s", "> 0"]),
    ("[baseline_macd]\nuse_register = \"yes\"\n", ["use_register"]),
    ("[thermal_drift]\ntaus_min = [15, -1]\n", ["taus_min"]),
    ("detectors = \"neutral_tamper\"\n", ["detectors"]),
    ("neutral_tamper = 3\n", ["neutral_tamper", "table"]),
    ("colour = \"red\"\n", ["colour"]),
])
def test_bad_detector_and_engine_config_is_refused_naming_the_key(tmp_path, toml, words):
    from wattwatch.detect import registry

    path = tmp_path / "rules.toml"
    path.write_text(toml)
    with pytest.raises(ValueError) as err:
        registry.load_config(path)
    for w in words:
        assert w in str(err.value), str(err.value)
    db, _ = _store_with_alerts(tmp_path, ("M1",))
    res = _run("detect", "--db", db, "--out", tmp_path / "a.jsonl", "--config", path)
    assert res.exit_code == 2 and "rules.toml" in _err(res), res.output


def test_bad_parameters_in_code_are_config_errors_naming_the_key():
    from wattwatch.detect import registry
    from wattwatch.errors import ConfigError

    for params, key in (({"abs_limit_a": -1.0}, "abs_limit_a"), ({"sigma_k": float("nan")}, "sigma_k"),
                        ({"post": {"threshold": float("inf")}}, "threshold"), ({"post": 5}, "post")):
        with pytest.raises(ConfigError, match=key):
            registry.build("neutral_tamper", params)


def test_numpy_warnings_never_reach_the_terminal(tmp_path):
    # Meters with no load, no channels or a single reading: 0/0 and all-NaN slices inside.
    path = tmp_path / "weird.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["meter_id", "ts", "v_l1_v", "i_l1_a", "p_kw", "e_kwh", "temp_c"])
        for i in range(300):
            t = f"2025-01-{6 + (i * 5) // 1440:02d}T{((i * 5) // 60) % 24:02d}:{(i * 5) % 60:02d}:00Z"
            w.writerow(["Z1", t, "230", "0", "0", "100", "20"])
            w.writerow(["Z2", t, "230", "", "", "", ""])
            w.writerow(["Z3", t, "0", "0", "0", "0", "0"])
        w.writerow(["ONE", "2025-01-06T00:00:00Z", "230", "1", "0.2", "5", "20"])
    env = {**os.environ, "PYTHONPATH": str(Path(wattwatch.__file__).parents[1]), "PYTHONWARNINGS": "default"}
    db = tmp_path / "z.duckdb"
    for args in (["ingest", str(path), "--db", str(db)], ["detect", "--db", str(db), "--out", str(tmp_path / "z.jsonl")]):
        res = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", *args], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=300)
        assert res.returncode == 0, res.stderr
        assert "Warning" not in res.stderr and "Traceback" not in res.stderr, res.stderr


@pytest.mark.parametrize("args, words", [
    (["detect", "--out", "{tmp}/a.jsonl", "--start", "9999-01-01"], ["--start", "out of range"]),
    (["detect", "--out", "{tmp}/a.jsonl", "--end", "0001-01-01"], ["--end", "out of range"]),
    (["fit", "--normal-start", "9999-01-01"], ["--normal-start", "out of range"]),
    (["fit", "--days", "inf"], ["--days", "finite"]),
    (["train", "--out", "{tmp}/t.csv"], ["not a folder"]),
])
def test_times_out_of_range_and_odd_outputs_are_clear_errors(tmp_path, args, words):
    db, _ = _store_with_alerts(tmp_path, ("M1",))
    res = _run(*[a.replace("{tmp}", str(tmp_path)) for a in args], "--db", db)
    assert res.exit_code == 2, res.output
    for w in words:
        assert w in _err(res), res.stderr


@pytest.mark.parametrize("args, words", [
    (["bench", "ingest", "--rows", "-1"], ["--rows"]),
    (["bench", "detect", "--rows", "0"], ["--rows"]),
    (["bench", "learned", "--rows", "2000", "--detectors", "nope"], ["nope"]),
    (["evaluate", "--events", "{tmp}/e.json", "--alerts", "{tmp}/a.jsonl", "--tolerance-s", "1e300"], ["tolerance"]),
])
def test_bench_and_evaluate_arguments_are_checked(tmp_path, args, words):
    (tmp_path / "e.json").write_text('[{"meter_id": "M1", "type": "open_ct", "start": "2025-01-06", "end": "2025-01-07"}]')
    (tmp_path / "a.jsonl").write_text("")
    res = _run(*[a.replace("{tmp}", str(tmp_path)) for a in args], *(
        ["--workdir", str(tmp_path / "b")] if args[:2] in (["bench", "ingest"], ["bench", "detect"]) else []))
    assert res.exit_code == 2, res.output
    for w in words:
        assert w in _err(res), res.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("args", [
    ["detect", "{csv}", "--out", "{csv}"], ["detect", "{csv}", "--out", "{tmp}/a.jsonl", "--log", "{csv}"],
    ["detect", "{csv}", "--db", "{db}", "--out", "{tmp}/a.jsonl", "--scores", "{csv}"],
    ["detect", "{csv}", "--db", "{db}", "--out", "{db}"], ["detect", "--db", "{db}", "--out", "{db}"],
    ["detect", "{csv}", "--db", "{db}", "--out", "{tmp}/a.jsonl", "--rejects", "{csv}"],
    ["detect", "{csv}", "--db", "{db}", "--out", "{tmp}/a.jsonl", "--rejects", "{db}"],
    ["fit", "{csv}", "--db", "{db}", "--rejects", "{db}"], ["ingest", "{csv}", "--db", "{db}", "--rejects", "{csv}"],
    ["ingest", "{csv}", "--db", "{db}", "--rejects", "{db}"],
])
def test_outputs_never_overwrite_the_store_or_an_input(tmp_path, args):
    data = _csv(tmp_path / "t.csv", ("M1",), bad_rows=2)
    db = tmp_path / "s.duckdb"
    assert _run("ingest", data, "--db", db, "--rejects", tmp_path / "r.csv").exit_code == 0
    before = {p: p.read_bytes() for p in (data, db)}
    res = _run(*[a.replace("{csv}", str(data)).replace("{db}", str(db)).replace("{tmp}", str(tmp_path)) for a in args])
    assert res.exit_code == 2, res.output
    assert "would" in _err(res), res.stderr
    assert all(p.read_bytes() == b for p, b in before.items())


def test_report_titles_show_meter_ids_as_text(tmp_path):
    from wattwatch import api
    from wattwatch.alerts.model import Alert

    m = '<a href="https://example.invalid">M1</a>'
    a = Alert(m, "2025-01-06T01:00:00Z", "2025-01-06T02:00:00Z", "C", "info", 1.0, "d", "<b>x</b>")
    text = api.report(tmp_path / "r.html", alerts=[a]).read_text()
    # User text travels only as data and the page sets it as text (tests/report/test_browser.py
    # checks the page in Chromium): no markup of it in the file.
    assert "<b>x</b>" not in text and "<a href" not in text.lower()


def test_terminal_control_characters_in_user_text_are_shown_as_escapes(tmp_path):
    db, _ = _store_with_alerts(tmp_path, ("M1",))
    res = _run("state", "show", "M\x1b[2J\x07X", "--db", db)
    assert res.exit_code == 2
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr and "\\x1b[2J" in res.stderr, repr(res.stderr)


def test_warnings_are_notes_without_source_lines(tmp_path):
    root = tmp_path / "nab"
    (root / "labels").mkdir(parents=True)
    (root / "data" / "c").mkdir(parents=True)
    (root / "labels" / "combined_windows.json").write_text('{"c/x.csv": []}')
    (root / "data" / "c" / "x.csv").write_text("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,2\n")
    env = {**os.environ, "PYTHONPATH": str(Path(wattwatch.__file__).parents[1]), "PYTHONWARNINGS": "default"}
    res = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "nab", "run", "--data", str(root), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "note: window_novelty" in res.stderr and "Warning" not in res.stderr and ".py:" not in res.stderr, res.stderr


def test_a_simulated_fleet_folder_is_detected_without_reading_its_labels(tmp_path):
    from wattwatch.sim import SimConfig, simulate

    simulate(SimConfig(meters=2, days=1, step="1h", seed=1), tmp_path / "fleet", formats=("csv",))
    res = _run("detect", tmp_path / "fleet", "--out", tmp_path / "a.jsonl", "--rejects", tmp_path / "r.csv",
               "--detectors", "supply_outage", "--json")
    assert res.exit_code == 0, res.output


def test_a_detector_named_twice_runs_once(tmp_path):
    data = tmp_path / "t.csv"
    data.write_text("meter_id,ts,v_l1_v,i_l1_a,i_n_a,p_kw\n" + "".join(
        f"M1,2025-01-06T{h:02d}:00:00Z,{0 if 4 <= h < 8 else 230},{0 if 4 <= h < 8 else 2},2,0.4\n" for h in range(14)))
    res = _run("detect", data, "--out", tmp_path / "a.jsonl", "--detectors", "supply_outage,supply_outage", "--json")
    assert res.exit_code == 0, res.output
    assert '"alerts": 1' in res.stdout, res.stdout


def test_a_failed_first_ingest_leaves_no_store_and_a_failed_later_one_keeps_it(tmp_path):
    # (m1s) `ingest empty.csv --db new.duckdb` exited 1 and left an empty store file behind, which
    # `store info` / `detect` then read as a site without readings.
    empty, db = tmp_path / "empty.csv", tmp_path / "new.duckdb"
    empty.write_bytes(b"")
    res = _run("ingest", empty, "--db", db, "--rejects", tmp_path / "r.csv")
    assert res.exit_code == 1 and "empty file" in _err(res), res.output
    assert not db.exists() and not Path(str(db) + ".wal").exists()
    res = _run("ingest", _csv(tmp_path / "t.csv"), empty, "--db", db, "--rejects", tmp_path / "r.csv")
    assert res.exit_code == 1 and db.exists(), res.output      # one file stored: the store stays


def test_a_failed_first_ingest_keeps_a_store_another_process_opened_since(tmp_path):
    # (rm1s) `watch` waits for a store's lock (create=True): it may open the file a failed first
    # ingest made the moment the ingest closes it. Unlinked then, its readings would be lost.
    from wattwatch import api
    from wattwatch.app.cli import _remove_new_store

    db = tmp_path / "new.duckdb"
    api.open_store(db, create=True).close()
    held = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                             "print('open', flush=True); sys.stdin.read()", str(db)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "open"
        _remove_new_store(db)
        assert db.exists()
    finally:
        held.communicate("", timeout=60)
    _remove_new_store(db)
    assert not db.exists() and not Path(str(db) + ".wal").exists()
