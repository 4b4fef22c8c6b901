"""Free TCP ports on 127.0.0.1 for the servers wattwatch starts itself (simulated devices, the
dashboard) and the tests' services."""

from __future__ import annotations

import os
import random
import re
import socket
import threading
from pathlib import Path

# Ports this process has handed out: a port is free until its server binds it, so two calls before
# that (a broker's plain and TLS listeners, influxd's HTTP and RPC ports) could return the same one
# (1 in ~22,700 a pair: the second listener then fails "address already in use").
_given: set[int] = set()
_lock = threading.Lock()


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (32768 if unknown)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _slice(low: int, high: int) -> tuple[int, int]:
    """The part of ``low..high`` this process draws from: all of it, except in a pytest-xdist
    worker (``PYTEST_XDIST_WORKER=gw<i>``, ``PYTEST_XDIST_WORKER_COUNT=<n>``, set by xdist in each
    worker and inherited by what it starts), which draws from the i-th of n disjoint slices. A port
    is handed out once per process only, and the workers are separate processes: worker A could be
    given a port worker B was handed and had not bound yet (or had freed for a while: a test's
    stopped influxd keeps its port for 60 s), about once in ~22,700 such draws. A worker restarted
    by xdist (``gw<n>`` and up) takes slice i mod n."""
    m = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    try:
        n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", ""))
    except ValueError:
        n = 0
    if m is None or n < 2 or (high - low) < 2 * n:
        return low, high
    i, span = int(m.group(1)) % n, (high - low) // n
    return low + i * span, (low + (i + 1) * span if i < n - 1 else high)


def free_port() -> int:
    """A free port below the kernel's ephemeral range. A port from that range (``bind(0)``) can be
    taken before a server that starts later binds it: a client retrying a connection to a server
    that is down (the watcher to a stopped influxd) is given, sooner or later, a local port equal
    to the one it connects to and connects to itself (TCP simultaneous open), and the server then
    fails with "address already in use" (seen in CI: test_influx's kill -9 test). A port is handed
    out once per process, so two ports asked for before either is bound differ; under pytest-xdist
    each worker draws from its own part of the range (:func:`_slice`), so two workers' ports differ
    too."""
    rng = random.SystemRandom()
    low = max(1025, min(_ephemeral_low(), 65536) - 1)
    first, last = _slice(10000 if low > 10000 else 1024, low)
    with _lock:
        for _ in range(200):
            port = rng.randrange(first, last)
            if port in _given:         # handed out before: its server may not have bound it yet
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _given.add(port)
            return port
        for _ in range(1000):   # no luck below the range (every port of it handed out, or taken)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _given:     # the kernel hands a port just closed out again
                _given.add(port)
                return port
        raise OSError("no free TCP port on 127.0.0.1 that this process has not handed out already")
