"""The Python surface of wattwatch: what a person calls, and all the CLI and dashboard call.

Telemetry goes in as files (CSV, Parquet, JSON, SQLite), as a pandas DataFrame with any column
names the mapping understands, or as a store (a ``.duckdb`` path or a :class:`Store`). Every
input goes through the same reader, checks and de-duplication as ``wattwatch ingest``.

Example::

    import pandas as pd
    from wattwatch import api

    df = pd.read_csv("meters.csv")                       # meter_id, ts, p_kw, ... (or mapped names)
    fitted = api.fit(df, normal_end="2025-01-13")        # learn each meter's normal, once
    scores = api.score(df, state=fitted)                 # every detector's score of every reading
    result = api.detect(df, state=fitted)                # alerts, judged with the same state
    result.frame()                                       # the alerts as a DataFrame
    api.evaluate("events.json", result.alerts)           # recall, precision, F1 per fault type

With a store (``db=``), state is kept in it: ``fit`` writes it, ``detect`` reads it, profiles a
meter it has never seen on the meter's own first days (once: that state is kept) and judges any
window the same way it judges the whole history (it loads the readings the detectors reach back
to, and further back while an alert is still running at the window's start).

Errors are :class:`WattwatchError` subclasses (``InputError``, ``ConfigError``, ``StateError``,
``StoreError``) whose messages say what is wrong, where, and what to do.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert, iso
from wattwatch.errors import CommittedError, ConfigError, InputError, StateError, StoreError, WattwatchError

__all__ = ["WattwatchError", "InputError", "ConfigError", "StateError", "StoreError", "CommittedError", "Fitted",
           "Detection", "load_config", "build_detectors", "read_frame", "ingest", "fit", "detect", "score", "evaluate",
           "open_store", "report", "grid_simulate", "grid_monitor", "watch", "load_site", "fleet"]

Source = Any  # DataFrame | str | Path | Sequence[str | Path] | Store


# ------------------------------------------------------------------------------------ results


@dataclass
class Fitted:
    """Detectors with the state ``fit`` learned (pass as ``detect(..., state=fitted)``)."""

    detectors: list
    notices: list[str] = field(default_factory=list)
    meters: int = 0
    readings: int = 0
    seconds: float = 0.0
    channels: list[str] = field(default_factory=list)   # (mf) the channels the readings learned on held

    def summary(self) -> pd.DataFrame:
        """Per meter: cadence, the normal period its state was learned on, the detectors fitted."""
        rows: dict[str, dict] = {}
        for d in self.detectors:
            for m, st in getattr(d, "state_", {}).items():
                r = rows.setdefault(m, {"meter_id": m, "cadence_s": st.get("cadence_s"), "normal_start": st.get("first_t"),
                                        "normal_end": st.get("last_t"), "detectors": []})
                if not st.get("lacks"):
                    r["detectors"].append(d.name)
        df = pd.DataFrame(list(rows.values()))
        for c in ("normal_start", "normal_end"):
            if c in df:
                df[c] = pd.to_datetime(df[c], unit="s", utc=True)
        return df


@dataclass
class Detection:
    """What ``detect`` found: alerts (objects), notices, per-reading scores when asked for."""

    alerts: list[Alert] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    readings: int = 0
    meters: int = 0
    seconds: float = 0.0
    scores: pd.DataFrame | None = None
    open_ids: set[str] = field(default_factory=set)
    stored: dict | None = None

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds else float("nan")

    def frame(self) -> pd.DataFrame:
        """The alerts as a DataFrame (one row per alert; evidence as a dict column)."""
        cols = ["id", "meter_id", "start", "end", "code", "severity", "score", "detector", "message", "evidence",
                "action", "ongoing"]
        if not self.alerts:
            return pd.DataFrame(columns=cols)
        df = pd.DataFrame([{**a.to_dict(), "ongoing": a.id in self.open_ids} for a in self.alerts])[cols]
        df["start"] = pd.to_datetime(df["start"], utc=True)
        df["end"] = pd.to_datetime(df["end"], utc=True)
        return df


# ------------------------------------------------------------------------------------ configuration


def load_config(config: str | Path | dict | None) -> dict:
    """A detector configuration: a TOML file path, a dict of the same shape, or None."""
    from wattwatch.detect.registry import load_config as _load

    if config is None:
        return {}
    if isinstance(config, dict):
        return config
    try:
        return _load(config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def build_detectors(names: Sequence[str] | str | None = None, config: str | Path | dict | None = None) -> list:
    """Detectors by registered name (default: the config's list, else the default set)."""
    from wattwatch.detect.registry import build_all

    cfg = load_config(config)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    try:
        return build_all(list(names) if names else None, cfg)
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from exc


def _engine(config: str | Path | dict | None):
    from wattwatch.detect.engine import EngineConfig

    try:
        return EngineConfig.from_dict(load_config(config).get("engine"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from exc


# ------------------------------------------------------------------------------------ input


def open_store(path: str | Path, create: bool = False, read_only: bool = False, lock_wait_s: float = 0.0):
    """A store file; with ``create=False`` it must exist; ``lock_wait_s``: see :class:`Store`."""
    from wattwatch.store import Store

    path = Path(path)
    if not create and str(path) != ":memory:" and not path.exists():
        raise StoreError(f"{path}: no such store (create one with `wattwatch ingest FILES --db {path}`)")
    return Store(path, read_only=read_only, lock_wait_s=lock_wait_s)


def _is_store(x) -> bool:
    from wattwatch.store import Store

    return isinstance(x, Store) or (isinstance(x, (str, Path)) and str(x).endswith(".duckdb"))


def _is_influx(x) -> bool:
    return isinstance(x, str) and x.startswith(("influx://", "influxs://"))


def read_influx(url: str, *, start=None, end=None, meters=None) -> pd.DataFrame:
    """Readings of an InfluxDB 1.x measurement as the canonical frame:
    ``influx://[USER[:PASSWORD]@]HOST:PORT/DB?measurement=M[&rp=RP][&chunk=1D]`` (``influxs://``: https),
    queried one time chunk at a time (see :mod:`wattwatch.influx`). ``detect``, ``fit`` and
    ``read_frame`` take such a URL as their source. Raises InputError naming the URL."""
    from wattwatch import influx

    try:
        return influx.read(url, start=start, end=end, meters=meters)
    except ValueError as exc:
        raise InputError(_redact(str(exc))) from None
    except influx.InfluxError as exc:
        raise InputError(f"{_redact(url)}: cannot read: {exc}") from None


def _redact(url: str) -> str:
    import re

    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def _open(source: Source, db: str | Path | None, mapping, rejects, create: bool = True, said: list | None = None):
    """(store, owned, persistent): the store to read, whether we must close it, whether it is a file.

    Files (or frames) given are ingested first; ``said`` receives what that ingest has to say (rows
    rejected per file, the readers' notes), as ``wattwatch ingest`` says it. Files that gave nothing
    usable (every row rejected) are an :class:`InputError`: they were judged as nothing, exit 0, with
    their rejects written and never mentioned."""
    from wattwatch.store import Store

    if _is_influx(source):
        source = read_influx(source)
    if isinstance(source, Store):
        if db is not None:
            raise InputError("give the telemetry either as a store or with db=, not both")
        return source, False, str(source.path) != ":memory:"
    if _is_store(source):
        if db is not None:
            raise InputError("give one store: a .duckdb source or db=")
        return open_store(source), True, True
    store = open_store(db, create=True) if db is not None else Store(":memory:")
    try:
        if source is not None:
            counts = ingest(source, store, mapping=mapping, rejects=rejects)
            _said_of_ingest(counts, rejects, said)
    except BaseException:
        store.close()
        raise
    return store, True, db is not None


def _said_of_ingest(counts: list, rejects, said: list | None) -> None:
    """Notices of an ingest done for a run (rows rejected per source, the readers' notes); an
    InputError when the sources gave nothing usable and rows were rejected."""
    where = f"file, line, field and reason in {rejects}, appended" if rejects else "not kept: give rejects= to keep them"
    if said is not None:
        for c in counts:
            if c.rejected:
                said.append(f"{c.source}: {c.rejected:,} of {c.read:,} row(s) rejected ({where})")
            if c.values_dropped:
                said.append(f"{c.source}: value(s) dropped as unreadable or implausible, the readings kept without "
                            "them: " + ", ".join(f"{ch} {n:,}" for ch, n in sorted(c.values_dropped.items()))
                            + f" ({where})")
            said.extend(n for n in c.notes if n not in said)
    usable = sum(c.stored + c.merged + c.duplicates for c in counts)
    bad = [c.source for c in counts if c.rejected]
    if bad and not usable:
        raise InputError(f"nothing usable read from {', '.join(map(str, bad))}: every row was rejected ({where})")


def ingest(source: Source, db, mapping=None, rejects: str | Path | None = None) -> list:
    """Load files or a DataFrame into a store; idempotent (a reading stored twice is one reading).

    Parameters
    ----------
    source
        A file, a folder of telemetry files, a list of them, or a DataFrame (column names mapped
        like a file's).
    db
        The store: a ``.duckdb`` path (created when missing) or an open :class:`Store`.
    mapping
        A column mapping (TOML path or dict) for sources whose names the readers do not know.
    rejects
        A CSV every row that cannot be read is appended to, with file, line, field, reason and run
        (this call's start, UTC); earlier runs' rows are kept.

    Returns
    -------
    list
        Per source: rows read, stored, merged, duplicates, rejected (``IngestCounts``), and
        ``conflicts``: of the merged and duplicate rows, those that gave other values than the
        reading kept.

    Raises
    ------
    InputError
        A source that cannot be read at all (not found, not telemetry, no timestamp column).
    StoreError
        ``rejects`` is the store file or one of the input files (nothing is written), or the
        store cannot be opened.
    """
    from wattwatch.ingest.mapping import Mapping, MappingError
    from wattwatch.ingest.pipeline import IngestError, RejectsWriter, ingest_frame, ingest_path
    from wattwatch.store import Store

    try:
        mapping = mapping if isinstance(mapping, Mapping) else (Mapping.from_toml(mapping) if mapping else Mapping())
    except MappingError as exc:
        raise InputError(str(exc)) from exc
    from wattwatch.store.duck import check_paths

    items = [source] if isinstance(source, (pd.DataFrame, str, Path)) else list(source)
    # Before anything is opened or written: a rejects file that is the store or an input would destroy it.
    check_paths(db.path if isinstance(db, Store) else db, rejects, items)
    store = db if isinstance(db, Store) else open_store(db, create=True)
    writer = RejectsWriter(rejects) if rejects else None
    results = []
    try:
        for item in items:
            try:
                if isinstance(item, pd.DataFrame):
                    counts = ingest_frame(store, item, _with_named_extras(item, mapping))
                else:
                    path = Path(item)
                    if not path.exists():
                        raise InputError(f"{path}: no such file")
                    counts = ingest_path(store, path, mapping)
            except (IngestError, MappingError) as exc:
                raise InputError(str(exc)) from exc
            if writer:
                writer.write(counts.reject_lines)
            results.append(counts)
    finally:
        if writer:
            writer.close()
        if store is not db:
            store.close()
    return results


def _with_named_extras(frame: pd.DataFrame, mapping):
    """A DataFrame's numeric columns already named like channels (``ups_load_pct``) are kept as
    extra channels without a mapping file: the name says the unit (files still declare extras)."""
    import dataclasses

    from wattwatch.schema import COLUMNS, extra_channel_error

    try:
        used = {c for names in mapping.resolve([str(c) for c in frame.columns]).values() for c in names}
    except Exception:  # noqa: BLE001 - the ingest reports mapping errors itself
        return mapping
    declared = {c for v in mapping.extra.values() for c in ((v,) if isinstance(v, str) else v)} | set(mapping.extra)
    auto = {c: c for c in frame.columns if isinstance(c, str) and c not in COLUMNS and c not in used
            and c not in declared and extra_channel_error(c) is None
            and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])}
    return dataclasses.replace(mapping, extra={**mapping.extra, **auto}) if auto else mapping


def read_frame(source: Source, mapping=None) -> pd.DataFrame:
    """Canonical telemetry (``meter_id``, ``ts`` in UTC, canonical and extra channels) from files
    or a DataFrame with any column names the mapping understands; duplicates merged, unreadable
    rows dropped (see :func:`ingest` to keep them in a rejects file). A DataFrame's numeric columns
    named like channels (a unit suffix: ``ups_load_pct``, ``pdu_outlet3_a``) are kept as extra
    channels."""
    store, owned, _ = _open(source, None, mapping, None)
    try:
        return store.query()
    finally:
        if owned:
            store.close()


# ------------------------------------------------------------------------------------ state


def _profile_windows(cat: pd.DataFrame, cfg, normal_start=None, normal_end=None, days=None) -> pd.DataFrame:
    """Per meter: the period its state is learned on. Declared (``normal_start``/``normal_end``,
    clipped to the meter's data) or its first ``days`` (default ``profile_days``), at most
    ``profile_max_share`` of its span."""
    first = pd.to_datetime(cat["first_ts"], utc=True)
    last = pd.to_datetime(cat["last_ts"], utc=True)
    if normal_start is not None or normal_end is not None:
        lo = first if normal_start is None else pd.Series(_when(normal_start, "normal_start"), index=cat.index)
        hi = last + pd.Timedelta(microseconds=1) if normal_end is None else \
            pd.Series(_when(normal_end, "normal_end"), index=cat.index)
        return pd.DataFrame({"meter_id": cat["meter_id"], "start": lo, "end": hi})
    d = cfg.profile_days if days is None else float(days)
    span = (last - first).dt.total_seconds()
    length = np.minimum(d * 86400.0, np.maximum(span, 0) * cfg.profile_max_share)
    return pd.DataFrame({"meter_id": cat["meter_id"], "start": first,
                         "end": first + pd.to_timedelta(length, unit="s") + pd.Timedelta(microseconds=1)})


def _state_store_load(store, dets, meters) -> list[str]:
    from wattwatch.detect import state

    notices = state.load(store.con, dets, meters)
    notices += state.load_fleets(store.con, dets)
    return notices


def _load_models(dets, models) -> tuple[list, Callable[[pd.DataFrame], list[str]] | None]:
    """The detectors with the fleet models of the folder ``models`` in place of their own, and
    (mf) what checks the folder's provenance against the catalogue of the meters judged (None
    without a folder): see :func:`wattwatch.detect.learned.persist.check_trained_on`."""
    from wattwatch.detect.learned.persist import ModelFormatError, check_trained_on, load_folder

    if models is None:
        return dets, None
    try:
        found, manifest = load_folder(models)
    except (ModelFormatError, ValueError) as exc:
        raise StateError(str(exc)) from exc
    loaded = {d.name: d for d in found}
    out = []
    for d in dets:
        m = loaded.pop(d.name, None)
        if m is not None and hasattr(d, "fleets_"):
            d.fleets_.update(m.fleets_)  # the folder's fleet models replace trained ones
        out.append(d)

    def check(cat: pd.DataFrame) -> list[str]:
        cadence = dict(zip((str(m) for m in cat["meter_id"]), pd.to_numeric(cat["cadence_s"], errors="coerce")))
        return check_trained_on(models, manifest, found, cadence)

    return out + list(loaded.values()), check

def fit(source: Source, *, db: str | Path | None = None, detectors: Sequence[str] | str | None = None,
        config: str | Path | dict | None = None, normal_start=None, normal_end=None, days: float | None = None,
        meters: Sequence[str] | None = None, mapping=None, rejects=None, keep: bool = True,
        on_progress: Callable[[int], None] | None = None,
        on_stage: Callable[[str, float | None], None] | None = None) -> Fitted:
    """Learn every detector's state for every meter (and the learned detectors' fleet models) on a
    normal period, replacing what was there: the declared period (``normal_start`` ..
    ``normal_end``, UTC) or each meter's first ``days`` (default: the engine's ``profile_days``,
    at most ``profile_max_share`` of its data).

    With a store (``db`` or a ``.duckdb`` source) the state is kept in it (unless ``keep=False``)
    and every later ``detect`` on that store uses it.

    Parameters
    ----------
    source
        Files, a DataFrame, or a store (``.duckdb`` path or :class:`Store`).
    db
        A store to ingest files into and to keep the state in.
    detectors, config
        Detector names (default: the default set) and their settings (TOML path or dict).
    normal_start, normal_end
        The period declared normal (ISO-8601 or a Timestamp; naive times are UTC).
    days
        Otherwise each meter's first ``days`` of readings.
    meters
        Only these meters.
    on_progress, on_stage
        For a progress display: ``on_stage(description, total)`` as each stage starts (reading
        the normal period, learning each detector, training a fleet model), ``on_progress(n)``
        as work of a stage with a total completes.

    Returns
    -------
    Fitted
        The detectors with their state, notices, meters and readings learned on; ``summary()``
        gives one row per meter.

    Raises
    ------
    InputError
        No readings in the normal period.
    """
    from wattwatch.detect import state
    from wattwatch.detect.engine import profile
    from wattwatch.detect.frame import prepare

    t0 = time.perf_counter()
    cfg = _engine(config)
    dets = build_detectors(detectors, config)
    lo, hi = _when(normal_start, "normal_start"), _when(normal_end, "normal_end")
    if lo is not None and hi is not None and lo >= hi:
        raise InputError(f"normal period {normal_start} .. {normal_end} is empty: the start must come before the end")
    if days is not None and not days > 0:
        raise InputError(f"days must be > 0, got {days}")
    said: list[str] = []
    store, owned, persistent = _open(source, db, mapping, rejects, said=said)
    try:
        cat = store.catalogue(meters)
        if not len(cat):
            raise InputError("no readings to learn from" + (f" for meters {list(meters)[:5]}" if meters else ""))
        windows = _profile_windows(cat, cfg, normal_start, normal_end, days)
        if on_stage:
            on_stage(f"reading the normal period of {len(cat):,} meter(s)", None)
        frame = prepare(store.query_windows(windows))
        if not len(frame):
            raise InputError(f"no readings in the normal period {normal_start or 'start'} .. {normal_end or 'end'}")
        notices = said + profile(frame, dets, cfg, windowed=True, refit=True, on_stage=on_stage)
        for d in dets:
            for st in getattr(d, "state_", {}).values():
                st["how"] = "fit"
        if persistent and keep:
            # (st3) one transaction: a Ctrl-C between the meters' state and the fleet models kept
            # new per-meter state beside the fleet models of the fit before
            state.ensure_tables(store.con)
            store.con.execute("BEGIN TRANSACTION")
            try:
                state.save(store.con, dets, how="fit")
                state.save_fleets(store.con, dets, {"meters": int(frame["_seg"].iat[-1]) + 1, "readings": len(frame)})
                store.con.execute("COMMIT")
            except BaseException as exc:
                from wattwatch.store.duck import _rollback

                _rollback(store.con, store.path, exc)   # (none open: the COMMIT made, then interrupted)
                raise
        if on_progress:
            on_progress(len(frame))
        held = [c for c in store.channels() if c in frame.columns and frame[c].notna().any()]
        return Fitted(dets, notices, meters=int(frame["_seg"].iat[-1]) + 1, readings=len(frame),
                      seconds=time.perf_counter() - t0, channels=held)
    finally:
        if owned:
            store.close()


def _ensure_state(store, dets, cat: pd.DataFrame, cfg, persistent: bool, resets: dict, on_stage=None,
                  profile=None, defer: bool = False) -> list[str]:
    """Profile meters that have no state (on their own first days), re-learn (meter, detector)
    pairs an operator reset, and train fleet models a grid step lacks; keep all of it.
    ``profile``: the runner's fitting step (default: the local engine's). ``defer``: only the
    fleet-model detectors profile meters without state here; the others' state is fitted by the
    judging step (Spark's, in the task that judges the meter: :func:`_fit_in_judging`)."""
    from wattwatch.detect import state
    from wattwatch.detect.engine import _reset_pending

    if profile is None:
        from wattwatch.detect.engine import profile
    from wattwatch.detect.frame import prepare

    names = [str(m) for m in cat["meter_id"]]
    windows = _profile_windows(cat, cfg).set_index("meter_id")
    need = set()
    reset_windows = {}
    fleet_work = False  # with ``defer``: whether a fleet-model detector has anything to learn
    for d in dets:
        st = getattr(d, "state_", {})
        for m in names:
            at = max([v for (mm, dn), v in resets.items() if mm == m and dn in ("*", d.name)], default=None)
            if m not in st:
                need.add(m)
                fleet_work |= bool(getattr(d, "fleet_model", False))
            elif at is not None and _reset_pending(st[m], at):
                reset_windows[m] = min(reset_windows.get(m, at), at)
        if getattr(d, "fleet_model", False):
            grids = d.config.grid_for(cat["cadence_s"].to_numpy(float))
            known = np.array([float((st.get(m) or {}).get("grid_s") or np.nan) for m in names])
            grids = np.where(np.isfinite(known), known, grids)
            for g in np.unique(grids[np.isfinite(grids)]):
                if float(g) not in d.fleets_:
                    fleet_work = True
                    ms = np.asarray(names)[grids == g]
                    if len(ms) > cfg.max_fleet_meters:
                        ms = np.sort(np.random.default_rng(0).choice(ms, cfg.max_fleet_meters, replace=False))
                    need.update(ms.tolist())
    notices = []
    fitting = [d for d in dets if getattr(d, "fleet_model", False)] if defer else dets
    if defer:
        for d in dets:  # fitted later, in the judging tasks; known to have no state until then
            d.__dict__.setdefault("state_", {})
    if need and (fleet_work or not defer):
        w = windows.loc[sorted(need)].reset_index()
        frame = prepare(store.query_windows(w))
        before = {d.name: set(getattr(d, "state_", {})) for d in dets}
        had = {d.name: {float(g) for g in getattr(d, "fleets_", {})} for d in dets}
        if on_stage:
            on_stage(f"reading the first days of {len(need):,} meter(s) without state", None)
        notices += profile(frame, fitting, cfg, windowed=True, on_stage=on_stage)
        if persistent:
            new = {m for d in dets for m in getattr(d, "state_", {}) if m not in before[d.name]}
            for d in dets:
                for m in new:
                    if m in d.state_:
                        d.state_[m]["how"] = "profiled"
            state.save(store.con, dets, sorted(new), how="profiled")
            trained = {d.name: {float(g) for g in getattr(d, "fleets_", {})} - had[d.name] for d in dets}
            state.save_fleets(store.con, dets, {"profiled": True}, only=trained)
    if reset_windows:
        last = pd.to_datetime(cat.set_index("meter_id")["last_ts"], utc=True)
        rows = []
        for m, at in reset_windows.items():
            at = pd.Timestamp(at).tz_convert("UTC") if pd.Timestamp(at).tzinfo else pd.Timestamp(at, tz="UTC")
            span = max((last[m] - at).total_seconds(), 0.0)
            length = min(cfg.profile_days * 86400.0, span * cfg.profile_max_share)
            rows.append({"meter_id": m, "start": at, "end": at + pd.Timedelta(seconds=length) + pd.Timedelta(microseconds=1)})
        frame = prepare(store.query_windows(pd.DataFrame(rows)))
        notices += profile(frame, dets, cfg, resets=resets, windowed=True, on_stage=on_stage)
        if persistent:
            for d in dets:
                for m in reset_windows:
                    if m in getattr(d, "state_", {}) and d.state_[m].get("judge_from"):
                        d.state_[m]["how"] = "reset"
            state.save(store.con, dets, sorted(reset_windows), how="reset")
    return notices


def detect(source: Source, *, db: str | Path | None = None, state: Fitted | list | None = None,
           detectors: Sequence[str] | str | None = None, config: str | Path | dict | None = None,
           start=None, end=None, meters: Sequence[str] | None = None, models: str | Path | None = None,
           scores: bool | str | Path = False, keep: bool = True, mapping=None, rejects=None,
           engine: str = "local", master: str | None = None,
           on_progress: Callable[[int], None] | None = None,
           on_stage: Callable[[str, float | None], None] | None = None) -> Detection:
    """Judge telemetry: alerts (and per-reading scores with ``scores=True``).

    Parameters
    ----------
    source
        Files, a DataFrame, or a store (``.duckdb`` path or :class:`Store`).
    db
        A store to ingest files into and to keep state and alerts in.
    state
        Detectors fitted by :func:`fit` (their state is used; meters it lacks are profiled).
        Without it, a store's kept state is used; meters without state are profiled once on their
        own first days (and, with a store, that state is kept).
    start, end
        Judge only readings in ``[start, end)`` (UTC). The result for those readings is the one a
        run over the whole history gives: the readings the detectors reach back to are loaded too,
        and further back while an alert is still running at ``start``.
    models
        A model folder (``wattwatch train``): its fleet models replace the learned detectors' own.
    meters
        Only these meters.
    scores
        ``True``: also return every detector's score of every judged reading and a combined,
        calibrated score (``Detection.scores``, the table of :mod:`wattwatch.detect.scores`); a
        path: also write that table there as Parquet (refused, before any work, when it is the
        store or an input file).
    keep
        With a store, keep the alerts in it (their lifecycle: open, acknowledged, cleared).
    engine, master
        ``"local"`` (default: meter chunks on a process pool) or ``"spark"``: meter groups judged
        inside Spark's ``applyInPandas`` on ``master`` (``local[2]``, ``spark://HOST:7077``,
        ``yarn``; default ``local[2]``, or the session already running): fleet models trained
        here, on the driver, and broadcast with the state there is; over whole histories (no
        ``start``/``end``) a meter's missing state is fitted in the task that judges it, else
        before the judging (on the driver for ``local[N]``). Both give the same alerts and
        notices. Example::

            res = wattwatch.api.detect("fleet.parquet", engine="spark", master="local[2]")
    on_progress, on_stage
        For a progress display: ``on_stage(description, total)`` as each stage starts (profiling
        meters without state a detector at a time, training a fleet model, judging with the
        readings as total), ``on_progress(n)`` as readings are judged.

    Returns
    -------
    Detection
        ``alerts`` (objects; ``frame()`` as a DataFrame), ``notices`` (what could not be judged
        and why), ``open_ids``, ``readings`` and ``meters`` judged, ``scores`` when asked.

    Raises
    ------
    InputError, ConfigError, StateError, StoreError
        A source, window, detector or parameter, model folder or store that cannot be used; the
        message says which and what to do.
    """
    from wattwatch.alerts import store as alert_store

    t0 = time.perf_counter()
    judge = _runner(engine, master)
    cfg = _engine(config)
    if state is not None:
        dets = list(state.detectors if isinstance(state, Fitted) else state)
    else:
        dets = build_detectors(detectors, config)
    dets, check_models = _load_models(dets, models)
    start_ts = _when(start, "start")
    end_ts = _when(end, "end")
    if start_ts is not None and end_ts is not None and start_ts >= end_ts:
        raise InputError(f"the window {start} .. {end} is empty: start must come before end")
    want_scores = scores is not None and scores is not False
    scores_path = None if isinstance(scores, bool) or scores is None else Path(scores)
    if scores_path is not None:
        from wattwatch.store.duck import check_paths

        inputs = [] if _is_influx(source) else [source] if isinstance(source, (str, Path)) else \
            [x for x in source if isinstance(x, (str, Path))] if isinstance(source, (list, tuple)) else []
        store_file = db if db is not None else (source if _is_store(source) else None)
        check_paths(store_file, inputs=inputs, outputs={"scores": scores_path})
        if scores_path.is_dir():
            raise InputError(f"scores {scores_path}: is a folder; give a file name")
    said: list[str] = []
    store, owned, persistent = _open(source, db, mapping, rejects, said=said)
    result = Detection()
    result.notices += said
    try:
        cat = store.catalogue(meters)
        if not len(cat):
            if want_scores:
                _score_table(result, dets, scores_path)
            return result
        names = [str(m) for m in cat["meter_id"]]
        if check_models is not None:
            result.notices += check_models(cat)
        if persistent and state is None:
            result.notices += _state_store_load(store, dets, names)
        resets = alert_store.resets(store.con) if persistent else {}
        # Spark's judging step fits, in each meter's task, the state it lacks (fit and judging in one
        # job) when the run reads every meter's whole history, its profiling period included.
        fuse = bool(getattr(judge, "fits", False)) and start_ts is None and end_ts is None
        result.notices += _ensure_state(store, dets, cat, cfg, persistent, resets, on_stage,
                                        profile=getattr(judge, "profile", None), defer=fuse)
        before = {d.name: set(getattr(d, "state_", {})) for d in dets}
        judged = _judge_window(store, dets, cat, cfg, start_ts, end_ts, result, want_scores,
                               on_progress, on_stage, judge=judge, fit=_profile_windows(cat, cfg) if fuse else None)
        if fuse and persistent:
            _fit_in_judging(store, dets, before)
        if want_scores:
            _score_table(result, dets, scores_path)
        if persistent and keep:
            result.stored = alert_store.upsert(store.con, result.alerts)
            if start_ts is None and end_ts is None:
                result.stored["withdrawn"] = _settle_store(store.con, result, dets, names, judged, resets)
        if persistent and result.alerts:
            # Each alert as the store keeps it: one acknowledged or cleared earlier and found again
            # (same id) keeps that status in alerts.jsonl, as in `alerts list`.
            kept = alert_store.statuses(store.con, [a.id for a in result.alerts])
            for a in result.alerts:
                a.status = kept.get(a.id, a.status)
    finally:
        if owned:
            store.close()
    result.seconds = time.perf_counter() - t0
    return result


def _score_table(result: Detection, dets: list, path: Path | None) -> None:
    """``result.scores`` as the scores table (one column per detector run, the combined score),
    written to ``path`` when given."""
    from wattwatch.detect import scores as score_table

    result.scores = score_table.table(result.scores, [d.name for d in dets])
    if path is not None:
        score_table.write(result.scores, path)


def score(source: Source, *, state: Fitted | list | None = None, detectors: Sequence[str] | str | None = None,
          config: str | Path | dict | None = None, start=None, end=None, db: str | Path | None = None,
          meters: Sequence[str] | None = None, mapping=None) -> pd.DataFrame:
    """Every detector's score of every reading: ``meter_id``, ``ts``, one column per detector
    (higher = worse, 1.0 = the detector's limit, NaN = cannot judge), ``score`` (the combined
    score, calibrated like an alert's: 0.5 at a limit, 0.75 at twice it) and ``detector`` (the
    one that gave it); see :mod:`wattwatch.detect.scores`. The same judgement as :func:`detect`
    (state, window, suppression), without the post-rules: for ranking, other thresholds, ROC and
    PR curves. Nothing is kept in a store."""
    res = detect(source, db=db, state=state, detectors=detectors, config=config, start=start, end=end,
                 meters=meters, scores=True, keep=False, mapping=mapping)
    return res.scores


def _when(x, what: str):
    if x is None:
        return None
    try:
        t = pd.Timestamp(x)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{what}: cannot read {x!r} as a time (ISO-8601, e.g. 2025-01-31T00:00:00Z)") from exc
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    if not pd.Timestamp("1900-01-01", tz="UTC") <= t <= pd.Timestamp("2200-01-01", tz="UTC"):
        raise InputError(f"{what}: {x!r} is outside 1900..2200 (a typo in the year?)")
    return t


def _load_reach(store, names, todo, since, since_t, back, ahead, end, first, reach, cut=None, last=None):
    """Each meter's readings from its reach before its window start to its reach after the end.
    ``cut``: per meter, the end of its last compacted hour (epoch s); raw readings before it (a late reading
    for a compacted hour, raw until the next compaction) are not loaded: the hours around them are
    aggregates, and judged alone they read as readings with days lost around them.

    A reach counted in readings (``back_n``, ``ahead_n``) was turned into time at the meter's
    cadence; where a gap sits before the window (or after its end) that time holds fewer readings,
    so the first (last) readings would not be exact (and could not be judged). Those meters are
    loaded again from further back (ahead), doubling the distance, until the reach is held or their
    first (``last``) reading is reached."""
    from wattwatch.detect.frame import prepare

    back, ahead = back.copy(), np.asarray(ahead, float).copy()
    hi: list = [None] * len(todo)
    lo: list = [None] * len(todo)
    raw = None
    pending = list(range(len(todo)))
    while True:
        for i in pending:
            s = since.get(todo[i], since_t)
            b = back[todo[i]]
            lo[i] = None if s is None or not np.isfinite(b) else pd.Timestamp(s - b, unit="s", tz="UTC")
            hi[i] = None if end is None else end + pd.Timedelta(seconds=float(ahead[todo[i]]))
        got = store.query_windows(pd.DataFrame({"meter_id": [names[todo[i]] for i in pending],
                                                "start": [lo[i] for i in pending], "end": [hi[i] for i in pending]}))
        if cut and len(got):
            c = got["meter_id"].astype(str).map(cut)
            keep = c.isna() | (pd.to_datetime(got["ts"], utc=True) >= pd.to_datetime(c, unit="s", utc=True))
            if not keep.all():
                got = got[keep.to_numpy()].reset_index(drop=True)
        if raw is None:
            raw = got
        else:
            again_names = [names[todo[i]] for i in pending]
            raw = pd.concat([raw[~raw["meter_id"].astype(str).isin(again_names)], got], ignore_index=True)
        frame = prepare(raw)
        if not len(frame):
            return frame, lo, hi
        cats = np.asarray(frame["meter_id"].cat.categories, dtype=object).astype(str)
        codes = frame["meter_id"].cat.codes.to_numpy()
        t = frame["_t"].to_numpy()
        seg_code = codes[np.r_[0, np.flatnonzero(np.diff(frame["_seg"].to_numpy())) + 1]]
        bounds = np.r_[np.flatnonzero(np.diff(frame["_seg"].to_numpy())) + 1, len(frame)]
        where = {cats[c]: (a, b) for c, a, b in zip(seg_code, np.r_[0, bounds[:-1]], bounds)}
        again = []
        for i in pending:
            k = todo[i]
            s = since.get(k, since_t)
            if s is None or lo[i] is None or lo[i] <= first[k] or names[k] not in where:
                continue
            if cut and names[k] in cut and lo[i].timestamp() <= cut[names[k]]:
                continue   # nothing before the compaction cut is loaded: further back holds no more

            a, b = where[names[k]]
            tm = t[a:b]
            i0 = np.searchsorted(tm, s, side="left")
            if i0 == len(tm):
                continue
            for r in reach.values():
                if not np.isfinite(r.back_s[k]):
                    continue
                want = tm[i0] - r.back_s[k]
                if want < tm[0] or np.searchsorted(tm, want, side="left") < r.back_n[k]:
                    again.append(i)
                    back[k] = back[k] * 2.0
                    break
        for i in pending:
            # The same ahead of the window's end: its last readings' reach in readings past a gap.
            k = todo[i]
            if end is None or last is None or hi[i] is None or hi[i] > last[k] or names[k] not in where:
                continue
            a, b = where[names[k]]
            tm = t[a:b]
            j = np.searchsorted(tm, end.timestamp(), side="left") - 1
            if j < 0:
                continue
            for r in reach.values():
                if not np.isfinite(r.ahead_s[k]):
                    continue
                want = tm[j] + r.ahead_s[k]
                if want > tm[-1] or len(tm) - np.searchsorted(tm, want, side="right") < r.ahead_n[k]:
                    if i not in again:
                        again.append(i)
                    ahead[k] = ahead[k] * 2.0
                    break
        if not again:
            return frame, lo, hi
        pending = again


def _runner(engine: str, master: str | None):
    """The judging step of ``engine``: :func:`wattwatch.detect.engine.judge` or Spark's, which
    carries Spark's fitting step as ``.profile`` (:func:`wattwatch.runners.spark.profile`)."""
    if engine == "local":
        if master is not None:
            raise ConfigError(f"master {master!r} is for engine='spark'; the local engine runs on this machine")
        from wattwatch.detect.engine import judge

        return judge
    if engine == "spark":
        import functools

        from wattwatch.runners import spark

        spark.session(master or "local[2]")  # fails now, before any work, when Java or pyspark is missing
        run = functools.partial(spark.judge, master=master or "local[2]")
        run.profile = functools.partial(spark.profile, master=master or "local[2]")  # its fitting step
        run.fits = True  # it can fit a meter's missing state in the task that judges it (``fit=``)
        return run
    raise ConfigError(f"engine: expected 'local' or 'spark', got {engine!r}")


def _fit_in_judging(store, dets, before: dict[str, set]) -> None:
    """Keep the state the judging step fitted (``detect --engine spark`` fits a meter without state
    in the task that judges it), as :func:`_ensure_state` keeps what it profiles."""
    from wattwatch.detect import state

    new = {d.name: [m for m in getattr(d, "state_", {}) if m not in before[d.name]] for d in dets}
    for d in dets:
        for m in new[d.name]:
            d.state_[m]["how"] = "profiled"
    learned = [d for d in dets if new[d.name]]
    if learned:
        state.save(store.con, learned, sorted({m for ms in new.values() for m in ms}), how="profiled")


def _window_rows(frame: pd.DataFrame, windows: pd.DataFrame) -> np.ndarray:
    """Rows of ``frame`` (prepared) inside their meter's window of ``windows`` (``meter_id``,
    ``start``, ``end``: ``start <= ts < end``, bounds floored to the microsecond): the rows
    ``Store.query_windows(windows)`` returns."""
    from wattwatch.detect.frame import meter_names
    from wattwatch.store.duck import _us

    if not len(frame):
        return np.zeros(0, bool)
    idx = {str(m): i for i, m in enumerate(windows["meter_id"])}
    lo_all = _us(windows["start"]).cast("int64").to_numpy(zero_copy_only=False)
    hi_all = _us(windows["end"]).cast("int64").to_numpy(zero_copy_only=False)
    names = [str(m) for m in meter_names(frame)]
    k = np.array([idx.get(m, -1) for m in names])
    lo = np.where(k >= 0, lo_all[np.maximum(k, 0)], np.iinfo(np.int64).max)
    hi = np.where(k >= 0, hi_all[np.maximum(k, 0)], np.iinfo(np.int64).min)
    t = frame["ts"].array.as_unit("us").asi8
    seg = frame["_seg"].to_numpy()
    return (t >= lo[seg]) & (t < hi[seg])


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """``frame[name]`` as floats, or NaN where a store's query left the channel out (a store with
    no reading of it: power only, energy only)."""
    return frame[name].to_numpy(float) if name in frame else np.full(len(frame), np.nan)


def _compacted_hours(store, dets, names: list[str], cut: dict, reach: dict) -> dict:
    """For detectors that carry closed hours (``carry_cls`` a ``HourCarry``: baseline_macd), each
    compacted meter's hours before its compaction cut as such a carry, from ``readings_hourly``,
    so that the raw readings after the cut are judged with the hours it reaches back to (some 48
    days) instead of not at all. Per hour: the mean power the energy register counted (each
    interval between two compacted readings placed by its midpoint, as the detector bins raw
    readings: the hourly rows keep every reading's time and register value), else the hour's mean
    power reading; its lowest power reading. What the compacted hours cannot tell: readings other
    detectors explained (an outage: blanked before binning) and readings that caught a motor
    start are in these hours. ``reach``: :func:`core.reaches`. Returns {detector: {meter: carry}}."""
    from wattwatch.detect.baseline.macd import HourCarry
    from wattwatch.detect.frame import meter_names, prepare
    from wattwatch.detect.rules._common import binned_power
    from wattwatch.schema import CHANNEL_NAMES

    out: dict[str, dict] = {}
    carried = [d for d in dets if d.carry_cls is HourCarry and d.name in reach]
    meters = [m for m in names if m in cut]
    if not carried or not meters:
        return out
    k = {m: i for i, m in enumerate(names)}
    for d in carried:
        back = np.array([float(reach[d.name].back_s[k[m]]) for m in meters])
        c1 = np.array([float(cut[m]) for m in meters])
        lo = np.where(np.isfinite(back), np.floor((c1 - back) / 3600.0) * 3600.0 - 86400.0, -np.inf)
        want = pd.DataFrame({"meter_id": meters, "lo_us": np.clip(lo, -4e12, 4e12) * 1e6, "c1_us": c1 * 1e6})
        store.con.register("_cut27_want", want)
        try:
            hours = store.con.execute(
                "SELECT h.meter_id, epoch_us(h.hour) AS h_us, h.p_kw_mean, h.p_kw_min FROM readings_hourly h "
                "JOIN _cut27_want w USING (meter_id) WHERE epoch_us(h.hour) >= w.lo_us AND epoch_us(h.hour) < w.c1_us "
                "ORDER BY h.meter_id, h.hour").df()
            regs = store.con.execute(
                "SELECT meter_id, ts, e FROM (SELECT h.meter_id, unnest(h.ts_list) AS ts, unnest(h.e_list) AS e "
                "FROM readings_hourly h JOIN _cut27_want w USING (meter_id) WHERE h.ts_list IS NOT NULL "
                "AND epoch_us(h.hour) >= w.lo_us AND epoch_us(h.hour) < w.c1_us) ORDER BY meter_id, ts").df()
            first = dict(store.con.execute(
                "SELECT meter_id, epoch_us(min(hour)) FROM readings_hourly WHERE meter_id IN (SELECT meter_id FROM "
                "_cut27_want) GROUP BY meter_id").fetchall())
        finally:
            store.con.unregister("_cut27_want")
        if not len(hours):
            continue
        # The register's mean power per hour, binned as the detector bins raw readings; with the
        # raw readings just after the cut, whose intervals reach back into the hours before them.
        # The judging frame starts at the first raw reading: the interval before it is not in it,
        # so the carry runs on to the end of that reading's hour (the hours up to it hold no
        # other reading, and that hour's intervals are all among these; as a stream's carried
        # hours overlap its raw tail).
        max_iv = d.config.max_interval_s if d.config.use_register else None
        ext = {m: float(c) for m, c in zip(meters, c1)}
        after = pd.DataFrame()
        if max_iv is not None:
            after = store.query_windows(pd.DataFrame({
                "meter_id": meters, "start": pd.to_datetime(c1, unit="s", utc=True),
                "end": pd.to_datetime(c1 + 2 * max_iv + 7200.0, unit="s", utc=True)}))
            if len(after):
                after = after.assign(meter_id=after["meter_id"].astype(str),
                                     _t=pd.to_datetime(after["ts"], utc=True).array.as_unit("us").asi8 / 1e6)
                regs = pd.concat([regs, pd.DataFrame({"meter_id": after["meter_id"].to_numpy(),
                                                      "ts": pd.to_datetime(after["ts"], utc=True),
                                                      "e": _column(after, "e_kwh")})], ignore_index=True)
                for m, r1 in after.groupby("meter_id", sort=False)["_t"].min().items():
                    if r1 < ext[m] + max_iv:
                        ext[m] = max(ext[m], np.floor(r1 / 3600.0) * 3600.0 + 3600.0)
        reg: dict[str, tuple[float, np.ndarray]] = {}
        if len(regs):
            frame = pd.DataFrame({"meter_id": regs["meter_id"].astype(str), "ts": pd.to_datetime(regs["ts"], utc=True)})
            for c in CHANNEL_NAMES:
                frame[c] = regs["e"].to_numpy(float) if c == "e_kwh" else np.nan
            pf = prepare(frame)
            if max_iv is not None and len(pf):
                mat, _, t0 = binned_power(pf, 3600.0, max_iv, drop_inrush=False)
                for j, m in enumerate(meter_names(pf)):
                    reg[str(m)] = (float(t0[j]), mat[j])
        hours["meter_id"] = hours["meter_id"].astype(str)
        at_meter = {m: i for i, m in enumerate(meters)}
        after_of = dict(tuple(after.groupby("meter_id", sort=False))) if len(after) else {}
        carries = {}
        for m, g in hours.groupby("meter_id", sort=False):   # per meter: whole arrays
            i = at_meter[m]
            h0 = float(g["h_us"].iloc[0]) / 1e6
            n = int(np.rint((ext[m] - h0) / 3600.0))
            if n <= 0:
                continue
            at = np.rint((g["h_us"].to_numpy(float) / 1e6 - h0) / 3600.0).astype(np.int64)
            mean = np.full(n, np.nan)
            low = np.full(n, np.nan)
            mean[at] = g["p_kw_mean"].to_numpy(float)
            low[at] = g["p_kw_min"].to_numpy(float)
            if ext[m] > c1[i]:
                # The carried hours after the cut: their raw readings' mean and lowest power.
                x = after_of[m]
                x = x[x["_t"].to_numpy() < ext[m]]
                hb = np.rint((np.floor(x["_t"].to_numpy() / 3600.0) * 3600.0 - h0) / 3600.0).astype(np.int64)
                pw = pd.Series(_column(x, "p_kw")).groupby(hb)
                mean[pw.mean().index.to_numpy()] = pw.mean().to_numpy()
                low[pw.min().index.to_numpy()] = pw.min().to_numpy()
            if m in reg:
                t0, row = reg[m]
                a = int(np.rint((t0 - h0) / 3600.0))
                src = np.arange(len(row))
                dst = src + a
                ok = (dst >= 0) & (dst < n) & np.isfinite(row)
                mean[dst[ok]] = row[src[ok]]
            carries[m] = HourCarry(h0, ext[m], first.get(m) is not None and abs(first[m] / 1e6 - h0) < 1.0,
                                   3600.0, {"m": mean, "hmin": low})
        if carries:
            out[d.name] = carries
    return out


def _judge_window(store, dets, cat: pd.DataFrame, cfg, start, end, result: Detection, keep_scores: bool,
                  on_progress, on_stage=None, judge=None, fit: pd.DataFrame | None = None) -> dict:
    """Judge each meter's readings in [start, end) with the reach around them; alerts that were
    running at ``start`` are traced back to where they began (up to ``max_trace_days``).
    ``judge``: the runner's judging step (default: the local engine's). ``fit``: each meter's
    profiling window (``meter_id``, ``start``, ``end``), for a judging step that fits the state a
    meter lacks on those rows of the frame it judges (Spark's; only for a run of whole histories).
    Returns what :func:`_settle_store` needs to know of the run: ``unjudged``, the meters each
    detector did not judge (``DetectionResult.unjudged``; ``"*"``: none of them); ``first_judged``,
    each meter's first reading judged, and ``cut``, the end of its last compacted hour (epoch s);
    ``back``, per detector, how far back its scores reach per meter of ``names`` (seconds)."""
    from wattwatch.detect import core
    from wattwatch.detect.engine import DetectionResult

    if judge is None:
        from wattwatch.detect.engine import judge

    names = [str(m) for m in cat["meter_id"]]
    first = pd.to_datetime(cat["first_ts"], utc=True).to_numpy()
    last = pd.to_datetime(cat["last_ts"], utc=True).to_numpy()
    reach = core.reaches(dets, names)
    cad = _known_cadence(cat["cadence_s"].to_numpy(float))
    back_of = _reach_back(reach, cad)
    back = np.zeros(len(names))
    ahead = np.zeros(len(names))
    for dn, r in reach.items():
        back = np.maximum(back, back_of[dn])
        ahead = np.maximum(ahead, r.ahead_s + (r.ahead_n + 2) * cad * 1.5)
    uses_pos = any(getattr(d, "uses_position", False) for d in dets)
    res = DetectionResult()
    unjudged: dict[str, set[str]] = {}
    first_judged: dict[str, float] = {}
    # Each meter's compaction cut: the end of its last compacted hour, epoch seconds (see
    # :func:`_load_reach`).
    cut = store.compaction_cuts()
    hours: dict[str, dict] = {}   # carried hours of the meters judged from their compaction cut
    cut_used: set[str] = set()   # meters judged from their compaction cut
    todo = list(range(len(names)))
    trace = 86400.0
    since_t = None if start is None else start.timestamp()
    from wattwatch.detect.continuation import follower_starts
    from wattwatch.detect.engine import continuation_of

    cont = continuation_of(cfg)
    since: dict[int, float] = {}
    while todo:
        if on_stage:
            on_stage(f"loading the readings of {len(todo):,} meter(s)", None)
        frame, lo, hi = _load_reach(store, names, todo, since, since_t, back, ahead, end, first, reach, cut, last)
        # A meter with compacted hours never has its first reading loaded (the core judges it from
        # each detector's reach after the cut, ``core.run``'s ``cut``).
        origin = {names[k]: (lo[i] is None or lo[i] <= first[k]) and names[k] not in cut for i, k in enumerate(todo)}
        flush = {names[k]: hi[i] is None or hi[i] > last[k] for i, k in enumerate(todo)}
        # Post-rules start at the window's start, or earlier while an alert runs across it; a meter
        # whose whole history is loaded needs no start (its alerts are found from the beginning).
        s_map = {names[k]: (None if origin[names[k]] else since.get(k, since_t)) for k in todo}
        window = {"origin": origin, "flush": flush}
        # Meters loaded back to their compaction cut (a window starting further on is judged as
        # any window: its reach is loaded).
        cut_here = {names[k]: cut[names[k]] for i, k in enumerate(todo)
                    if names[k] in cut and (lo[i] is None or lo[i].timestamp() <= cut[names[k]])}
        if cut_here:
            window["cut"] = cut_here
            new = {m: c for m, c in cut_here.items() if m not in cut_used}
            for dn, cs in _compacted_hours(store, dets, names, new, reach).items():
                hours.setdefault(dn, {}).update(cs)
            cut_used.update(cut_here)
            here = {dn: {m: c for m, c in cs.items() if m in cut_here} for dn, cs in hours.items()}
            if any(here.values()):
                window["hours"] = {dn: cs for dn, cs in here.items() if cs}
        if since_t is not None:
            window["since"] = {d.name: {m: v for m, v in s_map.items() if v is not None} for d in dets}
        if uses_pos:
            pos_w = pd.DataFrame({"meter_id": [names[k] for k in todo],
                                  "start": [x if x is not None else pd.Timestamp(0, tz="UTC") for x in lo]})
            window["positions"] = store.count_before(pos_w)
        part = DetectionResult()
        more = {} if fit is None else {"fit": _window_rows(frame, fit)}
        judge(frame, dets, cfg, part, on_progress, keep_scores, window=window, on_stage=on_stage, **more)
        # (xd2) ... and while a follower of the cross-detector continuation begins within
        # ``continue_within_h`` of where the post-rules restarted: the head it continues in the
        # whole history may have ended before that (continuation.follower_starts)
        early = set()
        if cont is not None:
            fs = follower_starts(part.alerts, cont)
            early = {names[k] for k in todo if s_map[names[k]] is not None
                     and fs.get(names[k], np.inf) < s_map[names[k]] + cont.within_s}
        want = [k for k in todo if (names[k] in part.unclean or names[k] in early) and not origin[names[k]]
                and s_map[names[k]] is not None]
        redo = [k for k in want if since_t - s_map[names[k]] < cfg.max_trace_days * 86400.0]
        # (rxd2) Said of a meter whose pass, judged from max_trace_days back, still needs more (what
        # it gave stands); said before that pass, it was said also where the pass then found the
        # alert whole, and its count was every meter traced.
        far = [k for k in want if k not in redo]
        if any(names[k] in part.unclean for k in far):
            res.notices.append(f"{sum(names[k] in part.unclean for k in far)} meter(s) had an alert running at "
                               f"{start.isoformat()} that began more than {cfg.max_trace_days:g} days before; "
                               "its start is the first anomalous reading after that")
        far = [k for k in far if names[k] not in part.unclean]
        if far:
            res.notices.append(f"{len(far)} meter(s) (e.g. {names[far[0]]}) had consumption alerts continuing one "
                               f"another back to more than {cfg.max_trace_days:g} days before {start.isoformat()}: "
                               "the first of them is given as judged from there (a baseline_macd alert may stand "
                               "alone where the whole history continues an earlier alert with it)")
        keep_meters = {names[k] for k in todo if k not in redo}
        for name, ms in part.unjudged.items():
            unjudged.setdefault(name, set()).update(m for m in ms if m in keep_meters)
        if len(frame):
            cats = np.asarray(frame["meter_id"].cat.categories).astype(str)
            t_min = pd.Series(frame["_t"].to_numpy()).groupby(frame["meter_id"].cat.codes.to_numpy()).min()
            for c, v in t_min.items():
                if cats[c] in keep_meters:
                    first_judged[cats[c]] = min(first_judged.get(cats[c], np.inf), float(v))
        res.alerts += [a for a in part.alerts if a.meter_id in keep_meters]
        res.open_ids |= {a.id for a in part.alerts if a.meter_id in keep_meters} & part.open_ids
        res.notices += [n for n in part.notices if n not in res.notices]
        res.notices += [n for n in _cadence_change_notices(frame, dets, keep_meters) if n not in res.notices]
        ts = frame["_t"].to_numpy()
        inside = np.isin(np.asarray([str(m) for m in frame["meter_id"].cat.categories])[frame["meter_id"].cat.codes],
                         list(keep_meters)) if len(frame) else np.zeros(0, bool)
        if start is not None:
            inside &= ts >= start.timestamp()
        if end is not None:
            inside &= ts < end.timestamp()
        res.readings += int(inside.sum())
        if keep_scores and part.scores is not None:
            sc = part.scores[part.scores["meter_id"].astype(str).isin(keep_meters)]
            res.scores = sc if res.scores is None else pd.concat([res.scores, sc], ignore_index=True)
        for k in redo:
            since[k] = since.get(k, since_t) - trace
        if redo:
            trace *= 2
        todo = redo
    compacted = sorted(m for m in first_judged if m in cut_used)
    if compacted:
        k = np.array([names.index(m) for m in compacted])
        res.notices.append(_compacted_notice(dets, compacted, {dn: b[k] for dn, b in back_of.items()}, hours))
    # What the window holds: alerts that overlap it, scores inside it.
    # (rxd2) written as an alert's times are (milliseconds): "…T23:00:00Z" sorted after "…T23:00:00.000Z",
    # so an alert ending at the window's start was left out (and one starting at its end kept)
    lo_iso = None if start is None else iso(start)
    hi_iso = None if end is None else iso(end)
    alerts = [a for a in res.alerts if (lo_iso is None or a.end >= lo_iso) and (hi_iso is None or a.start < hi_iso)]
    alerts.sort(key=lambda a: (a.meter_id, a.start, a.code, a.detector))
    result.alerts += alerts
    result.open_ids |= res.open_ids & {a.id for a in alerts}
    result.notices += [n for n in res.notices if n not in result.notices]
    result.meters += len(names)
    result.readings += res.readings
    if keep_scores and res.scores is not None:
        sc = res.scores
        ts = pd.to_datetime(sc["ts"], utc=True)
        m = np.ones(len(sc), bool)
        if start is not None:
            m &= (ts >= start).to_numpy()
        if end is not None:
            m &= (ts < end).to_numpy()
        result.scores = sc[m].reset_index(drop=True)
    return {"unjudged": unjudged, "first_judged": first_judged, "cut": cut, "back": back_of}


def _scores_nothing(d, st: dict) -> bool:
    """Whether ``d`` gives the meter whose state is ``st`` no score at all in this run: idle for
    it, or a fleet-model detector without a fleet model for the meter's grid step (too small a
    fleet: a notice; its scores are NaN, see ``LearnedDetector._score``)."""
    if d.idle(st):
        return True
    if getattr(d, "fleet_model", False):
        g = float(st.get("grid_s") or np.nan)
        return not np.isfinite(g) or g not in getattr(d, "fleets_", {})
    return False


def _compacted_notice(dets, compacted: list[str], back_of: dict, fed) -> str:
    """What a judging of meters with compacted hours says about them (``detect``, and ``watch`` at
    start): ``compacted``, the meters judged from their compaction cut; ``back_of``, per detector
    how far back (s) its scores reach on each of them (:func:`_reach_back`); ``fed``, the detectors
    fed the compacted hours (:func:`_compacted_hours`)."""
    by_name = {d.name: d for d in dets}
    first_of = sorted(dn for dn in back_of if by_name[dn].compacted_origin)
    fed = sorted(fed)
    far = {dn: float(np.min(b)) for dn, b in back_of.items()
           if len(b) and float(np.min(b)) >= 86400.0 and dn not in fed and dn not in first_of}
    longest = ", ".join(f"{dn} {v / 86400:.0f} days" if np.isfinite(v) else f"{dn}: never"
                        for dn, v in sorted(far.items(), key=lambda x: -x[1])[:3])
    return (f"{len(compacted)} meter(s) have compacted hours (e.g. {', '.join(compacted[:3])}): each detector judges "
            "their raw readings from its reach after the last compacted hour on"
            + (f" ({longest})" if longest else "")
            + (f"; {', '.join(fed)} reaches back into the compacted hours" if fed else "")
            + (f"; {', '.join(first_of)} judges them as the meter's first readings (the limits of a shorter "
               "history)" if first_of else "")
            + "; an alert that may have begun before that is not reported again (found before the compaction, "
            "the store keeps it as it was)")


def _cadence_change_notices(frame: pd.DataFrame, dets, meters: set, tail: float = 0.25,
                            min_gaps: int = 48) -> list[str]:
    """:func:`_cadence_change_by_meter`'s notices, in meter order."""
    return list(_cadence_change_by_meter(frame, dets, meters, tail, min_gaps).values())


def _cadence_change_by_meter(frame: pd.DataFrame, dets, meters: set, tail: float = 0.25,
                             min_gaps: int = 48) -> dict[str, str]:
    """Per meter (id -> notice), a notice for each meter whose latest readings (the last quarter of the frame's, at least
    ``min_gaps`` gaps) run, most of them, at a cadence other than the one its state was learned at,
    as :func:`wattwatch.detect.cadence.stretch_cadence` says it (the one implementation the
    detectors that follow a stretch's cadence use: packet_loss, firmware_drift's intervals,
    neutral_tamper's held window and one-reading alert). The other detectors judge a meter at its
    learned cadence (their windows, reach and post-rules): said, with what to do."""
    from wattwatch.detect.base import quiet
    from wattwatch.detect.cadence import stretch_cadence
    from wattwatch.detect.core import _cadence
    from wattwatch.detect.frame import meter_names, seg_bounds, times_cache

    if not len(frame) or not dets:
        return {}
    seg, t, dt = frame["_seg"].to_numpy(), frame["_t"].to_numpy(float), frame["_dt"].to_numpy(float)
    names = meter_names(frame)
    starts, ends = seg_bounds(seg)
    first, last = t[starts][seg], t[ends - 1][seg]
    cads = np.array([_cadence(dets, str(m)) for m in names], float)
    c_row, _ = stretch_cadence(seg, dt, cads, memo=times_cache(frame))
    with quiet():
        late = (t >= last - tail * (last - first)) & (dt > 0)   # the last quarter of its time
        other = late & np.isfinite(cads[seg]) & (c_row != cads[seg])
    counts = np.bincount(seg[late], minlength=len(names))
    n_other = np.bincount(seg[other], minlength=len(names))
    out = {}
    for j, m in enumerate(names):
        m = str(m)
        # Most of its latest gaps at another cadence (a reconfiguration; random loss, however
        # heavy, says the learned one: see the module docstring of wattwatch.detect.cadence).
        if m not in meters or counts[j] < min_gaps or 2 * n_other[j] <= counts[j]:
            continue
        rows = np.flatnonzero(other & (seg == j))
        seen, learned = float(np.median(c_row[rows])), cads[j]
        # Since the first reading of its latest stretch at another cadence (the one after its last
        # reading at the learned cadence before its latest at another): a meter reconfigured,
        # put back and reconfigured again was told the first of its stretches (rev43).
        a, last_other = starts[j], int(rows[-1])
        at_learned = np.flatnonzero(c_row[a:last_other + 1] == learned)
        first_other = a + (int(at_learned[-1]) + 1 if len(at_learned) else 0)
        since = pd.Timestamp(float(t[first_other]), unit="s", tz="UTC").isoformat().replace("+00:00", "Z")
        out[m] = (f"meter {m}: its latest readings come every {seen:,.0f} s (since {since}: {n_other[j]:,} of its "
                  f"last {counts[j]:,} gaps) while its state was learned at {learned:,.0f} s (packet_loss, "
                  "firmware_drift and neutral_tamper's held departure and one-reading alert follow the new cadence; "
                  "the other detectors judge it at the learned one: windows, reach, readings an alert needs, "
                  "profiles learned at it). "
                  "If the meter was reconfigured, learn it again on readings at its new cadence "
                  "(`wattwatch fit --normal-start ISO --normal-end ISO`)"
                  + ("; if not, it is losing readings in a pattern (every other one or more)" if seen > learned else ""))
    return out


def _known_cadence(cad: np.ndarray) -> np.ndarray:
    """Per meter its cadence (s), an hour where it is not known."""
    return np.where(np.isfinite(cad) & (cad > 0), cad, 3600.0)


def _reach_back(reach: dict, cad: np.ndarray) -> dict:
    """Per detector and meter, how far back (s) its scores need readings, as a judging loads them
    (:func:`_judge_window`): its reach back, plus its reach in readings and two more at 1.5
    cadences each (jitter)."""
    return {dn: np.where(np.isfinite(r.back_s), r.back_s, np.inf) + (r.back_n + 2) * cad * 1.5
            for dn, r in reach.items()}


def _compacted_since(dets, names: list[str], back_of: dict, cut: dict, first_judged: dict) -> dict:
    """Per (meter, detector) of the meters with compacted hours (``cut``: the end of the last
    compacted hour, epoch s) that were judged (``first_judged``: their first raw reading judged):
    the earliest start of an alert the judging can tell again, so the earliest one settling may
    withdraw (:func:`_settle_store`, and ``watch``'s re-judging, :mod:`wattwatch.runners.rejudge`).
    ``back_of``: per detector, its reach back per meter of ``names`` (s), as :func:`_judge_window`
    loads it."""
    from wattwatch.detect import core

    compacted = {m: t for m, t in cut.items() if m in first_judged}
    since: dict[tuple[str, str], float] = {}
    if not compacted:
        return since
    k = {m: i for i, m in enumerate(names)}
    by_name = {d.name: d for d in dets}
    cad = np.array([core._cadence(list(dets), m) for m in compacted])
    for dn, back in back_of.items():
        post = by_name[dn].config.post
        e = post.at(cad)
        pad = np.inf if post.hold > 0 else np.maximum(e["merge_gap_s"], e["max_bridge_s"])
        pad = np.broadcast_to(pad, len(compacted))
        for (m, t_end), h in zip(compacted.items(), pad):
            # From its first raw reading judged (a gap may follow the cut), as the core counts.
            # (A detector that judges them as the meter's first readings: from its first
            # raw reading judged plus its horizon, ``Detector.compacted_origin``.)
            b = 0.0 if by_name[dn].compacted_origin else float(back[k[m]])
            since[(m, dn)] = max(t_end, first_judged[m]) + b + float(h)
    return since


def _settle_store(con, result: Detection, dets, names: list[str], judged_run: dict, resets: dict) -> int:
    """After a run over whole histories, the store's open alerts of every (meter, detector) pair
    the run judged are what it found: an alert it no longer finds (a packet-loss gap that late
    readings filled, two alerts of a fault that late readings made one) is withdrawn, and one it
    finds again takes the run's end and score (late readings can also shorten an alert; the
    upsert only ever lengthens). As the live engine does when it re-judges a meter
    (:mod:`wattwatch.runners.rejudge`). Left as they are: acknowledged and cleared alerts, pairs
    the run did not judge (detector not run, meter without state, skipped, failed, idle for the
    detector, no fleet model for the meter's grid step), alerts that begin before the meter's
    first reading judged or within the detector's reach after its last compacted hour, or before
    an operator reset of the pair (nothing before it is judged). ``judged_run``: what
    :func:`_judge_window` returns. Returns how many were withdrawn."""
    import pyarrow as pa

    from wattwatch.alerts import store as alert_store

    alert_store.ensure_tables(con)
    unjudged, first_judged = judged_run["unjudged"], judged_run["first_judged"]
    judged: dict[str, set[str]] = {}
    every = unjudged.get("*", set())
    for d in dets:
        st = getattr(d, "state_", {}) or {}
        skip = unjudged.get(d.name, set()) | every
        judged[d.name] = {m for m in names if m in st and not _scores_nothing(d, st[m]) and m not in skip}
    # Hours compacted into aggregates are never judged again, even when a late reading for one of
    # them sits raw before them (it stays raw until the next compaction), and the raw readings
    # after them are judged without the readings a detector reaches back to: a pair is judged
    # from the meter's first raw reading judged (at or after the end of its last compacted hour)
    # plus the detector's reach back (its reach in raw readings as the run loads it,
    # :func:`_judge_window`; an unbounded one: never) plus its post-rule horizon, within which the
    # core forms no alert on such a meter (one that begins there may be the rest of one before
    # the cut; with a hold, before its first reading back to normal: never here; ``core.run``'s
    # ``cut``).
    since = _compacted_since(dets, names, judged_run["back"], judged_run["cut"], first_judged)
    found: dict[str, tuple] = {}
    for a in result.alerts:
        old = found.get(a.id)
        found[a.id] = (a.end, a.score) if old is None else (max(old[0], a.end, key=pd.Timestamp),
                                                            max(old[1], a.score))
    rows = con.execute("SELECT id, meter_id, detector, start FROM alerts WHERE status = 'open'").fetchall()
    gone = []
    for i, m, dn, start in rows:
        if i in found or m not in judged.get(dn, ()):
            continue
        t = pd.Timestamp(start)
        t = t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")
        if t.timestamp() < max(first_judged.get(m, np.inf), since.get((m, dn), -np.inf)):
            continue
        at = max((r for r in (resets.get((m, dn)), resets.get((m, "*"))) if r is not None), default=None)
        if at is not None and t < at:
            continue
        gone.append(i)
    exact = [(i, e, sc) for i, (e, sc) in found.items()]
    if not gone and not exact:
        return 0
    _exact = pa.table({"id": [i for i, _, _ in exact], "end_": [e for _, e, _ in exact],  # noqa: F841 - by name
                       "score_": pa.array([float(sc) for _, _, sc in exact], pa.float64())})
    con.execute("BEGIN TRANSACTION")
    try:
        if gone:   # (al) what ``alerts show`` says of them once their rows are gone
            from wattwatch.alerts import withdrawn

            withdrawn.keep(con, dict.fromkeys(gone, withdrawn.DETECT))
            con.execute(f"DELETE FROM alerts WHERE id IN ({', '.join('?' for _ in gone)})", gone)
        if exact:
            con.execute("UPDATE alerts SET \"end\" = _exact.end_::TIMESTAMPTZ, score = _exact.score_ FROM _exact "
                        "WHERE alerts.id = _exact.id AND alerts.status = 'open' AND (alerts.\"end\" <> _exact.end_::TIMESTAMPTZ "
                        "OR alerts.score <> _exact.score_)")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(gone)


# ------------------------------------------------------------------------------------ evaluation


def evaluate(events: str | Path | list[dict], alerts: str | Path | list[Alert] | Detection,
             tolerance_s: float = 3600.0) -> dict:
    """Event-level recall per fault type, alert precision, F1 and detection delay.

    ``events``: a labelled ``events.json`` (or its list); ``alerts``: an ``alerts.jsonl``, a list of
    alerts or a :class:`Detection`."""
    from wattwatch.alerts.model import read_jsonl
    from wattwatch.evaluate.events import evaluate as _evaluate, load_events

    try:
        ev = load_events(events) if isinstance(events, (str, Path)) else list(events)
        al = (read_jsonl(alerts) if isinstance(alerts, (str, Path))
              else alerts.alerts if isinstance(alerts, Detection) else list(alerts))
        return _evaluate(ev, al, tolerance_s)
    except (OSError, KeyError, json.JSONDecodeError, ValueError) as exc:
        raise InputError(str(exc)) from exc


# ------------------------------------------------------------------------------------ report


def report(out: str | Path, *, db: str | Path | None = None, alerts: str | Path | list[Alert] | Detection | None = None,
           meters: Sequence[str] | None = None, start=None, end=None, title: str = "wattwatch report",
           evaluation: dict | None = None, summary: dict | None = None) -> Path:
    """Write the HTML report of a run: one self-contained file that opens offline.

    It holds a fleet overview (the period, meters, alerts by code and severity, a meters x days
    strip of the worst severity) and a section per alerting meter: its channels binned to a
    bounded number of points (each bin drawn as its min and max), the alert spans shaded by
    severity, each alert's message, recommended action and evidence as a table.

    Parameters
    ----------
    out : str or Path
        The HTML file to write.
    db : str or Path, optional
        A store: its telemetry, and its alerts (every status) when ``alerts`` is not given.
    alerts : str, Path, list of Alert or Detection, optional
        An ``alerts.jsonl`` (as ``detect`` writes it), alerts, or a detection result. Without
        ``db`` the report draws the alert spans only and says that telemetry was not available.
    meters : sequence of str, optional
        Only these meters (each must be in the alerts or the store).
    start, end : time, optional
        Only alerts overlapping ``[start, end)`` and readings in it (UTC unless a zone is given).
    title : str
        The page title.
    evaluation, summary : dict, optional
        An :func:`evaluate` result shown in the overview; a summary kept in the page's data.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    InputError
        No alerts to report, an unknown meter, an unreadable time or alerts file.
    StoreError
        ``db`` is not a readable store.
    """
    from wattwatch.alerts.model import read_jsonl
    from wattwatch.report import data as rdata, html as rhtml

    if db is None and alerts is None:
        raise InputError("give a store (db=...) or an alerts file (alerts=...) to report on")
    source = ""
    if isinstance(alerts, (str, Path)):
        source = str(alerts)
        try:
            alerts = read_jsonl(alerts)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    elif isinstance(alerts, Detection):
        alerts = alerts.alerts
    store = None
    if db is not None:
        from wattwatch.store import Store

        store = Store(db, read_only=True)
    try:
        prepared = rdata.prepare(None if alerts is None else list(alerts), store, meters=list(meters) if meters else None,
                                 start=start, end=end, source=source)
    finally:
        if store is not None:
            store.close()
    return rhtml.write(out, prepared, title=title, evaluation=evaluation, summary=summary)


# ------------------------------------------------------------------------------------ grid


def _keep_grid_alerts(alerts: list[Alert], db) -> dict | None:
    """Alerts into a store's lifecycle (open -> acknowledged -> cleared); a re-run finds the
    same ids and keeps their status."""
    if db is None:
        return None
    from wattwatch.alerts import store as alert_store

    store = open_store(db, create=True)
    try:
        stored = alert_store.upsert(store.con, alerts)
        kept = alert_store.statuses(store.con, [a.id for a in alerts])
        for a in alerts:
            a.status = kept.get(a.id, a.status)
    finally:
        store.close()
    return stored


def grid_simulate(scenario="paper", *, case: str | None = None, seed: int | None = None, transport: str = "inprocess",
                  broker: tuple[str, int] | None = None, topic: str = "wattwatch/grid", out: str | Path | None = None,
                  db: str | Path | None = None, plot: bool = True, on_progress=None, measurements: bool = False):
    """Simulate prosumers on a pandapower case watched by their neighbours (SPEC §5).

    Parameters
    ----------
    scenario : str, Path or Scenario
        ``paper`` (accidental over-generation corrected, then a smaller persistent
        under-generation), ``accidental``, ``persistent``, ``fdi``, a scenario TOML, or a
        :class:`wattwatch.grid.config.Scenario`.
    case, seed : optional
        Override the scenario's case and seed.
    transport : str
        ``inprocess`` (one agent per prosumer, default), ``mqtt`` (the same agents over the broker
        ``broker=(host, port)`` under ``topic``) or ``batch`` (vectorised, for large cases).
    out : str or Path, optional
        A folder for Parquet time series, ``alerts.jsonl``, ``alerts.log``, ``run.json`` and ``grid.png``.
    db : str or Path, optional
        A store to keep the alerts in (with lifecycle).
    measurements : bool
        Also write ``measurements.parquet`` (every tie-line meter), ``references.parquet`` and
        ``topology.toml`` to ``out``: the inputs of :func:`grid_monitor`.

    Returns
    -------
    GridRun
        With ``alerts`` (list of Alert), ``stored`` (counts) and ``paths`` added.
    """
    import dataclasses

    from wattwatch.grid import config as gcfg
    from wattwatch.grid.alerts import alerts_from
    from wattwatch.grid.simulate import simulate

    if isinstance(scenario, gcfg.Scenario):
        sc = scenario
    elif isinstance(scenario, Path) or (isinstance(scenario, str) and scenario.endswith(".toml")):
        sc = gcfg.scenario_from_toml(scenario)
    else:
        sc = gcfg.builtin(str(scenario))
    changes = {k: v for k, v in (("case", case), ("seed", seed)) if v is not None}
    if changes:
        sc = dataclasses.replace(sc, **changes)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise InputError(f"{out}: exists and is not a folder (out takes a folder)")
    run = simulate(sc, transport, broker=broker, topic=topic, on_progress=on_progress, keep_measurements=measurements)
    run.alerts = alerts_from(run.intervals, sc.watch, prefix=f"{sc.case}/", isolations=run.isolations)
    run.stored = _keep_grid_alerts(run.alerts, db)
    run.paths = {}
    if out is not None:
        from wattwatch.grid.output import write

        meta = {**run.meta, "scenario": sc.to_dict(), "seconds": round(run.seconds, 3), "isolations": run.isolations,
                "dispatches": run.dispatches, "alerts": len(run.alerts)}
        run.paths = write(out, samples=run.samples, intervals=run.intervals, pairs=run.pairs, alerts=run.alerts,
                          cfg=sc.watch, meta=meta, plot=plot,
                          title=f"{sc.case}: neighbour watch ({run.meta['prosumers']} prosumers, {transport})")
        if measurements:
            run.measurements.to_parquet(Path(out) / "measurements.parquet", index=False)
            run.references.to_parquet(Path(out) / "references.parquet", index=False)
            (Path(out) / "topology.toml").write_text(run.topology_toml, encoding="utf-8")
            run.paths.update({k: str(Path(out) / f) for k, f in (("measurements", "measurements.parquet"),
                                                                  ("references", "references.parquet"),
                                                                  ("topology", "topology.toml"))})
    return run


def grid_monitor(measurements: str | Path, *, topology: str | Path, references: str | Path,
                 out: str | Path | None = None, db: str | Path | None = None, plot: bool = True):
    """The neighbour watch on measured tie-line flows and agreed references (see
    :mod:`wattwatch.grid.monitor` for the file formats). Returns a ``MonitorResult`` with
    ``alerts``, ``stored`` and ``paths``."""
    from wattwatch.grid.alerts import alerts_from
    from wattwatch.grid.monitor import monitor

    res = monitor(measurements, topology, references)
    cfg = res.topology.watch_cfg
    res.alerts = alerts_from(res.intervals, cfg, isolations=res.isolations)
    res.stored = _keep_grid_alerts(res.alerts, db)
    res.paths = {}
    if out is not None:
        from wattwatch.grid.output import write

        meta = {"measurements": str(measurements), "topology": str(topology), "references": str(references),
                "watch": __import__("dataclasses").asdict(cfg), "isolations": res.isolations, "notices": res.notices,
                "alerts": len(res.alerts)}
        res.paths = write(out, samples=res.samples, intervals=res.intervals, pairs=res.pairs, alerts=res.alerts, cfg=cfg,
                          meta=meta, plot=plot, title=f"neighbour watch: {Path(measurements).name}")
    return res

# ------------------------------------------------------------------------------------ live


@dataclass
class Site:
    """A site config for :func:`watch`: sources, store, stream settings and the detector config
    (the same ``detectors = [...]``, ``[engine]`` and detector sections ``detect`` takes)."""

    sources: list
    store: Path
    stream: Any
    detector_config: dict
    path: Path | None = None
    outputs: list = field(default_factory=list)   # [[sinks]] (and actions): see wattwatch.sinks
    silence: Any = None   # [silence]: wattwatch.runners.silence.SilenceConfig (None: the defaults)


# The tables of a site config besides the detector sections (named when a table is not known).
SITE_SECTIONS = ("store", "stream", "silence", "sources", "models", "meter_tags", "sinks", "actions")


def load_site(config: str | Path | dict) -> Site:
    """Read a site config (TOML path or dict). ``[[sources]]`` (``type`` one of
    :data:`wattwatch.sources.KINDS`: ``mqtt``, ``replay``, ``modbus``, ``snmp``, ``tamper``),
    ``[models.NAME]`` (Modbus register maps, or ``models = "FILE"``, shared by every modbus source
    that does not name its own), ``[store] path``, ``[stream]`` (``hold_s``, ``checkpoint_s``,
    ``max_pending``), ``[silence]`` (the silence watch: :mod:`wattwatch.runners.silence`), ``[[sinks]]``,
    ``[[actions]]`` (:mod:`wattwatch.actions`) and ``[meter_tags]``
    (meter glob -> tags); every other key is detector configuration as for ``detect --config``.
    Relative paths are relative to the
    config file. Raises ConfigError naming the file and key."""
    from wattwatch.tomlfile import read_toml

    from wattwatch import actions, sinks
    from wattwatch import sources as src
    from wattwatch.actions.base import meter_tags
    from wattwatch.detect.registry import check_config
    from wattwatch.runners.stream import StreamConfig

    where = "site config"
    root = None
    if isinstance(config, dict):
        doc = dict(config)
    else:
        path = Path(config)
        where, root = str(path), path.resolve().parent
        doc = read_toml(path, "site config")
    specs = doc.pop("sources", None)
    if not isinstance(specs, list) or not specs:
        raise ConfigError(f"{where}: give at least one [[sources]] table")
    store = doc.pop("store", {})
    if not isinstance(store, dict) or not isinstance(store.get("path", "wattwatch.duckdb"), str):
        raise ConfigError(f"{where}: [store] must be a table with path = \"FILE.duckdb\"")
    unknown = set(store) - {"path"}
    if unknown:
        raise ConfigError(f"{where}: [store]: unknown key(s) {sorted(unknown)}")
    store_path = Path(store.get("path", "wattwatch.duckdb"))
    if root is not None and not store_path.is_absolute():
        store_path = root / store_path
    try:
        stream = StreamConfig.from_dict(doc.pop("stream", None))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    from wattwatch.runners.silence import SilenceConfig

    try:
        silence = SilenceConfig.from_dict(doc.pop("silence", None))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    # Register maps of Modbus devices ([models.NAME], or models = "FILE") serve every modbus source.
    models = doc.pop("models", None)
    if models is not None:
        specs = [dict(s, models=s.get("models", models)) if isinstance(s, dict) and s.get("type") == "modbus" else s
                 for s in specs]
    if root is not None:   # (rev58) a tamper source's counter record is named after this config too
        from wattwatch.sources.tamper import default_record

        specs = [dict(s, state_file=default_record(str(s.get("name") or "tamper"), path))
                 if isinstance(s, dict) and s.get("type") == "tamper" and "state_file" not in s else s for s in specs]
    built, names = [], set()
    for k, spec in enumerate(specs):
        try:
            s = src.build(spec, f"{where}: [[sources]] #{k + 1}", root)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if s.name in names:
            raise ConfigError(f"{where}: two sources are named {s.name!r}; names must be unique")
        names.add(s.name)
        built.append(s)
    records: dict[Path, str] = {}
    for s in built:   # (rev58) two tamper sources on one counter record overwrite each other's meters
        sf = getattr(s, "state_file", None)
        if sf is not None and records.setdefault(Path(os.path.abspath(sf)), s.name) != s.name:
            raise ConfigError(f"{where}: [[sources]] {s.name!r} and {records[Path(os.path.abspath(sf))]!r} share "
                              f"the counter record {sf}; give each its own state_file")
    polled: dict[str, str] = {}
    for s in built:   # one meter from two pollers: its readings would be merged as one meter's
        for m in s.polled_meters():
            if polled.setdefault(m, s.name) != s.name:
                raise ConfigError(f"{where}: [[sources]] {s.name!r}: meter {m!r} is read by two sources, "
                                  f"{polled[m]!r} and {s.name!r}; give each device its own meter_id (or name)")
    try:
        tags = meter_tags(doc.pop("meter_tags", None), f"{where}: [meter_tags]")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    outputs = []
    for table, registry in (("sinks", None), ("actions", actions.KINDS)):
        specs = doc.pop(table, [])
        if not isinstance(specs, list):
            raise ConfigError(f"{where}: {table} must be [[{table}]] tables")
        for k, spec in enumerate(specs):
            try:
                o = sinks.build(spec, f"{where}: [[{table}]] #{k + 1}", root, registry)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            if o.name in names:
                raise ConfigError(f"{where}: two sources/outputs are named {o.name!r}; names must be unique")
            names.add(o.name)
            if hasattr(o, "bind"):
                o.bind(tags)
            outputs.append(o)
    check_config(doc, where, SITE_SECTIONS)
    return Site(built, store_path, stream, doc, None if root is None else Path(config), outputs, silence)


@dataclass
class Watch:
    """What a :func:`watch` run did: counters, the alerts it opened or updated (latest version per
    id), those still growing, notices, and per source its counters."""

    counters: dict
    alerts: list
    open_ids: set
    notices: list
    sources: list
    resumed: bool = False
    seconds: float = 0.0
    outputs: list = field(default_factory=list)   # per sink/action: its counters
    # (adv2) Meters still learning their normal when the watcher stopped (profiled once their first
    # ``profile_days`` of readings are stored, judged only from then on): meter -> seconds of its
    # readings still needed; ``profile_s`` is that first span. A stop line of "alerts new 0" read as
    # "healthy" while the meters had not been judged at all.
    learning: dict = field(default_factory=dict)
    profile_s: float = 0.0


def _still_learning(engine) -> dict[str, float]:
    """Meter -> seconds of its readings still needed before it is profiled (and judged), for every meter
    the engine has readings of and no state for."""
    need_us = engine.cfg.profile_days * 86400e6
    meters = [m for m in engine.last if m not in engine.profiled and m in engine.first]
    if not meters:
        return {}
    span = np.array([engine.last[m] - engine.first[m] for m in meters], dtype=float)
    return dict(zip(meters, (np.maximum(need_us - span, 0.0) / 1e6).tolist()))


WATCH_LOCK_WAIT_S = 15.0


def watch(config: str | Path | dict | Site, *, stop=None, until_done: bool = False, on_step=None,
          engine_hook=None) -> Watch:
    """Watch a site live: read its sources, store every reading, judge them piece by piece with the
    same core and state as :func:`detect` and keep the alerts (opened at once, grown and ended
    with stable ids) in the store; a checkpoint there lets a restart resume where it stopped.

    Parameters
    ----------
    config
        A site config (TOML path, dict, or :func:`load_site`'s result).
    stop
        An ``asyncio.Event`` or ``threading.Event``: set it to stop cleanly (SIGINT and SIGTERM
        do the same when this runs in the main thread).
    until_done
        Stop once every source is finished (a replay at its end) and judge what is pending as
        final, as ``detect`` on the store would.
    on_step
        ``on_step(engine, report, batches)`` after every step (the console view uses it).

    Raises
    ------
    ConfigError, StoreError
    """
    import asyncio
    import signal
    import threading

    from wattwatch.runners import stream as live

    t0 = time.perf_counter()
    site = config if isinstance(config, Site) else load_site(config)
    dets = build_detectors(None, site.detector_config)
    cfg = _engine(site.detector_config)
    # A dashboard page or an `alerts list` may hold the file for a moment as watch starts: wait it out.
    try:
        store = open_store(site.store, create=True, lock_wait_s=WATCH_LOCK_WAIT_S)
    except StoreError as exc:
        from wattwatch.runners.control import watcher

        held = watcher(site.store)
        # Only a lock is another watcher's doing, and only one that is not this process: a watcher
        # killed -9 leaves its watcher.json, and in a container every start is PID 1 (rev41: a damaged
        # store was said to be held by "another watch" naming this very process).
        locked = "lock" in str(exc.__cause__ or "").lower()
        if held is None or not locked or str(held.get("pid")) == str(os.getpid()):
            raise
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(held.get("started", 0) or 0)))
        raise StoreError(f"{site.store}: another `wattwatch watch` (pid {held['pid']}, started {since}) holds this "
                         "store; stop it first, or give this site its own [store] path") from exc
    engine = None
    try:
        engine = live.StreamEngine(store, dets, cfg, site.stream)
        from wattwatch.runners.silence import SilenceWatch

        engine.silence = SilenceWatch(site.silence)
        if engine_hook:
            engine_hook(engine)

        async def main():
            ev = asyncio.Event()
            loop = asyncio.get_running_loop()
            installed = []
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    try:
                        loop.add_signal_handler(sig, ev.set)
                        installed.append(sig)
                    except (NotImplementedError, RuntimeError):
                        pass
            watcher = None
            if stop is not None:
                async def relay():
                    while not ev.is_set():
                        if stop.is_set():
                            ev.set()
                            return
                        await asyncio.sleep(0.05)
                watcher = asyncio.create_task(relay())
            try:
                await live.run(engine, site.sources, ev, flush_at_end=until_done, outputs=site.outputs,
                               on_step=(lambda rep, b: on_step(engine, rep, b)) if on_step else None)
            finally:
                if watcher:
                    watcher.cancel()
                for sig in installed:
                    loop.remove_signal_handler(sig)

        asyncio.run(main())
        # (pv) with the provisional alerts that may still grow, as the watch console counts them (le2:
        # and the ongoing edge reports; one function for both)
        from wattwatch.app.watchview import open_alert_ids

        open_now = open_alert_ids(engine)[0]
        return Watch(dict(engine.counters), list(engine.alerts.values()), open_now,
                     list(engine.notices),
                     [s.view() for s in site.sources], engine.resumed, time.perf_counter() - t0,
                     [o.view() for o in site.outputs], _still_learning(engine), engine.cfg.profile_days * 86400.0)
    finally:
        if engine is not None:
            engine.close()   # the slow tier's worker thread
        store.close()

