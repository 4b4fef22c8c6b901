"""What the dashboard reads: the store's alerts and readings, shaped for the pages.

Every read opens the store read-only for the time of one query and closes it again, so the CLI
(`wattwatch alerts ack`, `detect`, `ingest`) can take the write lock between two page loads. One
process-wide lock serialises the dashboard's own opens: DuckDB refuses a read-only and a writable
connection to the same file in one process.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.codes import SEVERITIES
from wattwatch.errors import StoreError

LOCK = threading.RLock()
# Points per channel drawn in the meter view: a span with more readings is binned, each bin drawn
# as its minimum and maximum (a one-reading spike stays visible); a zoom with fewer is drawn raw.
POINT_BUDGET = 2000
SEV_RANK = {s: k for k, s in enumerate(SEVERITIES)}
# A meter's group: its id without a trailing number ("Meter 2" -> "Meter", "PDU-07" -> "PDU",
# "M00012" -> "M"), the device groups of a SQLite export being its table names.
GROUP_RE = r"[\s_\-:.]*\d+$"


@contextmanager
def open_store(db: str | Path, write: bool = False):
    """The store at ``db`` (read-only unless ``write``), closed on leaving; :class:`StoreError`
    when it is missing or locked by another process (``watch`` holds it while it runs)."""
    from wattwatch.store import Store

    with LOCK:
        s = Store(db, read_only=not write, create=write)
        try:
            yield s
        finally:
            s.close()


def store_exists(db) -> bool:
    return db is not None and Path(db).is_file()


def meter_group(ids: pd.Series) -> pd.Series:
    g = ids.astype(str).str.replace(GROUP_RE, "", regex=True)
    return g.where(g != "", ids.astype(str))


_CACHE: dict = {}


def _version(db) -> tuple:
    """What changes when the store is written: the file's and its WAL's size and time."""
    out = []
    for p in (Path(db), Path(str(db) + ".wal")):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def snapshot(db) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(alerts, meters) of the store, read in one open and kept until the store file changes
    (a write by the dashboard, the CLI or ``watch`` changes its size or time)."""
    key = (str(Path(db).resolve()), _version(db))
    with LOCK:
        hit = _CACHE.get(key[0])
        if hit is not None and hit[0] == key[1]:
            return hit[1].copy(), hit[2].copy()
    with open_store(db) as s:
        have = {r[0] for r in s.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "alerts" not in have:  # read-only: a store from before alerts were kept has none
            alerts = pd.DataFrame(columns=["id", "meter_id", "code", "detector", "severity", "start", "end", "score",
                                           "message", "evidence", "action", "status", "first_seen", "last_seen",
                                           "status_at", "note"])
        else:
            alerts = s.con.execute("SELECT * FROM alerts ORDER BY start, meter_id, code").df()
        meters = s.con.execute("SELECT meter_id, cadence_s FROM meters ORDER BY meter_id").df()
    for c in ("start", "end", "first_seen", "last_seen", "status_at"):
        alerts[c] = pd.to_datetime(alerts[c], utc=True)
    alerts["group"] = meter_group(alerts["meter_id"]) if len(alerts) else pd.Series(dtype=str)
    meters["group"] = meter_group(meters["meter_id"]) if len(meters) else pd.Series(dtype=str)
    with LOCK:
        # Filed under the version seen before the read: a write that landed since (after the read
        # closed the store) then makes the next call read again instead of being taken as seen.
        _CACHE[key[0]] = (key[1], alerts, meters)
    return alerts.copy(), meters.copy()


def forget(db) -> None:
    """Drop the kept snapshot of ``db`` (its next read opens the store and says what is wrong)."""
    if db is not None:
        with LOCK:
            _CACHE.pop(str(Path(db).resolve()), None)


def alerts_frame(db) -> pd.DataFrame:
    """Every alert the store keeps, with ``group``; evidence as JSON text, times UTC."""
    return snapshot(db)[0]


def meters_frame(db) -> pd.DataFrame:
    """Every meter of the store (with or without alerts): ``meter_id``, ``group``, ``cadence_s``."""
    return snapshot(db)[1]


def filter_alerts(df: pd.DataFrame, codes=None, severities=None, statuses=None, groups=None, meters=None,
                  start=None, end=None) -> pd.DataFrame:
    """Alerts matching every filter given (an alert is in a time window ``[start, end]`` when it
    overlaps it, both ends included: the Fleet page's window is the alerts' own span by default, and
    a one-reading alert starting at its end is in it)."""
    m = np.ones(len(df), bool)
    for col, vals in (("code", codes), ("severity", severities), ("status", statuses), ("group", groups),
                      ("meter_id", meters)):
        if vals:
            m &= df[col].isin(list(vals)).to_numpy()
    if start is not None:
        m &= (df["end"] >= pd.Timestamp(start, tz="UTC") if pd.Timestamp(start).tzinfo is None
              else df["end"] >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        m &= (df["start"] <= pd.Timestamp(end, tz="UTC") if pd.Timestamp(end).tzinfo is None
              else df["start"] <= pd.Timestamp(end)).to_numpy()
    return df[m]


def ranking(alerts: pd.DataFrame, meters: pd.DataFrame | None = None) -> pd.DataFrame:
    """Meters ranked by open alerts, then worst severity and highest score among open alerts,
    then all alerts; meters without alerts (from ``meters``) at the end."""
    a = alerts.assign(is_open=alerts["status"].eq("open"), sev=alerts["severity"].map(SEV_RANK).fillna(-1))
    a["open_score"] = a["score"].where(a["is_open"])
    a["open_sev"] = a["sev"].where(a["is_open"])
    g = a.groupby("meter_id", sort=False)
    r = pd.DataFrame({
        "open_alerts": g["is_open"].sum().astype(int),
        "alerts": g.size(),
        "worst_open": g["open_sev"].max(),
        "max_open_score": g["open_score"].max(),
        "max_score": g["score"].max(),
        "codes": g["code"].agg(lambda s: ", ".join(sorted(set(s)))),
        "last_alert": g["end"].max(),
    }).reset_index()
    if meters is not None and len(meters):
        rest = meters.loc[~meters["meter_id"].isin(r["meter_id"]), ["meter_id"]]
        r = pd.concat([r, rest.assign(open_alerts=0, alerts=0)], ignore_index=True)
    r["group"] = meter_group(r["meter_id"]) if len(r) else pd.Series(dtype=str)
    r = r.sort_values(["open_alerts", "worst_open", "max_open_score", "alerts", "max_score", "meter_id"],
                      ascending=[False, False, False, False, False, True], na_position="last", kind="stable")
    r["worst_open"] = r["worst_open"].map(lambda k: SEVERITIES[int(k)] if k == k and k is not None and k >= 0 else "")
    return r.reset_index(drop=True)[["meter_id", "group", "open_alerts", "worst_open", "max_open_score", "alerts",
                                     "max_score", "codes", "last_alert"]]


def counts_over_time(alerts: pd.DataFrame, freq: str | None = None) -> pd.DataFrame:
    """Alerts started per period and severity (``period``, one column per severity)."""
    if not len(alerts):
        return pd.DataFrame(columns=["period", *SEVERITIES])
    span = alerts["start"].max() - alerts["start"].min()
    freq = freq or ("h" if span <= pd.Timedelta(days=3) else "D" if span <= pd.Timedelta(days=120) else "W")
    p = alerts["start"].dt.tz_convert("UTC").dt.tz_localize(None).dt.floor(freq) if freq != "W" else \
        alerts["start"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("W").dt.start_time
    t = pd.crosstab(p, alerts["severity"]).reindex(columns=list(SEVERITIES), fill_value=0)
    t.index.name = "period"
    return t.reset_index()


def meter_span(db, meter: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None, list[str], int]:
    """First and last reading, the channels the meter has values for, and its number of readings."""
    with open_store(db) as s:
        chans = s.channels()
        sid = s.con.execute("SELECT sid FROM meters WHERE meter_id = ?", [meter]).fetchone()
        if sid is None:
            return None, None, [], 0
        from wattwatch.store.duck import _q

        row = s.con.execute("SELECT min(ts), max(ts), count(*), " + ", ".join(f"count({_q(c)})" for c in chans)
                            + " FROM readings_raw WHERE sid = ?", [sid[0]]).fetchone()
    first, last, n = row[0], row[1], int(row[2])
    have = [c for c, k in zip(chans, row[3:]) if k]
    ts = lambda x: None if x is None else pd.Timestamp(x).tz_convert("UTC")  # noqa: E731
    return ts(first), ts(last), have, n


def meter_series(db, meter: str, channels: list[str], start=None, end=None,
                 budget: int = POINT_BUDGET) -> tuple[pd.DataFrame, bool]:
    """The meter's readings in ``[start, end]``: raw when there are at most ``budget`` of them
    (``False``), else binned in DuckDB to ``budget`` bins with ``<ch>_min``, ``<ch>_max`` and
    ``<ch>`` (the mean) per bin, ``ts`` the bin's start (``True``)."""
    from wattwatch.store.duck import _q

    with open_store(db) as s:
        known = set(s.channels())
        bad = [c for c in channels if c not in known]
        if bad:
            raise ValueError(f"unknown channel(s) {bad}")
        sid = s.con.execute("SELECT sid FROM meters WHERE meter_id = ?", [meter]).fetchone()
        if sid is None or not channels:
            return pd.DataFrame(columns=["ts", *channels]), False
        conds, params = ["sid = ?"], [sid[0]]
        if start is not None:
            conds.append("ts >= ?")
            params.append(pd.Timestamp(start).to_pydatetime())
        if end is not None:
            conds.append("ts <= ?")
            params.append(pd.Timestamp(end).to_pydatetime())
        where = " AND ".join(conds)
        n, lo, hi = s.con.execute(f"SELECT count(*), epoch_us(min(ts)), epoch_us(max(ts)) FROM readings_raw "
                                  f"WHERE {where}", params).fetchone()
        cols = ", ".join(_q(c) for c in channels)
        if n <= budget:
            df = s.con.execute(f"SELECT ts, {cols} FROM readings_raw WHERE {where} ORDER BY ts", params).df()
            binned = False
        else:
            width = max(1, -(-(hi - lo + 1) // budget))
            aggs = ", ".join(f"min({_q(c)}) AS {_q(c + '_min')}, max({_q(c)}) AS {_q(c + '_max')}, avg({_q(c)}) AS {_q(c)}"
                             for c in channels)
            df = s.con.execute(f"SELECT make_timestamp(({lo} + b * {width})::BIGINT) AS ts, {aggs} FROM "
                               f"(SELECT (epoch_us(ts) - {lo}) // {width} AS b, {cols} FROM readings_raw WHERE {where}) "
                               "GROUP BY b ORDER BY b", params).df()
            binned = True
    if len(df):
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df, binned


def provisional_badge(evidence) -> str:
    """" · **provisional** ..." for an alert the stream wrote before a long blocker's final verdict
    (``evidence.provisional``; issue 16), " · **withdrawn**" for one withdrawn since and kept
    because someone settled it; "" otherwise. (rpf) A final alert continued by a provisional one
    (``evidence.continued``, a member ``"pending": true``): " · **continuation provisional**"
    with the pending detectors."""
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except ValueError:
            return ""
    if not isinstance(evidence, dict):
        return ""
    if evidence.get("provisional") is not True:
        cont = evidence.get("continued")
        alerts = cont.get("alerts") if isinstance(cont, dict) else None
        pending = [str(m.get("detector")) for m in alerts or [] if isinstance(m, dict) and m.get("pending") is True]
        return f" · **continuation provisional** ({_md_plain(', '.join(pending))})" if pending else ""
    if evidence.get("withdrawn"):
        return " · **withdrawn** (was provisional)"
    waits = ", ".join(str(w) for w in evidence.get("waits_for") or [])
    return " · **provisional**" + (f" (waits for {_md_plain(waits)})" if waits else "")


def _md_plain(s: str) -> str:
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~" else c for c in s)


def evidence_table(evidence) -> pd.DataFrame:
    """An alert's evidence (JSON text or dict) as a two-column table; nested values as JSON."""
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except json.JSONDecodeError:
            evidence = {"text": evidence}
    if not isinstance(evidence, dict):
        evidence = {}
    # Each value as text on its own (a column of ints and floats would show 24 as 24.0).
    rows = [{"field": str(k), "value": v if isinstance(v, str) else json.dumps(v, default=str)}
            for k, v in evidence.items()]
    return pd.DataFrame(rows, columns=["field", "value"])


# A text cell a spreadsheet would run as a formula (OWASP "CSV injection"): = + - @ and a leading
# tab or carriage return. Meter ids, messages and notes can come from outside (a telemetry file, a
# tamper report's text, a note).
_FORMULA = r"^[=+\-@\t\r]"
# ... except a plain decimal number ("-1.5", "+2", "-2.5e-3"): a spreadsheet reads it as that number
# and runs nothing; a quote would make it text (and a meter id "-7" no longer the store's).
_NUMBER = r"[+\-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+\-]?[0-9]+)?"   # ASCII digits only


def export_csv(alerts: pd.DataFrame) -> bytes:
    """Alerts as CSV in the output model's fields (times ISO-8601 UTC with Z, evidence JSON), for a
    person to open in a spreadsheet: a text cell that would start a formula gets a leading ``'``
    (shown as text, the formula not run); numbers and times are left as they are, and so is a text
    cell that is a plain number (a note "-1.5")."""
    from wattwatch.alerts.model import iso

    cols = ["id", "meter_id", "start", "end", "code", "severity", "score", "detector", "message", "evidence",
            "action", "status", "note"]
    out = alerts.reindex(columns=cols).copy()
    for c in ("start", "end"):
        out[c] = out[c].map(iso)
    for c in cols:
        if c in ("start", "end", "score"):
            continue
        text = out[c].astype("string")
        bad = (text.str.contains(_FORMULA, regex=True) & ~text.str.fullmatch(_NUMBER)).fillna(False).astype(bool)
        if bad.any():
            out[c] = out[c].astype(object).where(~bad, "'" + text)
    # CRLF rows (RFC 4180): a value holding a lone carriage return is then quoted too, not a row break.
    return out.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


# ------------------------------------------------------------------------------------ evaluation


def confusion(events: list[dict], alerts: pd.DataFrame, tolerance_s: float = 3600.0) -> pd.DataFrame:
    """Fault type (rows) x alert code (columns): labelled events of the type that an alert of that
    code on the same meter overlaps (within the tolerance); ``(none)`` counts events no alert hit."""
    if not events:
        return pd.DataFrame()
    ev = pd.DataFrame(events)[["meter_id", "type", "start", "end"]].reset_index(names="event")
    ev["start"] = pd.to_datetime(ev["start"], utc=True, format="ISO8601")
    ev["end"] = pd.to_datetime(ev["end"], utc=True, format="ISO8601")
    tol = pd.Timedelta(seconds=tolerance_s)
    a = alerts[["meter_id", "code", "start", "end"]].rename(columns={"start": "a_start", "end": "a_end"})
    j = ev.merge(a, on="meter_id", how="left")
    hit = (j["a_start"] <= j["end"] + tol) & (j["a_end"] >= j["start"] - tol)
    j = j[hit.fillna(False)].drop_duplicates(["event", "code"])
    t = pd.crosstab(j["type"], j["code"]) if len(j) else pd.DataFrame(index=pd.Index([], name="type"))
    missed = ev.loc[~ev["event"].isin(j["event"])].groupby("type").size()
    t = t.reindex(sorted(set(ev["type"])), fill_value=0)
    t["(none)"] = missed.reindex(t.index, fill_value=0)
    return t.astype(int)


def alerts_objects(alerts: pd.DataFrame) -> list:
    """Store rows as :class:`~wattwatch.alerts.model.Alert` objects (for ``api.evaluate``)."""
    from wattwatch.alerts.model import Alert, iso

    out = []
    for r in alerts[["meter_id", "start", "end", "code", "severity", "score", "detector", "message",
                     "action", "status"]].itertuples(index=False):
        out.append(Alert(meter_id=r.meter_id, start=iso(r.start), end=iso(r.end), code=r.code, severity=r.severity,
                         score=float(r.score), detector=r.detector, message=r.message, action=r.action or "",
                         status=r.status))
    return out


def read_status(path) -> dict | None:
    """The live status a ``watch`` with a ``status`` output writes (None when there is none)."""
    if path is None:
        return None
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def store_summary(db) -> dict:
    with open_store(db) as s:
        n, m, first, last = s.con.execute("SELECT count(*), count(DISTINCT sid), min(ts), max(ts) FROM readings_raw"
                                          ).fetchone()
    return {"readings": int(n), "meters": int(m), "first": first, "last": last}


def check_store(db) -> str | None:
    """None when ``db`` opens as a store for reading, else what is wrong (missing, locked ...)."""
    if db is None:
        return "no store given (start with --db FILE)"
    if not Path(db).exists():
        return f"{db}: no store yet (an operator can upload telemetry on the Data page)"
    try:
        snapshot(db)
        return None
    except StoreError as exc:
        return str(exc)
