"""(fo, issue 16) A live step's fixed cost: CPU of steps of N readings (``--sizes``, default 1, 20, 200
and 1,000) on a warm engine (scripts/fast_fleet.py: 200 meters at 1 min, seed 7, fitted, 3 h streamed;
the fast tier in the engine's thread, the slow tier inline, ``slow_thread=False``), steps where the
slow tier ran left out. Per size: the engine thread's CPU per step (``add`` + ``step``; the store's
ingest worker is another thread: the process's CPU beside it) p50 / mean / p90.

``--sample OUT``: a sampling profile of the timed steps (a thread reads the engine thread's stack
every ``--every-ms``, 1 ms, through ``sys._current_frames``; the interpreter's switch interval set
to 0.5 ms so that it gets in; each sample weighted by the thread's CPU since the last one, in µs, so
that a long C call holding the GIL counts for its CPU in the frame that made it), written per size as collapsed stacks (``OUT.<size>``: one line per
distinct stack, ``frame;frame;... count``), and the self and total shares of the top functions
printed. ``--digest``: after the timed steps, a flush and a digest of every alert (two checkouts:
the same digest, the same alerts; the order of sizes and the step sizes must be the same).

    PYTHONPATH=src python scripts/fixed_step.py [--sizes 1,20,200,1000] [--timed 40] [--sample /tmp/fo/s]
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fast_fleet import M, warm_engine  # noqa: E402


class Sampler:
    """Samples one thread's Python stack at an interval while ``on``."""

    def __init__(self, tid: int, every_s: float):
        self.tid, self.every_s = tid, every_s
        self.on = False
        self.stacks: collections.Counter = collections.Counter()
        self.step: collections.Counter = collections.Counter()   # this step's (kept if a fast step)
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        clock = time.pthread_getcpuclockid(self.tid)
        last = time.clock_gettime_ns(clock)
        while not self._stop:
            time.sleep(self.every_s)
            f = sys._current_frames().get(self.tid)
            now = time.clock_gettime_ns(clock)
            w, last = (now - last) // 1000, now   # the thread's CPU since the last sample (us)
            if not self.on:
                continue
            st = []
            while f is not None:
                co = f.f_code
                fn = co.co_filename
                k = fn.rfind("/site-packages/")
                fn = fn[k + 15:] if k >= 0 else fn[fn.rfind("/src/") + 5:] if "/src/" in fn else fn.rsplit("/", 1)[-1]
                st.append(f"{fn}:{co.co_name}")
                f = f.f_back
            self.step[";".join(reversed(st))] += w

    def close(self) -> None:
        self._stop = True
        self._t.join()


def shares(stacks: collections.Counter, top: int, within: str = "timed") -> None:
    tot = sum(n for s, n in stacks.items() if within in s)
    own, incl = collections.Counter(), collections.Counter()
    for s, n in stacks.items():
        if within not in s:
            continue
        fr = s.split(";")
        fr = fr[next(i for i, x in enumerate(fr) if within in x) + 1:]
        if fr:
            own[fr[-1]] += n
        for x in set(fr):
            incl[x] += n
    print(f"  CPU sampled {tot / 1e3:.0f} ms")
    print("  self:", ", ".join(f"{k} {100 * v / tot:.1f}%" for k, v in own.most_common(top)))
    print("  total:")
    for k, v in incl.most_common(top):
        print(f"    {100 * v / tot:5.1f}% {k}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,20,200,1000")
    ap.add_argument("--timed", type=int, default=40)
    ap.add_argument("--sample", default=None)
    ap.add_argument("--every-ms", type=float, default=1.0)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--digest", action="store_true")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    need = a.timed * sum(sizes)
    k = -(-need // M)
    t0 = time.process_time()
    eng, live, cut = warm_engine(k, prefix="ww-fo-", hours=3.0 + k / 60.0)
    print(f"warm engine: {time.process_time() - t0:.1f} s CPU; {len(live) - cut} readings left, {need} timed")
    from wattwatch.runners import stream as _stream
    if hasattr(_stream, "freeze_heap"):
        _stream.freeze_heap()
    sampler = Sampler(threading.get_ident(), a.every_ms / 1e3) if a.sample else None
    if sampler:
        sys.setswitchinterval(0.0005)
    i = cut
    out = {}
    for n in sizes:
        cpu, pcpu = [], []
        if sampler:
            sampler.stacks = collections.Counter()

        def timed(i: int) -> int:
            for _ in range(a.timed):
                b = live.iloc[i:i + n]
                i += n
                slow0 = eng.counters["slow_steps"]
                c0, p0 = time.thread_time(), time.process_time()
                if sampler:
                    sampler.on = True
                eng.add(b)
                eng.step()
                if sampler:
                    sampler.on = False
                    got, sampler.step = sampler.step, collections.Counter()
                if eng.counters["slow_steps"] == slow0:
                    if sampler:
                        sampler.stacks.update(got)
                    cpu.append(1e3 * (time.thread_time() - c0))
                    pcpu.append(1e3 * (time.process_time() - p0))
            return i

        i = timed(i)
        out[n] = cpu
        print(f"{n:5d} readings/step: {len(cpu)} fast steps, thread CPU ms p50 {np.median(cpu):.1f} "
              f"mean {np.mean(cpu):.1f} p90 {np.percentile(cpu, 90):.1f}; process CPU p50 {np.median(pcpu):.1f}",
              flush=True)
        if sampler:
            Path(a.sample).parent.mkdir(parents=True, exist_ok=True)
            with open(f"{a.sample}.{n}", "w") as fh:
                for s, c in sampler.stacks.most_common():
                    fh.write(f"{s} {c}\n")
            shares(sampler.stacks, a.top)
    if sampler:
        sampler.close()
    print("json", json.dumps({n: [round(x, 2) for x in v] for n, v in out.items()}))
    if a.digest:
        eng.flush()
        al = sorted(json.dumps(json.loads(x.to_json()), sort_keys=True) for x in eng.alerts.values())
        print("alerts", len(al), hashlib.sha256("\n".join(al).encode()).hexdigest()[:16])
    eng.close()


if __name__ == "__main__":
    main()
