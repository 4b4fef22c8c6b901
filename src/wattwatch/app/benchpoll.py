"""``wattwatch bench poll``: many simulated Modbus devices polled at 1 s from one process.

The devices run in ``workers`` child processes (not the poller's, nor its interpreter lock):
``gateways`` pymodbus servers (:mod:`wattwatch.devices.modbus`, each its own TCP port), gateway
``g`` in worker ``g % workers``, each worker's gateways on one event loop (``devices.modbus.Host``:
one thread, not one a gateway), each gateway answering ``units`` unit ids, a meter of its own per
unit id (its own generator and values), every meter ``registers`` holding registers. This
process polls all of them every ``interval_s`` with one
:class:`~wattwatch.sources.modbus.ModbusPoller` (one request per device: the registers are
contiguous; one request at a time per gateway) for ``seconds``.

A poll's deadline is its own tick's end: the run's ticks are ``T0 + k x interval_s`` (``T0``: the
first measured cycle's start), the poll of a device made by the cycle that started in tick ``k``
is due by ``T0 + (k + 1) x interval_s``, and it met its deadline when that device's answer came
by then (each answer's own time, not its cycle's end). Every device is due once a tick: a tick no
cycle started in (the cycle before it overran) counts every device's poll as not made, a poll
that never returned (cancelled) as missed. Figures: the share of the polls due that met their
deadline and what became of the others (late, lost, never returned, not made), the response time
per device poll (p50, p99, from the first request to the last answer), cycle durations, the CPU
seconds of the poller and of the servers, and the evidence that the devices are separate (ports,
unit ids asked per server, devices answered, distinct readings in a cycle).
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


def _serve(gws: list[int], units: int, regs: list[dict], q, stop, parent: int | None = None) -> None:
    """A device worker: the gateways ``gws`` (pymodbus servers, one port each) on one event loop,
    until ``stop`` is set or its parent process (pid ``parent``) is gone: a bench killed (SIGKILL,
    a test's kill) runs no clean-up, and its workers, waiting for ``stop``, served on for ever."""
    import logging

    from wattwatch.devices import modbus as dev

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    host = dev.Host(f"bench{gws[0] if gws else 0}")
    running = []
    try:
        for g in gws:
            running.append(dev.start(f"gw{g}", {"registers": regs, "meters": [f"g{g}u{u}" for u in range(1, units + 1)],
                                                "interval_s": 1.0, "seed": g}, host=host))
        q.put([r.port for r in running])
        while not stop.wait(0.5):
            if parent is not None and os.getppid() != parent:   # orphaned: nobody reads q any more
                q.cancel_join_thread()
                return
        ru = resource.getrusage(resource.RUSAGE_SELF)
        q.put({"cpu_s": ru.ru_utime + ru.ru_stime, "requests": sum(r.view().get("requests", 0) for r in running),
               # unit ids each server was asked for (a meter latches its cycle on each request to it)
               "units_asked": sum(1 for r in running for m in r.meters.values() if m.k > 0),
               "servers": len({r.port for r in running})})
    finally:
        for r in running:
            r.stop()
        host.stop()


def _worker(*args) -> None:
    """A device worker process (:func:`_serve`) that leaves a Ctrl-C to the bench: a terminal's
    Ctrl-C goes to the whole process group, and each worker printed a KeyboardInterrupt traceback
    while the bench said "interrupted (Ctrl-C)"; the bench stops it (its stop event, or its exit)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _serve(*args)


def tally(records, devices: int, t0: float, interval_s: float, ticks: int) -> dict:
    """Each device's poll of each tick ``0 .. ticks-1`` against its own deadline (the tick's end).

    ``records``: one per device poll made, ``(device, cycle start, answer time or NaN if it never
    returned, answered)``. A tick's poll of a device is the first one made by a cycle that started
    in the tick; it met its deadline when answered by ``t0 + (tick + 1) x interval_s``. Returns the
    counts: ``due`` (devices x ticks), ``met``, ``late`` (answered after), ``lost`` (no answer),
    ``never_returned`` (still out when the run ended, or cancelled), ``not_made`` (no cycle started
    in the tick) and ``made``."""
    rec = np.asarray(records, float).reshape(-1, 4) if len(records) else np.zeros((0, 4))
    dev, start, end, ok = rec[:, 0].astype(np.int64), rec[:, 1], rec[:, 2], rec[:, 3] > 0
    tick = np.floor((start - t0) / interval_s + 1e-9).astype(np.int64)
    keep = (tick >= 0) & (tick < ticks)
    dev, start, end, ok, tick = dev[keep], start[keep], end[keep], ok[keep], tick[keep]
    # the first poll of each (device, tick)
    order = np.lexsort((start, tick, dev))
    dev, end, ok, tick = dev[order], end[order], ok[order], tick[order]
    first = np.ones(len(dev), bool)
    first[1:] = (dev[1:] != dev[:-1]) | (tick[1:] != tick[:-1])
    dev, end, ok, tick = dev[first], end[first], ok[first], tick[first]
    deadline = t0 + (tick + 1) * interval_s
    returned = np.isfinite(end)
    met = returned & ok & (end <= deadline)
    late = returned & ok & (end > deadline)
    due = devices * ticks
    return {"due": int(due), "made": int(len(dev)), "met": int(met.sum()), "late": int(late.sum()),
            "lost": int((returned & ~ok).sum()), "never_returned": int((~returned).sum()),
            "not_made": int(due - len(dev))}


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            return float("nan")
    return total


def _waited_s(pids: list[int]) -> float:
    """Seconds the threads of the processes ``pids`` have waited runnable for a CPU (Linux's
    ``/proc/PID/task/TID/schedstat``: time on a CPU, time waiting on a run queue, slices); NaN
    where the kernel does not say. On a machine shared with other work, a request's round trip
    is mostly this wait, not its CPU."""
    total = 0.0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return float("nan")
    return total


def _per_s(x, seconds: float):
    return None if x is None or not np.isfinite(x) else round(x / seconds, 3)


def poll_benchmark(devices: int = 1000, registers: int = 20, interval_s: float = 1.0, seconds: float = 20.0,
                   units: int = 20, concurrency: int = 256, timeout_s: float = 0.8, workers: int = 2,
                   log=print) -> dict:
    from wattwatch.sources import modbus as mb

    if devices % units:
        raise ValueError(f"devices ({devices}) must be a multiple of units per gateway ({units})")
    gateways = devices // units
    workers = max(1, min(int(workers), gateways))
    regs = model(registers)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    # gateway g on worker g % workers: each worker a process of its own, its gateways on one loop
    share = [list(range(w, gateways, workers)) for w in range(workers)]
    queues = [ctx.Queue() for _ in range(workers)]
    children = [ctx.Process(target=_worker, args=(share[w], units, regs, queues[w], stop, os.getpid()),
                            daemon=True)
                for w in range(workers)]
    for c in children:
        c.start()
    try:
        ports = [0] * gateways
        for w in range(workers):
            for g, p in zip(share[w], queues[w].get(timeout=120)):
                ports[g] = p
        pids = [c.pid for c in children]
        log(f"{gateways} gateways x {units} units listening in {workers} processes (pids "
            f"{', '.join(map(str, pids))}), each its gateways on one event loop")
        models = {"m": mb.parse_model("m", {"registers": regs})}
        specs = [{"meter_id": f"g{g}u{u}", "port": p, "unit": u, "model": "m"}
                 for g, p in enumerate(ports) for u in range(1, units + 1)]
        poller = mb.ModbusPoller("bench", specs, models, interval_s=interval_s, timeout_s=timeout_s, retries=0,
                                 concurrency=concurrency, deadline_s=interval_s)
        assert len(models["m"].reads) == 1
        index = {d.meter_id: i for i, d in enumerate(poller.devices)}
        cycles: list[tuple[float, float]] = []      # (start, end) of each measured cycle
        records: list[list] = []                    # per device poll: device, cycle start, answer time, answered
        readings = [0]
        last = {}
        clock = {"start": 0.0}

        async def main():
            ev = asyncio.Event()

            async def emit(batch):
                readings[0] += len(batch.frame)
                last["frame"] = batch.frame

            orig, orig_dev = poller.poll, poller._poll_device

            async def timed():
                t = clock["start"] = time.monotonic()
                f = await orig()
                cycles.append((t, time.monotonic()))
                return f

            async def polled(dev, deadline):
                rec = [index[dev.meter_id], clock["start"], float("nan"), 0]
                records.append(rec)
                got = await orig_dev(dev, deadline)
                rec[2], rec[3] = time.monotonic(), int(got is not None)
                return got

            poller.poll, poller._poll_device = timed, polled
            # One warm-up cycle opens the connections; then the measured run.
            await poller.poll()
            for d in poller.devices:
                d.counters.clear()
                d.times.clear()
            poller.counters.clear()
            poller.response_ms.clear()
            poller.device_ms.clear()
            cycles.clear()
            records.clear()
            readings[0] = 0
            t0, s0 = time.process_time(), _cpu_s(pids)
            w0 = (_waited_s([os.getpid()]), _waited_s(pids))
            begin = time.monotonic()
            task = asyncio.create_task(poller.run(emit, ev))
            await asyncio.sleep(seconds)
            ended = time.monotonic()
            s1 = _cpu_s(pids)
            waited["poller"], waited["servers"] = _waited_s([os.getpid()]) - w0[0], _waited_s(pids) - w0[1]
            ev.set()
            await task
            return time.process_time() - t0, s1 - s0, begin, ended

        waited: dict[str, float] = {}
        cpu, servers_cpu, begin, ended = asyncio.run(main())
        poller.close()
        stop.set()
        stats = [q.get(timeout=60) for q in queues]
        child_stats = {k: sum(st[k] for st in stats) for k in ("cpu_s", "requests", "units_asked", "servers")}
    finally:
        stop.set()
        for c in children:
            c.join(30)
            if c.is_alive():
                c.terminate()
                c.join(5)
    times = np.concatenate([np.asarray(d.times, float) for d in poller.devices if d.times]) \
        if any(d.times for d in poller.devices) else np.array([np.nan])
    # the tick grid: from the first measured cycle's start, the ticks whose deadline came before the stop
    t_grid = cycles[0][0] if cycles else begin
    ticks = max(0, int(np.floor((ended - t_grid) / interval_s + 1e-9)))
    c = tally(records, devices, t_grid, interval_s, ticks)
    frame = last.get("frame")
    chans = [ch for ch in CHANNELS if frame is not None and ch in frame.columns]
    durations = np.array([b - a for a, b in cycles])
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "devices": devices, "gateways": gateways, "units_per_gateway": units, "registers": registers,
        "requests_per_poll": len(models["m"].reads), "interval_s": interval_s, "duration_s": seconds,
        "ticks": ticks, "cycles": len(cycles),
        # every device once a tick, each poll against its own tick's end
        "polls_due": c["due"], "polls_made": c["made"], "polls_met_deadline": c["met"],
        "met_deadline_share": round(c["met"] / c["due"], 4) if c["due"] else 0.0,
        "polls_late": c["late"], "polls_lost": c["lost"], "polls_never_returned": c["never_returned"],
        "polls_not_made": c["not_made"],
        # the poller's own counters (its deadline: its cycle's start + interval; polls in the
        # cycles after the last tick counted too)
        "poller_counted": {"polls": sum(d.counters["polls"] for d in poller.devices),
                           "on_time": sum(d.counters["on_time"] for d in poller.devices),
                           "lost": sum(d.counters["lost"] for d in poller.devices),
                           "timeouts": int(poller.counters["timeouts"]), "late_cycles": int(poller.counters["late"]),
                           "wrong_unit": int(poller.counters["wrong_unit"])},
        "readings": readings[0],
        "response_ms": {"p50": round(float(np.nanpercentile(times, 50)), 2),
                        "p99": round(float(np.nanpercentile(times, 99)), 2)},
        "cycle_ms": {"p50": round(float(np.median(durations)) * 1000, 1) if len(durations) else None,
                     "max": round(float(np.max(durations)) * 1000, 1) if len(durations) else None},
        "poller_cpu_s_per_s": round(cpu / seconds, 3),
        "poller_cpu_ms_per_poll": round(1000 * cpu / max(c["made"], 1), 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        # the devices are separate: servers (ports), unit ids asked per server, devices that answered,
        # distinct rows of values among the last cycle's readings
        "servers": child_stats.get("servers"), "units_asked": child_stats.get("units_asked"),
        "devices_answered": sum(1 for d in poller.devices if d.counters["polls"] > d.counters["lost"]),
        "last_cycle_readings": int(len(frame)) if frame is not None else 0,
        "last_cycle_distinct_values": int(len(frame[chans].drop_duplicates())) if frame is not None and chans else 0,
        # the device workers' CPU (all of them) over the measured run, per second: apart from the poller's
        "server_processes": workers, "server_pids": pids, "servers_cpu_s_per_s": round(servers_cpu / seconds, 3),
        # seconds a second the poller's threads (the servers', all of them) waited runnable for a CPU
        # (Linux schedstat; None elsewhere): on a shared machine the round trips wait on this
        "poller_waited_for_cpu_s_per_s": _per_s(waited.get("poller"), seconds),
        "servers_waited_for_cpu_s_per_s": _per_s(waited.get("servers"), seconds),
        # and over their whole life (start-up and the warm-up cycle included)
        "servers_cpu_s": round(child_stats.get("cpu_s", float("nan")), 2),
        "server_requests": child_stats.get("requests"),
        "server_cpu_ms_per_request": round(1000 * child_stats.get("cpu_s", float("nan"))
                                           / max(child_stats.get("requests") or 1, 1), 3),
    }
