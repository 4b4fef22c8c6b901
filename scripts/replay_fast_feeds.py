"""(fs, 2026-12-07; np) The fast tier's feeds replayed in one process, old way against new, same input.

    PYTHONPATH=src python scripts/replay_fast_feeds.py dump OUT.pkl [TIMED]    # warm profile_fast_step's
        engine (200 meters at 1 min, seed 7), pickle ``eng.fast`` and record the TIMED pieces fed to it
    PYTHONPATH=src python scripts/replay_fast_feeds.py replay OUT.pkl [REPS] [OLD_STITCH_PY]   # two copies
        of the pickled Stitchers fed each piece, one the old way, alternating which goes first; thread
        CPU per feed, and every step's alerts, open ids, tails (values bit for bit) and carried points
        compared

The old way: with OLD_STITCH_PY (a stitch.py of an older checkout, e.g. from ``git archive REV
src/wattwatch/detect/stitch.py``), the old copy's stitchers are that module's classes (its feed and
helpers; the rest of wattwatch this checkout's); without it, ``OLD`` (object, attribute, value)
patched in while the old copy is fed (fs: its flags; none now).
"""
import hashlib
import importlib.util
import pickle
import sys
import time

import numpy as np

from wattwatch.detect import stitch

OLD = []


def _old_module(path):
    spec = importlib.util.spec_from_file_location("wattwatch.detect._stitch_old", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # (its dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


def _as_old(st, mod):
    """The pickled Stitchers ``st`` fed by ``mod``'s code (its classes; the state as it is)."""
    st.__class__ = mod.Stitchers
    for p in st.parts:
        p.__class__ = mod.Stitcher
    return st


def dump(out, timed):
    from fast_fleet import M, warm_engine
    eng, live, cut = warm_engine(timed, "ww-replay-")
    state, pieces, orig = pickle.dumps(eng.fast), [], eng.fast.feed

    def rec(piece, final=False):
        pieces.append((piece.copy(), final))
        return orig(piece, final=final)
    eng.fast.feed = rec
    for k in range(timed):
        eng.add(live.iloc[cut + k * M: cut + (k + 1) * M])
        eng.step()
    pickle.dump({"state": state, "pieces": pieces}, open(out, "wb"))
    print("pieces", len(pieces))


def _digest(step, st):
    h = hashlib.sha256()
    for a in step.alerts:
        h.update(a.to_json().encode())
    h.update(repr(sorted(step.open_ids)).encode())
    for p in st.parts:
        if p.tail is None:
            h.update(b"none")
            continue
        t = stitch.dense_columns(p.tail)
        h.update(repr(list(t.columns)).encode())
        for c in t.columns:
            v = t[c].to_numpy()
            h.update(v.tobytes() if v.dtype != object else repr(v.tolist()).encode())
        h.update(repr((p.since, p.emitted, p.origin, p.n_before, p.open)).encode())
    return h.hexdigest()


def replay(path, reps, old_py=None):
    d = pickle.load(open(path, "rb"))
    mod = _old_module(old_py) if old_py else None
    saved = [(o, a, getattr(o, a)) for o, a, _ in OLD]

    def set_old(on):
        for (o, a, new), (_, _, orig) in zip(OLD, saved):
            setattr(o, a, new if on else orig)
    cpu, ratios, differ = {"old": [], "new": []}, [], 0
    for r in range(reps):
        A, B = pickle.loads(d["state"]), pickle.loads(d["state"])
        if mod is not None:
            A = _as_old(A, mod)
        for k, (piece, final) in enumerate(d["pieces"]):
            got = {}
            for mode in (("old", "new") if (k + r) % 2 == 0 else ("new", "old")):
                st = A if mode == "old" else B
                set_old(mode == "old")
                c0 = time.thread_time()
                step = st.feed(piece, final=final)
                cpu[mode].append(1e3 * (time.thread_time() - c0))
                set_old(False)
                got[mode] = _digest(step, st)
            differ += got["old"] != got["new"]
            ratios.append(cpu["new"][-1] / cpu["old"][-1])
    for m, v in cpu.items():
        print(f"{m}: {len(v)} feeds, p50 {np.median(v):.2f} mean {np.mean(v):.2f} p90 {np.percentile(v, 90):.2f} ms")
    print(f"median paired new/old {np.median(ratios):.3f}; ratio of sums {sum(cpu['new']) / sum(cpu['old']):.3f}; "
          f"steps differing {differ}")


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 40)
    else:
        replay(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3, sys.argv[4] if len(sys.argv) > 4 else None)
