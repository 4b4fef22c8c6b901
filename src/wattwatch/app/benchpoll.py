"""``wattwatch bench poll``: many simulated Modbus devices polled at 1 s from one process.

The devices (pymodbus servers of :mod:`wattwatch.devices.modbus`, ``gateways`` of ``units``
meters each, every meter ``registers`` holding registers of generator values) run in a child
process; this process polls all of them every ``interval_s`` with one
:class:`~wattwatch.sources.modbus.ModbusPoller` (one request per device: the registers are
contiguous) for ``seconds``. Figures: device polls that answered before the cycle's deadline (the
next tick), lost polls, the response time per device poll (p50, p99, from the first request to the
last answer), cycle durations, and the CPU seconds of the poller and of the servers.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import platform
import resource
import time

import numpy as np

CHANNELS = ["v_l1_v", "v_l2_v", "v_l3_v", "i_l1_a", "i_l2_a", "i_l3_a", "i_n_a", "p_kw", "q_kvar", "s_kva",
            "pf", "e_kwh", "temp_c", "thd_i_pct"]


def model(registers: int) -> list[dict]:
    """``registers`` (1..28) contiguous holding registers over the 14 channels: as many float32
    (two registers) as it takes, the rest uint16."""
    n = len(CHANNELS)
    if not 1 <= registers <= 2 * n:
        raise ValueError(f"registers must be 1..{2 * n}, got {registers}")
    floats = max(0, registers - n)
    out, addr = [], 0
    for k, c in enumerate(CHANNELS[:min(registers, n)]):
        typ = "float32" if k < floats else "uint16"
        out.append({"channel": c, "table": "holding", "address": addr, "type": typ})
        addr += 2 if typ == "float32" else 1
    return out


def _serve(gateways: int, units: int, regs: list[dict], q, stop) -> None:
    import logging

    from wattwatch.devices import modbus as dev

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    running = [dev.start(f"gw{g}", {"registers": regs, "meters": [f"g{g}u{u}" for u in range(1, units + 1)],
                                    "interval_s": 1.0, "seed": g}) for g in range(gateways)]
    q.put([r.port for r in running])
    stop.wait()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    q.put({"cpu_s": ru.ru_utime + ru.ru_stime, "requests": sum(r.view().get("requests", 0) for r in running)})
    for r in running:
        r.stop()


def poll_benchmark(devices: int = 1000, registers: int = 20, interval_s: float = 1.0, seconds: float = 20.0,
                   units: int = 20, concurrency: int = 256, timeout_s: float = 0.8, log=print) -> dict:
    from wattwatch.sources import modbus as mb

    if devices % units:
        raise ValueError(f"devices ({devices}) must be a multiple of units per gateway ({units})")
    gateways = devices // units
    regs = model(registers)
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve, args=(gateways, units, regs, q, stop), daemon=True)
    child.start()
    try:
        ports = q.get(timeout=120)
        log(f"{gateways} gateways x {units} units listening (child pid {child.pid})")
        models = {"m": mb.parse_model("m", {"registers": regs})}
        specs = [{"meter_id": f"g{g}u{u}", "port": p, "unit": u, "model": "m"}
                 for g, p in enumerate(ports) for u in range(1, units + 1)]
        poller = mb.ModbusPoller("bench", specs, models, interval_s=interval_s, timeout_s=timeout_s, retries=0,
                                 concurrency=concurrency, deadline_s=interval_s)
        assert len(models["m"].reads) == 1
        cycles: list[float] = []
        readings = [0]

        async def main():
            ev = asyncio.Event()

            async def emit(batch):
                readings[0] += len(batch.frame)

            orig = poller.poll

            async def timed():
                t = time.monotonic()
                f = await orig()
                cycles.append(time.monotonic() - t)
                return f

            poller.poll = timed
            # One warm-up cycle opens the connections; then the measured run.
            await poller.poll()
            for d in poller.devices:
                d.counters.clear()
                d.times.clear()
            poller.counters.clear()
            poller.response_ms.clear()
            poller.device_ms.clear()
            cycles.clear()
            readings[0] = 0
            t0 = time.process_time()
            task = asyncio.create_task(poller.run(emit, ev))
            await asyncio.sleep(seconds)
            ev.set()
            await task
            return time.process_time() - t0

        cpu = asyncio.run(main())
        poller.close()
        stop.set()
        child_stats = q.get(timeout=60)
    finally:
        stop.set()
        child.join(30)
        if child.is_alive():
            child.terminate()
    times = np.concatenate([np.asarray(d.times, float) for d in poller.devices if d.times]) \
        if any(d.times for d in poller.devices) else np.array([np.nan])
    polls = sum(d.counters["polls"] for d in poller.devices)
    on_time = sum(d.counters["on_time"] for d in poller.devices)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "devices": devices, "gateways": gateways, "units_per_gateway": units, "registers": registers,
        "requests_per_poll": len(models["m"].reads), "interval_s": interval_s, "seconds": seconds,
        "cycles": len(cycles), "device_polls": polls, "on_time": on_time,
        "on_time_share": round(on_time / polls, 4) if polls else 0.0,
        "lost": sum(d.counters["lost"] for d in poller.devices), "readings": readings[0],
        "timeouts": int(poller.counters["timeouts"]),
        "response_ms": {"p50": round(float(np.nanpercentile(times, 50)), 2),
                        "p99": round(float(np.nanpercentile(times, 99)), 2)},
        "cycle_ms": {"p50": round(float(np.median(cycles)) * 1000, 1) if cycles else None,
                     "max": round(float(np.max(cycles)) * 1000, 1) if cycles else None},
        "poller_cpu_s_per_s": round(cpu / seconds, 3),
        "poller_cpu_ms_per_poll": round(1000 * cpu / max(polls, 1), 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "servers_cpu_s": round(child_stats.get("cpu_s", float("nan")), 2),
        "server_requests": child_stats.get("requests"),
        "server_cpu_ms_per_request": round(1000 * child_stats.get("cpu_s", float("nan"))
                                           / max(child_stats.get("requests") or 1, 1), 3),
    }
