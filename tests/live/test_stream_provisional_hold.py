"""A provisional alert's end (issue 16; docs/live-log.md 2026-12-07 prov): whether it may still grow
follows the post-rules a final alert follows, its ``hold`` included, and its end is told as a final
alert's is (``StepReport.ended``, when a final judgement holds it closed).

The case: seed 3's M-00001 (15 min, a three-phase meter; profiled on its first day): the simulated
phase imbalance of 01-09 16:15-01-10 10:15 is alerted from 16:14 to 10:14; after it the score stays over
half the threshold (the hold) past the one-hour merge gap, until a reading between 12:00 and 13:00.
loose_ct is its long blocker (25.5 h at 15 min), so the stream has it provisional all that time."""

from __future__ import annotations

import pandas as pd
import pytest

from wattwatch import api
from wattwatch.detect import registry
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitcher
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}}
DETECTORS = ["phase_imbalance", "loose_ct"]


@pytest.fixture(scope="module")
def held() -> dict:
    sim = simulate(SimConfig(meters=6, days=5, step="15min", seed=3, fault_share=1.0, faults=("phase_imbalance",),
                             profile_days=1.0, outage_share=0.0, loose_ct_share=0.0, reset_share=0.0))
    df = sim["frame"]
    df = df[(df["meter_id"] == "M-00001") & (df["ts"] < pd.Timestamp("2025-01-10T13:00Z"))]
    df = df.sort_values("ts", kind="stable").reset_index(drop=True)
    day = df["ts"].min() + pd.Timedelta("1D")
    rest = df[df["ts"] >= day]
    pieces = [df[df["ts"] < day]] + [p for _, p in rest.groupby(rest["ts"].dt.floor("2h"), sort=True)]
    return {"frame": df, "pieces": pieces, "fit": prepare(df[df["ts"] < day])}


def test_a_provisional_alert_held_open_by_the_hold_is_open_as_its_final_alert_would_be(held):
    """Provisional = final but for the long blockers: at every piece, the provisional alerts that may
    still grow are the ones the same stream judged without loose_ct holds open. Before, the hold was
    left out of the provisional open rule: the held alert was "not open" at 01-10 11:59
    while the judgement without loose_ct held it open (the console left it out there)."""
    prov_st = Stitcher([registry.build(n).fit(held["fit"]) for n in DETECTORS], provisional=12 * 3600.0)
    bare = Stitcher([registry.build("phase_imbalance").fit(held["fit"])])
    seen, by_hold = set(), 0
    for k, p in enumerate(held["pieces"]):
        a, b = prov_st.feed(p), bare.feed(p)
        prov = {x.id: x for x in a.provisional}
        seen |= set(prov)
        assert a.provisional_open & set(prov) == b.open_ids & set(prov), (k, p["ts"].max())
        # (open only by the hold: its last anomalous reading over the merge gap before the piece's end)
        by_hold += sum(pd.Timestamp(p["ts"].max()) - pd.Timestamp(prov[i].end) > pd.Timedelta("1h")
                       for i in a.provisional_open & set(prov))
    assert seen and by_hold >= 1, (seen, by_hold)


def test_a_provisional_alert_confirmed_closed_is_told_ended_once(held, tmp_path):
    """The engine lists the provisional alert open on the console up to the step before the hold's cold
    reading (01-10 12:00-12:59), does not tell its end while it is provisional (its scores may still
    change with loose_ct's verdict), and tells it ``ended`` once, in the step whose final judgement
    confirms it closed (here the flush), as a final alert's end is told. Before, an alert confirmed
    already closed was never told ended (it never was among the final open alerts)."""
    from wattwatch.app.watchview import open_alert_ids

    store = Store(tmp_path / "s.duckdb")
    eng = StreamEngine(store, api.build_detectors(DETECTORS, CONFIG), api._engine(CONFIG),
                       StreamConfig(checkpoint_s=1e9, slow_thread=False))
    new, ended, listed, stopped = {}, [], {}, []
    for k, p in enumerate(held["pieces"]):
        eng.add(p)
        rep = eng.step()
        for i in rep.new:
            new.setdefault(i, k)
        ended += rep.ended
        stopped += [(i, k) for i in rep.stopped]
        for i in open_alert_ids(eng)[1]:
            listed.setdefault(i, []).append(k)
    prov = [i for i in new if i in eng.provisional]
    assert len(prov) == 1, (new, dict(eng.counters))
    i = prov[0]
    k = max(listed[i]) + 1   # the first step it is not listed open
    assert listed[i] == list(range(new[i], k)), (listed[i], new[i])
    assert held["pieces"][k]["ts"].min().strftime("%m-%d %H") == "01-10 12", held["pieces"][k]["ts"].min()
    assert not ended, ended   # (nothing told ended while provisional)
    # (pc) its condition's end told at once, in the step it stops being open, once: "stopped"
    assert stopped == [(i, k)], (stopped, k)
    last = eng.flush()
    assert last.confirmed == [i] and last.ended == [i] and not last.stopped, (last.confirmed, last.ended, last.stopped)
    assert i not in eng.open_ids and eng.counters["provisional_ended"] == 1
    store.close()


