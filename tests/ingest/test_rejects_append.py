"""(adv2) The rejects file was rewritten by each run: a user who ran two ingests (or an ingest and then
``detect FILE``, which ingests too, both to ``wattwatch-rejects.csv`` by default) lost the first run's
rejected rows. They are now appended with a ``run`` column (the command's start, UTC), the output says
the path and the run, and ``--help`` says so."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.support.cli import ww


def _bad_file(path: Path, bad_line_value: str) -> Path:
    path.write_text("meter_id,ts,p_kw\n" + "M1,2025-01-06T00:00:00Z,1.0\n"
                    + f"M1,{bad_line_value},1.1\n" + "M1,2025-01-06T02:00:00Z,1.2\n")
    return path


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_second_ingest_appends_its_rejects_and_keeps_the_first_runs(tmp_path: Path):
    a, b = _bad_file(tmp_path / "a.csv", "not-a-time"), _bad_file(tmp_path / "b.csv", "2025-13-45")
    rej, db = tmp_path / "rej.csv", tmp_path / "s.duckdb"
    first = json.loads(ww("ingest", a, "--db", db, "--rejects", rej, "--json").stdout)
    second = ww("ingest", b, "--db", db, "--rejects", rej)
    rows = _rows(rej)
    assert [(Path(r["file"]).name, r["line"], r["field"]) for r in rows] == [("a.csv", "3", "ts"), ("b.csv", "3", "ts")]
    runs = [r["run"] for r in rows]
    assert runs[0] == first["rejects_run"] and runs[0] != runs[1] and all(x.endswith("Z") for x in runs), runs
    # the output names the path, that it is appended to, and this run
    said = " ".join(second.stdout.split())
    assert f"-> {rej} (appended, run {runs[1]})" in said, second.stdout


def test_an_earlier_wattwatchs_rejects_file_keeps_its_rows_and_another_file_is_never_written(tmp_path: Path):
    old = tmp_path / "old.csv"
    old.write_text('file,line,field,reason\nx.csv,7,p_kw,"\'y\' is not a number | M1,2025,y"\n')
    ww("ingest", _bad_file(tmp_path / "a.csv", "never"), "--db", tmp_path / "s.duckdb", "--rejects", old)
    rows = _rows(old)
    assert [(r["file"], r["line"], r["run"]) for r in rows][0] == ("x.csv", "7", "")
    assert len(rows) == 2 and rows[1]["line"] == "3" and rows[1]["run"], rows
    # a file that is not a rejects file (a user's own CSV given by mistake) is not appended to, nor rewritten
    mine = tmp_path / "mine.csv"
    mine.write_text("a,b\n1,2\n")
    r = ww("ingest", _bad_file(tmp_path / "c.csv", "never"), "--db", tmp_path / "t.duckdb", "--rejects", mine,
           check=False)
    assert r.returncode == 1 and "not a wattwatch rejects file" in r.stderr, r.stderr
    assert mine.read_text() == "a,b\n1,2\n"


def test_the_help_of_every_command_that_ingests_says_the_rejects_are_appended():
    import typer

    from wattwatch.app.cli import app

    commands = typer.main.get_command(app).commands
    for cmd in ("ingest", "detect", "fit", "train", "fleet"):
        text = next(p.help for p in commands[cmd].params if p.name == "rejects") or ""
        assert "appended" in text and "earlier runs' rows are kept" in text, (cmd, text)
