"""InfluxDB 1.x sink and reader (issue 16), against a real influxd on 127.0.0.1.

Readings written and read back equal; the retention policy and the hourly downsample CQ exist and
the CQ's statement gives pandas' mean/max/min; `detect --influx` gives the alerts `detect` gives
on the same readings; InfluxDB down while `watch` runs (10 s at a 1 s backoff cap: more failed
writes than the issue's minute makes at the default 30 s cap) loses nothing; `kill -9` of the
watcher with a non-empty on-disk buffer, then a restart: every reading arrives, once, in order.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import frame_equal
from tests.support.cli import kill_9_after_alerts, popen
from tests.support.services import Influxd, free_port
from wattwatch import api, influx
from wattwatch.sinks.influx import DiskBuffer, InfluxSink
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

# The issue asks for "InfluxDB down for a minute (nothing lost)". What a minute does to the sink is a
# number of failed writes in the backoff's capped regime, the batches waiting on disk meanwhile: at the
# sink's defaults (retry_min_s 0.5, doubling to retry_max_s 30) a minute down makes 7 failed attempts
# (at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s) and its backoff reaches the cap. The outage test's site doubles
# from 0.5 to a 1 s cap, so 10 s down makes more (0, 0.5, then every 1 s: 11), most at the cap (tt17; it
# was 15 s at a 2 s cap: 9 failed writes, tt6),
# and the sink has no other clock that an outage's length reaches (the buffer is bounded by bytes, not
# time; close_timeout_s counts only from a stop; the backoff, which grows with the outage, stretched the
# buffer's fsync interval to itself until rtt6: test_a_long_backoff_does_not_stretch_...). The replay's
# volume is the same at any OUTAGE_S (192 cycles), so the test's site uses small segments and batches for
# what a real minute's volume reaches. WATTWATCH_TEST_INFLUX_OUTAGE_S=60 runs the literal
# minute (tt6, 2026-12-06: the suite ran 60 s until then, 68 s of the CI budget for this one test).
OUTAGE_S = float(os.environ.get("WATTWATCH_TEST_INFLUX_OUTAGE_S", "10"))
# The failed writes a minute down makes at the default backoff (above); the test's outage makes at least these.
MINUTE_AT_DEFAULT_BACKOFF_FAILS = 7


def _url(server, db, measurement="readings", **q) -> str:
    extra = "".join(f"&{k}={v}" for k, v in q.items())
    return f"influx://127.0.0.1:{server.port}/{db}?measurement={measurement}{extra}"


def _frame(n=400, meters=("m1", "odd id,with=space chars")) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ts = pd.date_range("2025-03-01", periods=n, freq="1min", tz="UTC")
    f = pd.DataFrame({"meter_id": np.repeat(list(meters), n), "ts": np.tile(ts, len(meters)),
                      "p_kw": rng.normal(4.0, 1.0, n * len(meters)), "v_v": rng.normal(230, 2, n * len(meters))})
    if len(f) > 9:
        f.loc[5, "p_kw"] = np.nan      # a missing channel value: no field, the other channel stays
        f.loc[9, "v_v"] = np.inf       # not a number InfluxDB can hold: left out like NaN
        f.loc[7, "p_kw"], f.loc[8, "p_kw"] = 1e20, -1.2345678901234567e-7   # exponents round-trip exactly
    return f


def _wait(cond, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------------------------------ no server


def test_line_protocol_escapes_names_and_leaves_out_values_influx_cannot_hold():
    f = _frame(3)
    f.loc[0, ["p_kw", "v_v"]] = np.nan   # no finite value: no point
    body, n, empty = influx.reading_lines(f, "my readings", "s")
    lines = body.decode().splitlines()
    assert n == 5 and empty == 1 and len(lines) == 5
    assert lines[0].startswith("my\\ readings,meter_id=m1 ")
    assert any(line.startswith("my\\ readings,meter_id=odd\\ id\\,with\\=space\\ chars ") for line in lines)
    t0 = int(pd.Timestamp("2025-03-01", tz="UTC").value // 10**9)
    assert lines[0].endswith(f" {t0 + 60}")
    assert "inf" not in body.decode() and "nan" not in body.decode()


def test_disk_buffer_keeps_order_across_segments_cuts_a_torn_tail_and_resumes_at_its_cursor(tmp_path):
    b = DiskBuffer(tmp_path, max_bytes=10_000, segment_bytes=60, fsync_s=0)
    for i in range(6):
        assert b.append(f"rec{i} ".encode() * 5, 1)
    assert len(list(tmp_path.glob("*.seg"))) >= 3           # rolled over: several segments
    body, n, pos, used = b.read(2, 1 << 20)
    assert n == 2 and body.startswith(b"rec0") and b"rec1" in body
    b.ack(pos, n, used)
    b.close()
    last = sorted(tmp_path.glob("*.seg"))[-1]
    with open(last, "ab") as fh:
        fh.write(b"WWLP\x10\x00")                             # a crash mid-append
    b2 = DiskBuffer(tmp_path, max_bytes=10_000, segment_bytes=60, fsync_s=0)
    assert b2.torn == 6 and b2.points == 4
    body, n, pos, used = b2.read(100, 1 << 20)
    assert n == 4 and [int(x[3:]) for x in body.decode().split() if x.startswith("rec")][::5] == [2, 3, 4, 5]
    assert not b2.append(b"x" * 20_000, 1)                  # over the bound: refused, nothing written
    with pytest.raises(ValueError, match="in use by another"):
        DiskBuffer(tmp_path, max_bytes=10_000)               # a second watcher on the same folder
    b2.close()


def test_a_long_backoff_does_not_stretch_the_buffers_fsync_interval(tmp_path):
    """InfluxDB unreachable and the writer in a backoff longer than ``fsync_s`` (at the default
    30 s cap a minute's outage waits 16 s, then 30 s): what the engine appends meanwhile is still
    fsynced within ``fsync_s`` (the module's fsync policy), not only when the backoff ends."""
    sink = InfluxSink("tsdb", url=f"http://127.0.0.1:{free_port()}", database="d", buffer=tmp_path / "buf",
                      fsync_s=0.2, retry_min_s=10, retry_max_s=10, close_timeout_s=0)
    try:
        f = _frame(20)
        sink.readings(f.iloc[:20])
        _wait(lambda: sink.counters["retries"] >= 1, what="the first failed try (nothing listens)")
        sink.readings(f.iloc[20:])                        # appended while the writer backs off for 10 s
        _wait(lambda: not sink.buf._dirty, timeout=5.0, what="the appended record fsynced during the backoff")
        assert sink.counters["retries"] == 1 and sink.view()["backlog"] == len(f)   # still the first backoff
    finally:
        sink.close()


def test_sink_config_is_checked_naming_the_key(tmp_path):
    from wattwatch.sinks import build

    base = {"type": "influx", "url": "http://127.0.0.1:1", "database": "d", "buffer": str(tmp_path / "b")}
    for bad, key in (({"url": "file:///etc/passwd"}, "url"), ({"retention": "30 days"}, "retention"),
                     ({"retention": "30m"}, "retention"), ({"retention": "3599s"}, "retention"),
                     ({"precision": "m"}, "precision"), ({"bogus": 1}, "bogus"), ({"database": ""}, "database")):
        with pytest.raises(ValueError, match=key):
            build({**base, **bad}, "[[sinks]] #1", tmp_path)


# ------------------------------------------------------------------------------------ real influxd


def test_readings_and_alerts_written_and_read_back_equal(influxd, tmp_path):
    from wattwatch.alerts.model import Alert
    from wattwatch.runners.stream import StepReport

    sink = InfluxSink("tsdb", url=influxd.url, database="roundtrip", buffer=tmp_path / "buf", retention="INF",
                      batch_points=300, gzip=True)
    f = _frame()
    sink.readings(f.iloc[:500])
    sink.readings(f.iloc[500:])
    a = Alert("m1", "2025-03-01T01:00:00+00:00", "2025-03-01T02:00:00+00:00", "ALRM_X", "critical", 3.5, "det",
              'a "quoted" message, with = signs')

    class Engine:
        alerts = {a.id: a}

    sink.alerts(StepReport(alerts=[a]), Engine)
    sink.alerts(StepReport(ended=[a.id]), Engine)
    sink.close()
    v = sink.view()
    assert v["written"] == len(f) + 2 and v["dropped"] == 0 and v["backlog"] == 0 and v["retries"] == 0
    got = influx.read(_url(influxd, "roundtrip", chunk="2h"))           # 400 min in 2 h chunks: 4 queries
    want = f.copy()
    want.loc[9, "v_v"] = np.nan
    frame_equal(got, want)
    part = api.read_influx(_url(influxd, "roundtrip"), start="2025-03-01T01:00", end="2025-03-01T02:00", meters=["m1"])
    assert len(part) == 60 and set(part["meter_id"]) == {"m1"}
    res = influx.Client(influxd.url).query('SELECT * FROM "alerts"', "roundtrip")
    row = dict(zip(res[0]["series"][0]["columns"], res[0]["series"][0]["values"][0]))
    assert row["id"] == a.id and row["state"] == "ended" and row["message"] == a.message and row["score"] == 3.5


def test_a_retention_shorter_than_the_default_shard_duration_is_made_and_written_to(influxd, tmp_path):
    """A retention of hours (InfluxDB's least is 1 h): the policy was made with SHARD DURATION 1d,
    which InfluxDB refuses for a policy shorter than its shards -- every retry logged a traceback and
    the points waited on disk for ever (rev47). Now its shards are an hour long, as InfluxDB's own
    default for a policy under two days."""
    sink = InfluxSink("tsdb", url=influxd.url, database="short", buffer=tmp_path / "buf", retention="6h")
    f = _frame(50)
    f["ts"] = pd.Timestamp.now(tz="UTC").floor("min") - pd.to_timedelta(np.arange(len(f))[::-1], unit="min")
    sink.readings(f)
    sink.close()
    rps, _ = influx._frame(influx.Client(influxd.url).query('SHOW RETENTION POLICIES ON "short"', "short"))
    rp = rps.set_index("name").loc["wattwatch"]
    assert rp["duration"] == "6h0m0s" and rp["shardGroupDuration"] == "1h0m0s" and bool(rp["default"])
    assert sink.counters["written"] == len(f) and sink.counters["dropped"] == 0 and sink.view()["backlog"] == 0


def test_retention_policy_and_hourly_downsample_cq_exist_and_match_pandas(influxd, tmp_path):
    sink = InfluxSink("tsdb", url=influxd.url, database="rpcq", buffer=tmp_path / "buf", retention="1000d")
    f = _frame(300)
    sink.readings(f)
    sink.close()
    c = influx.Client(influxd.url)
    rps, _ = influx._frame(c.query('SHOW RETENTION POLICIES ON "rpcq"', "rpcq"))
    rp = rps.set_index("name").loc["wattwatch"]
    assert rp["duration"] == "24000h0m0s" and sink.counters["dropped"] == 0 and bool(rp["default"])
    cqs = {v[0]: v[1] for r in c.query("SHOW CONTINUOUS QUERIES") for s in r.get("series", []) if s["name"] == "rpcq"
           for v in s.get("values", [])}
    assert "readings_1h_cq" in cqs and "GROUP BY time(1h), meter_id" in cqs["readings_1h_cq"]
    # The CQ only covers the latest interval as time passes; run its statement over our (past) window.
    c.query(sink.downsample_query("2025-03-01", "2025-03-02"), "rpcq", write=True)
    got = influx.read(_url(influxd, "rpcq", "readings_1h", rp="autogen")).set_index(["meter_id", "ts"]).sort_index()
    g = f.assign(ts=f["ts"].dt.floor("1h")).groupby(["meter_id", "ts"])
    v = f.assign(v_v=f["v_v"].where(np.isfinite(f["v_v"])), ts=f["ts"].dt.floor("1h")).groupby(["meter_id", "ts"])
    want = pd.concat({f"{fn}_{c}": getattr(v[c], fn)() for fn in ("mean", "max", "min") for c in ("p_kw", "v_v")},
                     axis=1).sort_index()
    assert len(g) == len(got) == 10
    pd.testing.assert_frame_equal(got[want.columns], want, check_exact=False, rtol=1e-12, check_names=False)
    # Starting again with the same definitions changes nothing; a new retention is altered in place.
    again = InfluxSink("tsdb2", url=influxd.url, database="rpcq", buffer=tmp_path / "buf2", retention="30d")
    again.close()
    rps, _ = influx._frame(c.query('SHOW RETENTION POLICIES ON "rpcq"', "rpcq"))
    assert rps.set_index("name").loc["wattwatch", "duration"] == "720h0m0s" and again.counters["retries"] == 0


def test_outage_keeps_every_point_and_the_order_they_came_in(tmp_path):
    """While InfluxDB is down, batches wait on disk; when it is back they go in order: a reading
    re-sent with a corrected value later ends with the later value."""
    server = Influxd(free_port(), tmp_path / "influxd").start()
    try:
        sink = InfluxSink("tsdb", url=server.url, database="order", buffer=tmp_path / "buf", retention="INF",
                          retry_min_s=0.2, retry_max_s=0.5, batch_points=50)
        f = _frame(100)
        sink.readings(f.iloc[:50])
        _wait(lambda: sink.counters["written"] == 50, what="first write")
        server.stop()
        second = f.iloc[50:].copy()
        sink.readings(second)
        _wait(lambda: sink.counters["retries"] >= 2, what="failed writes")
        fixed = second.assign(p_kw=second["p_kw"] + 100.0)    # the same readings, corrected, after them
        sink.readings(fixed)
        assert sink.view()["backlog"] == 2 * len(second) and sink.counters["buffered"] == 2 * len(second)
        server.start()
        _wait(lambda: sink.view()["backlog"] == 0, what="flush")
        sink.close()
        v = sink.view()
        assert v["dropped"] == 0 and v["flushed"] == 2 * len(second) and v["written"] == 50 + 2 * len(second)
        got = influx.read(_url(server, "order"))
        want = pd.concat([f.iloc[:50], fixed])
        want.loc[9, "v_v"] = np.nan
        frame_equal(got, want)
    finally:
        server.stop()


def _fleet(tmp_path: Path, days=2.0, meters=3, seed=16) -> Path:
    simulate(SimConfig(meters=meters, days=days, step="15min", seed=seed, fault_share=1.0, profile_days=1.0,
                       jitter_s=0, duplicate_rate=0, nan_rate=0, disorder_rate=0, background_loss=0), tmp_path)
    return tmp_path / "telemetry.parquet"


def test_detect_and_fit_read_a_measurement_back_from_influx(influxd, tmp_path):
    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    telemetry = _fleet(tmp_path)
    frame = api.read_frame(telemetry)
    sink = InfluxSink("tsdb", url=influxd.url, database="detect", buffer=tmp_path / "buf", retention="INF")
    sink.readings(frame)
    sink.close()
    assert sink.counters["written"] == len(frame)
    cfg = {"engine": {"profile_days": 1.0}}
    want = api.detect(telemetry, config=cfg)
    got = api.detect(_url(influxd, "detect", chunk="6h"), config=cfg)
    assert want.alerts and [a.to_json() for a in got.alerts] == [a.to_json() for a in want.alerts]
    runner = CliRunner()
    url = _url(influxd, "detect")
    r = runner.invoke(app, ["fit", "--influx", url, "--db", str(tmp_path / "s.duckdb"), "--days", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["detect", "--influx", url, "--db", str(tmp_path / "s.duckdb"), "-o", str(tmp_path / "a.jsonl"),
                            "--json"])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) > 0
    r = runner.invoke(app, ["detect", "--db", url, "-o", str(tmp_path / "b.jsonl")])
    assert r.exit_code != 0 and "--influx" in r.output
    r = runner.invoke(app, ["detect", "--influx", f"influx://127.0.0.1:{free_port()}/x?measurement=r",
                            "-o", str(tmp_path / "c.jsonl")])
    assert r.exit_code != 0 and "cannot read" in r.output


def _site(tmp_path: Path, telemetry: Path, port: int, speed: float, retry_max_s: float = 2, **sink) -> Path:
    extra = "".join(f"{k} = {v}\n" for k, v in sink.items())
    cfg = tmp_path / "site.toml"
    cfg.write_text(f"""[store]
path = "site.duckdb"
[stream]
checkpoint_s = 1
[[sources]]
type = "replay"
name = "fleet"
path = "{telemetry}"
speed = {speed}
cycle_s = 900
[[sinks]]
type = "influx"
name = "tsdb"
url = "http://127.0.0.1:{port}"
database = "site"
retention = "INF"
buffer = "influx-buffer"
retry_min_s = 0.5
retry_max_s = {retry_max_s}
{extra}[engine]
profile_days = 1.0
""")
    return cfg


def _stored(db: Path) -> pd.DataFrame:
    with Store(db, read_only=True) as s:
        f = s.query()
    return f.assign(meter_id=f["meter_id"].astype(str))


def test_influx_down_while_watch_runs_loses_nothing(tmp_path):
    """InfluxDB stopped for OUTAGE_S (10 s; see OUTAGE_S for why that stands for the issue's minute)
    while `watch` replays: the batches wait on disk, at least as many writes fail as a minute down
    makes at the default backoff, and when it is back every reading and alert arrives, none dropped."""
    telemetry = _fleet(tmp_path, days=2.0)
    server = Influxd(free_port(), tmp_path / "influxd").start()
    # 192 poll cycles played over the outage plus 6 s: InfluxDB goes down after the first cycles
    # are written (1.6 s in at a load of 13 on 2 cores) and comes back while the replay still runs;
    # the test then waits only for the replay's last seconds, not for a longer margin.
    speed = 900 * 192 / (OUTAGE_S + 6)
    # Small segments and batches: the backlog a real minute's readings make at a site spans buffer
    # segments and write batches (16 MB, 5,000 points by default); this replay's few hundred points
    # do so only at this scale, whatever the outage's length (rtt6).
    # (Batches of 60: 10 s down buffer ~280 points here, 15 s ~400; the backlog still spans more than three.)
    # fsync_s 0.4: a minute down at the defaults backs off 1 to 30 s with an fsync every 1 s, so each wait
    # is cut into fsyncs (rtt6); the 1 s cap is longer than fsync_s again, as the 2 s cap was (rtt17).
    cfg = _site(tmp_path, telemetry, server.port, speed, retry_max_s=1, close_timeout_s=30, segment_mb=0.004,
                batch_points=60, fsync_s=0.4)
    site = api.load_site(cfg)
    sink = site.outputs[0]
    res = {}
    t = threading.Thread(target=lambda: res.update(w=api.watch(site, until_done=True)))
    t.start()
    try:
        _wait(lambda: sink.counters["written"] > 0, what="first points written")
        server.stop()
        down = time.monotonic()
        _wait(lambda: sink.counters["retries"] > 0 and sink.view()["backlog"] > 0, timeout=20, what="buffering")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down)))
        assert t.is_alive(), "the replay ended during the outage (slow it down)"
        backlog = sink.view()["backlog"]
        segments = len(list((tmp_path / "influx-buffer").glob("*.seg")))
        server.start()
        t.join(OUTAGE_S + 120)
        assert not t.is_alive()
    finally:
        server.stop() if t.is_alive() else None
    try:
        v = sink.view()
        assert v["dropped"] == 0 and v["backlog"] == 0 and v["retries"] >= MINUTE_AT_DEFAULT_BACKOFF_FAILS, v
        assert v["buffered"] >= backlog > 0 and v["flushed"] >= v["buffered"]
        assert backlog > 3 * 60 and segments >= 3, (backlog, segments)   # flushed in batches, across segments
        stored = _stored(tmp_path / "site.duckdb")
        frame_equal(influx.read(_url(server, "site")), stored)
        assert len(stored) == len(api.read_frame(telemetry))
        alerts = influx.read(_url(server, "site", "alerts"))  # numeric fields of the alert points
        assert set(alerts["meter_id"]) == {a.meter_id for a in res["w"].alerts}
    finally:
        server.stop()


