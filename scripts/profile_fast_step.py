"""CPU of the stream's fast steps, one reading per meter a step (200 meters at 1 min, seed 7, the
fleet and engine of scripts/profile_stream_groups.py): ``TIMED`` steps timed (thread CPU of
``add`` + ``step``; steps where the slow tier ran left out). ``--prof``: a cProfile of them
(thread-time timer; dumped to TMPDIR/step.prof). ``--digest``: after a final flush, a digest of
every alert (compare two checkouts: the same digest, the same alerts). ``--mallopt``: glibc's mmap
and trim thresholds raised first (tried: no change). Run it alternately on two checkouts' src
to compare them in one sitting (docs/live-log.md, fast). ``--gc``: the garbage collector's passes
in the timed steps (thread CPU of each, by generation, through ``gc.callbacks``) and the RSS before
and after them. ``--no-freeze``: the warm engine's heap left in the collector's way (rfc: the
watcher freezes it, :func:`wattwatch.runners.stream.freeze_heap`; this script does as it does).
``--no-room``: the stitchers' tails held as frames (``stitch.ROOM = False``; before/after of ly):

    PYTHONPATH=src python scripts/profile_fast_step.py 40 --digest
"""
import cProfile, pstats, sys, tempfile, time, ctypes
if "--mallopt" in sys.argv:
    _l = ctypes.CDLL("libc.so.6"); print("mallopt", _l.mallopt(-3, 64 << 20), _l.mallopt(-1, 128 << 20))
import numpy as np
from fast_fleet import M, warm_engine
if "--no-room" in sys.argv:   # (ly) the stitchers' tails as frames, not held with room (stitch.ROOM)
    from wattwatch.detect import stitch as _stitch
    _stitch.ROOM = False
TIMED = int(sys.argv[1]) if len(sys.argv) > 1 else 30
eng, live, cut = warm_engine(TIMED)
if "--no-freeze" not in sys.argv:
    from wattwatch.runners import stream as _stream
    if hasattr(_stream, "freeze_heap"):
        _stream.freeze_heap()
gcs, _gc0 = [], [0.0]


def _gc_timer(phase, info):
    if phase == "start":
        _gc0[0] = time.thread_time()
    else:
        gcs.append((info["generation"], 1e3 * (time.thread_time() - _gc0[0])))


def rss_mb():
    return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmRSS")) / 1024


if "--gc" in sys.argv:
    import gc
    gc.callbacks.append(_gc_timer)
    rss0, rss = rss_mb(), []
per = M
pr = cProfile.Profile(time.thread_time)
cpu, pcpu, wall = [], [], []
st = eng.store
w0 = getattr(st, "live_wait_s", 0.0)


def timed_steps():   # (by this name, for a sampling profile's shares: scripts/fast_step_shares.py)
    for k in range(TIMED):
        b = live.iloc[cut + k * per: cut + (k + 1) * per]
        slow0 = eng.counters["slow_steps"]
        c0, p0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
        if "--prof" in sys.argv: pr.enable()
        eng.add(b); eng.step()
        if "--prof" in sys.argv: pr.disable()
        if eng.counters["slow_steps"] == slow0:
            cpu.append(1e3 * (time.thread_time() - c0))
            pcpu.append(1e3 * (time.process_time() - p0))   # (ovl) every thread: the store's worker too
            wall.append(1e3 * (time.perf_counter() - t0))
        if "--gc" in sys.argv:
            rss.append(rss_mb())


timed_steps()
print("fast steps %d CPU ms p50 %.1f mean %.1f p90 %.1f p99 %.1f" % (len(cpu), np.median(cpu), np.mean(cpu), np.percentile(cpu, 90), np.percentile(cpu, 99)))
print("  process CPU ms p50 %.1f mean %.1f | wall ms p50 %.1f mean %.1f p90 %.1f | waited for the ingest's writes %.1f ms/step"
      % (np.median(pcpu), np.mean(pcpu), np.median(wall), np.mean(wall), np.percentile(wall, 90),
         1e3 * (getattr(st, "live_wait_s", 0.0) - w0) / TIMED))
if "--gc" in sys.argv:
    gc.callbacks.remove(_gc_timer)
    for g in (0, 1, 2):
        x = [ms for k, ms in gcs if k == g]
        print("  gc gen %d: %d passes, %.1f ms in all, max %.1f ms" % (g, len(x), sum(x), max(x, default=0.0)))
    print("  RSS MB %.0f -> %.0f over the timed steps (every 20th step: %s); frozen objects %d"
          % (rss0, rss_mb(), [round(x) for x in rss[19::20]], gc.get_freeze_count()))
if "--prof" in sys.argv:
    pr.dump_stats(tempfile.gettempdir() + "/step.prof"); st = pstats.Stats(pr); st.sort_stats("tottime").print_stats(45)
    st.sort_stats("cumtime").print_stats(70)
if "--digest" in sys.argv:
    import hashlib, json
    eng.flush()
    al = sorted(json.dumps(json.loads(a.to_json()), sort_keys=True) for a in eng.alerts.values())
    print("alerts", len(al), hashlib.sha256("\n".join(al).encode()).hexdigest()[:16], "counters", {k: v for k, v in eng.counters.items() if k in ("judged", "alerts_new", "alerts_updated", "alerts_ended")})
