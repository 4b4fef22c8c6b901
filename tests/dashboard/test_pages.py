"""Every page of the dashboard in Streamlit's AppTest (the script run in-process, no browser)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from tests.dashboard.conftest import OPERATOR, VIEWER, snapshot

SCRIPT = str(Path(__file__).resolve().parents[2] / "src" / "wattwatch" / "dashboard" / "script.py")


@pytest.fixture
def app(monkeypatch, users_env, store_copy, sim_store, tmp_path):
    """``make(**env)`` -> an AppTest of the dashboard on a copy of the simulated store."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()   # a fresh rate limiter per test
    monkeypatch.setenv("WATTWATCH_DASHBOARD_USERS", users_env)
    monkeypatch.setenv("WATTWATCH_DB", str(store_copy))
    monkeypatch.setenv("WATTWATCH_DASHBOARD_UPLOADS", str(tmp_path / "uploads"))
    for k in ("WATTWATCH_DASHBOARD_READ_ONLY", "WATTWATCH_DASHBOARD_EVENTS", "WATTWATCH_DASHBOARD_GRID",
              "WATTWATCH_DASHBOARD_IDLE_MINUTES", "WATTWATCH_DASHBOARD_USERS_FILE", "WATTWATCH_DASHBOARD_FLEET"):
        monkeypatch.delenv(k, raising=False)

    def make(**env):
        for k, v in env.items():
            monkeypatch.setenv(k, str(v))
        return AppTest.from_file(SCRIPT, default_timeout=60).run()
    return make


def sign_in(at, who):
    at.text_input(key="signin_user").input(who[0])
    at.text_input(key="signin_password").input(who[1])
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def goto(at, page):
    at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [h.value for h in at.header] == [page]
    return at


def frame_with(at, column: str) -> pd.DataFrame:
    """The first table on the page with ``column`` (AppTest keeps no key for a read-only table)."""
    for d in at.dataframe:
        v = d.value
        if column in v.columns or column == getattr(v.index, "name", None):
            return v
    raise AssertionError(f"no table with a {column!r} column")


def button_keys(at) -> set:
    return {b.key for b in at.button}


def test_anonymous_sees_only_the_sign_in(app):
    at = app()
    assert [t.label for t in at.text_input] == ["User", "Password"]
    assert [b.label for b in at.button if not (b.key or "").startswith("ww-preload")] == ["Sign in"]
    assert not at.sidebar.radio and not at.header
    assert all(d.value.empty for d in at.dataframe)                 # only the hidden, empty preload table
    at.text_input(key="signin_user").input(OPERATOR[0])
    at.text_input(key="signin_password").input("not the password")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["wrong user name or password"] and not at.sidebar.radio


def test_fleet_page_ranks_meters_and_filters(app, sim_store):
    at = sign_in(app(), OPERATOR)
    assert [h.value for h in at.header] == ["Fleet"]
    rank = frame_with(at, "open_alerts")
    from wattwatch.dashboard import data

    alerts = data.alerts_frame(sim_store[0])
    assert len(rank) == 5 and rank["open_alerts"].sum() == (alerts["status"] == "open").sum()
    assert rank["open_alerts"].is_monotonic_decreasing
    assert at.get("plotly_chart")                                   # counts over time
    crit = alerts.loc[alerts["severity"] == "critical", "meter_id"].nunique()
    at.multiselect(key="f_sev").set_value(["critical"]).run()
    assert len(frame_with(at, "open_alerts")) == crit
    at.button(key="fleet_open").click().run()                       # open the chosen meter
    assert [h.value for h in at.header] == ["Meter"]


def test_meter_page_shows_channels_spans_evidence_action_and_zoom(app, sim_store):
    from wattwatch.dashboard import data

    alerts = data.alerts_frame(sim_store[0])
    meter = alerts["meter_id"].value_counts().index[0]
    at = goto(sign_in(app(), OPERATOR), "Meter")
    at.selectbox(key="meter_select").set_value(meter).run()
    import json

    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    shaded = [sh for sh in fig["layout"]["shapes"] if sh["type"] == "rect"]
    assert len(shaded) == (alerts["meter_id"] == meter).sum()        # every alert span shaded
    assert "every reading" in " ".join(c.value for c in at.caption) or "binned" in " ".join(c.value for c in at.caption)
    assert at.table and "field" in at.table[0].value.columns        # evidence as a table
    assert any("Recommended action" in m.value for m in at.markdown)
    assert len(frame_with(at, "status_at")) == (alerts["meter_id"] == meter).sum()
    at.selectbox(key="meter_zoom").set_value(1).run()               # zoom to the first alert
    assert not at.exception