def test_kill_9_with_a_non_empty_buffer_then_restart_everything_arrives_once(tmp_path):
    telemetry = _fleet(tmp_path, days=2.0, meters=4)
    server = Influxd(free_port(), tmp_path / "influxd")          # down while the first watcher runs
    cfg = _site(tmp_path, telemetry, server.port, speed=900 * 30)
    buf = tmp_path / "influx-buffer"
    p = popen("watch", "--config", cfg, "--until-done", cwd=tmp_path)
    try:
        kill_9_after_alerts(p, 2)
    finally:
        if p.poll() is None:
            p.kill()
    on_disk = sum(f.stat().st_size for f in buf.glob("*.seg"))
    assert on_disk > 0
    server.start()
    try:
        p2 = popen("watch", "--config", cfg, "--until-done", cwd=tmp_path)
        out, err = p2.communicate(timeout=180)
        assert p2.returncode == 0, err
        assert "resumed from checkpoint" in out, out
        line = next(x for x in out.splitlines() if x.startswith("output tsdb"))
        counts = {k: int(v.replace(",", "")) for k, v in re.findall(r"(\w+) ([\d,]+)", line.split(";")[0])}
        assert line.startswith("output tsdb (influx): closed,") and counts["dropped"] == 0 and counts["backlog"] == 0, line
        assert counts["buffered"] > 0 and counts["flushed"] >= counts["buffered"], line   # the killed run's buffer
        stored = _stored(tmp_path / "site.duckdb")
        assert len(stored) == len(api.read_frame(telemetry))
        got = influx.read(_url(server, "site"))
        frame_equal(got, stored)        # every reading, each once (a point is unique by meter and time)
        n = influx.Client(server.url).query('SELECT count("p_kw") FROM "readings"', "site")
        assert n[0]["series"][0]["values"][0][1] == stored["p_kw"].notna().sum()
        assert not list(buf.glob("*.seg")) or all(f.stat().st_size == 0 for f in buf.glob("*.seg")) \
            or DiskBuffer(buf, 1 << 30).points == 0
    finally:
        server.stop()


