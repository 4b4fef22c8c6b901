"""(liv47) adv41's open findings, each shown by a test that failed before its fix, against real
components on 127.0.0.1 where the finding is about one (influxd, pymodbus, mosquitto)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from tests.live.test_influx import _frame
from tests.support.services import AnswerProxy, Influxd, free_port, wait_true
from wattwatch import influx
from wattwatch.sinks.influx import InfluxSink


def _count(adm, db="w", rp="wattwatch", m="readings") -> int:
    """Points stored in the measurement (each has p_kw or v_v)."""
    return len(influx._frame(adm.query(f'SELECT "p_kw", "v_v" FROM "{db}"."{rp}"."{m}"', db))[0])


@pytest.fixture
def authd(tmp_path):
    """influxd 1.x with auth on, an admin, database `w`, and a user `u` with only WRITE on it."""
    server = Influxd(free_port(), tmp_path / "influxd", http_extra="auth-enabled = true").start()
    try:
        influx.Client(server.url).query("CREATE USER \"admin\" WITH PASSWORD 'a' WITH ALL PRIVILEGES", write=True)
        adm = influx.Client(server.url, user="admin", password="a")
        adm.query('CREATE USER "u" WITH PASSWORD \'p\'', write=True)
        yield server, adm
    finally:
        server.stop()


def _sink(server, tmp_path, tag, **kw):
    return InfluxSink("tsdb", url=server.url, database="w", buffer=tmp_path / f"buf-{tag}", retention="INF",
                      user="u", password="p", retry_min_s=0.2, retry_max_s=0.4, close_timeout_s=0.5, **kw)


def test_a_write_only_user_writes_when_an_admin_made_the_database_policy_and_cq(authd, tmp_path, caplog):
    # Least privilege: the site's admin makes the database, the policy and the CQ, the collector's user
    # gets WRITE only. Before, setup ran CREATE DATABASE first (admin only): the 403 repeated for ever
    # and not one point was written.
    server, adm = authd
    adm.query("CREATE DATABASE w", write=True)
    adm.query('CREATE RETENTION POLICY "wattwatch" ON "w" DURATION INF REPLICATION 1 DEFAULT', write=True)
    probe = InfluxSink("probe", url=server.url, database="w", buffer=tmp_path / "buf-probe", retention="INF",
                       user="admin", password="a")
    probe.setup()        # the CQ exactly as the sink would make it, made by the admin
    probe.close()
    adm.query("GRANT WRITE ON w TO u", write=True)
    with caplog.at_level("INFO", logger="wattwatch.watch"):
        s = _sink(server, tmp_path, "w")
        s.readings(_frame(10))
        assert wait_true(lambda: s.counters["written"] == 20, 20), (s.counters, s.status, s.last_error)
        status = s.status
        s.close()
    assert status == "ready" and s.counters["dropped"] == 0
    assert _count(adm) == 20
    # It could not check the policy's duration or the CQ (that needs READ): it says so, once.
    assert "needs READ" in caplog.text, caplog.text


@pytest.mark.parametrize("missing", ["database", "policy"])
def test_a_write_only_user_missing_what_it_needs_says_what_to_ask_an_admin_and_writes_once_it_exists(
        authd, tmp_path, caplog, missing):
    # Never written to a policy (or database) that does not exist: the points wait on disk, not one is
    # dropped, the log and the status say what to ask an admin to create; once made, they are written.
    server, adm = authd
    if missing == "policy":
        adm.query("CREATE DATABASE w", write=True)
        adm.query("GRANT WRITE ON w TO u", write=True)
    with caplog.at_level("WARNING", logger="wattwatch.watch"):
        s = _sink(server, tmp_path, missing)
        s.readings(_frame(10))
        assert wait_true(lambda: s.counters["retries"] >= 2, 20), (s.counters, s.status)
        time.sleep(0.3)
        status, backlog = s.status, s.view()["backlog"]
        assert s.counters["dropped"] == 0 and s.counters["written"] == 0 and backlog == 20
        want = 'CREATE DATABASE "w"' if missing == "database" else 'CREATE RETENTION POLICY "wattwatch" ON "w"'
        assert "ask an InfluxDB admin" in caplog.text and want in caplog.text, caplog.text
        assert "unreachable" not in caplog.text
        assert status.startswith("refused: buffering") and "ask an InfluxDB admin" in status and want in status, status
        if missing == "database":
            adm.query("CREATE DATABASE w", write=True)
            adm.query("GRANT WRITE ON w TO u", write=True)
        adm.query('CREATE RETENTION POLICY "wattwatch" ON "w" DURATION INF REPLICATION 1 DEFAULT', write=True)
        assert wait_true(lambda: s.counters["written"] == 20, 20), (s.counters, s.status, s.last_error)
        s.close()
    assert s.counters["dropped"] == 0 and _count(adm) == 20
    assert _count(adm, rp="autogen") == 0            # nothing went to another policy


def test_a_database_dropped_while_the_sink_runs_loses_no_point(authd, tmp_path):
    # InfluxDB answers a write to a database that is gone with a 404 ("database not found"): the sink
    # counted it as bad data and dropped the points. Now the points wait on disk, setup runs again
    # (this admin user makes the database and policy anew) and they are written.
    server, adm = authd
    s = InfluxSink("tsdb", url=server.url, database="w", buffer=tmp_path / "buf-drop", retention="INF",
                   user="admin", password="a", retry_min_s=0.2, retry_max_s=0.4, close_timeout_s=0.5)
    s.readings(_frame(10))
    assert wait_true(lambda: s.counters["written"] == 20, 20), (s.counters, s.status, s.last_error)
    adm.query('DROP DATABASE "w"', write=True)
    s.readings(_frame(10).assign(p_kw=1.0))
    assert wait_true(lambda: s.counters["written"] == 40, 20), (s.counters, s.status, s.last_error)
    s.close()
    assert s.counters["dropped"] == 0 and _count(adm) == 20      # the second batch (same times), none lost


def test_a_read_write_user_makes_the_cq_and_is_told_the_retention_it_may_not_change(authd, tmp_path, caplog):
    # READ and WRITE on the database (not admin): InfluxDB 1.6 lets it make the CQ (it needs both) but
    # not alter the policy. Before: the ALTER was run every start, the 403 repeated, nothing written.
    server, adm = authd
    adm.query("CREATE DATABASE w", write=True)
    adm.query('CREATE RETENTION POLICY "wattwatch" ON "w" DURATION 30d REPLICATION 1 DEFAULT', write=True)
    adm.query("GRANT ALL ON w TO u", write=True)            # READ and WRITE, not admin
    with caplog.at_level("WARNING", logger="wattwatch.watch"):
        s = _sink(server, tmp_path, "rw")       # wants INF; the admin made 30d
        s.readings(_frame(1).assign(ts=pd.Timestamp.now(tz="UTC").floor("s")))
        assert wait_true(lambda: s.counters["written"] == 2, 20), (s.counters, s.status, s.last_error)
        status = s.status
        s.close()
    assert status == "ready" and _count(adm) == 2
    cqs = adm.query("SHOW CONTINUOUS QUERIES", "w")[0]["series"][0].get("values", [])
    assert [r[0] for r in cqs] == ["readings_1h_cq"]
    assert "keeps 720h0m0s, not retention INF" in caplog.text, caplog.text
    assert 'ask an InfluxDB admin to run: ALTER RETENTION POLICY "wattwatch" ON "w" DURATION INF' in caplog.text


# ------------------------------------------------------------------------------ Modbus: wrong unit id


def _stamp(unit: int):
    """An answer's mangling: every Modbus/TCP answer stamped with unit id ``unit`` (a gateway that
    mixes up its serial units, or a misconfigured bridge)."""
    return lambda data: data[:6] + bytes([unit]) + data[7:] if len(data) > 6 else data


def test_a_modbus_answer_from_another_unit_is_logged_naming_device_asked_and_answered_unit(caplog):
    # pymodbus refuses an answer stamped with another unit id ("request uses device id=3 but received
    # 4"): it was counted in `errors` and the connection dropped, but no log line said so -- a site with
    # two meters swapped on a bridge saw only "errors" climb. Now said, the first five then every 100th.
    import asyncio

    from wattwatch.devices import modbus as dev
    from wattwatch.sources import modbus as mb

    # Four gateways (each a proxy that stamps unit 4 on the answers) polled at once: 100 refused
    # answers in a quarter of the wall time one gateway takes (each waits out the request timeout, as
    # pymodbus skips a frame of another unit). The count is the source's, across its gateways.
    regs = [{"channel": "p_kw", "table": "input", "address": 0, "type": "float32"}]
    d = dev.start("gw", {"registers": regs, "meters": 3, "framing": "tcp", "advance": "fixed"})
    liars = [AnswerProxy(d.port, _stamp(4)) for _ in range(4)]
    gateway_of = {f"pdu-3{c}": f"127.0.0.1:{x.port}" for c, x in zip("abcd", liars)}
    try:
        models = {"m": mb.parse_model("m", {"registers": regs})}
        p = mb.ModbusPoller("plant", [{"meter_id": m, "port": int(g.rsplit(":", 1)[1]), "unit": 3, "model": "m"}
                                      for m, g in gateway_of.items()], models,
                            interval_s=1, timeout_s=0.1, retries=1, backoff_s=0.01)

        async def go():
            # Until the source has counted 100 refused answers (the 100th is said), at most 20 cycles (160
            # asked: a poller that misses more than 60 of them fails). A fixed 15 cycles (120 asked)
            # counted 109-116 at load 10-20 (a gateway's first connection may time out; four proxies
            # share the GIL), one gateway's 60 cycles 118-120; it failed once in four loaded runs (rtt17).
            frames = []
            while p.counters["wrong_unit"] < 100 and len(frames) < 20:
                frames.append(await p.poll())
            return frames

        with caplog.at_level("WARNING", logger="wattwatch.watch"):
            frames = asyncio.run(go())
        p.close()
    finally:
        for x in liars:
            x.stop()
        d.stop()
    assert sum(len(f) for f in frames) == 0                 # nothing taken for another meter's reading
    assert p.counters["wrong_unit"] >= 100 and p.counters["errors"] >= 100, (len(frames), p.counters)
    lines = [r.getMessage() for r in caplog.records if "unit" in r.getMessage()]
    assert lines and "asked unit 3" in lines[0] and "answered as unit 4" in lines[0], lines
    assert all("plant" in x and any(f"meter {m!r} (gateway {g}/tcp)" in x for m, g in gateway_of.items())
               for x in lines), lines                        # each line names a device and its own gateway
    assert 5 <= len(lines) <= 7, lines                      # 100-107 refused answers: the first five, then #100
    assert "#100" in lines[-1]


# ------------------------------------------------------------------------------ MQTT: "now" is not a time


def test_an_mqtt_ts_pandas_would_read_as_the_wall_clock_is_refused_as_not_a_time(mqtt_broker, tmp_path, caplog):
    # pandas reads "now" and "today" as this machine's clock, and "NaT"/"" as no time: a meter sending
    # {"ts": "now"} had its readings stored at the watcher's arrival time as if the meter said so (and a
    # replayed backlog all at one instant). Now each is malformed with the reason; a good one is stored.
    import uuid

    from tests.live.test_mqtt import _publish, _publisher, _Watcher
    from wattwatch.sources.mqtt import MqttSource

    base = f"n{uuid.uuid4().hex[:8]}"
    src = MqttSource("meters", host=mqtt_broker.host, port=mqtt_broker.port, topics=[f"{base}/+"], meter="topic:1",
                     client_id=f"ww-{base}")
    for bad in ("now", "today", "NaT", "", "nat"):
        with pytest.raises(ValueError, match="not a time") as e:
            src.parse("x/m1", ('{"ts": "%s", "p_kw": 1}' % bad).encode())
        if bad in ("now", "today"):
            assert "wall clock" in str(e.value), e.value
    w = _Watcher(tmp_path / "n.duckdb", src)
    pub = _publisher(mqtt_broker.host, mqtt_broker.port)
    with caplog.at_level("WARNING", logger="wattwatch.watch"):
        _publish(pub, f"{base}/m1", {"ts": "now", "p_kw": 9.0})
        _publish(pub, f"{base}/m1", [{"ts": "today", "p_kw": 8.0}, {"ts": "2026-01-05T00:00:00Z", "p_kw": 1.0}])
        _publish(pub, f"{base}/m1", {"ts": "2026-01-05T00:01:00Z", "p_kw": 2.0})
        w.wait_stored(2, timeout=10)
        pub.loop_stop()
        frame = w.stop()
    assert sorted(frame["p_kw"]) == [1.0, 2.0], frame
    assert src.counters["malformed"] == 2 and src.counters["messages"] == 3, dict(src.counters)
    assert "'now'" in caplog.text and "'today'" in caplog.text and "wall clock" in caplog.text, caplog.text


# ------------------------------------------------------------------------------ Modbus: interval_s = 0


def test_a_modbus_source_with_interval_0_is_refused_at_load_naming_the_key(tmp_path):
    # interval_s = 0 polled every device back to back (the Poller's "as fast as the engine takes it",
    # meant for a file replayed at speed = 0): on a real serial bus, every request the gateway could
    # answer. Replays have their own setting (a replay source's speed = 0; simulated Modbus devices
    # polled at a small interval), so a Modbus source in a site config is refused.
    from typer.testing import CliRunner

    from tests.live.test_config import MODBUS
    from wattwatch import api
    from wattwatch.app.cli import app
    from wattwatch.errors import ConfigError

    cfg = tmp_path / "site.toml"
    for bad in ("0", "0.0"):
        cfg.write_text(MODBUS.replace('name = "plant"\n', f'name = "plant"\ninterval_s = {bad}\n'))
        with pytest.raises(ConfigError) as e:
            api.load_site(cfg)
        msg = str(e.value)
        assert str(cfg) in msg and "'plant'" in msg and "interval_s" in msg and "back to back" in msg, msg
        assert "speed = 0" in msg, msg
    r = CliRunner().invoke(app, ["watch", "--config", str(cfg)])
    assert r.exit_code == 2 and "interval_s" in r.output, r.output
    cfg.write_text(MODBUS.replace('name = "plant"\n', 'name = "plant"\ninterval_s = 0.01\n'))
    assert api.load_site(cfg).sources[0].interval_s == 0.01      # a small interval is the user's choice
