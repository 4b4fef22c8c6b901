"""(nb) Two runs appending to one rejects file at once (two scheduled ingests, an ingest and a
``detect FILE``: both default to ``wattwatch-rejects.csv``) wrote through buffered files, 8 KB at a
time, with no lock: one run's rows landed inside another's, cutting rows in two, and both could write
the header. Each write now holds an exclusive lock on the file: the file parses as CSV with whole
rows, one header, and each row's ``run`` says which run wrote it."""
from __future__ import annotations

import csv
import io
import os
import threading
from pathlib import Path

import pytest

from wattwatch.ingest import pipeline
from wattwatch.ingest.pipeline import REJECT_HEADER, RejectsWriter

N = 3000   # rows a run writes at once (~300 KB: many times a file buffer, and six of the chunks below)


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    # A run's rows go to the file a chunk at a time (its memory stays small): 500 rows here, so that
    # a few thousand rows take several writes, as a few hundred thousand rejects do in a real run.
    monkeypatch.setattr(pipeline, "REJECTS_CHUNK_ROWS", 500, raising=False)


class _Slow:
    """A value whose text is asked for while its run's rows are being written: it holds that run there
    (as the scheduler may) until the test lets it go."""

    def __init__(self, reached: threading.Event, go: threading.Event):
        self.reached, self.go = reached, go

    def __str__(self) -> str:
        self.reached.set()
        self.go.wait(10)
        return "slow"


def _rows(run: str, n: int = N, slow: _Slow | None = None) -> list[tuple]:
    rows = [(f"/data/{run}.csv", i + 2, "p_kw", f"'{run}-{i}' is not a number | M1,2025,{run}-{i}" + "x" * 60)
            for i in range(n)]
    if slow is not None:
        rows[n // 2] = rows[n // 2][:3] + (slow,)
    return rows


def test_two_runs_appending_at_once_leave_whole_rows_each_with_its_run(tmp_path: Path):
    path = tmp_path / "rejects.csv"
    reached, go = threading.Event(), threading.Event()
    a, b = RejectsWriter(path, run="run-A"), RejectsWriter(path, run="run-B")
    errors: list[BaseException] = []

    def write(writer, rows):
        try:
            writer.write(rows)
        except BaseException as exc:   # noqa: BLE001 (said by the assertion below)
            errors.append(exc)

    # Run A is held half-way through its rows (the first half already handed to the file); run B then
    # writes all of its own, then A goes on. Unlocked, B's rows land inside A's, mid-row.
    ta = threading.Thread(target=write, args=(a, _rows("A", slow=_Slow(reached, go))))
    ta.start()
    assert reached.wait(10)
    tb = threading.Thread(target=write, args=(b, _rows("B")))
    tb.start()
    tb.join(0.3)   # (locked: B waits for A; unlocked: B has written by now)
    go.set()
    ta.join(10)
    tb.join(10)
    assert not errors and not ta.is_alive() and not tb.is_alive(), errors
    for writer in (a, b):
        writer.close()
    # then a third run appends after both, as to any rejects file
    RejectsWriter(path, run="run-C").write(_rows("C", n=5))

    with open(path, newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    assert table[0] == list(REJECT_HEADER) and list(REJECT_HEADER) not in table[1:]
    assert all(len(row) == len(REJECT_HEADER) for row in table), [row for row in table if len(row) != 5][:3]
    body = table[1:]
    # each run's rows whole, in its order, and together (one write is one run's batch)
    for run, n in (("A", N), ("B", N), ("C", 5)):
        mine = [k for k, row in enumerate(body) if row[4] == f"run-{run}"]
        assert len(mine) == n and mine == list(range(mine[0], mine[0] + n)), (run, len(mine))
        want = [r[:3] + ("slow" if run == "A" and i == N // 2 else r[3],) for i, r in enumerate(_rows(run, n))]
        got = [(row[0], int(row[1]), row[2], row[3]) for row in (body[k] for k in mine)]
        assert got == want, run
    assert len(body) == 2 * N + 5


def test_a_write_cut_short_leaves_the_rejects_file_as_it_was(tmp_path: Path):
    # A Ctrl-C (or a full disk) part way through a run's rows left half of them, the last cut mid-row:
    # the next run's rows were appended to that half row. The file is cut back to where it was.
    path = tmp_path / "rejects.csv"
    RejectsWriter(path, run="run-A").write(_rows("A", n=10))
    before = path.read_bytes()

    class Stop:
        def __str__(self) -> str:
            raise KeyboardInterrupt

    rows = _rows("B", n=2000)
    rows[1600] = rows[1600][:3] + (Stop(),)
    try:
        RejectsWriter(path, run="run-B").write(rows)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the write was not interrupted")
    assert path.read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_rejects_to_a_pipe_get_one_header_however_many_writes(tmp_path: Path):
    # (rnb) ``--rejects /dev/stdout`` piped on, or a named pipe: its size is always 0, so each write
    # (one per file ingested) took it for a new file and wrote the header again, a data row to the reader.
    fifo = tmp_path / "rejects.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)   # (the rows wait in the pipe until read)
    try:
        writer = RejectsWriter(fifo, run="run-A")
        writer.write(_rows("A", n=3))
        writer.write(_rows("B", n=2))
        writer.close()
        got = os.read(reader, 1 << 16).decode("utf-8")
    finally:
        os.close(reader)
    table = list(csv.reader(io.StringIO(got, newline="")))
    assert table[0] == list(REJECT_HEADER) and list(REJECT_HEADER) not in table[1:], table
    assert len(table) == 1 + 5 and writer.count == 5
