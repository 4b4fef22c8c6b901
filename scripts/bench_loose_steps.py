"""(lq) Pair loose_ct old against new on the loose-CT group's consecutive fast steps (scripts/capture_loose_steps.py):
two copies of the group's detectors, one whose LooseCT is OLD_SRC's class, each fed the captured steps in order
(core.run; which goes first alternates), thread CPU per step of core.run and of loose_ct's parts (score, alerts),
and a digest of every step's alerts, open ids, scores and loose_ct's context (measure, limit, flags) both sides.
``--nomemo``: the core's memory of described alerts off (every alert described afresh at every step).
    CAP=/tmp/loose_steps.pkl PYTHONPATH=src python scripts/bench_loose_steps.py OLD_SRC [REPS] [--nomemo]
(OLD_SRC: e.g. `git archive 40cb6de src | tar -x -C /tmp/lq_old`, then /tmp/lq_old/src)"""
import collections, hashlib, importlib.util, os, pickle, sys, time
import numpy as np
from wattwatch.detect import core

old_src = sys.argv[1]
REPS = int(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else 1
spec = importlib.util.spec_from_file_location("wattwatch.detect.rules._loosect_old", old_src + "/wattwatch/detect/rules/loosect.py")
ol = importlib.util.module_from_spec(spec); sys.modules[spec.name] = ol; spec.loader.exec_module(ol)
dets_b, cap = pickle.load(open(os.environ.get("CAP", "/tmp/loose_steps.pkl"), "rb"))
if "--nomemo" in sys.argv:
    core._alerts_memo = lambda d: None
cpu = collections.defaultdict(list)
part = collections.Counter()
mode_now = [None]

def timed(name, f):
    def w(d, *a, **k):
        if d.name != "loose_ct":
            return f(d, *a, **k)
        c0 = time.thread_time()
        try:
            return f(d, *a, **k)
        finally:
            part[(mode_now[0], name)] += time.thread_time() - c0
    return w

core._scored = timed("score", core._scored)
core._alert = timed("alerts", core._alert)

def digest(res):
    h = hashlib.sha256()
    for a in res.alerts + res.provisional:
        h.update(a.to_json().encode())
    h.update(repr(sorted(res.open_ids)).encode())
    for j in res.judged:
        h.update(np.ascontiguousarray(j.scores).tobytes())
        if j.det.name == "loose_ct":
            c = j.ctx.ctx if isinstance(j.ctx, core._Sub) else j.ctx
            for x in c[:3]:
                h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()[:16]

dig = {"old": [], "new": []}
for rep in range(REPS):
    dets = {"old": pickle.loads(dets_b), "new": pickle.loads(dets_b)}
    for d in dets["old"]:
        if d.name == "loose_ct":
            d.__class__ = ol.LooseCT
    for k, (frame, kw) in enumerate(cap):
        for mode in (("old", "new") if (k + rep) % 2 == 0 else ("new", "old")):
            mode_now[0] = mode
            c0 = time.thread_time()
            r = core.run(frame, dets[mode], **kw)
            cpu[mode].append(1e3 * (time.thread_time() - c0))
            if rep == 0:
                dig[mode].append(digest(r))
n = len(cpu["old"])
for mode in ("old", "new"):
    print(mode, "core.run p50 %.2f mean %.2f ms;" % (np.median(cpu[mode]), np.mean(cpu[mode])),
          "loose_ct score %.2f, alerts %.2f ms a step" % tuple(1e3 * part[(mode, p)] / n for p in ("score", "alerts")))
ratio = np.array(cpu["new"]) / np.array(cpu["old"])
print("median paired new/old %.3f, ratio of sums %.3f (%d steps)" % (np.median(ratio), sum(cpu["new"]) / sum(cpu["old"]), n))
print("digests equal:", dig["old"] == dig["new"], dig["new"][-1])
