"""(lc) Why a Modbus gateway cannot be reached is the error its connect met, not a guess from how
long the connect took (pymodbus returns False alike and says which only in its log): a refusal
that took most of a short timeout on a loaded machine read as "no answer" (rgw). Real sockets on
127.0.0.1: a port nothing listens on, and a listener whose backlog is full (its SYNs are dropped:
the connect times out)."""

from __future__ import annotations

import asyncio
import socket
import time


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_a_refused_and_a_timed_out_connection_say_which_in_the_gateway_state_and_counters():
    from wattwatch.sources import modbus as mb

    refused = _free_port()
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    held = []
    for _ in range(4):   # fill its accept queue: the kernel drops the next SYNs, the connect times out
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", full.getsockname()[1]))
        except BlockingIOError:
            pass
        held.append(c)
    time.sleep(0.1)
    models = {"m": mb.parse_model("m", {"registers": [{"channel": "p_kw", "table": "input", "address": 0,
                                                        "type": "float32"}]})}
    p = mb.ModbusPoller("plant", [{"meter_id": "A", "port": refused, "model": "m"},
                                  {"meter_id": "B", "port": full.getsockname()[1], "model": "m"}],
                        models, interval_s=1, timeout_s=0.4)
    # The refusal is slowed to take the whole timeout but one ms: timing would call it "no answer".
    real = getattr(mb, "_connect_why", None)

    def slowed(seen, timeout_s, took):
        return real(seen, timeout_s, max(took, timeout_s - 0.001))

    if real is not None:
        mb._connect_why = slowed
    try:
        asyncio.run(p.poll())
    finally:
        if real is not None:
            mb._connect_why = real
        p.close()
        full.close()
        for c in held:
            c.close()
    g1, g2 = p.gateways.values()
    assert g1.down_why == "connection refused (nothing listens on the port, or a firewall rejects it)", g1.down_why
    assert g1.counters["connect_refused"] == g1.counters["connect_failures"] >= 1, dict(g1.counters)
    assert g2.down_why == "no answer to the connection within 0.4 s", g2.down_why
    assert g2.counters["connect_timeout"] == g2.counters["connect_failures"] >= 1, dict(g2.counters)
    links = p.silence_links()
    assert links[g1.key]["why"].startswith("connection refused") and links[g1.key]["up"] is False, links