# ------------------------------------------------------------------------------------ fleet


def fleet(paths, period: str = "month", engine: str = "local", master: str = "local[2]", out: str | Path | None = None,
          *, tz: str = "UTC", min_coverage: float = 0.8, min_peers: int = 5, panels=None, energy: str = "interval",
          mapping=None, rejects: str | Path | None = None, seed: int = 0, on_stage=None):
    """Score a fleet of PODs per period: features, cross-meter models and energy balance.

    Parameters
    ----------
    paths
        Files, folders or (Spark) any path Spark reads (``hdfs://``, ``s3a://``, globs): the nested
        smart-meter JSON (SCPS UrbanDataset or flat PODID records) or anything ``ingest`` reads.
    period
        ``month``, ``week`` or ``day`` (in ``tz``).
    engine, master
        ``local`` (pandas) or ``spark`` on ``master`` (``local[2]``, ``spark://HOST:7077``, ``yarn``).
    out
        The table to write (``fleet.parquet``); the excluded list, balance and a JSON summary go
        next to it (see :mod:`wattwatch.fleet.run`). None: nothing is written.
    tz, min_coverage, min_peers, panels, energy
        Period time zone; complete-POD threshold; smallest peer group; panel-meter mapping
        (CSV or DataFrame ``panel_id, meter_id``); ``interval`` or ``register`` TotalActiveEnergy.
    rejects
        CSV for the records that cannot be read (file, line, field, reason).

    Returns
    -------
    wattwatch.fleet.run.FleetRun
    """
    from wattwatch.fleet.run import run_fleet

    return run_fleet(paths, period=period, engine=engine, master=master, out=out, tz=tz, min_coverage=min_coverage,
                     min_peers=min_peers, panels=panels, energy=energy, mapping=mapping, rejects=rejects, seed=seed,
                     on_stage=on_stage)
