"""Re-judging part of a meter's past live, from the store: late readings and operator resets.

The stream engine judges each meter's readings once, in time order, with a carry
(:mod:`wattwatch.detect.stitch`). Two things change a past it has already judged:

- **Late readings**: a reading older than its meter's last judged one (a store-and-forward meter,
  a gateway's backlog) changes the scores of the readings around it;
- **Resets**: acknowledging or clearing an alert resets that (meter, detector): ``detect``
  re-learns the detector on the meter's first ``profile_days`` after the alert and judges nothing
  before it (:mod:`wattwatch.alerts.store`). Live, the same window is learned once the store holds
  it (as a new meter is profiled once its first ``profile_days`` are stored); until then the old
  state goes on judging.

Both rewind the meter: the stitcher's carry of it is rebuilt from the store, from where the
change can reach (the reading's time less every detector's reach ahead, or the reset time), as
``detect --start`` judges a window: post-rules restart there and go further back while an alert
ran across it (the core says so: ``unclean``), up to ``max_trace_days``, else from the meter's
first reading. The alerts found again keep their ids; open alerts in the re-judged span that are
not found again (a packet-loss gap a late reading filled) are withdrawn from the store
(``alerts_withdrawn``), so the stream's alerts are again those of ``detect`` on the same readings.
Acknowledged and cleared alerts are never withdrawn.
"""

from __future__ import annotations

import copy
import dataclasses
import logging

import numpy as np
import pandas as pd

from wattwatch.alerts import store as alert_store
from wattwatch.alerts import withdrawn

log = logging.getLogger("wattwatch.watch")

NEG = -(1 << 62)
#: Why a re-judging withdrew an alert (the texts of every cause: :mod:`wattwatch.alerts.withdrawn`)
WITHDRAWN = withdrawn.LATE
#: (pf) The withdrawal of a follower written alone that a re-judging found continuing a head: the
#: same change, now told under the head's id (``evidence.continued_by`` names it too).
CONTINUED = withdrawn.CONTINUED_LATE
DAY = 86400.0


def attach(engine) -> None:
    """Give ``engine`` its pending rewinds and resets: resets kept in the store whose detector
    state has not re-learned yet (made while no watcher ran, or before a restart)."""
    from wattwatch.detect.engine import _reset_pending

    engine.rewinds = dict(getattr(engine, "rewinds", {}) or {})   # meter -> (from s, withdraw from at least s)
    engine.resets = {}
    by = {d.name: d for d in engine.dets}
    for (m, dn), at in alert_store.resets(engine.store.con).items():
        for d in ([by[dn]] if dn in by else engine.dets if dn == "*" else []):
            st = getattr(d, "state_", {}).get(m)
            if st is not None and _reset_pending(st, at):
                engine.resets[(m, d.name)] = at


def mark(engine, meter: str, from_s: float, withdraw_s: float | None = None) -> None:
    """Re-judge ``meter`` from ``from_s`` (epoch s) at the next step."""
    w = -np.inf if withdraw_s is None else withdraw_s
    old = engine.rewinds.get(meter)
    engine.rewinds[meter] = (from_s, w) if old is None else (min(old[0], from_s), min(old[1], w))


def requests(engine, marks: dict[str, float], withdraw: dict[str, float] | None = None) -> list:
    """(le3) The writes that keep the requests to re-judge ``marks`` (meter -> from, epoch s;
    ``withdraw``: meter -> withdraw from at least) in ``stream_rejudge`` until the next checkpoint:
    ``[(table, sql)]`` for ``Store.ingest``'s ``then`` (the late readings' transaction)."""
    if not marks:
        return []
    import pyarrow as pa

    ms = sorted(marks)
    w = withdraw or {}
    t = pa.table({"name": pa.array([engine.name] * len(ms), pa.string()), "meter_id": pa.array(ms, pa.string()),
                  "from_s": pa.array([float(marks[m]) for m in ms], pa.float64()),
                  "withdraw_s": pa.array([w.get(m) for m in ms], pa.float64())})
    return [(t, "INSERT INTO stream_rejudge (name, meter_id, from_s, withdraw_s, asked_at) "
                "SELECT name, meter_id, from_s, withdraw_s, now() FROM _t")]


