"""(rev41) A review of adv41's merge: what its fixes left out, each shown by a test that failed before
its fix."""

from __future__ import annotations

import asyncio
import json
import time as _time
import types

import numpy as np
import pandas as pd
import pytest


@pytest.mark.parametrize("clock", [1e10, 1e11, -1e11, 1e20])
def test_a_modbus_clock_beyond_what_a_timestamp_holds_loses_that_reading_not_the_poll(clock, caplog):
    # adv41 bounded the clock at +-9.2e12 s (what int64 microseconds hold), but pandas makes the column
    # nanoseconds (1677..2262): a register reading 1e10 s (year 2286) or 1e11 s raised OutOfBoundsDatetime
    # in poll(), and every cycle of the poller was lost ("poll failed"), the good meters' readings too.
    from wattwatch.devices import modbus as dev
    from wattwatch.sources import modbus as mb

    regs = [{"channel": "ts", "table": "holding", "address": 0, "type": "float64"},
            {"channel": "p_kw", "table": "input", "address": 0, "type": "float32"}]
    d = dev.start("gw", {"registers": regs, "meters": ["A", "B"], "advance": "fixed"})
    try:
        d.set_values(1, {"ts": _time.time(), "p_kw": 1.5})
        d.set_values(2, {"ts": clock, "p_kw": 2.5})
        p = mb.ModbusPoller("plant", [{"meter_id": m, "port": d.port, "unit": u, "model": "m"}
                                      for u, m in ((1, "A"), (2, "B"))],
                            {"m": mb.parse_model("m", {"registers": regs})}, interval_s=1, timeout_s=1)
        with caplog.at_level("WARNING", logger="wattwatch.watch"):
            f = asyncio.run(p.poll())
        p.close()
        assert list(f["meter_id"]) == ["A"] and f["ts"].notna().all() and list(f["p_kw"]) == [1.5]
        assert p.counters["no_time"] == 1
        assert "B" in caplog.text and "clock" in caplog.text, caplog.text
    finally:
        d.stop()


def _msg(topic, doc):
    return types.SimpleNamespace(topic=topic, payload=json.dumps(doc).encode(), qos=0, mid=0)


