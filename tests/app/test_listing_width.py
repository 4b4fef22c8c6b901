"""`alerts list` and `state list` in a pipe or a file: Rich laid the table out at 80 columns and
wrapped every cell into fragments ("WAR…", "Mouse_health…" for two meters, an alert's message one
word a line over 20 lines). There each row is now one line, ids, meters and codes whole."""
from __future__ import annotations

from pathlib import Path

from tests.support.cli import ww


def test_alerts_and_state_lists_are_one_line_a_row_when_piped(tmp_path: Path, monkeypatch):
    # (rfh) Rich takes stdout for a terminal under FORCE_COLOR or TTY_COMPATIBLE (a CI may set them):
    # this is the pipe's layout, whatever the environment the tests run in.
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    from wattwatch.alerts import store as alert_store
    from wattwatch.alerts.model import Alert
    from wattwatch.store import Store

    meters = ("Mouse_health_Justin", "Mouse_health_Modesto")
    csv = tmp_path / "t.csv"
    csv.write_text("meter_id,ts,p_kw\n" + "".join(f"{m},2025-01-06T{h:02d}:00:00Z,{1 + h / 10}\n"
                                                 for m in meters for h in range(24)))
    db = tmp_path / "s.duckdb"
    ww("ingest", csv, "--db", db)
    ww("fit", "--db", db, "--detectors", "packet_loss")
    alerts = [Alert(m, "2025-01-06T10:00:00Z", "2025-01-06T12:00:00Z", "WARN_CONSUMPTION_ANOMALY", "warning", 0.8,
                    "seasonal_profile", f"p_kw: 3 readings off profile over 2.0 h on {m} (worst 283 vs 613 expected)")
              for m in meters]
    with Store(db) as s:
        alert_store.upsert(s.con, alerts)
    out = ww("alerts", "list", "--db", db).stdout
    for a in alerts:
        row = next(line for line in out.splitlines() if a.id in line)
        assert a.meter_id in row and "WARN_CONSUMPTION_ANOMALY" in row and "2025-01-06T10:00:00.000Z" in row
        assert f"on {a.meter_id} (worst 283" in row
    out = ww("state", "list", "--db", db).stdout
    for m in meters:
        assert any(m in line and "packet_loss" not in line and "fit" in line for line in out.splitlines()), out


def test_the_ingest_summary_names_each_file_whole_when_piped(tmp_path: Path, monkeypatch):
    # (rfh) `ingest`'s table in a pipe was laid out at 80 columns: "household_power_consumpt…"
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    csv = tmp_path / "household_power_consumption_sceaux_2006_12_16_to_2007_01_04_one_minute.csv"
    csv.write_text("meter_id,ts,p_kw\n" + "".join(f"m,2025-01-06T{h:02d}:00:00Z,{1 + h / 10}\n" for h in range(24)))
    out = ww("ingest", csv, "--db", tmp_path / "s.duckdb").stdout
    row = next(line for line in out.splitlines() if csv.name in line)
    assert "24" in row, out


def test_evaluate_names_each_fault_type_and_code_whole_when_piped(tmp_path: Path, monkeypatch):
    # (adv) `evaluate`, `demo` and `bench quality` printed their tables at 80 columns in a pipe (a CI log,
    # `make demo > log`): "theft_under_r…", "WARN_FIRMWAR…", and a third line for the second expected code.
    import json

    from wattwatch.alerts.model import Alert

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    events = [{"meter_id": "M-1", "type": "theft_under_registration", "start": "2025-01-14T14:05:00Z",
               "end": "2025-01-17T00:45:00Z", "code": "WARN_CONSUMPTION_ANOMALY", "expect_alert": True, "detail": {}},
              {"meter_id": "M-2", "type": "partial_earth_return", "start": "2025-01-14T10:00:00Z",
               "end": "2025-01-14T12:00:00Z", "code": "ERR_IMBAL_LIMIT_EXCEEDED", "expect_alert": True, "detail": {}}]
    (tmp_path / "events.json").write_text(json.dumps(events))
    alerts = [Alert("M-1", "2025-01-15T00:00:00Z", "2025-01-16T00:00:00Z", "WARN_CONSUMPTION_ANOMALY", "warning",
                    0.8, "seasonal_profile", "under-registration"),
              Alert("M-2", "2025-01-14T10:00:00Z", "2025-01-14T12:00:00Z", "ERR_IMBAL_LIMIT_EXCEEDED", "critical",
                    0.9, "neutral_tamper", "earth return")]
    (tmp_path / "alerts.jsonl").write_text("".join(json.dumps(a.to_dict()) + "\n" for a in alerts))
    out = ww("evaluate", "--events", tmp_path / "events.json", "--alerts", tmp_path / "alerts.jsonl").stdout
    for e in events:
        row = next((line for line in out.splitlines() if e["type"] in line), None)
        assert row is not None, out
        assert "1.00" in row and e["code"] in row, out