def test_operator_acknowledges_from_the_alerts_page(app, store_copy, tmp_path):
    before = snapshot(store_copy)
    audit = tmp_path / "audit.log"
    at = app(WATTWATCH_DASHBOARD_LOG=audit)
    sign_in(at, (OPERATOR[0], "a wrong password"))
    at = goto(sign_in(at, OPERATOR), "Alerts")
    assert {"alerts_acknowledged", "alerts_cleared"} <= button_keys(at)
    target = frame_with(at, "note")["id"].iloc[0]
    at.multiselect(key="a_pick").set_value([target]).run()
    at.text_input(key="alerts_note").input("known: feeder work")
    at.button(key="alerts_acknowledged").click().run()
    assert not at.exception
    after = {a[0]: a for a in snapshot(store_copy)["alerts"]}
    assert after[target][1] == "acknowledged" and after[target][2] == "[olga] known: feeder work"
    assert sum(a[1] != "open" for a in after.values()) == 1 and snapshot(store_copy)["resets"] == before["resets"] + 1
    assert any("1 alert(s) acknowledged" in s.value for s in at.success)
    log = audit.read_text()
    assert "failed sign-in: user='olga'" in log and "signed in: user='olga' role=operator" in log
    assert f"acknowledge by olga: {target} -> acknowledged" in log


def test_viewer_and_read_only_get_no_write_controls(app, store_copy):
    before = snapshot(store_copy)
    for env, who in (({}, VIEWER), ({"WATTWATCH_DASHBOARD_READ_ONLY": "1"}, OPERATOR)):
        at = sign_in(app(**env), who)
        for page in ("Alerts", "Meter", "Data", "Evaluation"):
            goto(at, page)
            assert not button_keys(at) & {"alerts_acknowledged", "alerts_cleared", "meter_acknowledged",
                                          "meter_cleared", "run", "ingest"}, (who, page)
            assert not at.get("file_uploader")
        assert snapshot(store_copy) == before


def test_data_page_runs_detection_with_progress(app, store_copy):
    from wattwatch.alerts import store as alert_store
    from wattwatch.store import Store

    with Store(store_copy) as s:                                   # start from an empty alert list
        s.con.execute("DELETE FROM alerts")
    at = goto(sign_in(app(), OPERATOR), "Data")
    assert "run" in button_keys(at)
    at.multiselect(key="detectors").set_value(["outage", "neutral_tamper"]).run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error
    with Store(store_copy, read_only=True) as s:
        n = len(alert_store.list_alerts(s.con, "all"))
    assert n > 0 and any(f"detection: {n} alert(s)" in s.value for s in at.success)


def test_live_page_refreshes_from_the_store(app, store_copy):
    at = goto(sign_in(app(), OPERATOR), "Live")
    assert {m.label for m in at.metric} >= {"Readings", "Open alerts"}
    assert at.metric[0].value == f"{snapshot(store_copy)['readings']:,}"


def test_live_page_follows_a_watch_status_file(app, tmp_path):
    import json

    st = tmp_path / "status.json"
    st.write_text(json.dumps({"at": "2025-01-01T00:00:00Z", "counters": {"readings": 42, "alerts": 1},
                              "meters": [{"meter_id": "m1", "readings": 42, "last": "2025-01-01T00:00:00Z"}],
                              "open": [{"meter_id": "m1", "code": "SENSOR_FAULT"}], "open_total": 1}))
    at = goto(sign_in(app(WATTWATCH_DASHBOARD_STATUS=st), OPERATOR), "Live")
    assert frame_with(at, "readings")["readings"].iloc[0] == 42
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Readings"] == "42" and metrics["Open alerts"] == "1" and metrics["Meters reporting"] == "1"
    assert "s ago: is `watch` still running?" in " ".join(m.value for m in at.markdown)   # written long ago


