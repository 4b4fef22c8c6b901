"""Meter state kept in the store (DESIGN §1.1): learned once, reused by every run.

Two tables:

- ``meter_state``: one row per (meter, detector): the detector's per-meter state as JSON (a
  profile, a calibration, a thermal model, the meter's cadence), its version, the settings it was
  learned with, the normal period it was learned on and how (``fit``, ``profiled`` on the meter's
  first days, ``reset`` by an operator).
- ``fleet_models``: one row per (detector, grid step, settings): a learned detector's fleet-wide
  model in wattwatch's own archive format (:mod:`wattwatch.detect.learned.serialize`: arrays and
  JSON, nothing that runs code when read), with its sha256.

A state whose version this wattwatch does not read is not used: the meter is treated as never
fitted for that detector and a notice says so. A state learned with other fit settings is used
and a notice says which settings differ (``wattwatch fit`` refreshes it).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wattwatch import dbtables
from wattwatch.jsonsafe import finite

if TYPE_CHECKING:   # (annotations only: every store opened imports this module for its tables, and
    # detect.base imports detect.frame, scipy.signal: ~1 s of CPU for ingest or store compact)
    from wattwatch.detect.base import Detector

_DDL = (
    "CREATE TABLE IF NOT EXISTS meter_state (meter_id VARCHAR NOT NULL, detector VARCHAR NOT NULL, "
    "state_version INTEGER, settings VARCHAR, how VARCHAR, fitted_at TIMESTAMPTZ, normal_start TIMESTAMPTZ, "
    "normal_end TIMESTAMPTZ, params VARCHAR, PRIMARY KEY (meter_id, detector))",
    "CREATE TABLE IF NOT EXISTS fleet_models (detector VARCHAR NOT NULL, grid_s DOUBLE NOT NULL, settings VARCHAR NOT NULL, "
    "format INTEGER, trained_at TIMESTAMPTZ, trained_on VARCHAR, sha256 VARCHAR, blob BLOB, "
    "PRIMARY KEY (detector, grid_s, settings))",
)


def ensure_tables(con) -> None:
    """Create the tables a store lacks (a read-only store that has them is left alone: DuckDB
    refuses even ``CREATE TABLE IF NOT EXISTS`` there)."""
    dbtables.ensure_tables(con, _DDL)


def settings(det: Detector) -> dict:
    """The settings a detector's state depends on: its config without the post-rules (which only
    turn scores into alerts)."""
    d = det.config.to_dict()
    d.pop("post", None)
    return d


def settings_key(det: Detector) -> str:
    return hashlib.sha256(json.dumps(settings(det), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _dumps(params: dict) -> str:
    return json.dumps(params, default=_json_default, allow_nan=False)


def _json_default(o):
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def save(con, detectors: list[Detector], meters=None, how: str = "fit") -> int:
    """Write the state of ``meters`` (default: every meter each detector has state for), replacing
    what the store had for them. Returns the number of (meter, detector) rows written."""
    ensure_tables(con)
    rows = []
    for d in detectors:
        st = getattr(d, "state_", {})
        ms = st.keys() if meters is None else [m for m in meters if m in st]
        key = json.dumps(settings(d), sort_keys=True, default=str)
        for m in ms:
            p = st[m]
            rows.append((str(m), d.name, int(p.get("state_version", d.state_version)), key, p.get("how", how),
                         _ts(p.get("first_t")), _ts(p.get("last_t")), _dumps(finite(p, str_keys=False, arrays=True))))
    if rows:
        _write(con, rows)
    return len(rows)


def _write(con, rows: list[tuple]) -> None:
    """Replace the (meter, detector) rows in one statement (``executemany`` cost ~3 ms a row: half a
    second for 40 meters and four detectors, at every ``detect`` that profiles). A (meter, detector)
    given twice keeps its last state, as replacing row by row did."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    schema = pa.schema([("meter_id", pa.string()), ("detector", pa.string()), ("state_version", pa.int32()),
                        ("settings", pa.string()), ("how", pa.string()), ("normal_start", ts), ("normal_end", ts),
                        ("params", pa.string())])
    last = list({(r[0], r[1]): r for r in rows}.values())
    _state = pa.Table.from_arrays([pa.array(c, t) for c, t in zip(zip(*last), schema.types)],  # noqa: F841
                                  schema=schema)                                          # found by name
    con.execute("INSERT OR REPLACE INTO meter_state SELECT meter_id, detector, state_version, settings, how, now(), "
                "normal_start, normal_end, params FROM _state")


def _ts(t):
    if t is None or not np.isfinite(t):
        return None
    return pd.Timestamp(round(float(t) * 1e6), unit="us", tz="UTC").to_pydatetime()


