"""(le3, issue 16; le2's leftover) A re-judging asked by late readings survives ``kill -9``.

A meter loses three hours of readings (06:00-09:00 of day 2); the packet-loss rule opens an alert over
the gap. The last 90 minutes of it (07:30-09:00) arrive 6 h late (a gateway's backlog): re-judged with
them, the alert shrinks to the readings still missing (same start: same id, no withdrawal). Only a
withdrawal was kept across a restart (``stream_withdrawn``); the request to re-judge was not: a watcher
killed after the late readings were stored and before the checkpoint after their re-judging came back
with the last checkpoint's carry, which predates them, and the source's re-delivery is a duplicate
that re-judges nothing: the store kept the alert at its old size. The request is now kept in
``stream_rejudge`` in the transaction that stores the readings, forgotten by the checkpoint.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.alerts import store as alert_store
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}}
T0 = pd.Timestamp("2026-01-05T00:00:00Z")


def _pieces() -> tuple[list[pd.DataFrame], int]:
    """2.5 days of 15-min readings of A and B; the first day at once, then 2-hour pieces by arrival.
    A's readings of 06:00-07:30 on day 2 never come, those of 07:30-09:00 come 6 h late. Returns the
    pieces and the index of the one that brings the late readings."""
    ts = pd.date_range(T0, T0 + pd.Timedelta("60h"), freq="15min", inclusive="left")
    rng = np.random.default_rng(3)
    frame = pd.concat([pd.DataFrame({"meter_id": m, "ts": ts, "v_l1_v": 230 + rng.normal(0, 0.5, len(ts)),
                                     "p_kw": 2 + 0.3 * np.sin(np.arange(len(ts)) * 2 * np.pi / 96)
                                     + rng.normal(0, 0.05, len(ts))}) for m in ("A", "B")], ignore_index=True)
    a = frame["meter_id"] == "A"
    frame = frame[~(a & (frame["ts"] >= T0 + pd.Timedelta("30h")) & (frame["ts"] < T0 + pd.Timedelta("31.5h")))]
    due = frame["ts"].copy()
    late = (frame["meter_id"] == "A") & (frame["ts"] >= T0 + pd.Timedelta("31.5h")) & \
        (frame["ts"] < T0 + pd.Timedelta("33h"))
    due[late] = T0 + pd.Timedelta("39h")
    day = frame["ts"] < T0 + pd.Timedelta("1D")
    groups = list(frame[~day].groupby(due[~day].dt.floor("2h"), sort=True))
    k = 1 + next(i for i, (at, _) in enumerate(groups) if at == T0 + pd.Timedelta("38h"))
    return [frame[day]] + [p for _, p in groups], k


def _engine(path):
    store = Store(path)
    return store, StreamEngine(store, api.build_detectors(["packet_loss"], None), api._engine(CONFIG),
                               StreamConfig(checkpoint_s=0, slow_thread=False))


def _alerts(con) -> dict[str, tuple]:
    df = alert_store.list_alerts(con, "all")
    return {r["id"]: (r["meter_id"], pd.Timestamp(r["start"]), pd.Timestamp(r["end"]), r["code"])
            for r in df.to_dict("records")}


@pytest.mark.parametrize("kill", ["stored", "judged", "checkpointed"])
def test_a_rejudging_asked_by_late_readings_survives_a_kill_between_their_ingest_and_the_checkpoint(tmp_path, kill):
    """``stored``: killed once the late readings are stored, before any step judged them; ``judged``:
    after the step that re-judged them (the shrunk alert written), before its checkpoint. The source
    gives the piece again at the restart (a duplicate). The store ends with ``detect``'s alerts on the
    same readings, each once, and no request left after the last checkpoint. (rck) ``checkpointed``:
    a checkpoint taken once they are stored, before any step judged them (their re-judging pending in
    it, their request forgotten by it), then killed: the layout-4 re-read holds the late readings the
    checkpoint's carry did not, and the pending rewind explains them (not said as changed readings,
    re-judged from the late readings, not from the start of the carried span)."""
    path = tmp_path / "live.duckdb"
    store, eng = _engine(path)
    pieces, late = _pieces()
    k, killed = 0, False
    while k < len(pieces):
        eng.add(pieces[k])
        if k == late and not killed:
            if kill == "stored":
                assert store.con.execute("SELECT count(*) FROM stream_rejudge").fetchone()[0] == 1
            elif kill == "checkpointed":
                pending = dict(eng.rewinds)
                assert list(pending) == ["A"], pending
                eng.checkpoint()
            else:
                rep = eng.step()
                assert eng.counters["rewinds"] == 1 and not rep.withdrawn, (eng.counters, rep.withdrawn)
            killed = True
            store.close()   # (no checkpoint, no outputs: as kill -9; the source gives the piece again)
            store, eng = _engine(path)
            if kill == "checkpointed":
                assert eng.counters["reread_changed"] == 1 and eng.rewinds == pending, (eng.counters, eng.rewinds)
                assert not [n for n in eng.notices if "hold other readings" in n], eng.notices
            continue
        eng.step()
        eng.checkpoint()
        k += 1
    eng.flush()
    eng.checkpoint()
    got = _alerts(store.con)
    left = store.con.execute("SELECT count(*) FROM stream_rejudge").fetchone()[0]
    store.close()
    frame = api.read_frame(path)
    want = {a.id: (a.meter_id, pd.Timestamp(a.start), pd.Timestamp(a.end), a.code)
            for a in api.detect(frame, detectors=["packet_loss"], config=CONFIG).alerts}
    assert [v[0] for v in want.values()] == ["A"], want   # the alert the late readings shrank
    assert got == want, (got, want)
    assert left == 0


def test_resumed_requests_of_a_meter_combine_as_in_memory(tmp_path):
    """(rle3) Two requests of one meter before a checkpoint, a late reading's (no withdrawal bound,
    NULL) and a re-learned reset's (withdraw from the reset): in memory they combine to no bound
    (``rejudge.mark``); resumed from ``stream_rejudge`` they must too (SQL's min skipped the NULL: the
    restart withdrew only from the reset on, keeping what the late reading had withdrawn before it)."""
    from collections import Counter
    from types import SimpleNamespace

    from wattwatch.runners import rejudge
    from wattwatch.runners.stream import _DDL_REJUDGE

    with Store(tmp_path / "s.duckdb") as store:
        store.con.execute(_DDL_REJUDGE)
        mem = SimpleNamespace(name="w", store=store, rewinds={}, counters=Counter())
        for m, frm, w in (("A", 200.0, 150.0), ("A", 100.0, None), ("B", 300.0, 250.0), ("B", 400.0, 260.0)):
            rejudge.ask(mem, {m: frm}, None if w is None else {m: w})
            rejudge.mark(mem, m, frm, w)
        back = SimpleNamespace(name="w", store=store, rewinds={}, counters=Counter())
        rejudge.resume_requests(back)
    assert back.rewinds == mem.rewinds == {"A": (100.0, -np.inf), "B": (300.0, 250.0)}, back.rewinds