def test_live_page_survives_a_garbled_status_file(app, tmp_path):
    import json

    st = tmp_path / "status.json"
    st.write_text(json.dumps({"at": [1], "counters": {"readings": "many", "stored": {"x": 1}}, "meters": "m1",
                              "open": [1, {"meter_id": "m1"}], "open_total": None}))
    at = goto(sign_in(app(WATTWATCH_DASHBOARD_STATUS=st), OPERATOR), "Live")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Readings"] == "0" and metrics["Open alerts"] == "0" and metrics["Meters reporting"] == "0"


def test_live_page_waits_for_the_status_file_without_opening_the_store(app, store_copy, tmp_path):
    from wattwatch.store import Store

    with Store(store_copy):      # as `watch` does while it runs: hold the store's write lock ...
        at = goto(sign_in(app(WATTWATCH_DASHBOARD_STATUS=tmp_path / "live.json"), OPERATOR), "Live")
    # ... the page waits for the status file instead of opening the store
    assert any("waiting for `wattwatch watch` to write" in i.value for i in at.info) and not at.metric


def test_grid_page_draws_topology_penalties_and_decisions(app, tmp_path):
    ts = pd.date_range("2024-06-01", periods=4, freq="5min", tz="UTC")
    iv = pd.DataFrame({"ts": list(ts) * 2, "prosumer": ["P1"] * 4 + ["P3"] * 4,
                       "penalty": [0, 0, 0, 0, 0, 2.0, 9.0, 11.0], "signals": [0] * 7 + [2], "watchers": [2] * 8,
                       "decision": [""] * 7 + ["isolate"], "isolated": [False] * 7 + [True], "d_mwh": 0.0, "f": 0.0})
    pairs = pd.DataFrame({"ts": ts[:2], "watcher": ["P1", "P2"], "prosumer": ["P3", "P3"], "d_mwh": 0.0, "f": 0.0,
                          "p": 0.0})
    iv.to_parquet(tmp_path / "intervals.parquet")
    pairs.to_parquet(tmp_path / "pairs.parquet")
    at = goto(sign_in(app(WATTWATCH_DASHBOARD_GRID=tmp_path), VIEWER), "Grid")
    assert len(at.get("plotly_chart")) == 2
    import json

    nodes = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][1]
    assert "P3 ✕" in nodes["text"] and "P1 ✕" not in nodes["text"]
    dec = frame_with(at, "decision")
    assert list(dec["prosumer"]) == ["P3"] and list(dec["decision"]) == ["isolate"]


def test_evaluation_page_with_labels(app, sim_store):
    from wattwatch import api
    from wattwatch.dashboard import data

    at = goto(sign_in(app(WATTWATCH_DASHBOARD_EVENTS=sim_store[1]), VIEWER), "Evaluation")
    ev = api.evaluate(sim_store[1], data.alerts_objects(data.alerts_frame(sim_store[0])))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Recall"] == f"{ev['recall']:.2f}" and metrics["Precision"] == f"{ev['precision']:.2f}"
    types = frame_with(at, "recall_visible")
    assert set(types["type"]) == set(ev["per_type"])
    conf = frame_with(at, "(none)")
    assert "(none)" in conf.columns


def test_sessions_expire(app):
    at = sign_in(app(WATTWATCH_DASHBOARD_IDLE_MINUTES="5"), OPERATOR)
    assert at.sidebar.radio
    at.session_state["session"].last_seen = time.time() - 301      # idle for 5 min and a second
    at.run()
    assert not at.sidebar.radio and any("expired" in w.value for w in at.warning)


def test_fleet_page_shows_the_fleet_table_when_given(app, tmp_path):
    table = pd.DataFrame({"pod": ["IT001", "IT002", "IT003"], "period": ["2025-01"] * 3,
                          "consensus_rank": [3, 1, 2], "consensus_score": [0.2, 0.9, 0.5]})
    table.to_parquet(tmp_path / "fleet.parquet")
    at = sign_in(app(WATTWATCH_DASHBOARD_FLEET=tmp_path / "fleet.parquet"), VIEWER)
    shown = frame_with(at, "consensus_rank")
    assert list(shown["pod"]) == ["IT002", "IT003", "IT001"]          # ranked as `wattwatch fleet` ranked them
