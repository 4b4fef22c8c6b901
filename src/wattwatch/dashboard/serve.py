"""Start the dashboard: ``streamlit run`` on :mod:`wattwatch.dashboard.script` as a child process
with the settings in its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from wattwatch.dashboard.settings import Settings

SCRIPT = Path(__file__).with_name("script.py")


def command(host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(SCRIPT), "--server.address", host, "--server.port",
            str(int(port)), "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false", "--server.maxUploadSize", "512",
            "--global.developmentMode", "false", "--client.toolbarMode", "viewer", "--logger.level", "warning",
            # An unexpected error shows its type in the browser, not its message and traceback
            # (paths, code, store details): they go to the server's log (stderr).
            "--client.showErrorDetails", "type"]


def environment(settings: Settings, base: dict | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(settings.to_env())
    # The child imports this wattwatch (a source checkout on PYTHONPATH stays first).
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def start(settings: Settings, host: str = "127.0.0.1", port: int = 8501, env: dict | None = None,
          **popen) -> subprocess.Popen:
    return subprocess.Popen(command(host, port), env={**environment(settings), **(env or {})}, **popen)


def run(settings: Settings, host: str = "127.0.0.1", port: int = 8501) -> int:
    """Become the Streamlit server (exec): signals (Ctrl-C, SIGTERM from a service manager) reach
    it directly, and no child is left behind when this process is stopped."""
    cmd = command(host, port)
    os.execve(cmd[0], cmd, environment(settings))
    return 0  # not reached
