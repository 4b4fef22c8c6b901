"""Withdrawn alerts: why an alert was withdrawn (one text per cause, said by every part that
withdraws one), and the little the store keeps of it once its row is gone (al, issue 16).

An alert is withdrawn when its meter's readings, judged again, no longer make it: late readings
re-judged live (:mod:`wattwatch.runners.rejudge`) or by a ``detect`` over whole histories
(``api._settle_store``), or a provisional alert's final verdict (``StreamEngine._withdraw_provisional``).
Its row in ``alerts`` is deleted (``alerts list`` and ``detect`` no longer have it), so
``alerts_withdrawn`` keeps, in the transaction that deletes the row, the row as it was, when, and why:
``wattwatch alerts show ID`` says the alert was withdrawn instead of "no alert", next to what the
actions did for it (``actions_log``). One row per withdrawal (an alert found again and withdrawn
again has two); an alert found again has its row in ``alerts`` again, which ``show`` reads first.
"""

from __future__ import annotations

from wattwatch import dbtables

#: Late readings re-judged the alert's meter (live) and the alert is no longer found: a packet-loss
#: gap the readings filled, two alerts of a fault that became one.
LATE = "withdrawn: not found again when its meter was re-judged with readings that arrived late"
#: (pf) A follower written alone that a re-judging (late readings) found continuing a head: the same
#: change, told under the head's id (``evidence.continued_by`` names it too).
CONTINUED_LATE = ("withdrawn: continued by {head} (its meter re-judged with readings that arrived late: the same "
                  "change, one alert under that id)")
#: (pf) A follower an earlier run wrote alone as a provisional alert, whose final judgement found it
#: continuing a head: the same change, under the head's id.
CONTINUED_FINAL = ("withdrawn: continued by {head} (written alone while provisional; its final judgement found "
                   "the same change: one alert under that id)")
#: A ``detect`` over whole histories no longer finds a stored open alert (late readings ingested since).
DETECT = "withdrawn: not found again when `wattwatch detect` judged its meter's whole history again"

_DDL = ("CREATE TABLE IF NOT EXISTS alerts_withdrawn (id VARCHAR, meter_id VARCHAR, code VARCHAR, detector VARCHAR, "
        "severity VARCHAR, start TIMESTAMPTZ, \"end\" TIMESTAMPTZ, score DOUBLE, message VARCHAR, evidence VARCHAR, "
        "action VARCHAR, status VARCHAR, first_seen TIMESTAMPTZ, withdrawn_at TIMESTAMPTZ, reason VARCHAR)")
_COLS = "id, meter_id, code, detector, severity, start, \"end\", score, message, evidence, action, status, first_seen"


#: (ah) A withdrawal an older wattwatch made, before its store kept them (found when the table is made).
EARLIER = ("withdrawn before this store kept withdrawals (an earlier wattwatch deleted its row; its actions "
           "were logged): when and why not known; the time is its last action's")


def ensure(con, transaction: bool = False) -> None:
    """Create ``alerts_withdrawn`` when the store lacks it. (ah) A store written before it (an older
    wattwatch) knows of its withdrawals only that the alert's row is gone: only a withdrawal deletes
    one. Each alert its ``actions_log`` or ``actions_pending`` names that ``alerts`` no longer has is
    kept as withdrawn then (meter, code, the rest of the row as a pending job kept it; ``withdrawn_at``
    its last action's time, so every opening an action logged of it came before: one found again is
    a fault again, told ``opened`` anew to an action told its end), in the statement that creates
    the table (``transaction``: in a transaction of its own; else the caller's). A read-only store
    is never asked (its readers check the table is there)."""
    have = dbtables.tables(con)
    if "alerts_withdrawn" in have:
        return
    if transaction:
        con.execute("BEGIN TRANSACTION")
    try:
        con.execute(_DDL)
        if "alerts" in have and ({"actions_log", "actions_pending"} & have):
            parts = []
            if "actions_log" in have:
                parts.append("SELECT alert_id AS id, meter_id, code, NULL AS alert, done_at AS t FROM actions_log")
            if "actions_pending" in have:
                parts.append("SELECT alert_id, NULL, NULL, alert, queued_at FROM actions_pending")
            con.execute(
                "INSERT INTO alerts_withdrawn SELECT id, coalesce(any_value(meter_id), "
                "any_value(json_extract_string(alert, '$.meter_id'))), coalesce(any_value(code), "
                "any_value(json_extract_string(alert, '$.code'))), any_value(json_extract_string(alert, '$.detector')), "
                "any_value(json_extract_string(alert, '$.severity')), "
                "any_value(json_extract_string(alert, '$.start'))::TIMESTAMPTZ, "
                "any_value(json_extract_string(alert, '$.end'))::TIMESTAMPTZ, "
                "any_value(json_extract(alert, '$.score')::DOUBLE), "
                "any_value(json_extract_string(alert, '$.message')), "
                "any_value(json_extract(alert, '$.evidence')::VARCHAR), NULL, 'open', NULL, max(t), ? "
                f"FROM ({' UNION ALL '.join(parts)}) x WHERE id NOT IN (SELECT id FROM alerts) GROUP BY id",
                [EARLIER])
        if transaction:
            con.execute("COMMIT")
    except BaseException:
        if transaction:
            con.execute("ROLLBACK")
        raise