def ask(engine, marks: dict[str, float], withdraw: dict[str, float] | None = None) -> None:
    """(le3) Keep requests to re-judge (:func:`requests`) in a statement of their own."""
    for table, sql in requests(engine, marks, withdraw):
        _t = table  # noqa: F841 - found by name by DuckDB
        engine.store.con.execute(sql)


def resume_requests(engine) -> None:
    """(le3) At a start, the re-judging requests the last run kept after its last checkpoint
    (``stream_rejudge``): marked again, so the readings that asked for them are re-judged (they are
    stored; the checkpoint's carry predates them). Run twice (once before the kill, once now), a
    re-judging gives the same alerts: it judges the same stored readings from the same point."""
    # (rle3) NULL is no withdrawal bound (-inf to ``mark``): it wins, as in memory (min() skips NULLs)
    rows = engine.store.con.execute("SELECT meter_id, min(from_s), CASE WHEN count(*) = count(withdraw_s) "
                                    "THEN min(withdraw_s) END FROM stream_rejudge WHERE name = ? "
                                    "GROUP BY meter_id ORDER BY meter_id", [engine.name]).fetchall()
    for m, frm, w in rows:
        mark(engine, str(m), float(frm), None if w is None else float(w))
    if rows:
        engine.counters["rejudge_resumed"] += len(rows)
        log.info("%s: %d meter(s) the last run was to re-judge after its last checkpoint: re-judged",
                 engine.name, len(rows))