def test_auth_a_wrong_password_keeps_the_points_on_disk_and_the_right_one_sends_them(tmp_path):
    server = Influxd(free_port(), tmp_path / "influxd", http_extra="auth-enabled = true").start()
    try:
        # The first user may be created without credentials; it is the admin.
        influx.Client(server.url).query("CREATE USER \"ops\" WITH PASSWORD 's3cret' WITH ALL PRIVILEGES", write=True)
        f = _frame(50)
        bad = InfluxSink("tsdb", url=server.url, database="auth", buffer=tmp_path / "buf", retention="INF",
                         user="ops", password="wrong", retry_min_s=0.2, retry_max_s=0.3, close_timeout_s=0.5)
        bad.readings(f)
        _wait(lambda: bad.counters["retries"] >= 2, what="refused attempts")
        bad.close()
        assert bad.counters["dropped"] == 0 and bad.view()["backlog"] == len(f)
        assert "401" in bad.view()["last_error"]
        good = InfluxSink("tsdb", url=server.url, database="auth", buffer=tmp_path / "buf", retention="INF",
                          user="ops", password="s3cret")
        good.close()
        assert good.counters["written"] == len(f) and good.counters["dropped"] == 0
        got = api.read_influx(f"influx://ops:s3cret@127.0.0.1:{server.port}/auth?measurement=readings")
        want = f.copy()
        want.loc[9, "v_v"] = np.nan
        frame_equal(got, want)
        with pytest.raises(api.InputError) as e:
            api.read_influx(f"influx://ops:wrong@127.0.0.1:{server.port}/auth?measurement=readings")
        assert "401" in str(e.value) and "wrong" not in str(e.value)
    finally:
        server.stop()