def keep(con, reasons: dict[str, str]) -> None:
    """Keep the rows of ``reasons`` (alert id -> why it is withdrawn) in ``alerts_withdrawn`` as the
    store has them now: call inside the transaction that deletes them, before the DELETE. Created on
    first use (a store written before it, or opened read-only to read, never needs it), with what an
    older store knows of its earlier withdrawals (:func:`ensure`)."""
    if not reasons:
        return
    ensure(con)
    items = list(reasons.items())
    for lo in range(0, len(items), 500):   # (ral) one statement per 500 (one each: ~3 s for 1,000 ids)
        part = items[lo:lo + 500]
        vals = ", ".join("(?, ?)" for _ in part)
        con.execute(f"INSERT INTO alerts_withdrawn SELECT {', '.join('a.' + c.strip() for c in _COLS.split(','))}, "
                    f"now(), r.why FROM alerts a JOIN (VALUES {vals}) r(wid, why) ON a.id = r.wid",
                    [x for i, why in part for x in (i, why)])


def find(con, alert_id: str) -> dict | None:
    """The last withdrawal of the alert whose id is (or starts with) ``alert_id``, as a stored
    alert row plus ``withdrawn_at`` and ``reason``; None when the store has none. KeyError when the
    prefix names more than one withdrawn alert."""
    if "alerts_withdrawn" not in dbtables.tables(con):
        return None
    ids = [r[0] for r in con.execute("SELECT DISTINCT id FROM alerts_withdrawn WHERE starts_with(id, ?) LIMIT 2",
                                     [alert_id]).fetchall()]
    if not ids:
        return None
    if len(ids) > 1:
        raise KeyError(f"alert id prefix {alert_id!r} is ambiguous")
    df = con.execute("SELECT *, count(*) OVER () AS times FROM alerts_withdrawn WHERE id = ? "
                     "ORDER BY withdrawn_at DESC LIMIT 1", [ids[0]]).df()
    return df.to_dict("records")[0]


def show(con, alert_id: str) -> dict:
    """The alert ``wattwatch alerts show`` reports (id or unique id prefix), in the model of
    ``alerts.jsonl`` (:func:`~wattwatch.alerts.model.record`): the stored alert; else its last
    withdrawal, ``status`` "withdrawn" and ``withdrawn`` = {"at", "reason", "times"}. A row kept
    with ``evidence.withdrawn`` (a provisional alert withdrawn while someone had it in hand) carries
    ``withdrawn`` too (its reason; no time). KeyError (naming the id) when neither has it."""
    from wattwatch.alerts import store as alert_store
    from wattwatch.alerts.model import iso, record

    try:
        row = alert_store.find(con, alert_id)
    except KeyError as exc:
        w = find(con, alert_id) if str(exc.args[0]).startswith("no alert") else None
        if w is None:
            raise
        rec = record({**w, "status": "withdrawn"})
        rec["withdrawn"] = {"at": iso(w["withdrawn_at"]), "reason": w["reason"], "times": int(w["times"])}
        return rec
    rec = record(row)
    why = (rec.get("evidence") or {}).get("withdrawn")
    if isinstance(why, str):
        rec["withdrawn"] = {"at": None, "reason": why, "times": 1}
    return rec
