"""cut30: a watcher resumed from a stream checkpoint written before a `store compact`.

Usage: watch_resume_cut.py STEP [-v] [CUT ...]   (CUT: 6h, 24h, mid-drift, mid-outage; default all four)

A simulated fleet (10 meters x 28 days, seed 7, the cut27 test's fault mix) is judged once by
`detect` on all its readings (A). For each cut (6 or 24 h before the firmware drift, the middle of
it or of the longest supply outage) and each way the watcher stopped:

- ``stop-after``: the watcher judged the readings up to 2 days after the cut, checkpointed, stopped;
- ``stop-before``: ... up to 2 days before the cut, checkpointed, stopped; the readings up to 2 days
  after the cut were ingested meanwhile without it (`wattwatch ingest`);
- ``kill``: ... up to 2 days before the cut, checkpointed, then went on judging (and writing alerts)
  up to a day after the cut, killed (no checkpoint);

the store was compacted up to the cut, the watcher resumed, fed the rest a day at a time, with two
late readings (1 minute after stored ones) of the meter with the most alerts: one 5 h before the cut
(a compacted hour) and one an hour after it, then flushed. Printed: the store's alerts A lacks
("new"), A's alerts before the cut the store no longer holds ("never written before the cut": compacted before any judging reached them), A's alerts 5 days after the cut
it lacks ("far missed"), overlapping alerts of one (meter, detector, code) ("dup"), and the same for a
`detect` on a copy of the final store (B: "new" only).
"""
import collections, os, shutil, sys, tempfile, traceback
import pandas as pd
from wattwatch import api
from wattwatch.alerts import store as alert_store
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store
from wattwatch.runners.stream import StreamConfig, StreamEngine

TMP = tempfile.mkdtemp(prefix="watch-resume-cut-")
VERBOSE = "-v" in sys.argv
sys.argv = [a for a in sys.argv if a != "-v"]
step = sys.argv[1]
cuts = sys.argv[2:] or ["6h", "24h", "mid-drift", "mid-outage"]
D = ["firmware_drift", "thermal_drift", "phase_imbalance", "supply_outage", "packet_loss", "baseline_macd"]
fr = simulate(SimConfig(meters=10, days=28, seed=7, step=step, fault_share=0.8, outage_share=0.4))["frame"]
base = os.path.join(TMP, "base.duckdb")
api.ingest(fr, base)
A = api.detect(base, detectors=D).alerts
Aid = {a.id for a in A}


def cut_at(where):
    drift = [a for a in A if a.detector == "firmware_drift"][0]
    if where.startswith("mid"):
        out = [a for a in A if a.detector == "supply_outage"]
        a = drift if where == "mid-drift" else max(out, key=lambda a: pd.Timestamp(a.end) - pd.Timestamp(a.start))
        s, e = pd.Timestamp(a.start), pd.Timestamp(a.end)
        return (s + (e - s) / 2).floor("h")
    return (pd.Timestamp(drift.start) - pd.Timedelta(hours=int(where.rstrip("h")))).floor("h")


def engine(db):
    s = Store(db)
    return s, StreamEngine(s, api.build_detectors(D, None), api._engine(None), StreamConfig(checkpoint_s=0))


def feed(eng, part):
    for _, g in part.groupby(part["ts"].dt.floor("D")):
        eng.add(g.reset_index(drop=True))
        eng.step()


def dups(got):
    bad = 0
    for _, g in got.groupby(["meter_id", "detector", "code"]):
        g = g.sort_values("start")
        s = pd.to_datetime(g["start"], utc=True).to_numpy()
        e = pd.to_datetime(g["end"], utc=True).to_numpy()
        bad += int(((s[1:] <= e[:-1])).sum())
    return bad


def run(where, how):
    cut = cut_at(where)
    db = os.path.join(TMP, f"{where}-{how}.duckdb")
    stop = cut + pd.Timedelta(days=2) if how == "stop-after" else cut - pd.Timedelta(days=2)
    api.ingest(fr[fr["ts"] <= stop], db)
    s, eng = engine(db)
    eng.step()
    eng.checkpoint()
    if how == "kill":
        feed(eng, fr[(fr["ts"] > stop) & (fr["ts"] <= cut + pd.Timedelta(days=1))])
        eng.settle()
        eng.close()   # no checkpoint: killed
        s.close()
        upto = cut + pd.Timedelta(days=1)
    else:
        eng.close()
        s.close()
        upto = stop
        if how == "stop-before":
            upto = cut + pd.Timedelta(days=2)
            api.ingest(fr[(fr["ts"] > stop) & (fr["ts"] <= upto)], db)
    with Store(db) as s:
        s.compact(older_than_days=0, as_of=cut)
    s, eng = engine(db)
    try:
        assert eng.resumed
        eng.step()
        m = pd.Series([a.meter_id for a in A]).value_counts().index[0]
        rest = fr[fr["ts"] > upto]
        feed(eng, rest[rest["ts"] <= upto + pd.Timedelta(days=1)])
        late = []
        for at in (cut - pd.Timedelta(hours=5), cut + pd.Timedelta(hours=1)):
            r = fr[(fr["meter_id"] == m) & (fr["ts"] >= at)].iloc[[0]].copy()
            r["ts"] = r["ts"] + pd.Timedelta(minutes=1)
            late.append(r)
        eng.add(pd.concat(late, ignore_index=True))
        eng.step()
        feed(eng, rest[rest["ts"] > upto + pd.Timedelta(days=1)])
        eng.step(final=True)
        eng.settle()
        got = alert_store.list_alerts(s.con, "all")
        cn = dict(eng.counters)
    finally:
        eng.close()
        s.close()
    new = [(r.detector, r.meter_id, str(r.start)) for r in got.itertuples() if r.id not in Aid]
    lost = [(a.detector, a.meter_id, a.start) for a in A if pd.Timestamp(a.start) < cut and a.id not in set(got["id"])]
    far = {a.id for a in A if pd.Timestamp(a.start) >= cut + pd.Timedelta(days=5)}
    bdb = db.replace(".duckdb", "-b.duckdb")
    shutil.copy(db, bdb)
    B = api.detect(bdb, detectors=D)
    bnew = [(a.detector, a.meter_id, a.start) for a in B.alerts if a.id not in Aid]
    def said(xs):
        c = collections.Counter(x[0] for x in xs)
        return f"{len(xs)}" + (f" ({', '.join(f'{k} {v}' for k, v in sorted(c.items()))})" if xs else "")
    if VERBOSE:
        print("  new:", new, "\n  never written before the cut:", lost)
    print(f"{step} cut {where} ({cut:%d %b %H:%M}) {how}: new {said(new)}; never written before the cut {said(lost)}; "
          f"far missed {len(far - set(got['id']))}/{len(far)}; dup {dups(got)}; rejudged {cn.get('rejudged', 0)}, "
          f"withdrawn {cn.get('alerts_withdrawn', 0)}; detect after: new {said(bnew)}, withdrawn {B.stored['withdrawn']}",
          flush=True)


for where in cuts:
    for how in ("stop-after", "stop-before", "kill"):
        try:
            run(where, how)
        except Exception:
            print(f"{step} cut {where} {how}: RAISED")
            traceback.print_exc()