def test_an_ingest_that_read_no_file_prints_its_error_and_no_empty_table(tmp_path: Path):
    # (adv) a new user's first `ingest` of a file without a time column got an empty boxed table on
    # stdout (header, no row) beside the error that said why.
    csv = tmp_path / "no_time.csv"
    csv.write_text("meter_id,p_kw\nm1,1.0\n")
    r = ww("ingest", csv, "--db", tmp_path / "s.duckdb", check=False)
    assert r.returncode == 1 and "no column maps to ts" in r.stderr
    assert r.stdout.strip() == "", r.stdout
    ok = tmp_path / "ok.csv"
    ok.write_text("meter_id,ts,p_kw\nm1,2025-01-06T00:00:00Z,1.0\n")
    r = ww("ingest", csv, ok, "--db", tmp_path / "s.duckdb", check=False)   # the file read keeps its row
    assert r.returncode == 1 and "ok.csv" in r.stdout and "no_time.csv" not in r.stdout


def test_a_narrow_terminal_folds_a_long_name_and_cuts_none(monkeypatch):
    # (adv) `make demo` in an 80-column terminal: its evaluation table read "theft_under_r…", "WARN_FIRMWAR…".
    import io

    from rich.console import Console
    from rich.table import Table

    from wattwatch.app import cli

    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=40, force_terminal=True, color_system=None))
    table = Table("event type", "events", "expected code")
    table.add_row("theft_under_registration", "2", "WARN_CONSUMPTION_ANOMALY")
    cli._print_listing(table)
    text = out.getvalue()
    assert "…" not in text, text
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.count("│") == 4)
    codes = "".join(line.split("│")[3].strip() for line in text.splitlines() if line.count("│") == 4)
    assert cells == "theft_under_registration" and codes == "WARN_CONSUMPTION_ANOMALY", text


def test_a_narrow_terminal_cuts_a_number_or_an_id_visibly_and_never_splits_it(monkeypatch):
    # (radv) folded, a reading count "1,234,567" read "1,23" over "4,56" over "7" and meter "M-00004" read
    # "M-0000" over "4" (another meter); a value is shown whole or cut with "…", on one line. Names fold.
    import io

    from rich.console import Console
    from rich.table import Table

    from wattwatch.app import cli

    values = ["1,234,567", "M-00004", "6b6a09f09897e55f", "2025-01-11T11:19:59.571Z", "0.074"]
    for width in (40, 60):
        out = io.StringIO()
        monkeypatch.setattr(cli, "console", Console(file=out, width=width, force_terminal=True, color_system=None))
        table = Table("read", "meter", "id", "start", "base rate", "event type", "code")
        table.add_row(*values, "theft_under_registration", "ERR_PHASE_IMBALANCE_01")
        cli._print_listing(table)
        rows = [line.split("│")[1:-1] for line in out.getvalue().splitlines() if line.startswith("│")]
        for i, value in enumerate(values):
            shown = [r[i].strip() for r in rows if r[i].strip()]
            assert len(shown) == 1 and (shown[0] == value or value.startswith(shown[0].rstrip("…"))
                                        and shown[0].endswith("…")), (value, out.getvalue())
        assert "".join(r[5].strip() for r in rows) == "theft_under_registration", out.getvalue()
        assert "".join(r[6].strip() for r in rows) == "ERR_PHASE_IMBALANCE_01", out.getvalue()
