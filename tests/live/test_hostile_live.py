"""(adv41) An adversarial pass over `wattwatch watch` as a new user would run it: what a hostile or
broken source sends, and config mistakes, each shown by a test that failed before its fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store


def _day(meter: str, start: str = "2026-11-01", days: float = 1.0) -> pd.DataFrame:
    ts = pd.date_range(start, periods=int(days * 96), freq="15min", tz="UTC")
    return pd.DataFrame({"meter_id": meter, "ts": ts, "p_kw": 5.0 + np.sin(np.arange(len(ts)) / 8.0)})


@pytest.mark.parametrize("bad_ts", ["1970-01-01T00:00:00Z", "2199-01-01T00:00:00Z"])
def test_a_reading_rejected_for_its_time_does_not_move_the_meters_span(tmp_path, bad_ts):
    # A meter clock reset to 1970 (or a year-2199 typo) is rejected by the ingest, but the engine took
    # the meter's first/last time from the batch as sent: a day of readings "spanned" 56 years, the
    # meter was profiled on a window holding nothing and the step raised AttributeError (no state_),
    # which stopped the watcher; the unacknowledged MQTT message did it again at every restart.
    with Store(tmp_path / "s.duckdb") as store:
        eng = StreamEngine(store, api.build_detectors(["supply_outage", "frozen_readings"]), None, StreamConfig())
        try:
            good = _day("m1")
            bad = pd.DataFrame({"meter_id": ["m1"], "ts": pd.to_datetime([bad_ts], utc=True), "p_kw": [5.0]})
            eng.add(pd.concat([good.iloc[:50], bad, good.iloc[50:]], ignore_index=True), source="meters")
            eng.step()
            assert eng.counters["rejected"] == 1 and eng.counters["stored"] == len(good)
            assert "m1" not in eng.profiled          # one day stored: not yet its profile_days (7)
            assert eng.first["m1"] == int(good["ts"].iloc[0].value // 1000)
            assert eng.last["m1"] == int(good["ts"].iloc[-1].value // 1000)
            eng.add(_day("m1", "2026-11-02", 7), source="meters")   # its first week complete: profiled, judged
            eng.step()
            assert "m1" in eng.profiled and eng.counters["judged"] > 0
        finally:
            eng.close()


def test_a_list_message_keeps_its_readable_readings_and_says_which_item_was_not(caplog):
    # A gateway batching 3 meters' readings in one message, one of them broken: before, the whole
    # message was malformed and the two good readings were lost.
    from wattwatch.sources.mqtt import MqttSource

    src = MqttSource("meters", topics=["site/#"])
    body = (b'[{"meter_id": "a", "ts": 1767225600, "p_kw": 1.5}, {"meter_id": "b", "ts": 1767225600, "p_kw": "high"},'
            b' {"meter_id": "c", "ts": 1767225600, "p_kw": 2.5}]')
    rows, bad = src.parse_items("site/gw", body)
    assert [(r["meter_id"], r["p_kw"]) for r in rows] == [("a", 1.5), ("c", 2.5)]
    assert len(bad) == 1 and "item 1: p_kw: 'high' is not a number" in bad[0]
    with pytest.raises(ValueError, match="item 1: p_kw: 'high' is not a number"):
        src.parse("site/gw", body)   # parse(): all or nothing, as before (the message is not all readable)

    class _Msg:
        topic, payload, qos, mid = "site/gw", body, 0, 1

    with caplog.at_level("WARNING", logger="wattwatch.watch"):
        src._on_message(None, None, _Msg())
    assert len(src._rows) == 2 and src.counters["malformed"] == 1 and src.counters["messages"] == 1
    assert "item 1" in caplog.text and "2 of its 3 readings kept" in caplog.text


def test_a_dropped_value_is_logged_with_its_meter_and_time_not_a_batch_row_and_not_for_ever(tmp_path, caplog):
    # A meter whose energy register reads negative. Before, the log said "reading rejected (row 3,
    # e_kwh): ... set [ranges] e_kwh = [low, high] in the mapping" -- a row of an internal batch and a
    # mapping file a site config has no place for -- three lines for every batch. (fld46) The value is
    # dropped, not the reading: pdu7's power is stored (before, nothing of it was, and it looked lost).
    with Store(tmp_path / "s.duckdb") as store:
        eng = StreamEngine(store, api.build_detectors(["supply_outage"]), None, StreamConfig())
        try:
            # 300 minutes in batches of 1 to 20 minutes (the count of what was said runs across
            # batches: a per-batch count said five lines a batch; a batch of one is what a poll gives).
            with caplog.at_level("WARNING", logger="wattwatch.watch"):
                k = 0
                for n in [1, 1, 2, 3] + [20] * 14 + [13]:
                    t = pd.Timestamp("2026-11-01T00:00:00Z") + pd.to_timedelta(np.arange(k, k + n), unit="min")
                    eng.add(pd.DataFrame({"meter_id": ["ok"] * n + ["pdu7"] * n, "ts": t.append(t),
                                          "p_kw": [1.0] * n + [2.0] * n,
                                          "e_kwh": np.r_[10.0 + np.arange(k, k + n), [-5.0] * n]}), source="plant")
                    k += n
                assert k == 300
            lines = [r.getMessage() for r in caplog.records if "kept without a value" in r.getMessage()]
            assert eng.counters["rejected"] == 0 and eng.counters["values_dropped"] == 300
            assert eng.counters["stored"] == 600
            got = store.query("pdu7", columns=["p_kw", "e_kwh"])
            assert len(got) == 300 and (got["p_kw"] == 2.0).all() and got["e_kwh"].isna().all()
            assert "meter 'pdu7' at 2026-11-01 00:00:00" in lines[0] and "e_kwh: -5.0 outside [0," in lines[0]
            assert "mapping" not in lines[0] and "row" not in lines[0] and "[options]" not in lines[0]
            assert 5 <= len(lines) <= 10, len(lines)        # the first five, then every hundredth
            assert "#100" in " ".join(lines)
            # a value dropped inside a batch is named by its own meter and time (the 100th: minute 99)
            assert any("#100 " in x and "meter 'pdu7' at 2026-11-01 01:39:00" in x for x in lines), lines
        finally:
            eng.close()


@pytest.mark.parametrize("override, kw, says", [
    ({"priv_key": "not-the-priv-key"}, {}, "check priv_key and priv_protocol"),
    ({}, {"priv_protocol": "aes256"}, "check priv_key and priv_protocol"),
    ({}, {"auth_protocol": "sha256"}, "check auth_key and auth_protocol"),
    ({"user": "intruder"}, {}, "check user"),
    ({}, {"priv_protocol": "none"}, "check priv_protocol"),
])
def test_snmp_credentials_refused_say_which_key_to_check(caplog, override, kw, says):
    # authPriv failing was named ("auth failure #1: Ciphering services not available or ciphertext is
    # broken") but not which of the four settings a facility engineer should look at.
    from tests.live.test_snmp import KEYS, poll, source
    from wattwatch.devices import snmp as agent

    a = agent.start("pdu1", {"model": "apc_rpdu2", "outlets": 2, "seed": 3, **KEYS})
    try:
        with caplog.at_level("WARNING", logger="wattwatch.watch"):
            f = poll(source((a, override), **kw))
        assert len(f) == 0
        assert "auth failure #1" in caplog.text and says in caplog.text, caplog.text
    finally:
        a.stop()


def test_influx_credentials_or_permissions_refused_are_said_as_such_not_unreachable(tmp_path, caplog):
    # A wrong password (401) or a user without the privilege (403) was logged "InfluxDB unreachable,
    # buffering on disk" and shown "down: buffering": a facility engineer looks at the network.
    import time as _time

    from tests.live.test_influx import _frame
    from tests.support.services import Influxd, free_port, wait_true
    from wattwatch import influx
    from wattwatch.sinks.influx import InfluxSink

    server = Influxd(free_port(), tmp_path / "influxd", http_extra="auth-enabled = true").start()
    try:
        influx.Client(server.url).query("CREATE USER \"admin\" WITH PASSWORD 'a' WITH ALL PRIVILEGES", write=True)
        adm = influx.Client(server.url, user="admin", password="a")
        adm.query("CREATE DATABASE w", write=True)
        adm.query("CREATE USER \"reader\" WITH PASSWORD 'r'", write=True)
        adm.query("GRANT READ ON w TO reader", write=True)
        for user, pw, says in (("admin", "wrong", "refused the credentials"), ("reader", "r", "lacks a privilege")):
            caplog.clear()
            with caplog.at_level("WARNING", logger="wattwatch.watch"):
                s = InfluxSink("tsdb", url=server.url, database="w", buffer=tmp_path / f"buf-{user}", retention="INF",
                               user=user, password=pw, retry_min_s=0.2, retry_max_s=0.3, close_timeout_s=0.5)
                s.readings(_frame(10))
                assert wait_true(lambda: s.counters["retries"] >= 1, 20)
                _time.sleep(0.2)
                status = s.status
                s.close()
            assert "unreachable" not in caplog.text and says in caplog.text, caplog.text
            assert status.startswith("refused"), status
            assert s.view()["backlog"] == 20 and s.counters["dropped"] == 0   # the points wait on disk
    finally:
        server.stop()


def test_the_open_health_alert_of_a_source_taken_out_of_the_config_ends_once_at_the_restart(tmp_path):
    # Known open finding (rev37): a WARN_LINK_SLOW whose whole source was removed from the site config
    # stayed open in the store and in the open count for ever (nothing was left to end it).
    from wattwatch.alerts.model import Alert
    from wattwatch.runners.stream import StepReport, _work
    from wattwatch.sources.replay import ReplaySource

    path = tmp_path / "live.duckdb"
    slow = Alert(meter_id="B", start="2026-11-01T00:00:00.000Z", end="2026-11-01T00:05:00.000Z",
                 code="WARN_LINK_SLOW", severity="warning", score=0.7, detector="modbus_response_time",
                 message="Modbus response time climbed", evidence={"source": "plant", "ended": False})
    cfg = StreamConfig(checkpoint_s=0, slow_thread=False)
    with Store(path) as store:
        eng = StreamEngine(store, api.build_detectors(["supply_outage"]), None, cfg)
        rep = StepReport()
        eng.add_health([slow], rep)
        assert rep.new == [slow.id] and eng.health_open == {slow.id}
        eng.checkpoint()
        eng.close()
    other = ReplaySource("history", _day("m1"), cycle_s=900)   # the site now has only this source
    with Store(path) as store:
        eng = StreamEngine(store, api.build_detectors(["supply_outage"]), None, cfg)
        assert eng.health_open == {slow.id}
        eng.resume_sources([other])
        rep = _work(eng, [], [other])
        assert rep.ended == [slow.id] and eng.health_open == set()
        got = store.con.execute("SELECT evidence FROM alerts WHERE id = ?", [slow.id]).fetchone()[0]
        assert '"ended": true' in got and "no longer in the site config" in got
        assert _work(eng, [], [other]).ended == []          # once
        eng.checkpoint()
        eng.close()
    with Store(path) as store:
        eng = StreamEngine(store, api.build_detectors(["supply_outage"]), None, cfg)
        assert eng.health_open == set()
        eng.close()


def test_a_second_watcher_on_the_same_store_is_told_which_watcher_holds_it(tmp_path, monkeypatch):
    # Before: "cannot open store (not a DuckDB file, damaged, or locked by another process): IO Error: ..."
    # after 15 s, though the store's watcher.json named the running watcher.
    import signal
    import subprocess

    from tests.support.cli import popen
    from tests.support.services import wait_true
    from wattwatch.errors import StoreError
    from wattwatch.runners import control

    _day("m1", days=3).to_csv(tmp_path / "t.csv", index=False)
    cfg = tmp_path / "site.toml"
    cfg.write_text('detectors = ["supply_outage"]\n[store]\npath = "site.duckdb"\n'
                   '[[sources]]\ntype = "replay"\nname = "history"\npath = "t.csv"\nspeed = 60\n')
    p = popen("watch", "--config", cfg, cwd=tmp_path)
    try:
        assert wait_true(lambda: control.watcher(tmp_path / "site.duckdb") is not None, 60), p.poll()
        monkeypatch.setattr(api, "WATCH_LOCK_WAIT_S", 0.5)
        with pytest.raises(StoreError) as e:
            api.watch(cfg)
        assert f"another `wattwatch watch` (pid {p.pid}, started" in str(e.value) and "stop it" in str(e.value), str(e.value)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()


def test_a_modbus_meter_clock_beyond_any_time_is_counted_and_said_not_a_wrapped_integer(caplog):
    # A float64 clock register reading 1e20 s was cast to int64 microseconds (overflow: NumPy's
    # "invalid value encountered in cast"), became NaT and reached the ingest as "ts: missing".
    import asyncio
    import time as _time
    import warnings

    from wattwatch.devices import modbus as dev
    from wattwatch.sources import modbus as mb

    regs = [{"channel": "ts", "table": "holding", "address": 0, "type": "float64"},
            {"channel": "p_kw", "table": "input", "address": 0, "type": "float32"}]
    d = dev.start("gw", {"registers": regs, "meters": ["A", "B"], "advance": "fixed"})
    try:
        d.set_values(1, {"ts": _time.time(), "p_kw": 1.5})
        d.set_values(2, {"ts": 1e20, "p_kw": 2.5})
        p = mb.ModbusPoller("plant", [{"meter_id": m, "port": d.port, "unit": u, "model": "m"} for u, m in ((1, "A"), (2, "B"))],
                            {"m": mb.parse_model("m", {"registers": regs})}, interval_s=1, timeout_s=1)
        with warnings.catch_warnings(), caplog.at_level("WARNING", logger="wattwatch.watch"):
            warnings.simplefilter("error", RuntimeWarning)
            f = asyncio.run(p.poll())
        p.close()
        assert list(f["meter_id"]) == ["A"] and f["ts"].notna().all()
        assert p.counters["no_time"] == 1
        assert "B" in caplog.text and "clock" in caplog.text and "1e+20" in caplog.text, caplog.text
    finally:
        d.stop()


def test_jobs_left_pending_by_an_action_taken_out_of_the_config_are_logged_dropped_not_kept_for_ever(tmp_path, caplog):
    # Known open finding (rev37): the actions_pending records of an action removed from the config (or
    # switched between dry run and live) stayed for ever; nothing read or removed them, nor said so.
    from wattwatch.actions.base import actions_for, ensure_log
    from wattwatch.alerts.model import Alert

    db = tmp_path / "site.duckdb"
    a = Alert(meter_id="m1", start="2026-11-01T00:00:00.000Z", end="2026-11-01T00:15:00.000Z", code="ALRM_X",
              severity="critical", score=0.9, detector="d", message="m", evidence={})
    with Store(db) as s:
        ensure_log(s.con)
        s.con.execute("INSERT INTO actions_pending VALUES (?, 'shed-old', 'opened', false, now(), ?), "
                      "(?, 'page', 'opened', true, now(), ?)", [a.id, a.to_json(), a.id, a.to_json()])
    _day("m1").to_csv(tmp_path / "t.csv", index=False)
    site = {"detectors": ["supply_outage"], "store": {"path": str(db)},
            "sources": [{"type": "replay", "name": "history", "path": str(tmp_path / "t.csv")}],
            # `page` is still configured, but live now: its dry-run job is not its to run
            "actions": [{"type": "command", "name": "page", "argv": ["/bin/true"], "dry_run": False}]}
    with caplog.at_level("WARNING", logger="wattwatch"):
        api.watch(site, until_done=True)
    with Store(db) as s:
        assert s.con.execute("SELECT count(*) FROM actions_pending").fetchone()[0] == 0
        log = actions_for(s.con, a.id)
    assert sorted(zip(log["action"], log["outcome"])) == [("page", "dropped"), ("shed-old", "dropped")]
    assert all("no longer" in d for d in log["detail"]), list(log["detail"])
    assert "shed-old" in caplog.text and "no longer in the site config" in caplog.text


def test_a_meter_reconfigured_to_another_cadence_is_said_live_once(tmp_path):
    # Known open finding: `detect` says when a meter's latest readings come at another cadence than the
    # one its state was learned at (api._cadence_change_notices); the live watch said nothing.
    def at(meter, start, days, freq):
        ts = pd.date_range(start, periods=int(days * 86400 / pd.Timedelta(freq).total_seconds()), freq=freq, tz="UTC")
        return pd.DataFrame({"meter_id": meter, "ts": ts, "p_kw": 5.0 + np.sin(np.arange(len(ts)) / 8.0)})

    with Store(tmp_path / "s.duckdb") as store:
        eng = StreamEngine(store, api.build_detectors(["supply_outage", "packet_loss"]), None,
                           StreamConfig(slow_thread=False))
        try:
            for m in ("moved", "steady"):
                eng.add(at(m, "2026-10-01", 8, "15min"), source="meters")
            eng.step()
            assert {"moved", "steady"} <= eng.profiled
            said = []
            later = pd.concat([at("moved", "2026-10-09", 6, "60min"), at("steady", "2026-10-09", 6, "15min")])
            for day in range(6):   # a day of readings per step
                lo, hi = pd.Timestamp("2026-10-09", tz="UTC") + pd.Timedelta(days=day), \
                    pd.Timestamp("2026-10-09", tz="UTC") + pd.Timedelta(days=day + 1)
                eng.add(later[(later["ts"] >= lo) & (later["ts"] < hi)].reset_index(drop=True), source="meters")
                said += [n for n in eng.step().notices if "cadence" in n or "come every" in n]
            assert len(said) == 1, said
            assert said[0].startswith("meter moved: its latest readings come every 3,600 s") and "900 s" in said[0]
        finally:
            eng.close()
