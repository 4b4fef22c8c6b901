"""Real services the tests start themselves: on 127.0.0.1, on free ports, stopped afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wattwatch.ports import free_port  # noqa: F401  (the tests' services import it from here)


def wait_true(pred, timeout: float = 20.0) -> bool:
    """Poll ``pred`` every 50 ms until it holds (True) or ``timeout`` seconds pass (its last value)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def wait_port(port: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


@dataclass
class Mosquitto:
    """A mosquitto broker on 127.0.0.1:``port`` (plain TCP, anonymous), with its own config,
    persistence folder and log; ``restart()`` stops and starts it on the same port and folder
    (messages persisted with QoS >= 1 survive)."""

    port: int
    folder: Path
    proc: subprocess.Popen | None = None
    extra: str = ""

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> "Mosquitto":
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "mosquitto.conf"
        # Started as root, mosquitto drops to the `mosquitto` user and can no longer write its log
        # or persist sessions in the test's root-owned folder: stay the user that started it.
        user = "user root\n" if os.geteuid() == 0 and "user " not in self.extra else ""
        conf.write_text(user +
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.folder}/\nautosave_interval 1\n"
            f"log_dest file {self.folder}/mosquitto.log\n{self.extra}")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Influxd:
    """An InfluxDB 1.x server (``/usr/bin/influxd``) on 127.0.0.1:``port`` with its meta, data and
    WAL in ``folder``, reporting and self-monitoring off, continuous queries checked every second;
    ``stop()``/``start()`` (or ``restart()``) keep the port and the data. ``url`` is its HTTP API."""

    port: int
    folder: Path
    proc: subprocess.Popen | None = None
    http_extra: str = ""          # more [http] settings, e.g. 'auth-enabled = true'

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "Influxd":
        import urllib.request

        exe = shutil.which("influxd") or "/usr/bin/influxd"
        self.folder.mkdir(parents=True, exist_ok=True)
        if not getattr(self, "_rpc", None):
            self._rpc = free_port()
        conf = self.folder / "influxdb.conf"
        f = self.folder
        conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{self._rpc}"\n'
            f'[meta]\n  dir = "{f}/meta"\n'
            f'[data]\n  dir = "{f}/data"\n  wal-dir = "{f}/wal"\n  query-log-enabled = false\n'
            f'  wal-fsync-delay = "0s"\n'
            f'[monitor]\n  store-enabled = false\n'
            f'[continuous_queries]\n  enabled = true\n  run-interval = "1s"\n  log-enabled = false\n'
            f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n  {self.http_extra}\n'
            f'[logging]\n  level = "warn"\n')
        self._log = open(f / "influxd.log", "ab")
        self.proc = subprocess.Popen([exe, "-config", str(conf)], stdout=self._log, stderr=self._log)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited ({self.proc.returncode}); see {f / 'influxd.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                    if r.status == 204:
                        return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"influxd did not answer /ping on {self.url} in {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()


class AnswerProxy:
    """A TCP proxy on 127.0.0.1 in front of a server on ``target_port`` (a pymodbus gateway, say)
    that passes every chunk the server answers through ``mangle`` (bytes -> bytes) on its way back
    to the client; requests go through unchanged. ``stop()`` closes it and its connections."""

    def __init__(self, target_port: int, mangle):
        self.target_port, self.mangle = target_port, mangle
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.conns: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target_port))
            self.conns += [c, up]
            threading.Thread(target=self._pump, args=(c, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, c, True), daemon=True).start()

    def _pump(self, src, dst, answers: bool):
        try:
            while data := src.recv(4096):
                dst.sendall(self.mangle(data) if answers else data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self):
        self.srv.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass
