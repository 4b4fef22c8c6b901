"""(adv2) A new user's reading of ``--help``: what each text left them to guess."""
from __future__ import annotations

import typer

from wattwatch.app.cli import app


def _option_help(cmd: str, name: str) -> str:
    command = typer.main.get_command(app).commands[cmd]
    return " ".join((next(p.help for p in command.params if p.name == name) or "").split())


def test_the_store_detect_fit_and_train_read_by_default_is_named():
    # `wattwatch ingest x.csv` then `wattwatch detect` reads wattwatch.duckdb; --db's help said only "Store to read"
    for cmd in ("detect", "fit", "train"):
        assert "default, when no file is given: wattwatch.duckdb" in _option_help(cmd, "db"), cmd
    assert "kept only in --out" in _option_help("detect", "db")


def test_watch_demo_says_how_long_to_run_it():
    # `watch --demo --duration 60` ended with every meter still learning and no alert: the help gave no time
    text = _option_help("watch", "demo")
    assert "first 60 s" in text and "70-100 s" in text and "--duration 180" in text, text
    from wattwatch.devices.demo import SCHEDULE, Demo

    # the help's figures are the demo's own (a changed schedule or profile span must change the help)
    import inspect

    assert inspect.signature(Demo).parameters["profile_s"].default == 60.0
    assert (min(t for t, *_ in SCHEDULE), max(t for t, *_ in SCHEDULE)) == (70, 100)


def test_store_compact_warns_of_an_imported_history():
    # counted from now, `store compact` on last year's export compacted every raw reading; the help did not say so
    command = typer.main.get_command(app).commands["store"].commands["compact"]
    doc = " ".join((command.help or "").split())
    assert "imported history" in doc and "give --as-of" in doc, doc
    assert "every reading of last year's export is compacted" in " ".join(
        next(p.help for p in command.params if p.name == "as_of").split())
    assert next(p.help for p in command.params if p.name == "older_than_days")


def test_the_mapping_help_shows_a_mapping_that_works(tmp_path):
    # `--mapping` said "TOML column mapping." and nothing of what one holds; its example must ingest as it reads
    import re

    from tests.support.cli import ww

    text = _option_help("ingest", "mapping").replace("\\[", "[")
    for cmd in ("detect", "fit", "train", "fleet"):
        assert _option_help(cmd, "mapping").replace("\\[", "[").startswith(text[:-1]), cmd
    parts = re.split(r"\[(\w+)\] ", text.split(";")[0])[1:]
    toml = "\n".join(f"[{sec}]\n" + "\n".join(kv.strip() for kv in re.sub(r"\s*\([^)]*\)", "", body).strip(", ").split(", "))
                     for sec, body in zip(parts[::2], parts[1::2]))
    assert '[columns]\nts = "Zeit"\np_kw = "P_W"' in toml and 'timezone = "Europe/Rome"' in toml, toml
    (tmp_path / "map.toml").write_text(toml)
    f = tmp_path / "x.csv"
    f.write_text("Zeit,P_W\n2025-03-03 10:00:00,1500\n2025-03-03 10:15:00,1600\n")
    r = ww("ingest", f, "--db", tmp_path / "s.duckdb", "--mapping", tmp_path / "map.toml", "--json")
    assert '"stored": 2' in r.stdout, r.stdout + r.stderr
    from wattwatch.store.duck import Store

    with Store(tmp_path / "s.duckdb", read_only=True) as st:
        got = st.con.execute("SELECT meter_id, strftime(ts AT TIME ZONE 'UTC', '%H:%M'), p_kw FROM readings "
                             "ORDER BY ts").fetchall()
    assert got == [("M1", "09:00", 1.5), ("M1", "09:15", 1.6)], got   # Rome is UTC+1 in March


def test_fit_days_says_how_many_days_the_default_is():
    # "default: [engine] profile_days" left a new user to find that setting's value
    from wattwatch.detect.engine import EngineConfig

    days = EngineConfig().profile_days
    assert f"profile_days of --config, {days:g} days" in _option_help("fit", "days").replace("\\[", "[")
