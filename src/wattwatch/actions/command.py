"""``type = "command"``: run a program for an alert, never through a shell.

Keys (besides the common ones of :mod:`wattwatch.actions.base`)::

    argv = ["/usr/local/bin/shed-load", "--meter", "{meter_id}", "--code", "{code}"]
    timeout_s = 10        # then the program and everything it started are killed
    cwd = "."             # relative to the config file's folder (default: that folder)
    env = { SITE = "plant-2" }   # added to the watcher's environment

``argv[0]`` must be an **absolute path** to an executable file (checked when the config is
read): no ``PATH`` lookup, so what runs is what the config names. The other arguments may name
alert fields as ``{id}``, ``{meter_id}``, ``{code}``, ``{severity}``, ``{detector}``, ``{event}``,
``{action}``; each becomes exactly one argument whatever it contains (there is no shell to split
or expand it). The alert, as the JSON every action sends, is written to the program's stdin.
Exit code 0 is ``ok``; any other, a timeout or a program that cannot start is ``failed``; the
log keeps the exit code and the tail of stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from wattwatch.actions.base import COMMON, Action, Result, check_template, fill, number, only, text

TAIL = 500


class CommandAction(Action):
    kind = "command"
    provisional_default = False   # switches loads / runs anything: waits for final alerts

    def __init__(self, name: str, spec: dict, root: Path | None):
        super().__init__(name, spec)
        only(spec, COMMON | {"argv", "timeout_s", "cwd", "env"})
        argv = spec.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(x, str) and x for x in argv):
            raise ValueError("argv must be a non-empty list of text (the program, then its arguments)")
        exe = Path(argv[0])
        if not exe.is_absolute():
            raise ValueError(f"argv[0] must be an absolute path to the program (no PATH lookup), got {argv[0]!r}")
        if "{" in argv[0]:
            raise ValueError("argv[0]: the program cannot be a template")
        if not exe.is_file() or not os.access(exe, os.X_OK):
            raise ValueError(f"argv[0]: {exe} is not an executable file")
        self.argv = [argv[0]] + [check_template(x, f"argv[{i + 1}]") for i, x in enumerate(argv[1:])]
        self.timeout_s = number(spec, "timeout_s", 10.0, 0.01, 86400.0)
        cwd = text(spec, "cwd")
        base = root if root is not None else Path.cwd()
        self.cwd = base if cwd is None else (Path(cwd) if Path(cwd).is_absolute() else base / cwd)
        if not self.cwd.is_dir():
            raise ValueError(f"cwd: {self.cwd} is not a folder")
        env = spec.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ValueError("env must be a table of NAME = \"text\"")
        self.env = env

    def perform(self, alert, event: str, dry_run: bool) -> Result:
        vals = self.values(alert, event)
        argv = [self.argv[0]] + [fill(x, vals) for x in self.argv[1:]]
        if dry_run:
            return Result("ok", f"dry run: would run {argv!r}", 0)
        env = {**os.environ, **self.env, "WATTWATCH_ALERT_ID": alert.id, "WATTWATCH_EVENT": event}
        try:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 cwd=self.cwd, env=env, shell=False, start_new_session=True, close_fds=True)
        except OSError as exc:
            return Result("failed", f"cannot start {argv[0]}: {exc.strerror or exc}")
        try:
            _, err = p.communicate(self.payload(alert, event), timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill(p)
            _, err = p.communicate()
            return Result("failed", f"timed out after {self.timeout_s:g} s: killed{_tail(err)}")
        if p.returncode == 0:
            return Result("ok", f"exit 0{_tail(err)}")
        return Result("failed", f"exit {p.returncode}{_tail(err)}")


def _kill(p: subprocess.Popen) -> None:
    """Kill the program and whatever it started (its own session)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        p.kill()


def _tail(err: bytes | None) -> str:
    if not err:
        return ""
    t = err[-TAIL:].decode("utf-8", "replace").strip()
    return f"; stderr: {t}" if t else ""


def from_spec(name: str, spec: dict, root: Path | None = None) -> CommandAction:
    return CommandAction(name, spec, root)
