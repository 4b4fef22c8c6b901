"""``wattwatch bench ...`` under SIGTERM and Ctrl-C as detect and ingest (m1): the clean-ups run (the
child a bench spawned is stopped), one message, exit 143 / 130. Before, SIGTERM ended the parent at
once: ``bench poll``'s device servers (a spawned child waiting for its stop event) ran on for ever,
and a Ctrl-C ended with exit 130 and no word."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


# (Ctrl-C, SIGINT: exit 130 and "bench poll: interrupted (Ctrl-C)", the child stopped, shown once with
# this test parametrized; one signal kept to keep the suite's time.)
@pytest.mark.parametrize("sig, code, how", [(signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_bench_poll_stopped_stops_its_device_servers_and_says_so(tmp_path, sig, code, how):
    env = dict(os.environ, WATTWATCH_PROGRESS="0", PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    errf = tmp_path / "stderr.txt"   # a file: a child left running would hold a pipe open
    with errf.open("w") as fh:
        p = subprocess.Popen([sys.executable, "-m", "wattwatch", "bench", "poll", "--devices", "4", "--units", "2",
                              "--seconds", "120"], stdout=subprocess.DEVNULL, stderr=fh, env=env,
                             start_new_session=True)
    children = []
    try:
        t0 = time.monotonic()
        while not (got := re.search(r"processes \(pids ([\d, ]+)\)", errf.read_text())):
            assert p.poll() is None and time.monotonic() - t0 < 120, (p.poll(), errf.read_text()[-2000:])
            time.sleep(0.1)
        children = [psutil.Process(int(x)) for x in got.group(1).split(",")]
        assert len(children) == 2          # the device workers (--workers, default 2)
        time.sleep(0.5)   # polling
        p.send_signal(sig)
        p.wait(timeout=60)
        gone, alive = psutil.wait_procs(children, timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for c in children:
            if c.is_running():
                c.kill()
    err = errf.read_text()
    assert (p.returncode, len(gone), alive) == (code, 2, []), f"exit {p.returncode}, alive: {alive}; {err[-2000:]}"
    assert f"bench poll: {how}" in " ".join(err.split()) and "Traceback" not in err, err[-2000:]
