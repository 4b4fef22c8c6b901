"""``wattwatch bench edge``: latency from the first sample of a bypass to the publish call, CPU
per meter-second of waveform, and (``--detection``) every simulator scenario at both rates.

**Latency.** A simulated bypass (load 8-15 A) is fed to a fresh :class:`~wattwatch.edge.meter.
EdgeMeter` in DMA blocks of ``block_cycles`` nominal cycles, the cycle grid shifted by a random
number of samples in every trial (the bypass starts anywhere within a cycle). Latency is the time
from the first bypassed sample until the block that trips is complete (samples arrive in real
time: deterministic, from the sample indices) plus the measured wall time from handing that block
to the meter until the publish call (``perf_counter``). With ``persistence_s`` 0 that is the
metrology and the state machine; with 30 s it is 30 s more. The wall time includes whatever the
machine's scheduler adds (a shared machine preempts); ``own_core`` counts the thread's CPU time
instead, the figure for a meter whose core does nothing else. ``logged_*`` runs on to the publish
call's return: the report signed (HMAC-SHA256), appended to the tamper log with fsync and handed
to the MQTT client (no broker here; the fsync is this machine's disk). The publish alone is also
timed separately.

**CPU.** Process CPU time (``process_time``) to measure and judge a healthy load's waveform
(generated beforehand, not timed), per second of waveform, in one-cycle blocks (what a meter's
DMA gives) and in 1-s blocks (a head-end or gateway replaying recorded waveforms). Meters per
core = 1 / CPU seconds per meter-second.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from wattwatch.edge.meter import EdgeMeter
from wattwatch.edge.publish import Publisher, TamperLog
from wattwatch.edge.signing import HMAC, Signer
from wattwatch.edge.simulate import Waveform
from wattwatch.edge.tamper import TamperConfig


def latency(fs: float, persistence_s: float, trials: int = 200, seed: int = 0, block_cycles: int = 1,
            publish: bool = True) -> dict:
    pre = 2.0
    seconds = 4 * (pre + persistence_s + 1.0)          # the simulator starts its fault at seconds / 4
    w = Waveform("bypass", seconds=seconds, fs=fs, seed=seed)
    x = w.samples()
    fault = int(round(w.events[0]["start_s"] * fs))
    n = int(round(fs / w.f0))
    block = n * block_cycles
    rng = np.random.default_rng(seed)
    cfg = TamperConfig(persistence_s=persistence_s)
    out, proc, cpu_, waits, logged = [], [], [], [], []
    tmp = tempfile.TemporaryDirectory()
    pub = Publisher("bench", Signer(HMAC, b"k" * 32), TamperLog(Path(tmp.name) / "t.log"))

    def on_event(ev, calls):
        calls.append((time.perf_counter(), time.thread_time()))
        if publish:
            pub.publish(ev)                               # signed, fsync'd into the log, handed on
        calls.append((time.perf_counter(), time.thread_time()))
    for _ in range(trials):
        o = int(rng.integers(0, n))
        first = fault - int(pre * fs) - o                 # the stream starts here: grid shifted by o
        calls: list[tuple[float, float]] = []
        m = EdgeMeter("bench", w.channels, fs, cfg, t0=w.t0, on_event=lambda ev, calls=calls: on_event(ev, calls))
        # Up to a second before the expected trip in large blocks, then block by block.
        near = fault + int((persistence_s - 1.0) * fs) if persistence_s >= 1 else fault - n
        a = first
        while a < near - block:
            b = a + ((near - a) // block) * block
            m.feed(x[a:b])
            a = b
        assert not calls, "tripped before the bypass"
        while not calls and a < len(x):
            b = a + block
            t, tc = time.perf_counter(), time.thread_time()
            m.feed(x[a:b])
            if calls:
                wait = (b - fault) / fs
                proc.append(calls[0][0] - t)
                cpu_.append(calls[0][1] - tc)
                out.append(wait + (calls[0][0] - t))
                logged.append(wait + (calls[1][0] - t))
                waits.append(wait)
            a = b
        if not calls:
            raise RuntimeError("the bypass was not detected")
    pub.close()
    tmp.cleanup()
    lat = np.asarray(out) * 1000
    pr = np.asarray(proc) * 1000
    on_cpu = (np.asarray(waits) + np.asarray(cpu_)) * 1000   # as on a core of its own (no preemption)
    return {"fs": fs, "persistence_s": persistence_s, "trials": trials, "block_cycles": block_cycles,
            "p50_ms": round(float(np.percentile(lat, 50)), 3), "p99_ms": round(float(np.percentile(lat, 99)), 3),
            "max_ms": round(float(lat.max()), 3),
            "logged_p50_ms": round(float(np.percentile(np.asarray(logged) * 1000, 50)), 3),
            "logged_p99_ms": round(float(np.percentile(np.asarray(logged) * 1000, 99)), 3),
            "p50_after_persistence_ms": round(float(np.percentile(lat - persistence_s * 1000, 50)), 3),
            "p99_after_persistence_ms": round(float(np.percentile(lat - persistence_s * 1000, 99)), 3),
            "processing_p50_ms": round(float(np.percentile(pr, 50)), 3),
            "processing_p99_ms": round(float(np.percentile(pr, 99)), 3),
            "processing_cpu_p99_ms": round(float(np.percentile(np.asarray(cpu_) * 1000, 99)), 3),
            "own_core_p50_ms": round(float(np.percentile(on_cpu, 50)), 3),
            "own_core_p99_ms": round(float(np.percentile(on_cpu, 99)), 3),
            # The samples' part alone (first bypassed sample to the end of the block that tripped):
            # set by the stream, not by the machine.
            "samples_p50_ms": round(float(np.percentile(waits, 50)) * 1000, 3),
            "samples_max_ms": round(float(np.max(waits)) * 1000, 3)}


def publish_cost(n: int = 200) -> dict:
    """Signing (HMAC-SHA256) and appending to the tamper log with fsync, per event (no broker)."""
    with tempfile.TemporaryDirectory() as d:
        pub = Publisher("bench", Signer(HMAC, b"k" * 32), TamperLog(Path(d) / "t.log"))
        ev = {"status": "tamper", "kind": "neutral_bypass", "delta_a": 12.3, "event": "tamper@0",
              "cycle_start": "2026-01-01T00:00:00.000Z", "cycle_end": "2026-01-01T00:00:00.020Z",
              "evidence": {"i_l_a": 12.4, "i_n_a": 0.0, "thd_i_pct": 3.0, "h3_pct": 1.0}}
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            pub.publish(ev)
            ts.append(time.perf_counter() - t)
        pub.close()
    ms = np.asarray(ts) * 1000
    return {"events": n, "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def cpu(fs: float, seconds: float = 60.0, seed: int = 0) -> dict:
    w = Waveform("normal", seconds=seconds, fs=fs, seed=seed)
    x = w.samples()
    n = int(round(fs / w.f0))
    res = {"fs": fs, "seconds": seconds}
    for label, block in (("cycle_blocks", n), ("second_blocks", int(fs))):
        m = EdgeMeter("bench", w.channels, fs, TamperConfig(), t0=w.t0)
        t = time.process_time()
        for a in range(0, len(x), block):
            m.feed(x[a:a + block])
        c = (time.process_time() - t) / seconds
        res[label] = {"cpu_ms_per_meter_s": round(c * 1000, 4), "meters_per_core": int(1 / c) if c > 0 else None}
    return res


def detection(seeds=(1, 2, 3), rates=(3200.0, 6400.0), seconds: float = 200.0) -> list[dict]:
    """Every simulator scenario at each rate and seed, persistence 30 s (as deployed) and 0 (the
    strictest test for the look-alikes): what was reported, and when (seconds after the fault)."""
    from wattwatch.edge.simulate import FAULT_KIND, SCENARIOS

    rows = []
    for name in SCENARIOS:
        for fs in rates:
            for persistence in (30.0, 0.0):
                found = trips = 0
                delays, kinds = [], set()
                for seed in seeds:
                    w = Waveform(name, seconds=seconds, fs=fs, seed=seed)
                    m = EdgeMeter("bench", w.channels, fs, TamperConfig(persistence_s=persistence), t0=w.t0)
                    for b in w.blocks(1.0):
                        m.feed(b)
                    ev = [e for e in m.events if e["status"] == "tamper"]
                    trips += len(ev)
                    if name in FAULT_KIND and ev:
                        found += 1
                        kinds.add(ev[0]["kind"])
                        t = (np.datetime64(ev[0]["cycle_end"][:-1]) - np.datetime64("2026-01-01T00:00:00")) \
                            / np.timedelta64(1, "ms") / 1000 + 0.02
                        delays.append(round(float(t - (w.t0 - 1_767_225_600.0) - w.events[0]["start_s"]), 2))
                rows.append({"scenario": name, "fs": fs, "persistence_s": persistence, "runs": len(seeds),
                             "fault": name in FAULT_KIND, "found": found, "tamper_reports": trips,
                             "kinds": sorted(kinds), "trip_after_s": delays})
    return rows


LOOK_ALIKES = ("leakage", "motor_starts", "led_smps", "voltage_sags")


def soak(hours: float = 24.0, fs: float = 3200.0, scenarios=LOOK_ALIKES, seed: int = 1, block_s: float = 10.0,
         persistences=(30.0, 0.0), on_progress=None) -> list[dict]:
    """Hours of each look-alike through the whole waveform path (simulated samples → metrology →
    the state machine), judged at every persistence at once (one metrology, one machine per
    persistence): the tamper reports (must be none), the cycles over the limit, the other events
    (an LED load's ``signal_noisy``) and the process CPU per meter-second of the metrology and
    that machine (the simulation excluded), in ``block_s`` blocks."""
    from wattwatch.edge.metrology import Metrology
    from wattwatch.edge.tamper import TamperMachine

    rows = []
    for name in scenarios:
        w = Waveform(name, seconds=hours * 3600.0, fs=fs, seed=seed)
        metro = Metrology(w.channels, fs, w.f0)
        machines = {p: TamperMachine(TamperConfig(persistence_s=p), metro.cycle_s, w.t0, metro.three)
                    for p in persistences}
        events = {p: [] for p in persistences}
        n = int(round(block_s * fs))
        cpu = {"metrology": 0.0, **{p: 0.0 for p in persistences}}
        for a in range(0, w.n_samples, n):
            x = w.samples(a, a + n)
            t = time.process_time()
            c = metro.feed(x)
            cpu["metrology"] += time.process_time() - t
            for p, m in machines.items():
                t = time.process_time()
                events[p] += m.step(c)
                cpu[p] += time.process_time() - t
            if on_progress and a // n % 360 == 0:
                on_progress()
        for p, m in machines.items():
            ev = events[p]
            rows.append({"scenario": name, "fs": fs, "hours": hours, "persistence_s": p, "seed": seed,
                         "cycles": m.counts["cycles"], "tamper_reports": sum(e["status"] == "tamper" for e in ev),
                         "over_cycles": m.counts["over"], "noisy_cycles": m.counts["noisy"],
                         "excluded_cycles": m.counts["surge"], "unsupplied_cycles": m.counts["unsupplied"],
                         "leakage_above_normal_cycles": m.counts["leakage"],
                         "other_events": sorted({e["status"] for e in ev} - {"tamper", "cleared"}),
                         "cpu_ms_per_meter_s": round((cpu["metrology"] + cpu[p]) / (hours * 3600.0) * 1000, 4)})
    return rows


def run(trials: int = 200, seed: int = 0, rates=(3200.0, 6400.0), persistences=(0.0, 30.0), cpu_seconds: float = 60.0,
        on_progress=None, with_detection: bool = False, soak_hours: float = 0.0, soak_rates=None) -> dict:
    out = {"latency": [], "cpu": [], "publish": None}
    if with_detection:
        out["detection"] = detection(rates=rates)
    if soak_hours > 0:
        out["soak"] = [r for fs in (soak_rates or rates) for r in soak(soak_hours, fs, on_progress=on_progress)]
    for fs in rates:
        for p in persistences:
            out["latency"].append(latency(fs, p, trials if p == 0 else max(20, trials // 5), seed))
            if on_progress:
                on_progress()
        out["cpu"].append(cpu(fs, cpu_seconds, seed))
        if on_progress:
            on_progress()
    out["publish"] = publish_cost()
    return out
