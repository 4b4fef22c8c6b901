"""``wattwatch ARGS`` run in the test process, for tests that check what a command does rather than
how a process starts: the same Typer app ``python -m wattwatch.app.cli`` runs (``main()`` adds only
the exit status 130 on Ctrl-C), with stdout, stderr and the exit status kept apart, and without a
Python start-up and the imports per call (about 1.5 s each on CI). The end-to-end process tests keep
``tests.app.test_cli.ww`` (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
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
