"""`wattwatch dashboard`: the password helper, refusals naming what is wrong, and a real serve."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from wattwatch.app.cli import app
from wattwatch.dashboard.auth import hash_password, verify_password

runner = CliRunner()


def test_hash_password_reads_stdin_and_prints_a_scrypt_hash():
    res = runner.invoke(app, ["dashboard", "--hash-password"], input="correct horse\n")
    assert res.exit_code == 0, res.output
    h = res.stdout.strip()
    assert h.startswith("scrypt$") and "correct horse" not in h and verify_password("correct horse", h)
    assert runner.invoke(app, ["dashboard", "--hash-password"], input="\n").exit_code == 2


def test_refusals_name_the_problem(tmp_path, monkeypatch):
    monkeypatch.delenv("WATTWATCH_DASHBOARD_USERS", raising=False)
    res = runner.invoke(app, ["dashboard", "--db", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2 and "no users" in res.output
    users = tmp_path / "users.toml"
    users.write_text('[users.ann]\nrole = "operator"\npassword = "plain"\n')
    res = runner.invoke(app, ["dashboard", "--users", str(users)])
    assert res.exit_code == 2 and "users.toml: user 'ann': password: not a scrypt hash" in " ".join(res.output.split())
    runner_hash = runner.invoke(app, ["dashboard", "--hash-password"], input="pw\n").stdout.strip()
    users.write_text(f'[users.ann]\nrole = "operator"\npassword = "{runner_hash}"\n')
    res = runner.invoke(app, ["dashboard", "--users", str(users), "--grid", str(tmp_path)])
    assert res.exit_code == 2 and "not a grid run folder" in res.output
    res = runner.invoke(app, ["dashboard", "--users", str(users), "--models-dir", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no such folder (--models-dir)" in " ".join(res.output.split())
    res = runner.invoke(app, ["dashboard", "--users", str(users), "--proxy-header", "Forwarded"])
    assert res.exit_code == 2 and "--proxy-header: one of X-Forwarded-For, X-Real-IP" in " ".join(res.output.split())


def test_the_proxy_header_reaches_the_server_only_when_given(tmp_path, monkeypatch):
    """(rev42) --proxy-header is the one way a forwarded header names a sign-in's client."""
    from wattwatch.dashboard import serve
    from wattwatch.dashboard.settings import Settings

    monkeypatch.delenv("WATTWATCH_DASHBOARD_PROXY_HEADER", raising=False)
    seen = []
    monkeypatch.setattr(serve, "run", lambda settings, host, port: seen.append(settings) or 0)
    users = tmp_path / "users.toml"
    users.write_text(f'[users.ann]\nrole = "operator"\npassword = "{hash_password("pw")}"\n')
    for given in ([], ["--proxy-header", "x-real-ip"]):
        res = runner.invoke(app, ["dashboard", "--users", str(users), "--db", str(tmp_path / "s.duckdb"), *given])
        assert res.exit_code == 0, res.output
    assert [s.proxy_header for s in seen] == [None, "X-Real-IP"]
    env = serve.environment(seen[1], base={})
    assert env["WATTWATCH_DASHBOARD_PROXY_HEADER"] == "X-Real-IP"
    assert Settings.from_env(env).proxy_header == "X-Real-IP"
    assert "WATTWATCH_DASHBOARD_PROXY_HEADER" not in serve.environment(seen[0], base={})


def test_the_command_serves_on_the_given_port(tmp_path, sim_store, users_env):
    from wattwatch.ports import free_port

    port = free_port()
    env = {**os.environ, "WATTWATCH_DASHBOARD_USERS": users_env,
           "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "wattwatch.app.cli", "dashboard", "--db", str(sim_store[0]),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < end, "the dashboard did not come up"
                time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # The command became the server (exec): stopping it left no server behind on the port.
    time.sleep(0.5)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
        raise AssertionError("a server still answers after the command was stopped")
    except OSError:
        pass
