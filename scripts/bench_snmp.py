"""SNMPv3 polling figure: device polls per second against the simulated agents and the response
time per device poll (p50/p99). The agents run in threads of this process, or with ``--separate`` in a child process (so the
figure is the poller's, not the poller's and the agents' sharing one interpreter).

    PYTHONPATH=src python scripts/bench_snmp.py --devices 10 --outlets 8 --seconds 10 [--separate]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time

import numpy as np

from wattwatch.devices import snmp as agent
from wattwatch.sources import snmp

KEYS = {"user": "bench", "auth_key": "bench-auth-1", "priv_key": "bench-priv-1"}


def _serve(n: int, outlets: int, conn) -> None:
    agents = [agent.start(f"pdu{i}", {"model": "apc_rpdu2", "outlets": outlets, "seed": i, **KEYS}) for i in range(n)]
    conn.send([g.port for g in agents])
    conn.recv()
    for g in agents:
        g.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--outlets", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--separate", action="store_true", help="agents in a child process")
    a = ap.parse_args()
    if a.separate:
        here, there = mp.get_context("spawn").Pipe()
        child = mp.get_context("spawn").Process(target=_serve, args=(a.devices, a.outlets, there), daemon=True)
        child.start()
        ports, agents = here.recv(), []
    else:
        agents = [agent.start(f"pdu{i}", {"model": "apc_rpdu2", "outlets": a.outlets, "seed": i, **KEYS})
                  for i in range(a.devices)]
        ports = [g.port for g in agents]
    src = snmp.from_spec("bench", {"interval_s": 5.0, "request_timeout_s": 2.0, **KEYS, "devices": [
        {"name": f"pdu{i}", "port": p, "model": "apc_rpdu2"} for i, p in enumerate(ports)]}, None)

    async def run():
        await src.poll()  # prepare + discovery, not timed
        for d in src.devices:
            d.response_ms.clear()
        n, rows, t0, c0 = 0, 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < a.seconds:
            rows += len(await src.poll())
            n += 1
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        src.close()
        return n, rows, took, cpu

    try:
        cycles, rows, took, cpu = asyncio.run(run())
    finally:
        for g in agents:
            g.stop()
        if a.separate:
            here.send("stop")
            child.join(10)
    ms = np.concatenate([np.asarray(d.response_ms) for d in src.devices])
    lost = int(src.counters["lost"])
    print(f"devices={a.devices} outlets={a.outlets} agents {'in a child process' if a.separate else 'in-process'}: {cycles} cycles in {took:.1f} s, "
          f"{cycles * a.devices / took:.0f} device polls/s, {rows / took:.0f} readings/s, lost {lost}; "
          f"per device poll (GET + GETBULK) p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms; "
          f"CPU of this process per device poll {1000 * cpu / (cycles * a.devices):.1f} ms")


if __name__ == "__main__":
    main()
