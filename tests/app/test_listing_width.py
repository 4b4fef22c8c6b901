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
