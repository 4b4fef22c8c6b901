"""Alerts kept in the store: idempotent upsert, lifecycle (open -> acknowledged -> cleared) and
the rule resets that acknowledging or clearing performs.

Acknowledging or clearing an alert resets that meter's state for that detector, like the seed's
"false positive lock" removal: the detector re-learns the meter from the end of the alert and
judges nothing before it, so a cleared false positive is not raised again on the next run and a
meter whose normal changed (new tenant, new equipment) gets a fresh profile.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa

from wattwatch import dbtables
from wattwatch.alerts.model import Alert, _plain

STATUSES = ("open", "acknowledged", "cleared")

_DDL = (
    "CREATE TABLE IF NOT EXISTS alerts (id VARCHAR PRIMARY KEY, meter_id VARCHAR, code VARCHAR, detector VARCHAR, "
    "severity VARCHAR, start TIMESTAMPTZ, \"end\" TIMESTAMPTZ, score DOUBLE, message VARCHAR, evidence VARCHAR, "
    "action VARCHAR, status VARCHAR, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, status_at TIMESTAMPTZ, note VARCHAR)",
    "CREATE TABLE IF NOT EXISTS rule_resets (meter_id VARCHAR, detector VARCHAR, reset_at TIMESTAMPTZ, alert_id VARCHAR, "
    "status VARCHAR, created TIMESTAMPTZ)",
)


_UPSERT_SCHEMA = pa.schema([("id", pa.string()), ("meter_id", pa.string()), ("code", pa.string()),
                            ("detector", pa.string()), ("severity", pa.string()), ("start", pa.string()),
                            ("end", pa.string()), ("score", pa.float64()), ("message", pa.string()),
                            ("evidence", pa.string()), ("action", pa.string())])


def ensure_tables(con) -> None:
    """Create the tables a store lacks (a read-only store that has them is left alone: DuckDB
    refuses even ``CREATE TABLE IF NOT EXISTS`` there)."""
    dbtables.ensure_tables(con, _DDL)


_UPSERT_SQL = (
    "INSERT INTO alerts SELECT id, meter_id, code, detector, severity, start::TIMESTAMPTZ, \"end\"::TIMESTAMPTZ, "
    "score, message, evidence, action, 'open', now(), now(), now(), NULL FROM _new "
    "ON CONFLICT (id) DO UPDATE SET \"end\" = greatest(alerts.\"end\", EXCLUDED.\"end\"), "
    "score = greatest(alerts.score, EXCLUDED.score), severity = EXCLUDED.severity, message = EXCLUDED.message, "
    "evidence = EXCLUDED.evidence, action = EXCLUDED.action, last_seen = now()")
_UPSERT_PARSED: list = []


def _upsert_statement(con):
    """(fk) :data:`_UPSERT_SQL` as DuckDB's parsed statement, parsed once per process and run again
    at every upsert (bound and planned at each execute: ``_new`` and ``now()`` are that call's; a
    parsed statement holds no connection or catalogue state, as the store's live statements)."""
    if not _UPSERT_PARSED:
        _UPSERT_PARSED.extend(con.extract_statements(_UPSERT_SQL))
    return _UPSERT_PARSED[0]


def upsert(con, alerts: list[Alert], counts: bool = True) -> dict:
    """Insert new alerts, extend known ones (same id); statuses are kept. Returns counts.
    ``counts=False`` (a live engine's every step, on a store whose tables it created): one
    statement, no look-up of which ids were known, no table check; returns no counts."""
    if counts:
        ensure_tables(con)
    if not alerts:
        return {"new": 0, "updated": 0}
    # One row per id (as upserting them one by one would leave it: the latest text, the greatest
    # end and score), written in one statement: executemany cost ~20 ms a row.
    by: dict[str, dict] = {}
    for a in alerts:
        row = {"id": a.id, "meter_id": a.meter_id, "code": a.code, "detector": a.detector, "severity": a.severity,
               "start": a.start, "end": a.end, "score": a.score, "message": a.message,
               "evidence": json.dumps(a.evidence, default=_plain), "action": a.action}
        old = by.get(a.id)
        if old is not None:
            row["end"] = max(old["end"], row["end"], key=lambda t: pd.Timestamp(t))
            row["score"] = max(old["score"], row["score"])
        by[a.id] = row
    ids = list(by)
    known = {r[0] for r in con.execute(
        f"SELECT id FROM alerts WHERE id IN ({', '.join('?' for _ in ids)})", ids).fetchall()} if counts else set()
    # The rows reach DuckDB through its scan of the caller's variables (``_new`` by name), not a
    # relation bound first: ~2 ms less a statement (5.6 -> 3.7 ms for 8 alerts; a live engine
    # upserts at every step that changes an alert), as the store's live ingest does (Store._run).
    _new = pa.Table.from_pylist(list(by.values()), schema=_UPSERT_SCHEMA)  # noqa: F841 - found by name
    con.execute(_upsert_statement(con))
    if not counts:
        return {}
    return {"new": len(set(ids) - known), "updated": len(set(ids) & known)}


def by_ids(con, ids: list[str], columns: str = "*", where: str = ""):
    """The executed ``SELECT columns FROM alerts`` of the alerts among ``ids`` the store keeps
    (``where``: a further condition; both are the caller's fixed SQL, the ids are parameters)."""
    cond = f"{where} AND " if where else ""
    return con.execute(f"SELECT {columns} FROM alerts WHERE {cond}id IN ({', '.join('?' for _ in ids)})", list(ids))


def statuses(con, ids: list[str]) -> dict[str, str]:
    """``id -> status`` of the alerts among ``ids`` that the store keeps (others are absent)."""
    ensure_tables(con)
    ids = sorted(set(ids))
    if not ids:
        return {}
    return {i: s for i, s in by_ids(con, ids, "id, status").fetchall()}


def list_alerts(con, status: str | None = "open", meter: str | None = None, min_severity: str | None = None,
                min_score: float | None = None) -> pd.DataFrame:
    """Alerts kept in the store, by status, meter, least severity and least calibrated score."""
    from wattwatch.codes import SEVERITIES, severity_rank

    ensure_tables(con)
    conds, params = [], []
    if status and status != "all":
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)} or all, not {status!r}")
        conds.append("status = ?")
        params.append(status)
    if min_severity:
        keep = list(SEVERITIES[severity_rank(min_severity):])
        conds.append(f"severity IN ({', '.join('?' for _ in keep)})")
        params += keep
    if min_score is not None:
        conds.append("score >= ?")
        params.append(float(min_score))
    if meter:
        conds.append("meter_id = ?")
        params.append(meter)
    where = ("WHERE " + " AND ".join(conds)) if conds else ""
    return con.execute(f"SELECT * FROM alerts {where} ORDER BY start, meter_id, code", params).df()


