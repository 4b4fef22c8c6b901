"""SNMPv3 polling figure: device polls per second against the simulated agents and the response
time per device poll (p50/p99). One process, agents in threads of the same process (2 shared cores).

    PYTHONPATH=src python scripts/bench_snmp.py --devices 10 --outlets 8 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from wattwatch.devices import snmp as agent
from wattwatch.sources import snmp

KEYS = {"user": "bench", "auth_key": "bench-auth-1", "priv_key": "bench-priv-1"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--outlets", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    agents = [agent.start(f"pdu{i}", {"model": "apc_rpdu2", "outlets": a.outlets, "seed": i, **KEYS})
              for i in range(a.devices)]
    src = snmp.from_spec("bench", {"interval_s": 5.0, "request_timeout_s": 2.0, **KEYS, "devices": [
        {"name": g.name, "port": g.port, "model": "apc_rpdu2"} for g in agents]}, None)

    async def run():
        await src.poll()  # prepare + discovery, not timed
        for d in src.devices:
            d.response_ms.clear()
        n, rows, t0 = 0, 0, time.perf_counter()
        while time.perf_counter() - t0 < a.seconds:
            rows += len(await src.poll())
            n += 1
        took = time.perf_counter() - t0
        src.close()
        return n, rows, took

    try:
        cycles, rows, took = asyncio.run(run())
    finally:
        for g in agents:
            g.stop()
    ms = np.concatenate([np.asarray(d.response_ms) for d in src.devices])
    lost = int(src.counters["lost"])
    print(f"devices={a.devices} outlets={a.outlets}: {cycles} cycles in {took:.1f} s, "
          f"{cycles * a.devices / took:.0f} device polls/s, {rows / took:.0f} readings/s, lost {lost}; "
          f"per device poll (GET + GETBULK) p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms")


if __name__ == "__main__":
    main()
