"""wattwatch.ports.free_port: the ports the tests' services and wattwatch's own servers start on."""

from __future__ import annotations

import os
import subprocess
import sys

from wattwatch import ports
from wattwatch.ports import _ephemeral_low, free_port


def test_ports_asked_for_before_any_is_bound_all_differ():
    # A broker's plain and TLS listeners (influxd's HTTP and RPC ports) are two free_port() calls
    # before either is bound: drawn at random from ~22,700 ports, two of them were the same about
    # once in 22,700 pairs and the broker failed to start. 1,000 draws held ~22 equal pairs (1,000² / 2 / 22,767).
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < _ephemeral_low() for p in ports)


def test_ports_stay_distinct_once_the_range_below_the_ephemeral_one_is_used_up(monkeypatch):
    # Every port of 10000.. below the ephemeral range handed out (a process that asked ~22,000
    # times): free_port falls back to one the kernel picks, and the kernel picks a port it just
    # closed again (1,000 draws held ~30 repeats before).
    monkeypatch.setattr(ports, "_given", set(range(10000, _ephemeral_low())))
    drawn = [free_port() for _ in range(1000)]
    assert len(set(drawn)) == len(drawn)
    assert all(p >= _ephemeral_low() for p in drawn)


_DRAW = "import sys; from wattwatch.ports import free_port; print(*(free_port() for _ in range(int(sys.argv[1]))))"


def _draw(n: int, **xdist: str) -> list[int]:
    """``n`` ports drawn by a process of its own, with these pytest-xdist variables (and no others)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env.update(xdist, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", _DRAW, str(n)], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    return [int(p) for p in out]


def test_two_xdist_workers_are_never_handed_the_same_port():
    # A port is handed out once per process; the two xdist workers of `make test` are two processes.
    # Drawing from the same ~22,700 ports, worker A could be handed a port worker B was given and
    # had not bound yet (or had freed for 60 s: test_influx's stopped influxd). 1,000 draws in each
    # had ~44 ports in common before (1,000² / 22,767; none in common: a chance of ~e**-44).
    a = _draw(1000, PYTEST_XDIST_WORKER="gw0", PYTEST_XDIST_WORKER_COUNT="2")
    b = _draw(1000, PYTEST_XDIST_WORKER="gw1", PYTEST_XDIST_WORKER_COUNT="2")
    assert len(set(a)) == len(a) == 1000 and len(set(b)) == len(b) == 1000
    assert not set(a) & set(b), sorted(set(a) & set(b))[:10]
    # Outside xdist (wattwatch's own servers, a test run in one process) the whole range, as before:
    # 1,000 draws all in one half would be a 1 in 2**999 chance.
    mid = (10000 + _ephemeral_low()) // 2
    alone = _draw(1000)
    assert min(alone) < mid <= max(alone) and all(10000 <= p < _ephemeral_low() for p in alone)


def test_xdist_worker_slices_cover_the_range_once_and_odd_settings_fall_back_to_all_of_it(monkeypatch):
    low, high = 10000, 32767
    for n in (2, 3, 5):
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(n))
        parts = []
        for i in range(n):
            monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{i}")
            parts.append(ports._slice(low, high))
        covered = [p for a, b in parts for p in range(a, b)]
        assert sorted(covered) == list(range(low, high)), n          # every port once, in one slice
        assert all(b - a >= (high - low) // n for a, b in parts), parts
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{n + 1}")        # restarted by xdist: slice (n+1) mod n
        assert ports._slice(low, high) == parts[1]
    # One worker, no xdist, or variables that do not say which slice: the whole range.
    for worker, count in [("gw0", "1"), ("gw1", ""), ("gw1", "two"), ("gw1", "-2"), ("master", "2"), ("", "2"),
                          (None, "2"), ("gw1", None)]:
        for name, value in (("PYTEST_XDIST_WORKER", worker), ("PYTEST_XDIST_WORKER_COUNT", count)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        assert ports._slice(low, high) == (low, high), (worker, count)
    # A range too small to share: all of it.
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    assert ports._slice(1024, 1029) == (1024, 1029)


def test_a_worker_whose_slice_is_used_up_still_gets_distinct_ports(monkeypatch):
    # gw1 of 2: every port of its slice handed out; it falls back to ports the kernel picks, never
    # to the other worker's slice.
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    first, last = ports._slice(10000, _ephemeral_low() - 1)
    assert 10000 < first < last
    monkeypatch.setattr(ports, "_given", set(range(first, last)))
    drawn = [free_port() for _ in range(200)]
    assert len(set(drawn)) == len(drawn) and all(p >= _ephemeral_low() for p in drawn)