def note_reset(engine, meter: str, detector: str, reset_at) -> None:
    """An alert was acknowledged or cleared: its (meter, detector) re-learns once the store holds
    ``profile_days`` after ``reset_at`` (the alert's end)."""
    at = pd.Timestamp(reset_at)
    at = (at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")) + alert_store.AFTER
    names = [d.name for d in engine.dets] if detector == "*" else [detector]
    for n in names:
        if any(d.name == n for d in engine.dets):
            k = (str(meter), n)
            engine.resets[k] = max(engine.resets.get(k, at), at)


def relearn_ready(engine, final: bool, rep) -> None:
    """Re-learn the reset (meter, detector) pairs whose window the store now holds, as ``detect``
    does on a history that long, and rewind their meters to the reset."""
    from wattwatch import api

    if not engine.resets:
        return
    need_us = engine.cfg.profile_days * DAY * 1e6
    ready = {k: at for k, at in engine.resets.items() if k[0] in engine.profiled
             and (final or engine.last.get(k[0], NEG) - at.value // 1000 >= need_us)}
    if not ready:
        return
    settle = getattr(engine, "settle", None)
    if settle is not None:
        settle(rep)   # the detectors' state changes: not while the slow tier scores
    meters = sorted({m for m, _ in ready})
    at_m = {m: min(at for (mm, _), at in ready.items() if mm == m) for m in meters}
    cat = engine.store.catalogue(meters)
    cat["meter_id"] = cat["meter_id"].astype(str)
    if not final:
        # The window detect learns on a long enough history: profile_days from the reset.
        span = pd.Timedelta(seconds=engine.cfg.profile_days * DAY / engine.cfg.profile_max_share)
        cat["last_ts"] = [at_m[m] + span for m in cat["meter_id"]]
    # (le3) asked before the state is saved: a watcher killed after it re-judges at its restart
    # (attach no longer sees the reset pending once the state is re-learned)
    t = {m: at.timestamp() for m, at in at_m.items()}
    ask(engine, t, t)
    notes = api._ensure_state(engine.store, engine.dets, cat, engine.cfg, True, ready)
    rep.notices += notes
    engine.notices += notes
    for k, at in ready.items():
        engine.resets.pop(k, None)
        t = at.timestamp()
        mark(engine, k[0], t, t)
        engine.counters["relearned"] += 1
        log.info("%s: %s re-learned from %s (reset)", k[0], k[1], at.isoformat())


def _ahead_back(engine, meters: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per meter: how far (s) any detector's score reaches ahead and back (the margins
    ``detect`` loads around a window)."""
    from wattwatch.detect import core

    reach = core.reaches(engine.dets, meters)
    cad = np.array([core._cadence(engine.dets, m) for m in meters], float)
    cad = np.where(np.isfinite(cad) & (cad > 0), cad, 3600.0)
    back = np.zeros(len(meters))
    ahead = np.zeros(len(meters))
    for r in reach.values():
        back = np.maximum(back, np.where(np.isfinite(r.back_s), r.back_s, np.inf) + (r.back_n + 2) * cad * 1.5)
        ahead = np.maximum(ahead, np.where(np.isfinite(r.ahead_s), r.ahead_s, np.inf) + (r.ahead_n + 2) * cad * 1.5)
    return ahead, back


def run(engine, rep) -> None:
    """Rewind the marked meters (see the module): one feed of the stitcher with their stored
    readings from where the change reaches up to where they were judged; the alerts go through
    the engine as a step's do."""
    st = engine.stitcher
    todo = sorted(m for m in engine.rewinds if m in engine.profiled and engine.fed.get(m, NEG) > NEG)
    for m in [m for m in engine.rewinds if m not in todo and engine.fed.get(m, NEG) == NEG]:
        engine.rewinds.pop(m)  # never judged: the step judges it from its first reading anyway
    if not todo:
        return
    ahead, back = _ahead_back(engine, todo)
    frm = {m: engine.rewinds[m][0] - ahead[i] for i, m in enumerate(todo)}   # post-rules restart (s)
    frm = _before_alerts(engine, frm)
    trace = {m: DAY for m in todo}
    snap = _snapshot(st)
    for _ in range(64):
        origin, starts = {}, {}
        for i, m in enumerate(todo):
            # Feed from the earliest restart point: this one, or an alert still open before it.
            s = min([frm[m], *(snap[3][d.name].get(m, np.inf) for d in engine.dets)])
            # (a meter with compacted hours: its first raw reading judged is at or after its cut)
            first_s = max(engine.first.get(m, NEG) / 1e6, engine.cut.get(m, -np.inf))
            lo = s - back[i] if np.isfinite(s) else -np.inf
            origin[m] = bool(not np.isfinite(lo) or lo <= first_s)   # (a Python bool: checkpointed as JSON)
            starts[m] = None if origin[m] else lo
        _restore(st, snap)
        pos = {}
        w = [(m, starts[m]) for m in todo if starts[m] is not None]
        if w:
            pos = engine.store.count_before(pd.DataFrame({
                "meter_id": [m for m, _ in w], "start": pd.to_datetime([s for _, s in w], unit="s", utc=True)}))
        # Their carry is dropped (closed hours are taken again from the readings loaded); a meter
        # fed from a restart point keeps the earlier of it and where its post-rules stood.
        kept = {m: {d.name: (st.since[d.name].get(m, np.inf), st.emitted[d.name].get(m, np.inf))
                    for d in engine.dets} for m in todo if not origin[m]}
        st.forget(todo, alerts=False)
        for m in todo:
            for d in engine.dets:
                if not origin[m]:
                    s0, e0 = kept[m][d.name]
                    st.since[d.name][m] = min(s0, frm[m])
                    st.emitted[d.name][m] = min(e0, frm[m])
            st.origin[m] = origin[m]
            st.n_before[m] = 0 if origin[m] else int(pos.get(m, 0))
        # ... and, fed from their first raw reading after a compaction cut, from the compacted hours.
        engine.cut_hours([m for m in todo if origin[m]])
        win = pd.DataFrame({"meter_id": todo,
                            "start": [pd.NaT if starts[m] is None else pd.Timestamp(starts[m], unit="s", tz="UTC")
                                      for m in todo],
                            "end": [pd.Timestamp(engine.fed[m] + 1, unit="us", tz="UTC") for m in todo]})
        piece = engine.store.query_windows(win)
        piece["meter_id"] = piece["meter_id"].astype(str)
        piece = engine._after_cut(piece)   # late raw readings for compacted hours are not judged
        res = st.feed(piece)
        redo = [m for m in todo if m in getattr(res, "unclean", ()) and not origin[m]]
        if not redo:
            break
        for m in redo:   # an alert ran across the restart point: look further back (as detect does)
            trace[m] *= 2
            far = engine.rewinds[m][0] - trace[m]
            frm[m] = -np.inf if engine.rewinds[m][0] - far > engine.cfg.max_trace_days * DAY else min(frm[m], far)
        frm = _before_alerts(engine, frm)
    engine.counters["rejudged"] += len(piece)
    engine.counters["rewinds"] += len(todo)
    # Where each detector's post-rules restarted: every alert of it from there was found again.
    restart = {m: {d.name: (-np.inf if origin[m] else st_since) for d in engine.dets
                   for st_since in [snap_since(snap, d.name, m, frm[m])]} for m in todo}
    guard = _compacted_guard(engine, todo, piece)
    cont = getattr(engine, "_cont", None)
    if cont is not None:
        # (xd2) The continuation carry of the rewound meters, rebuilt from what was re-judged: a
        # head withdrawn or turned by the late readings no longer keeps its follower (whose later
        # versions came back under the withdrawn head's id), as ``detect`` on the same readings.
        again = cont.rewind(restart)
        if again:
            res = copy.copy(res)
            res.alerts = [*res.alerts, *again]
    engine._take(res, rep)
    # (rxd) the versions the step gave (a continued alert's merged one, not its head's own: that
    # wrote the head's end and score over the continued alert's)
    given = res.alerts if getattr(engine, "_final_view", None) is None else engine._final_view.values()
    _exact(engine, [a for a in given if a.meter_id in set(todo)])
    _withdraw(engine, res, rep, {m: {d: max(v, engine.rewinds[m][1], guard.get((m, d), -np.inf))
                                     for d, v in restart[m].items()} for m in todo})
    for m in todo:
        engine.rewinds.pop(m, None)


def compacted_since(engine, meters: list[str], first: dict[str, float] | None = None) -> dict[tuple[str, str], float]:
    """Per (meter, detector) of ``meters`` with compacted hours: the earliest alert start that
    judging from ``first`` (per meter its first raw reading judged; default: its compaction cut) can
    tell again (``api._compacted_since``); an alert that began before it is kept as it was (final
    ones by re-judging, the stream's provisional ones too)."""
    from wattwatch.api import _compacted_since, _known_cadence, _reach_back
    from wattwatch.detect import core

    # (the engine's cuts: read from the store at start; the store cannot be compacted while a
    # watcher holds it)
    want = set(meters)
    cut = {m: t for m, t in engine.cut.items() if m in want}
    if not cut:
        return {}
    cad = _known_cadence(np.array([core._cadence(engine.dets, m) for m in meters], float))
    return _compacted_since(engine.dets, meters, _reach_back(core.reaches(engine.dets, meters), cad), cut,
                            cut if first is None else first)


def _compacted_guard(engine, todo: list[str], piece: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Per (meter, detector) of the rewound meters with compacted hours (``store compact``): the
    earliest alert start the re-judging may withdraw, as ``detect`` settles the store
    (``api._compacted_since``): the hours before the compaction cut are no longer raw, so an alert
    found before the compaction that began before the cut, or within the detector's reach and
    post-rule horizon after it, cannot be found again and is kept as it was."""
    if not len(piece) or not any(m in engine.cut for m in todo):
        return {}
    t = pd.to_datetime(piece["ts"], utc=True).array.as_unit("us").asi8 / 1e6
    first = pd.Series(t).groupby(piece["meter_id"].astype(str).to_numpy()).min().to_dict()
    return compacted_since(engine, todo, {m: float(v) for m, v in first.items() if m in engine.cut})


def _before_alerts(engine, frm: dict[str, float]) -> dict[str, float]:
    """Move each restart point before the start of any kept alert of the meter that runs across
    it: re-judged from there, such an alert is found again whole (grown, shrunk or gone), not cut."""
    names = [d.name for d in engine.dets]
    out = dict(frm)
    for m, s in frm.items():
        if not np.isfinite(s):
            continue
        rows = engine.store.con.execute(
            f"SELECT epoch_us(start) / 1e6, epoch_us(\"end\") / 1e6 FROM alerts WHERE meter_id = ? "
            f"AND detector IN ({', '.join('?' for _ in names)}) ORDER BY start DESC", [m, *names]).fetchall()
        for a, b in rows:       # newest first: each one moved over may reach an older one
            if a < s <= b + 1e-6:
                s = a - 1e-6
        out[m] = s
    return out


def _exact(engine, alerts) -> None:
    """A re-judged alert is what the re-judging found: its end and score may have shrunk (a late
    reading filled a gap), which the store's upsert (it keeps the greatest) does not write. An
    acknowledged or cleared alert stays as it was at its reset (``StreamEngine._take``)."""
    if not alerts:
        return
    con = engine.store.con
    con.execute("BEGIN TRANSACTION")
    try:
        for a in {a.id: a for a in alerts}.values():
            con.execute("UPDATE alerts SET \"end\" = ?::TIMESTAMPTZ, score = ? WHERE id = ? AND status = 'open'",
                        [a.end, a.score, a.id])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def snap_since(snap, name: str, m: str, frm: float) -> float:
    return min(snap[3][name].get(m, np.inf), frm)


def _withdraw(engine, res, rep, since: dict[str, dict[str, float]]) -> None:
    """Delete open alerts of the rewound meters, in their re-judged span (per detector: from where
    its post-rules restarted), that were not found again."""
    # (xd2) as given: a follower now continuing a head is given under the head's id, so a row it
    # had of its own (written alone before the re-judging found its head) is withdrawn
    cont = getattr(engine, "_cont", None)
    found = {a.id for a in res.alerts if cont is None or a.id not in cont.head_of}
    con = engine.store.con
    gone = []
    for m, per in since.items():
        rows = con.execute("SELECT id, detector, epoch_us(start) FROM alerts WHERE meter_id = ? AND status = 'open'",
                           [m]).fetchall()
        # (rst2) ... and up to where it was re-judged (the meter's ``fed``): at a restart the
        # tiered engine's fast tier had judged beyond the checkpointed full stitcher, and an
        # alert it found there was not in the span (the resync judges it later in the step).
        upto = engine.fed.get(m, NEG)
        # (a provisional alert is the engine's to confirm or withdraw: StreamEngine._take_provisional)
        gone += [i for i, d, t in rows if d in per and t / 1e6 >= per[d] and t <= upto and i not in found
                 and i not in getattr(engine, "provisional", ())]
    if not gone:
        return
    told = _withdrawn_versions(engine, gone)
    # (pf) a follower now continuing a head is not "not found again": told continued by the head
    by = {i: cont.head_of[i] for i in gone if cont is not None and i in cont.head_of}
    for i, h in by.items():
        if i in told:
            told[i] = dataclasses.replace(told[i], evidence={**told[i].evidence, "withdrawn": CONTINUED.format(head=h),
                                                             "continued_by": h})
    # (le2) Open until this step (ended here, by ``_take`` or below): told ``ended``, as a withdrawal.
    # One that had ended before (told ``ended`` then): told as a withdrawal only (``rep.withdrawn``,
    # not ``ended``: an InfluxDB point, the console; an action was told its end already).
    ended_before = {i for i in gone if i not in engine.open_ids and i not in rep.ended}
    con.execute("BEGIN TRANSACTION")
    try:
        # (al) what ``alerts show`` says of it once its row is gone
        withdrawn.keep(con, {i: told[i].evidence["withdrawn"] if i in told else WITHDRAWN for i in gone})
        con.execute(f"DELETE FROM alerts WHERE id IN ({', '.join('?' for _ in gone)})", gone)
        _keep_for_outputs(engine, told, ended_before)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    for i in gone:
        engine.alerts.pop(i, None)
        engine._written.pop(i, None)
        # (fix3) No longer kept by the store: found again, it is new (as in a run that never
        # stopped), not an alert the store kept before the checkpoint this run resumed from.
        engine._kept_before.discard(i)
        getattr(engine, "_pending_open", set()).discard(i)   # (al) no longer held open by a pending follower
        getattr(engine, "_told_closed", set()).discard(i)   # (rah) gone: found again, it is new, not open again
        if i in engine.open_ids:
            engine.open_ids.discard(i)
            if i not in rep.ended:   # (le2: a restart's re-judging of one the last run withdrew: once)
                rep.ended.append(i)
        if i in told:
            # (rle) told as a withdrawal, its last version saying why (InfluxDB's point said "open" for
            # good, the console "alert ended" with nothing, a webhook nothing: the alert was gone from
            # the engine and the store); le2: also one that had ended before (its point said "ended")
            rep.withdrawn[i] = told[i]
        if i in by:
            log.info("alert %s withdrawn: continued by %s (its meter re-judged)", i, by[i])
        else:
            log.info("alert %s withdrawn: not found again when its meter was re-judged", i)
    engine.counters["alerts_withdrawn"] += len(gone)


def _withdrawn_versions(engine, gone: list[str]) -> dict[str, "object"]:
    """(le2) id -> the alert as last written (the engine's version, else the store's: one that ended
    before a restart), ``evidence.withdrawn`` the reason: what the outputs are told."""
    from wattwatch.alerts.model import Alert, record

    have = {i: engine.alerts[i] for i in gone if i in engine.alerts}
    rest = [i for i in gone if i not in have]
    if rest:
        for r in alert_store.by_ids(engine.store.con, rest).df().to_dict("records"):
            have[r["id"]] = Alert.from_dict(record(r))
    return {i: dataclasses.replace(a, evidence={**a.evidence, "withdrawn": WITHDRAWN}) for i, a in have.items()}


def _keep_for_outputs(engine, told: dict, ended_before: set[str]) -> None:
    """(le2) Keep the withdrawals in ``stream_withdrawn`` (in the transaction that deletes their rows)
    until a checkpoint after this step's outputs, as :meth:`StreamEngine._withdraw_provisional` keeps
    a provisional alert's: a watcher killed between the re-judging and its outputs tells them at its
    restart (:meth:`StreamEngine._load_withdrawn`; a deleted row leaves no other trace).
    ``ended_before``: told ``ended`` before (its withdrawal is not an ``ended``)."""
    if told:
        engine.store.con.executemany(
            "INSERT INTO stream_withdrawn (name, id, alert, withdrawn_at, ended_before) VALUES (?, ?, ?, now(), ?)",
            [[engine.name, i, a.to_json(), i in ended_before] for i, a in told.items()])


def resume_withdrawn(engine, held) -> None:
    """(le2) At a restart, the re-judgings' withdrawals the last run made after its last checkpoint
    (``held``: what :meth:`StreamEngine._load_withdrawn` read back): the late readings that made them
    were stored, but the checkpoint's carry predates them (the restart judges only what follows its
    checkpoint, and a reading delivered again is a duplicate that re-judges nothing), so it may give
    such an alert again. Its meter is re-judged from the alert's start once the resync is done, as
    the last run did: not found again, it stays withdrawn."""
    for a in held.values():
        if a.evidence.get("withdrawn") == WITHDRAWN:
            t = pd.Timestamp(a.start).timestamp()
            mark(engine, a.meter_id, t, t)


def _snapshot(st):
    return (None if st.tail is None else st.tail.copy(), dict(st.origin), dict(st.n_before),
            copy.deepcopy(st.since), copy.deepcopy(st.emitted), set(st._said),
            {n: dict(h) for n, h in st.hours.items()})


def _restore(st, snap) -> None:
    tail, origin, n_before, since, emitted, said, hours = snap
    st.hours = {n: dict(h) for n, h in hours.items()}   # (a carry is replaced, never changed in place)
    st.tail = None if tail is None else tail.copy()
    st.origin, st.n_before = dict(origin), dict(n_before)
    st.since, st.emitted, st._said = copy.deepcopy(since), copy.deepcopy(emitted), set(said)
