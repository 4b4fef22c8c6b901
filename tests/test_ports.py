"""wattwatch.ports.free_port: the ports the tests' services and wattwatch's own servers start on."""

from __future__ import annotations

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