def find(con, alert_id: str) -> dict:
    """The stored row of one alert (id or unique id prefix); KeyError when none or ambiguous."""
    ensure_tables(con)
    if not isinstance(alert_id, str) or not alert_id:
        raise KeyError("give an alert id (or a unique prefix of one)")
    df = con.execute("SELECT * FROM alerts WHERE starts_with(id, ?) LIMIT 2", [alert_id]).df()
    if not len(df):
        raise KeyError(f"no alert {alert_id!r}")
    if len(df) > 1:
        raise KeyError(f"alert id prefix {alert_id!r} is ambiguous")
    return df.to_dict("records")[0]


def set_status(con, alert_id: str, status: str, note: str | None = None) -> dict:
    """Acknowledge or clear an alert (id or unique id prefix) and reset the meter's rule state."""
    ensure_tables(con)
    if status not in ("acknowledged", "cleared"):
        raise ValueError("status must be acknowledged or cleared")
    if not isinstance(alert_id, str) or not alert_id:
        raise KeyError("give an alert id (or a unique prefix of one)")
    # A prefix, literally: `_` and `%` in it are characters, not LIKE wildcards.
    found = con.execute("SELECT id, meter_id, detector, \"end\", status, evidence FROM alerts WHERE starts_with(id, ?)",
                        [alert_id]).fetchall()
    if not found:
        raise KeyError(f"no alert {alert_id!r}")
    if len(found) > 1:
        raise KeyError(f"alert id prefix {alert_id!r} is ambiguous ({len(found)} alerts)")
    aid, meter, detector, end, old, evidence = found[0]
    detectors = members(detector, evidence)
    if old == "cleared" and status == "acknowledged":
        raise ValueError(f"alert {aid} is already cleared (a cleared alert cannot be acknowledged)")
    if old == status:
        # Nothing to do: the status and the rule reset it made stand (a second reset would not
        # change what the detector learns, and the note of the first is kept).
        at = con.execute("SELECT status_at FROM alerts WHERE id = ?", [aid]).fetchone()[0]
        return {"id": aid, "meter_id": meter, "detector": detector, "detectors": detectors, "status": status,
                "unchanged": True, "since": None if at is None else pd.Timestamp(at).isoformat(),
                "reset_at": pd.Timestamp(end).isoformat()}
    con.execute("UPDATE alerts SET status = ?, status_at = now(), note = coalesce(?, note) WHERE id = ?",
                [status, note, aid])
    con.executemany("INSERT INTO rule_resets VALUES (?, ?, ?, ?, ?, now())",
                    [[meter, d, end, aid, status] for d in detectors])
    return {"id": aid, "meter_id": meter, "detector": detector, "detectors": detectors, "status": status,
            "unchanged": False, "reset_at": pd.Timestamp(end).isoformat()}


def members(detector: str, evidence) -> list[str]:
    """(rxd) The detectors whose alerts an alert holds: its own, and those of the alerts that
    continued it (``evidence.continued``, :mod:`wattwatch.detect.continuation`). Acknowledging or
    clearing it resets each: reset alone, a follower's detector went on carrying the follower's
    readings, and the next ``detect`` raised the follower again as an alert of its own. Only
    registered detectors' names are taken (a source-raised alert's evidence is a device's text)."""
    from wattwatch.detect.registry import names as registered

    try:
        c = (json.loads(evidence) if isinstance(evidence, str) else evidence or {}).get("continued") or {}
        names = [d for d in c.get("detectors") or [] if isinstance(d, str)]
    except (ValueError, AttributeError, TypeError):
        names = []
    known = set(registered())
    return list(dict.fromkeys([detector, *(d for d in names if d in known)]))


# The detector judges and re-learns from just after the alert's last reading: that reading was part
# of the alert (anomalous), and judging it again raised a phantom alert of its own at the cleared
# alert's end ("supply lost on all phases for 0 min").
AFTER = pd.Timedelta(microseconds=1)


def resets(con) -> dict[tuple[str, str], pd.Timestamp]:
    """``(meter_id, detector) -> latest reset time`` for the engine: the instant just after the
    acknowledged or cleared alert's end (the alert's own readings are never judged again)."""
    ensure_tables(con)
    rows = con.execute("SELECT meter_id, detector, max(reset_at) FROM rule_resets GROUP BY ALL").fetchall()
    return {(m, d): pd.Timestamp(at) + AFTER for m, d, at in rows}