def load(con, detectors: list[Detector], meters) -> list[str]:
    """Give each detector the stored state of ``meters``; returns notices (versions it cannot
    read, settings that differ)."""
    ensure_tables(con)
    meters = [str(m) for m in meters]
    if not meters:
        return []
    import pyarrow as pa

    notices = []
    names = [d.name for d in detectors]
    table = pa.table({"meter_id": pa.array(meters, pa.string())})
    from wattwatch import sigterm
    from wattwatch.store.duck import unmasked

    since = sigterm.raised()
    with unmasked():
        rows = con.from_arrow(table).query(
            "_m", "SELECT s.meter_id, s.detector, s.state_version, s.settings, s.params FROM meter_state s "
            "SEMI JOIN _m USING (meter_id)").fetchall()
    sigterm.raise_if_lost(since)   # (rflaky) DuckDB's binder loses a Ctrl-C here as in Store._query
    by = {}
    for m, det, ver, key, params in rows:
        if det in names:
            by.setdefault(det, []).append((m, ver, key, params))
    for d in detectors:
        st = d.__dict__.setdefault("state_", {})
        cur = settings(d)
        mine = json.dumps(cur, sort_keys=True, default=str)
        drop = set(d.config.scoring_only)
        mine_learned = _learning(cur, drop)
        old, other = [], []
        for m, ver, key, params in by.get(d.name, []):
            if ver != d.state_version:
                old.append(m)
                continue
            if key != mine and _learning(json.loads(key), drop) != mine_learned:
                other.append((m, key))
            st[m] = json.loads(params)
        if old:
            notices.append(f"{d.name}: the stored state of {len(old)} meter(s) (e.g. {', '.join(old[:3])}) was written by "
                           f"another version of wattwatch; they are profiled again (run `wattwatch fit` to refit them "
                           "on a normal period of your choice)")
        if other:
            diff = _diff(json.loads(other[0][1]), cur, drop)
            notices.append(f"{d.name}: the state of {len(other)} meter(s) was learned with other settings ({diff}); "
                           "it is used as it is — run `wattwatch fit` to refresh it")
    return notices


def _learning(d: dict, drop: set) -> str:
    """Settings ``d`` without the fields ``drop`` that only shape scores (``scoring_only``), as compared."""
    return json.dumps({k: v for k, v in d.items() if k not in drop}, sort_keys=True, default=str)


def _diff(a: dict, b: dict, drop=frozenset()) -> str:
    keys = sorted((set(a) | set(b)) - set(drop))
    parts = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if json.dumps(a.get(k), default=str) != json.dumps(b.get(k), default=str)]
    return "; ".join(parts[:3]) + (" ..." if len(parts) > 3 else "")


def listing(con, meter: str | None = None) -> pd.DataFrame:
    """Per (meter, detector): version, how and when it was learned, the normal period."""
    ensure_tables(con)
    where, params = ("WHERE meter_id = ?", [meter]) if meter else ("", [])
    return con.execute("SELECT meter_id, detector, state_version, how, fitted_at, normal_start, normal_end, params "
                       f"FROM meter_state {where} ORDER BY meter_id, detector", params).df()


def drop(con, meters: list[str], detector: str | None = None) -> int:
    """Forget the state of ``meters`` (for one detector or all); they are profiled again next run."""
    ensure_tables(con)
    if not meters:
        return 0
    q = ", ".join("?" for _ in meters)
    cond, params = f"meter_id IN ({q})", list(meters)
    if detector:
        cond += " AND detector = ?"
        params.append(detector)
    n = con.execute(f"SELECT count(*) FROM meter_state WHERE {cond}", params).fetchall()[0][0]
    con.execute(f"DELETE FROM meter_state WHERE {cond}", params)
    return int(n)


# ------------------------------------------------------------------------------ fleet models


def save_fleets(con, detectors: list[Detector], trained_on: dict | None = None,
                only: dict[str, set] | None = None) -> int:
    """Keep the fleet models of learned detectors (one row per grid step); ``only``: per detector,
    the grid steps to keep (the ones just trained, not those loaded from ``--models``)."""
    from wattwatch.detect.learned import serialize
    from wattwatch.detect.learned.persist import MODEL_FORMAT

    ensure_tables(con)
    n = 0
    for d in detectors:
        if not getattr(d, "fleet_model", False):
            continue
        key = settings_key(d)
        for g, fleet in d.fleets_.items():
            if only is not None and float(g) not in only.get(d.name, ()):
                continue
            blob = serialize.dumps(fleet.state())
            con.execute("INSERT OR REPLACE INTO fleet_models VALUES (?, ?, ?, ?, now(), ?, ?, ?)",
                        [d.name, float(g), key, MODEL_FORMAT, json.dumps(trained_on or {}, default=str),
                         hashlib.sha256(blob).hexdigest(), blob])
            n += 1
    return n


def load_fleets(con, detectors: list[Detector]) -> list[str]:
    """Give learned detectors the fleet models the store keeps for their settings (grid steps they
    already have, from ``--models`` say, are kept). Returns notices."""
    from wattwatch.detect.learned import serialize
    from wattwatch.detect.learned.persist import MODEL_FORMAT

    ensure_tables(con)
    notices = []
    for d in detectors:
        if not getattr(d, "fleet_model", False):
            continue
        rows = con.execute("SELECT grid_s, format, sha256, blob FROM fleet_models WHERE detector = ? AND settings = ?",
                           [d.name, settings_key(d)]).fetchall()
        for g, fmt, sha, blob in rows:
            if float(g) in d.fleets_:
                continue
            blob = bytes(blob)
            if fmt != MODEL_FORMAT or hashlib.sha256(blob).hexdigest() != sha:
                notices.append(f"{d.name}: the stored fleet model for the {g:.0f} s grid is of another format or damaged; "
                               "it is trained again")
                continue
            try:
                d.fleets_[float(g)] = d._new_fleet(float(g)).load(serialize.loads(blob))
            except (ValueError, TypeError, KeyError) as exc:
                notices.append(f"{d.name}: the stored fleet model for the {g:.0f} s grid cannot be used ({exc}); "
                               "it is trained again")
    return notices


def fleet_listing(con) -> pd.DataFrame:
    ensure_tables(con)
    return con.execute("SELECT detector, grid_s, format, trained_at, trained_on, octet_length(blob) AS bytes "
                       "FROM fleet_models ORDER BY detector, grid_s").df()


__all__ = ["ensure_tables", "save", "load", "listing", "drop", "save_fleets", "load_fleets", "fleet_listing",
           "settings", "settings_key"]
