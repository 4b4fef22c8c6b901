"""`wattwatch alerts ack|clear|show` while `wattwatch watch` holds the store: the command hands a
checked request to the running watcher (runners/control.py), which applies it between steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import popen, ww
from wattwatch.runners import control
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ctl-fleet")
    simulate(SimConfig(meters=8, days=2.5, step="15min", seed=16, fault_share=0.9, profile_days=1.0,
                       outage_share=0.5), out)
    return out / "telemetry.parquet"


def _cli(*args):
    """``wattwatch ARGS`` in this process (the watcher is the other process): the same command
    code and exit status without a Python start-up and import per call (4-6 s on a loaded CI)."""
    return ww(*args, check=False)


def test_ack_show_and_clear_reach_a_running_watcher(fleet, tmp_path, mqtt_broker):
    # The replay plays 40 poll cycles a second: the first alert opens a few seconds in, past the
    # profiling day. An MQTT subscription that gets nothing (the run's shared broker) keeps the
    # watcher running once the replay has ended (watch stops when every source has), however long
    # the commands below take on a loaded machine.
    (tmp_path / "site.toml").write_text(f"""
[store]
path = "site.duckdb"
[stream]
checkpoint_s = 0.5
[[sources]]
type = "replay"
name = "fleet"
path = "{fleet}"
speed = {900 * 40}
cycle_s = 900
[[sources]]
type = "mqtt"
name = "idle"
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
topics = ["ww-test-control/#"]
client_id = "ww-test-control-{os.getpid()}"
[engine]
profile_days = 1.0
""")
    db = tmp_path / "site.duckdb"
    p = popen("watch", "--config", tmp_path / "site.toml", cwd=tmp_path)
    try:
        aid = None
        for line in p.stdout:
            if line.startswith("alert open "):
                aid = line.split()[2]
                break
        assert aid and p.poll() is None, "no alert opened while watch ran"
        assert control.watcher(db) is not None
        r = _cli("alerts", "ack", aid[:10], "--db", str(db), "--note", "on it")
        assert r.returncode == 0, r.stderr
        assert f"{aid} acknowledged" in r.stdout
        r = _cli("alerts", "show", aid, "--db", str(db), "--json")
        assert r.returncode == 0, r.stderr
        shown = json.loads(r.stdout)
        assert shown["id"] == aid and shown["status"] == "acknowledged" and shown["note"] == "on it"
        r = _cli("alerts", "list", "--status", "acknowledged", "--db", str(db), "--json")
        assert r.returncode == 0, r.stderr
        assert [a["id"] for a in json.loads(r.stdout)] == [aid]
        r = _cli("alerts", "list", "--status", "open", "--db", str(db), "--json")
        assert r.returncode == 0 and aid not in [a["id"] for a in json.loads(r.stdout)], r.stderr
        r = _cli("alerts", "ack", aid, "--db", str(db))
        assert r.returncode == 0 and "already acknowledged" in r.stderr
        r = _cli("alerts", "clear", aid, "--db", str(db))
        assert r.returncode == 0 and f"{aid} cleared" in r.stdout, r.stderr
        r = _cli("alerts", "ack", aid, "--db", str(db))      # refused by the lifecycle, said by the watcher
        assert r.returncode != 0 and "already cleared" in r.stderr + r.stdout
        r = _cli("alerts", "clear", "no-such-alert", "--db", str(db))
        assert r.returncode != 0 and "no alert 'no-such-alert'" in r.stderr + r.stdout
        # The dashboard's acknowledge/clear (same lifecycle) goes through the watcher too.
        import time as _t

        from wattwatch.dashboard import actions
        from wattwatch.dashboard.auth import Session

        now = _t.time()
        got = actions.set_status(Session("olga", "operator", now, now), db, [aid, "no-such-alert"], "cleared", "dup")
        assert got[0]["id"] == aid and got[0]["status"] == "cleared" and got[0]["unchanged"]
        assert "no alert" in got[1]["error"]
        assert p.poll() is None, "the watcher should still run"
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert control.watcher(db) is None        # a clean stop removes watcher.json
    with Store(db, read_only=True) as s:
        status, note = s.con.execute("SELECT status, note FROM alerts WHERE id = ?", [aid]).fetchone()
        resets = s.con.execute("SELECT status FROM rule_resets WHERE alert_id = ? ORDER BY created", [aid]).fetchall()
        meta = json.loads(s.con.execute("SELECT meta FROM stream_checkpoint").fetchone()[0])
    assert status == "cleared" and note == "on it"
    assert [r[0] for r in resets] == ["acknowledged", "cleared"]
    assert meta["counters"]["requests"] >= 5
    # With no watcher, the commands use the store directly again.
    r = _cli("alerts", "show", aid, "--db", str(db), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "cleared"


class _Eng:
    def __init__(self, con):
        from collections import Counter

        self.store = type("S", (), {"con": con})()
        self.counters = Counter()
        self.alerts = {}


@pytest.mark.parametrize("raw, needle", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"op": "exec", "id": "x"}', "op must be one of"),
    (b'{"op": "show", "id": "x", "path": "/etc/passwd"}', "unknown field"),
    (b'{"op": "set_status", "id": "x", "status": "deleted"}', "status must be"),
    (b'{"op": "set_status", "id": 5, "status": "cleared"}', "id must be"),
    (b'{"op": "show", "id": "' + b"x" * 70000 + b'"}', "larger than"),
    (b'{"op": "list", "status": "open", "sql": "DROP TABLE alerts"}', "unknown field"),
    (b'{"op": "list", "min_score": "1; DROP"}', "min_score must be"),
    (b'{"op": "list", "status": "nonsense"}', "status must be"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
])
def test_a_bad_request_is_answered_with_an_error_and_nothing_is_done(tmp_path, raw, needle):
    import duckdb

    con = duckdb.connect()
    ch = control.Channel(tmp_path / "s.duckdb")
    assert oct((tmp_path / "s.duckdb.watch").stat().st_mode & 0o777) == "0o700"
    key = "ab" * 16
    (tmp_path / "s.duckdb.watch" / f"req-{key}.json").write_bytes(raw)
    (tmp_path / "s.duckdb.watch" / "req-evil.json").write_text('{"op": "show", "id": "x"}')
    assert ch.serve(_Eng(con)) == 1
    ans = json.loads((tmp_path / "s.duckdb.watch" / f"res-{key}.json").read_text())
    assert ans["ok"] is False and needle in ans["error"]
    assert not (tmp_path / "s.duckdb.watch" / f"req-{key}.json").exists()
    assert (tmp_path / "s.duckdb.watch" / "req-evil.json").exists()
    ch.close()
    with pytest.raises(control.NoWatcher):
        control.request(tmp_path / "s.duckdb", {"op": "show", "id": "x"}, timeout_s=1)


def test_open_or_hand_over_and_ask_without_a_running_watcher(tmp_path):
    """The one decision the CLI (`alerts ack|clear|list|show`) and the dashboard (ack, clear) share:
    a store that does not open is handed to the watcher only while one runs; otherwise its error
    stands. ``ask`` turns an unreachable watcher into an answer, as the watcher's own refusals."""
    from wattwatch.store import StoreError

    db = tmp_path / "s.duckdb"

    def locked():
        raise StoreError(f"{db}: locked by another process")

    with pytest.raises(StoreError, match="locked"):
        control.open_or_hand_over(db, locked)
    assert control.open_or_hand_over(db, lambda: "opened") == "opened"
    ans = control.ask(db, {"op": "show", "id": "abc"})
    assert ans["ok"] is False and "no running `wattwatch watch`" in ans["error"]
    assert control.ask(db, {"op": "drop_tables"}) == \
        {"ok": False, "error": "op must be one of set_status, show, list, got 'drop_tables'"}
    # A watcher that is running (this process stands for it): the command is handed over.
    d = control.folder(db)
    d.mkdir()
    (d / "watcher.json").write_text(json.dumps({"pid": os.getpid(), "started": 0}))
    assert control.open_or_hand_over(db, locked) is None
    # and one that died is no watcher: the store's error stands
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (d / "watcher.json").write_text(json.dumps({"pid": dead.pid, "started": 0}))
    with pytest.raises(StoreError, match="locked"):
        control.open_or_hand_over(db, locked)
