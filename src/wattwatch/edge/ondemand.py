"""SIGUSR1 -> a status report, caught as early as the command can (this module imports nothing heavy).

``wattwatch edge`` installs the handler before it imports the edge code (pandas, scipy: seconds on a
loaded machine), so a request sent while the meter is still starting is answered at its first block
instead of taking the signal's default action (which ends the process).

The flag is a plain attribute, not a ``threading.Event``: an Event's ``set()`` takes the lock its
``clear()`` holds, and a Python signal handler runs in the main thread between bytecodes, so a
signal landing while the main thread clears the flag would wait for itself for ever. Requests that
come together (a storm of signals) are one report at the next block.
"""

from __future__ import annotations

import signal
import threading


class Request:
    """A signal-safe flag (one attribute store per signal, no lock)."""

    def __init__(self) -> None:
        self._on = False

    def set(self) -> None:
        self._on = True

    def clear(self) -> None:
        self._on = False

    def is_set(self) -> bool:
        return self._on


STATUS_REQUEST = Request()


def _handler(*_) -> None:
    STATUS_REQUEST.set()


def done() -> None:
    """After the run: requests are ignored (none can be answered now). Python resets a handler of its
    own to the default action while the interpreter shuts down, so a request landing then (a storm
    outliving the run) ended a finished run with -SIGUSR1 instead of its exit code; an ignored
    signal stays ignored."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def catch():
    """Install the SIGUSR1 handler (main thread only); returns the handler it replaced, or None."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
        return signal.signal(signal.SIGUSR1, _handler)
    return None
