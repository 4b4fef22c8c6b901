"""(pc) ``bench detect`` and ``bench ingest`` run their worker as ``bench fleet`` does (prov's
``worker_in_group``): in a process group of its own, passed the Ctrl-C (or SIGTERM) the bench got,
and what is left of its group ended after it. Before, ``subprocess.run`` never told the worker (a
SIGTERM of the bench, or a Ctrl-C sent to the bench alone) and SIGKILLed it 0.25 s later: what it
had started lived on (detect's forked workers end with it only on Linux, by PR_SET_PDEATHSIG)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
@pytest.mark.parametrize("which", ["detect", "ingest"])
def test_a_ctrl_c_of_bench_detect_or_ingest_reaches_its_worker_and_leaves_nothing_running(tmp_path, monkeypatch, which):
    """The real ``detect_benchmark`` / ``ingest_benchmark`` (a 1-meter fleet simulated and stored),
    their worker a stand-in (``sys.executable`` replaced by a script that takes the same arguments):
    it starts a child that ignores SIGINT and does not end with it (as a forked worker off Linux, or
    any grandchild), says it is ready, and writes that it got the Ctrl-C when it gets one. A Ctrl-C
    to the bench's process alone (a SIGTERM is the same KeyboardInterrupt there): the worker is told,
    and its child is gone after it."""
    from wattwatch.app import bench

    ready, got, pidfile = tmp_path / "ready", tmp_path / "got", tmp_path / "child.pid"
    child, fake = tmp_path / "child.py", tmp_path / "python"
    child.write_text("import os, signal, sys, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                     "open(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(60)\n")
    fake.write_text(f"#!{sys.executable}\nimport subprocess, sys, time\n"
                    f"subprocess.Popen([{sys.executable!r}, {str(child)!r}, {str(pidfile)!r}], stdout=subprocess.DEVNULL,\n"
                    "                 stderr=subprocess.DEVNULL)\n"   # (not the worker's pipes: no wait for the grace)
                    f"try:\n    open({str(ready)!r}, 'w').write(' '.join(sys.argv[1:]))\n    time.sleep(60)\n"
                    f"except KeyboardInterrupt:\n    open({str(got)!r}, 'w').write('ctrl-c')\n    sys.exit(130)\n")
    fake.chmod(0o755)
    work = tmp_path / "bench"
    if which == "detect":
        def run():
            return bench.detect_benchmark(rows=1000, workdir=work, log=lambda *_: None, repeats=1)
    else:
        def run():
            return bench.ingest_benchmark(rows=1000, workdir=work, formats=("parquet",), log=lambda *_: None)

    def ctrl_c():
        end = time.monotonic() + 60
        while not (ready.exists() and ready.read_text() and pidfile.exists() and pidfile.read_text()) \
                and time.monotonic() < end:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    pid = None
    try:
        monkeypatch.setattr(sys, "executable", str(fake))
        threading.Thread(target=ctrl_c, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run()
        monkeypatch.undo()
        assert ready.read_text().startswith("-m wattwatch.app.bench " + ("detect" if which == "detect" else "parquet"))
        pid = int(pidfile.read_text())
        end = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert (got.exists() and got.read_text(), _alive(pid)) == ("ctrl-c", False), \
            "the worker was not told (False) / its child still runs (True)"
    finally:
        signal.signal(signal.SIGINT, before)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("main", ["_plain_main", "_spark_main"])
def test_a_worker_ended_by_sigterm_exits_143_even_when_an_error_replaced_the_interrupt(main, capsys):
    """(rpc) A SIGTERM (``sigterm.Terminated``) that Py4J's next error replaced on its way out (the
    interrupt in that error's context): the worker still says 143, as the command line does. Before,
    Spark's worker read the replacing error's type and exited 130 (a Ctrl-C)."""
    from wattwatch import sigterm
    from wattwatch.app import bench

    def work():
        try:
            raise sigterm.Terminated()
        except KeyboardInterrupt:
            raise RuntimeError("Answer from Java side is empty") from None

    with pytest.raises(SystemExit) as out:
        getattr(bench, main)(work)
    assert out.value.code == 143
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
@pytest.mark.parametrize("case", ["finished", "ctrl-c"])
def test_a_grandchild_holding_the_workers_pipes_delays_neither_a_ctrl_c_nor_the_workers_result(tmp_path, case):
    """(le; pc's leftover) ``worker_in_group`` waited for the worker's pipes to end (``communicate``):
    a grandchild holding them (a JVM started with the worker's stdout) held a Ctrl-C for the whole
    grace though the worker had ended at once, and held a worker that had finished until the
    grandchild ended (a JVM left running: for ever). (rle) Here both are 60 s and the bound 20 s: the
    fixed code takes ~1-2 s (more at load 30, which the old bound of 10 s came near). The grandchild
    ignores SIGINT and keeps the worker's stdout and stderr; it is ended with the worker's group."""
    from wattwatch.app import bench

    ready, pidfile = tmp_path / "ready", tmp_path / "child.pid"
    child, worker = tmp_path / "child.py", tmp_path / "worker.py"
    child.write_text("import os, signal, sys, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                     "open(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(60)\n")
    body = ("print('{\"rows\": 1}'); print('done', file=sys.stderr)\n" if case == "finished" else
            f"try:\n    open({str(ready)!r}, 'w').write('1')\n    time.sleep(60)\n"
            "except KeyboardInterrupt:\n    sys.exit(130)\n")
    worker.write_text(f"import subprocess, sys, time\n"   # the child inherits stdout and stderr
                      f"subprocess.Popen([sys.executable, {str(child)!r}, {str(pidfile)!r}])\n"
                      f"while not open({str(pidfile)!r}, 'a+').tell():\n    time.sleep(0.02)\n" + body)
    argv = [sys.executable, str(worker)]
    sent = []

    def ctrl_c():
        end = time.monotonic() + 60
        while not (ready.exists() and ready.read_text()) and time.monotonic() < end:
            time.sleep(0.05)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    pid = None
    try:
        t0 = time.monotonic()
        if case == "finished":   # its result on stdout, a line on stderr, its child living on
            assert bench.worker_in_group(argv, "worker", grace_s=60.0).strip() == '{"rows": 1}'
        else:                    # told, it ends at once (exit 130); the call ends well before the grace
            threading.Thread(target=ctrl_c, daemon=True).start()
            with pytest.raises(KeyboardInterrupt):
                bench.worker_in_group(argv, "worker", grace_s=60.0)
            t0 = sent[0]
        took = time.monotonic() - t0
        pid = int(pidfile.read_text())
        end = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert (took < 20, _alive(pid)) == (True, False), \
            f"{took:.1f} s ({case}; grace and the grandchild's life 60 s): waited on the pipes"
    finally:
        signal.signal(signal.SIGINT, before)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
