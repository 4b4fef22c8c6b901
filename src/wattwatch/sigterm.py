"""SIGTERM handled like a Ctrl-C where wattwatch has clean-up to do (b3).

A service manager's stop (systemd), a container's stop, ``kill PID`` or a job scheduler's time
limit sends SIGTERM, whose default action ends the process at once: no ``finally`` runs, so the
worker processes ``detect`` forks were left running (blocked on their task queue, for ever) and
no message said what the store kept. While :func:`as_interrupt` is in force, SIGTERM raises
:class:`Terminated` in the main thread instead. It is a KeyboardInterrupt, so every clean-up a
Ctrl-C runs runs for it too (workers terminated and reaped, the open transaction rolled back); the
command line then says what the run left, as for a Ctrl-C, and exits 143 (128 + 15, what a
shell reports for a process SIGTERM ended).

Only the first SIGTERM raises: one coming while that one's clean-up runs (a second ``kill``, a
scheduler that repeats it) would cut the clean-up short and leave the workers it was stopping; it
is noted and ignored (SIGKILL still ends the process). A process forked while the handler is in
force (before its own start-up resets it) ends on SIGTERM as by default, without raising.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM while :func:`as_interrupt` was in force."""


EXIT_CODE = 128 + signal.SIGTERM   # 143

_received = False
_owner: int | None = None   # the process that installed the handler (forked children are not it)


def received() -> bool:
    """A SIGTERM came while :func:`as_interrupt` was in force (it may have been turned into another
    exception on the way: DuckDB's "Query interrupted" for one inside a statement)."""
    return _received


def from_interrupt(exc: BaseException | None) -> bool:
    """``exc`` is a KeyboardInterrupt (a Ctrl-C, or SIGTERM under :func:`as_interrupt`) or was raised
    while one was handled (its ``__context__`` chain holds one): Py4J's next call after the call a
    Ctrl-C interrupted fails ("Answer from Java side is empty") and that error replaces the
    KeyboardInterrupt on its way out."""
    return interrupt_in(exc) is not None


def interrupt_in(exc: BaseException | None) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt ``exc`` is or holds in its ``__context__`` chain (:func:`from_interrupt`)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__context__
    return None


def _handler(signum, frame) -> None:
    global _received
    if os.getpid() != _owner:
        # A forked child that has not yet reset its handlers: end as SIGTERM's default does.
        end_as_by_default()
        return
    if _received:
        return
    _received = True
    raise Terminated("terminated (SIGTERM)")


@contextmanager
def as_interrupt(only_if_default: bool = False):
    """In the block, SIGTERM raises :class:`Terminated` in the main thread; the previous handler is
    back after it. Yields whether the handler was installed: not outside the main thread (Python
    runs handlers there only), nor with ``only_if_default`` when the process already handles
    SIGTERM its own way (a caller's handler, or an outer :func:`as_interrupt`).

    ``only_if_default`` is a library's guard (the caller never asked for SIGTERM to be handled): a
    :class:`Terminated` leaving the block, once the block's own clean-up ran, ends the process as
    SIGTERM's default action does; it never reaches the caller as a KeyboardInterrupt (rb3: before,
    the caller's code had to do this, and a SIGTERM during its ``finally`` escaped it)."""
    global _owner, _received
    if threading.current_thread() is not threading.main_thread() or (
            only_if_default and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield False
        return
    before, owner = signal.signal(signal.SIGTERM, _handler), _owner
    if owner is None:
        _received = False   # the outermost block: a new run (in-process callers run several)
    _owner = os.getpid()
    try:
        yield True
    except Terminated:
        if only_if_default:
            end_as_by_default()
        raise
    finally:
        signal.signal(signal.SIGTERM, before)
        _owner = owner


def end_as_by_default() -> None:
    """End this process as SIGTERM's default action does (for a library caller that had not asked
    for anything else, once its clean-up ran). Returns only if the signal is blocked."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def reset_in_child() -> None:
    """In a forked worker: SIGTERM's default action (the parent's handler is inherited by fork), so
    that the parent's ``terminate()`` ends it at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
