"""Run an iterator one step ahead in a background thread.

Parsing the next block (pyarrow) and merging the current one (DuckDB) both release the GIL, so
overlapping them uses the second core instead of leaving it idle half the time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield from ``items`` while a worker thread produces up to ``depth`` items ahead.

    An exception in the producer is re-raised in the consumer at the point it occurred; closing
    the generator early stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed over to the consumer
            q.put((_DONE, exc))

    thread = threading.Thread(target=work, name="wattwatch-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is _DONE:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()
