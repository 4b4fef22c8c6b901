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

(flaky) An interrupt raised in Python code DuckDB's client calls back can be lost there: its
binder turns a KeyboardInterrupt raised while it counts an Arrow table's rows into a
``duckdb.Error`` and, on one path (``_bind_with_stand_ins``), catches that error and binds again,
so the statement returns as if no signal had come (duckdb 2.0.1; shown with a real SIGINT sent
from inside that callback). A Ctrl-C then did nothing, and a SIGTERM did nothing either, and no
later one did (only the first raises). The handlers of :func:`as_interrupt` count what they raise
(:func:`raised`); :func:`raise_if_lost` raises again one that a call returned over.
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
_raised = 0                 # interrupts the handlers of as_interrupt raised in this process
_last: BaseException | None = None   # the last of them


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


def raised() -> int:
    """How many interrupts (Ctrl-C, SIGTERM) the handlers of :func:`as_interrupt` raised in this process
    so far: taken before a call, then given to :func:`raise_if_lost` after it."""
    return _raised


def raise_if_lost(since: int) -> None:
    """Raise the interrupt a handler raised after :func:`raised` said ``since`` if the call in
    between returned instead (DuckDB's client lost it: see the module); nothing otherwise, and
    nothing in another thread than the main one (handlers run there only: an interrupt raised
    there meanwhile was not this thread's to lose)."""
    if _raised != since and _last is not None and threading.current_thread() is threading.main_thread():
        lost = type(_last)(*_last.args)
        raise lost


def _raise(exc: KeyboardInterrupt) -> None:
    global _raised, _last
    _raised += 1
    _last = exc
    raise exc


def _int_handler(signum, frame) -> None:
    """SIGINT in :func:`as_interrupt`: Python's own (a KeyboardInterrupt), counted."""
    _raise(KeyboardInterrupt())


def _handler(signum, frame) -> None:
    global _received
    if os.getpid() != _owner:
        # A forked child that has not yet reset its handlers: end as SIGTERM's default does.
        end_as_by_default()
        return
    if _received:
        return
    _received = True
    _raise(Terminated("terminated (SIGTERM)"))


@contextmanager
def as_interrupt(only_if_default: bool = False):
    """In the block, SIGTERM raises :class:`Terminated` in the main thread, and SIGINT (if Python's
    own handler is in force) its KeyboardInterrupt, both counted (:func:`raised`); the previous
    handlers are back after it. Yields whether the handler was installed: not outside the main thread (Python
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
    int_before = signal.getsignal(signal.SIGINT)
    if int_before is signal.default_int_handler:
        signal.signal(signal.SIGINT, _int_handler)
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
        if signal.getsignal(signal.SIGINT) is _int_handler:
            signal.signal(signal.SIGINT, int_before)
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
