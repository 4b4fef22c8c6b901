"""Free TCP ports on 127.0.0.1 for the servers wattwatch starts itself (simulated devices, the
dashboard) and the tests' services."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (32768 if unknown)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free port below the kernel's ephemeral range. A port from that range (``bind(0)``) can be
    taken before a server that starts later binds it: a client retrying a connection to a server
    that is down (the watcher to a stopped influxd) is given, sooner or later, a local port equal
    to the one it connects to and connects to itself (TCP simultaneous open), and the server then
    fails with "address already in use" (seen in CI: test_influx's kill -9 test)."""
    rng = random.SystemRandom()
    low = max(1025, min(_ephemeral_low(), 65536) - 1)
    for _ in range(200):
        port = rng.randrange(10000 if low > 10000 else 1024, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:   # no luck below the range
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
