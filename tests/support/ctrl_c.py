"""``python -m tests.support.ctrl_c PREFIX NTH DELAY -- wattwatch ARGS``: run the command line, and
DELAY seconds after the NTH statement the store runs over an Arrow table (``Store._query``/``_run``:
an ingest's merge, its stored-side read, its inserts) and whose SQL starts with PREFIX starts, send
this process a real SIGINT (a Ctrl-C as a terminal sends it) from another thread: DuckDB is then
running it (or, for a statement quicker than DELAY, Python code after it). Nothing else
is changed: what DuckDB and wattwatch do with the signal is what a user gets (st2).

SIGINT is first given Python's own handler (:data:`AS_A_TERMINAL`): a process started from a shell
without job control (``pytest ... &`` in a script, some CI runners) inherits SIGINT *ignored*, and
Python then installs no KeyboardInterrupt handler, so the signal did nothing and every Ctrl-C test
saw the command run to its end and exit 0 (tt11, rtt11). A user's terminal Ctrl-C reaches a
process whose SIGINT is the default; the tests now do not depend on how pytest was started."""

from __future__ import annotations

import os
import signal
import sys
import threading

# Python's KeyboardInterrupt handler for SIGINT, whatever the disposition the process inherited;
# a ``python -c`` child that sends itself a SIGINT runs this line first too.
AS_A_TERMINAL = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)   # AS_A_TERMINAL
    prefix, nth, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    args = sys.argv[sys.argv.index("--") + 1:]
    from wattwatch.store import duck

    seen = [0]

    def armed(run):
        def statement(self, table, sql):
            if str(getattr(sql, "query", sql)).lstrip().startswith(prefix):   # (a parsed statement: its text)
                seen[0] += 1
                if seen[0] == nth:
                    threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()
            return run(self, table, sql)
        return statement

    duck.Store._query = armed(duck.Store._query)
    duck.Store._run = armed(duck.Store._run)
    sys.argv = ["wattwatch", *args]
    from wattwatch.app.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
