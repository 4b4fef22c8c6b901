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
    child = None
    try:
        t0 = time.monotonic()
        while not (got := re.search(r"child pid (\d+)", errf.read_text())):
            assert p.poll() is None and time.monotonic() - t0 < 120, (p.poll(), errf.read_text()[-2000:])
            time.sleep(0.1)
        child = psutil.Process(int(got.group(1)))
        time.sleep(0.5)   # polling
        p.send_signal(sig)
        p.wait(timeout=60)
        gone = psutil.wait_procs([child], timeout=10)[0]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if child is not None and child.is_running():
            child.kill()
    err = errf.read_text()
    assert (p.returncode, bool(gone)) == (code, True), f"exit {p.returncode}, child gone: {bool(gone)}; {err[-2000:]}"
    assert f"bench poll: {how}" in " ".join(err.split()) and "Traceback" not in err, err[-2000:]
