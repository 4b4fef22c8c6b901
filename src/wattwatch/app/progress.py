"""Progress bars on a terminal, silence in pipes and CI."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

err_console = Console(stderr=True)


def interactive() -> bool:
    """True when a person is watching: stderr is a terminal and we are not in CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def progress_bar(description: str, total: float | None, bytes_mode: bool = False):
    """Yield ``advance(n)``; draws a bar only when :func:`interactive`."""
    if not interactive():
        yield lambda n=1: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn()]
    if bytes_mode:
        columns.append(DownloadColumn())
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)
