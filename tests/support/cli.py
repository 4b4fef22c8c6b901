"""``wattwatch ARGS`` run in the test process, for tests that check what a command does rather than
how a process starts: the same Typer app ``python -m wattwatch.app.cli`` runs (``main()`` adds only
the exit status 130 on Ctrl-C), with stdout, stderr and the exit status kept apart, and without a
Python start-up and the imports per call (about 1.5 s each on CI). The end-to-end process tests keep
``tests.app.test_cli.ww`` (a real subprocess), and :func:`popen` starts one to run beside a test
(a watcher to kill, to restart or to send commands to)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def ww(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    argv = [str(a) for a in args]
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        r = CliRunner().invoke(app, argv)
    finally:
        os.chdir(here)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception          # a traceback, which a process would print and exit 1 on
    done = subprocess.CompletedProcess(["wattwatch", *argv], r.exit_code, r.stdout, r.stderr)
    if check:
        done.check_returncode()
    return done


def popen(*args, **kw) -> subprocess.Popen:
    """``python -m wattwatch.app.cli ARGS`` in a process of its own, this checkout's sources first on
    its path and progress bars off; stdout and stderr are text pipes (``kw``: ``cwd``, ...)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "WATTWATCH_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-m", "wattwatch.app.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def kill_9_after_alerts(p: subprocess.Popen, n: int, said: str = "alert open", then_s: float = 0.0,
                        within_s: float = 300.0) -> list[str]:
    """SIGKILL a ``watch`` process mid-stream: once ``n`` alerts have opened (each ``alert open`` line
    is printed after the alert is committed; ``said``: another line's start, e.g. ``alert ended``),
    ``then_s`` seconds later, and while it still runs. Returns the lines read. A watcher that has
    not said so within ``within_s`` seconds (stuck, or blocked on its stderr pipe, which is not
    read meanwhile) is killed and the test fails rather than hangs."""
    seen, lines = 0, []
    late = threading.Timer(within_s, p.kill)
    late.start()
    try:
        for line in p.stdout:
            lines.append(line)
            seen += line.startswith(said)
            if seen >= n:
                break
    finally:
        late.cancel()
    assert seen >= n, f"watch did not say {said!r} {n} time(s) within {within_s} s: {''.join(lines[-20:])}"
    if then_s:
        time.sleep(then_s)
    assert p.poll() is None, "watch ended before it could be killed (make the replay slower)"
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    return lines
