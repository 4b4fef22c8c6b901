"""How many Python lines a call runs in one package's source: a test that work is vectorised
(the count does not grow with the rows or nodes it handles) without timing it."""

from __future__ import annotations

import sys
import threading
from pathlib import Path


def lines_run(fn, package) -> tuple[object, int]:
    """``(fn(), lines of ``package``'s files that ran)``, in this thread and the threads ``fn`` starts.
    Lines elsewhere (numpy, pyarrow, pandas) are not counted, nor traced."""
    root = str(Path(package.__file__).resolve().parent)
    count = [0]

    def local(frame, event, arg):
        if event == "line":
            count[0] += 1
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(root) else None

    old, old_threads = sys.gettrace(), threading.gettrace()
    sys.settrace(calls)
    threading.settrace(calls)
    try:
        out = fn()
    finally:
        sys.settrace(old)
        threading.settrace(old_threads)
    return out, count[0]