@pytest.mark.parametrize("ts", ["2300-01-01T00:00:00Z", "1500-06-01T00:00:00+02:00", "9999-12-31"])
def test_an_mqtt_time_beyond_what_a_timestamp_holds_is_malformed_not_a_dead_source(ts):
    # pd.Timestamp("2300-01-01") is a valid (second-resolution) Timestamp, so parse kept it; the batch
    # (canonical: pd.to_datetime, nanoseconds) then raised OutOfBoundsDatetime in drain(): the source
    # stopped ("failed: OutOfBoundsDatetime") with every reading of its batch lost, and the broker
    # delivered the unacknowledged message again at every restart.
    from wattwatch.sources.mqtt import MqttSource

    src = MqttSource("meters", topics=["site/+"], meter="topic:1")
    with pytest.raises(ValueError, match="not a time"):
        src.parse("site/m1", json.dumps({"ts": ts, "p_kw": 1.0}).encode())
    src._on_message(None, None, _msg("site/m1", {"ts": "2026-11-01T00:00:00Z", "p_kw": 1.0}))
    src._on_message(None, None, _msg("site/m1", [{"ts": ts, "p_kw": 2.0}, {"ts": "2026-11-01T00:01:00Z", "p_kw": 3.0}]))
    batch = src.drain()
    assert sorted(batch.frame["p_kw"]) == [1.0, 3.0]
    assert str(batch.frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert src.counters["malformed"] == 1


@pytest.mark.parametrize("new", ["15min", "60min"])
def test_a_meter_slowed_more_than_tenfold_is_said_live_as_detect_says_it(tmp_path, new):
    # adv41's live cadence notice read each meter's last 480 learned gaps: a 1-minute meter reconfigured
    # to 15 minutes (the billing interval) has 32 gaps in those 8 hours, fewer than the 48 the notice
    # needs, so it was never said, every 6 h for ever, while `detect` on the same store says it.
    # (t1) And when: at the first check (every CADENCE_CHECK_S, 6 h, of data) whose wider read, twice
    # CADENCE_MIN_GAPS gaps at the new cadence back from the newest reading, holds no old gap (at 15 min
    # 24 h after the change, at 60 min 96 h; detect's notice on the whole history, a share of its last
    # part, comes 36 h later at 15 min and 30 h earlier at 60 min). The count and text alone passed a read
    # twice as wide (4 x 48 gaps): said 24 h late at 15 min.
    from wattwatch import api
    from wattwatch.runners.stream import CADENCE_MIN_GAPS, StreamConfig, StreamEngine
    from wattwatch.store import Store

    def at(meter, start, days, freq):
        ts = pd.date_range(start, periods=int(days * 86400 / pd.Timedelta(freq).total_seconds()), freq=freq, tz="UTC")
        return pd.DataFrame({"meter_id": meter, "ts": ts, "p_kw": 5.0 + np.sin(np.arange(len(ts)) / 8.0)})

    with Store(tmp_path / "s.duckdb") as store:
        dets = api.build_detectors(["supply_outage", "packet_loss"])
        eng = StreamEngine(store, dets, None, StreamConfig(slow_thread=False))
        try:
            for m in ("moved", "steady"):
                eng.add(at(m, "2026-10-01", 8, "1min"), source="meters")
            eng.step()
            assert {"moved", "steady"} <= eng.profiled
            later = pd.concat([at("moved", "2026-10-09", 5, new), at("steady", "2026-10-09", 5, "1min")])
            said, when, lo = [], [], pd.Timestamp("2026-10-09", tz="UTC")
            # Three hours of readings a step (tt13: not one; the check runs every 6 h of data time,
            # a multiple of 3 h, so it runs at the same data times on the same stored readings).
            while lo < pd.Timestamp("2026-10-14", tz="UTC"):
                hi = lo + pd.Timedelta("3h")
                eng.add(later[(later["ts"] >= lo) & (later["ts"] < hi)].reset_index(drop=True), source="meters")
                n = [n for n in eng.step().notices if "come every" in n]
                said += n
                when += [hi] * len(n)
                lo = hi
            secs = int(pd.Timedelta(new).total_seconds())
            assert len(said) == 1, said
            assert said[0].startswith(f"meter moved: its latest readings come every {secs:,} s"), said
            assert when == [pd.Timestamp("2026-10-09", tz="UTC") + 2 * CADENCE_MIN_GAPS * pd.Timedelta(new)], when
            # detect on the same store says it too (the batch notice the live one follows)
            frame = store.query_windows(pd.DataFrame({"meter_id": ["moved", "steady"], "start": pd.NaT, "end": pd.NaT}),
                                        columns=["p_kw"])
            frame["meter_id"] = frame["meter_id"].astype(str)
            from wattwatch.detect.frame import prepare
            batch = api._cadence_change_notices(prepare(frame), eng.dets, {"moved", "steady"})
            assert [n.split(":")[0] for n in batch] == ["meter moved"]
        finally:
            eng.close()


@pytest.mark.parametrize("line, key", [("max_pending = inf", "max_pending"), ("max_pending = 2.5", "max_pending"),
                                       ("checkpoint_s = nan", "checkpoint_s"), ("hold_s = inf", "hold_s"),
                                       ("slow_every_s = nan", "slow_every_s"), ("fast_reach_s = -inf", "fast_reach_s")])
def test_a_stream_value_that_is_not_a_finite_number_of_its_kind_is_refused_naming_the_key(tmp_path, line, key):
    # adv41 checked [stream] values' types (slow_thread = "false" was true) but took TOML's nan and inf as
    # numbers: max_pending = inf escaped load_site as OverflowError (a traceback, no file or key),
    # hold_s = inf judged nothing ever, checkpoint_s = nan never checkpointed; max_pending = 2.5 was 2.
    from wattwatch import api

    (tmp_path / "t.csv").write_text("meter_id,ts,p_kw\nm,2026-01-01T00:00:00Z,1\n")
    (tmp_path / "site.toml").write_text(f'[store]\npath = "s.duckdb"\n[stream]\n{line}\n'
                                        '[[sources]]\ntype = "replay"\nname = "h"\npath = "t.csv"\n')
    with pytest.raises(api.ConfigError, match=rf"site\.toml.*\[stream\] {key}"):
        api.load_site(tmp_path / "site.toml")
    ok = tmp_path / "ok.toml"   # the README's values still load
    ok.write_text('[store]\npath = "s.duckdb"\n[stream]\nhold_s = 0\ncheckpoint_s = 5\nslow_every_s = 3600\n'
                  'slow_thread = true\nfast_reach_s = 43200\nmax_pending = 64.0\n'
                  '[[sources]]\ntype = "replay"\nname = "h"\npath = "t.csv"\n')
    assert api.load_site(ok).stream.max_pending == 64


def test_a_store_that_cannot_be_opened_is_not_blamed_on_a_stale_watcher_file_naming_this_process(tmp_path, monkeypatch):
    # adv41 names the watcher that holds the store (watcher.json's pid, alive). A watcher killed -9
    # leaves that file; in a container `wattwatch watch` is PID 1 at every start, so the stale file
    # names the new process itself, alive: a store that could not be opened for any other reason
    # (damaged, a dashboard holding it) was said to be held by "another watch (pid 1)", hiding why.
    import os

    from wattwatch import api
    from wattwatch.errors import StoreError
    from wattwatch.runners import control

    (tmp_path / "t.csv").write_text("meter_id,ts,p_kw\nm,2026-01-01T00:00:00Z,1\n")
    cfg = tmp_path / "site.toml"
    cfg.write_text('detectors = ["supply_outage"]\n[store]\npath = "site.duckdb"\n'
                   '[[sources]]\ntype = "replay"\nname = "history"\npath = "t.csv"\n')
    (tmp_path / "site.duckdb").write_bytes(b"this is not a DuckDB file at all" * 200)
    control.folder(tmp_path / "site.duckdb").mkdir(parents=True, exist_ok=True)
    (control.folder(tmp_path / "site.duckdb") / "watcher.json").write_text(
        json.dumps({"pid": os.getpid(), "started": 1.7e9}))
    assert control.watcher(tmp_path / "site.duckdb") is not None
    monkeypatch.setattr(api, "WATCH_LOCK_WAIT_S", 0.2)
    with pytest.raises(StoreError) as e:
        api.watch(cfg)
    assert "another `wattwatch watch`" not in str(e.value), str(e.value)


def test_between_cadence_checks_a_step_does_nothing_per_meter(tmp_path):
    # adv41's check gathered and sorted every meter with readings at every fast step to learn that 6 h
    # of data had not passed (15 ms a step at 10,000 meters): the clock is looked at first now.
    from wattwatch import api
    from wattwatch.runners.stream import StreamConfig, StreamEngine
    from wattwatch.store import Store

    class Counted(set):
        walks = 0

        def __iter__(self):
            Counted.walks += 1
            return super().__iter__()

    def at(meter, start, days):
        ts = pd.date_range(start, periods=int(days * 96), freq="15min", tz="UTC")
        return pd.DataFrame({"meter_id": meter, "ts": ts, "p_kw": 5.0 + np.sin(np.arange(len(ts)) / 8.0)})

    with Store(tmp_path / "s.duckdb") as store:
        eng = StreamEngine(store, api.build_detectors(["supply_outage"]), None, StreamConfig(slow_thread=False))
        try:
            eng.add(pd.concat([at(m, "2026-10-01", 8) for m in ("a", "b")], ignore_index=True), source="m")
            eng.step()
            assert {"a", "b"} <= eng.profiled
            eng._cad_new = Counted(eng._cad_new)
            later = pd.concat([at(m, "2026-10-09", 2) for m in ("a", "b")], ignore_index=True)
            lo, steps = pd.Timestamp("2026-10-09", tz="UTC"), 0
            while lo < pd.Timestamp("2026-10-11", tz="UTC"):   # 48 steps of an hour
                hi = lo + pd.Timedelta("1h")
                eng.add(later[(later["ts"] >= lo) & (later["ts"] < hi)].reset_index(drop=True), source="m")
                eng.step()
                lo, steps = hi, steps + 1
            assert steps == 48 and 1 <= Counted.walks <= 2 * 48 / 6 + 1, Counted.walks
        finally:
            eng.close()


def test_an_influxdb_that_comes_back_refusing_the_credentials_is_said_after_it_was_unreachable(tmp_path, caplog):
    # adv41 says a 401/403 as refused credentials / a missing privilege, but only on the way down: an
    # InfluxDB that was unreachable first (logged "unreachable") and came back with auth on and another
    # password showed "refused: buffering" in the view while the log never said why it stayed down.
    from tests.live.test_influx import _frame
    from tests.support.services import Influxd, free_port, wait_true
    from wattwatch import influx
    from wattwatch.sinks.influx import InfluxSink

    port = free_port()
    with caplog.at_level("WARNING", logger="wattwatch.watch"):
        s = InfluxSink("tsdb", url=f"http://127.0.0.1:{port}", database="w", buffer=tmp_path / "buf", retention="INF",
                       user="admin", password="wrong", retry_min_s=0.2, retry_max_s=0.3, close_timeout_s=0.5)
        server = None
        try:
            s.readings(_frame(10))
            assert wait_true(lambda: s.counters["retries"] >= 1, 20)
            assert "unreachable" in caplog.text
            server = Influxd(port, tmp_path / "influxd", http_extra="auth-enabled = true").start()
            influx.Client(server.url).query("CREATE USER \"admin\" WITH PASSWORD 'a' WITH ALL PRIVILEGES", write=True)
            assert wait_true(lambda: s.status.startswith("refused"), 20), s.status
            assert wait_true(lambda: "refused the credentials" in caplog.text, 5), caplog.text
        finally:
            s.close()
            if server is not None:
                server.stop()
    assert s.counters["dropped"] == 0