def _engine(store: Store) -> StreamEngine:
    """The restart tests' engine: every rule of the file, no timed checkpoint, the slow tier in the step."""
    return StreamEngine(store, api.build_detectors(DETECTORS, CONFIG), api._engine(CONFIG),
                        StreamConfig(checkpoint_s=1e9, slow_thread=False))


def test_a_provisional_alert_once_open_is_told_ended_after_a_restart_too(held, tmp_path):
    """(rprov) Whether a provisional alert was ever open is kept by the checkpoint: with a checkpoint and
    a restart after the alert stopped growing (the hold's cold reading, 01-10 12:xx) and before its
    confirmation, the restarted engine's flush tells it ended once, as the uninterrupted run does
    (test above). Before, a restart forgot it (the ids read back were taken as open only until their
    meter's next judgement, which dropped the confirmed one first): never told ended. (pc) Its stop
    (``stopped``, its condition's end) is told by the run that judges it after the checkpoint, not again
    after a checkpoint that follows it."""

    path = tmp_path / "s.duckdb"
    store = Store(path)
    eng = _engine(store)
    for p in held["pieces"][:-1]:
        eng.add(p)
        rep = eng.step()
        assert not rep.ended and not rep.stopped
    prov = sorted(eng.provisional)
    assert len(prov) == 1 and sorted(eng.provisional_open) == prov, (prov, eng.provisional_open)
    eng.checkpoint()   # (pc) before the stop (the last piece: the hold's cold reading)
    store.close()
    store = Store(path)
    eng = _engine(store)
    eng.add(held["pieces"][-1])
    rep = eng.step()
    assert not rep.ended and rep.stopped == prov and not eng.provisional_open, (rep.ended, rep.stopped)
    eng.checkpoint()   # (pc) after the stop: not told again
    store.close()
    store = Store(path)
    eng = _engine(store)
    assert eng.resumed and sorted(eng.provisional) == prov and not eng.provisional_open
    last = eng.flush()
    assert (last.confirmed, last.ended, last.stopped) == (prov, prov, [])
    store.close()


def test_a_provisional_alert_whose_meter_is_compacted_before_its_verdict_is_told_ended_with_the_reason(held, tmp_path):
    """(pc) A provisional alert whose meter's readings are compacted (``store compact``, while no watcher
    holds the store) before loose_ct's verdict can never be confirmed or withdrawn. Before, the
    restarted watcher dropped it silently at its meter's next judgement (and listed it open until
    then): never told ended, so an output that opened it kept it open for good. Now the first step
    tells it ended, its version saying why (``evidence.undecided``; the row kept, still provisional);
    a restart from a checkpoint taken before that step tells it again (at least once), one after
    it does not."""

    path = tmp_path / "s.duckdb"
    store = Store(path)
    eng = _engine(store)
    for p in held["pieces"]:
        if p["ts"].min() >= pd.Timestamp("2025-01-10T08:00Z"):
            break
        eng.add(p)
        eng.step()
    prov = sorted(eng.provisional_open)
    assert len(prov) == 1 and sorted(eng.provisional) == prov, (prov, sorted(eng.provisional))
    eng.checkpoint()
    store.close()
    store = Store(path)
    store.compact(older_than_days=0, as_of=pd.Timestamp("2025-01-10T10:00Z"))   # (past what it judged)
    store.close()

    def first_step():
        store = Store(path)
        eng = _engine(store)
        rep = eng.step()
        told = [a for a in rep.alerts if a.id in prov]
        return store, eng, rep, told

    for again in (True, False):   # the second restart: from the same checkpoint (the first died before one)
        store, eng, rep, told = first_step()
        # (ck) a meter compacted beyond where the checkpoint judged it is not re-read (its carry is
        # forgotten), nor taken for one whose stored readings changed since (re-judged from its span)
        assert eng.counters["compacted_restarts"] >= 1 and eng.counters["reread_changed"] == 0, dict(eng.counters)
        assert rep.ended == prov and [a.id for a in told] == prov, (again, rep.ended, rep.alerts)
        assert "compacted" in told[0].evidence["undecided"] and told[0].evidence["provisional"], told[0].evidence
        assert not eng.provisional and not eng.provisional_open and eng.counters["provisional_undecided_ended"] == 1
        ev = store.con.execute("SELECT evidence FROM alerts WHERE id = ?", prov).fetchone()[0]
        assert '"undecided"' in ev and '"provisional": true' in ev, ev
        if not again:
            eng.checkpoint()
        store.close()
    store, eng, rep, told = first_step()   # after the checkpoint: done
    assert not rep.ended and not told and not eng.provisional, (rep.ended, told)
    last = eng.flush()
    assert prov[0] not in last.ended and prov[0] not in last.withdrawn, (last.ended, last.withdrawn)
    store.close()
