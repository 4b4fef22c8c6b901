"""Progress on a terminal, silence in pipes and CI.

Two displays: :func:`progress_bar` for work with one known size (bytes of a file, meters to
simulate), and :func:`stages` for runs made of stages of unknown length (learning each meter's
normal, training a fleet model, judging): it shows a spinner with what is being done now
("training learned_ensemble on 120 meter(s) …") and, for a stage with a total (readings to
judge), a bar that advances as the work completes. The API reports stages through its
``on_stage(description, total)`` and ``on_progress(n)`` callbacks; a :class:`Stages` is both.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

err_console = Console(stderr=True)


def interactive() -> bool:
    """True when a person is watching: stderr is a terminal and we are not in CI."""
    return (sys.stderr.isatty() and not os.environ.get("CI")) or _forced()


def _forced() -> bool:
    """``WATTWATCH_PROGRESS=1`` shows progress even when stderr is not a terminal (a log that
    wants it); ``=0`` never shows it."""
    return os.environ.get("WATTWATCH_PROGRESS") == "1"


def _off() -> bool:
    return os.environ.get("WATTWATCH_PROGRESS") == "0"


@contextmanager
def progress_bar(description: str, total: float | None, bytes_mode: bool = False):
    """Yield ``advance(n)``; draws a bar only when :func:`interactive`."""
    if _off() or not interactive():
        yield lambda n=1: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn()]
    if bytes_mode:
        columns.append(DownloadColumn())
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=_console(), transient=True) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


class Stages:
    """What a run is doing now: :meth:`stage` starts a stage (a description and, when known, a
    total), :meth:`advance` (or calling the object) counts work of it done. ``history`` keeps
    (description, total, done, seconds) of every stage, drawn or not."""

    def __init__(self, name: str, progress: Progress | None = None):
        self.name = name
        self.progress = progress
        self.history: list[list] = []
        self._task = None
        self._t0 = time.perf_counter()

    def stage(self, description: str, total: float | None = None) -> None:
        self._close()
        self.history.append([description, total, 0.0, 0.0])
        self._t0 = time.perf_counter()
        if self.progress is not None:
            text = f"{escape(self.name)}: {escape(description)}"
            if self._task is not None:
                self.progress.remove_task(self._task)  # a new task: a stage may have no total
            self._task = self.progress.add_task(text, total=total)
            self.progress.refresh()  # each stage is drawn when it starts, however short

    def advance(self, n: float = 1) -> None:
        if not self.history:
            self.stage("working", None)
        self.history[-1][2] += n
        if self.progress is not None and self._task is not None:
            self.progress.advance(self._task, n)

    __call__ = advance

    def _close(self) -> None:
        if self.history:
            self.history[-1][3] = time.perf_counter() - self._t0


def _console() -> Console:
    """Where progress is drawn: stderr (as a terminal when ``WATTWATCH_PROGRESS=1`` forces it)."""
    if _forced() and not err_console.is_terminal:
        return Console(stderr=True, force_terminal=True)
    return err_console


@contextmanager
def stages(name: str, console: Console | None = None):
    """Yield a :class:`Stages`; drawn (spinner, stage, bar when the stage has a total, elapsed
    time) only when :func:`interactive` or on ``console`` when one is given."""
    if console is None and (_off() or not interactive()):
        st = Stages(name)
        yield st
        st._close()
        return
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=console or _console(), transient=True) as prog:
        st = Stages(name, prog)
        yield st
        st._close()
