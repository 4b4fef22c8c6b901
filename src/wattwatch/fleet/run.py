"""``wattwatch fleet``: read, features per POD and period, cross-meter scores, energy balance, write.

One function, :func:`run_fleet`, does the whole run for the CLI and ``api.fleet``. The models and
the energy balance (``wattwatch.fleet.models``, ``wattwatch.fleet.balance``) run on the driver on
both engines, on the feature table and the hourly energy table (small next to the readings), so the
local and Spark engines give the same scores whenever they give the same features. The balance
labels its periods as the features do, in the run's time zone.

Outputs, next to ``out`` (``fleet.parquet``):

===============================  ==========================================================
``fleet.parquet``                one row per scored POD and period: the features, then (with the
                                 models) each model's score and rank, the consensus and drivers
``fleet.excluded.csv``           ``pod_id, reason``: every meter not scored, and why
``fleet.balance.parquet``        per panel and period: panel vs PODs energy (with the balance)
``fleet.suspects.csv``           per POD behind a flagged panel: rank, suspicion (with the balance)
``fleet.json``                   summary: counts, periods, notes, chosen hyper-parameters, timings
===============================  ==========================================================
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wattwatch.atomicfile import atomic_file
from wattwatch.errors import InputError
from wattwatch.fleet.features import FleetFeatures
from wattwatch.jsonsafe import finite

ENGINES = ("local", "spark")


@dataclass
class FleetRun:
    """What :func:`run_fleet` did.

    Attributes
    ----------
    features : FleetFeatures
    scores : object or None
        ``wattwatch.fleet.models.FleetScores`` when the models ran.
    balance : object or None
        ``wattwatch.fleet.balance.BalanceResult`` when the balance ran.
    table : DataFrame
        What was written to ``out``: features (joined with the scores when they ran).
    written : dict
        Output name -> path.
    rejects : int
    notes : list of str
    seconds : dict
        Wall time per stage.
    """

    features: FleetFeatures
    scores: object | None = None
    balance: object | None = None
    table: pd.DataFrame | None = None
    written: dict = field(default_factory=dict)
    rejects: int = 0
    readings: int | None = None
    notes: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


def siblings(out: Path) -> dict[str, Path]:
    stem = out.with_suffix("") if out.suffix else out
    return {"table": out, "excluded": Path(f"{stem}.excluded.csv"), "balance": Path(f"{stem}.balance.parquet"),
            "suspects": Path(f"{stem}.suspects.csv"), "summary": Path(f"{stem}.json")}


def run_fleet(paths: Sequence[str | Path] | str | Path, *, period: str = "month", engine: str = "local",
              master: str = "local[2]", out: str | Path | None = None, tz: str = "UTC", min_coverage: float = 0.8,
              min_peers: int = 5, panels: str | Path | pd.DataFrame | None = None, energy: str = "interval",
              mapping=None, rejects: str | Path | None = None, seed: int = 0, models: bool = True,
              on_stage: Callable[[str, float | None], None] | None = None) -> FleetRun:
    """Read ``paths``, compute the per-POD-per-period features on ``engine``, score and balance them
    (when those modules are present) and write the outputs next to ``out``.

    Raises
    ------
    InputError
        An unknown engine or period, an input that cannot be read (naming it), no POD left to score.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    stage = on_stage or (lambda d, t=None: None)
    pan = _panels(panels)
    out_paths = siblings(Path(out)) if out is not None else None
    if out_paths is not None and rejects is not None:
        from wattwatch.store.duck import same_file

        items = [paths] if isinstance(paths, (str, Path)) else list(paths)
        for p in items:
            for name, o in list(out_paths.items()) + [("rejects", Path(rejects))]:
                if Path(str(p)).exists() and same_file(str(p), str(o)):
                    raise InputError(f"{o}: is an input; the {name} output would overwrite it")
    secs: dict[str, float] = {}
    t = time.perf_counter()
    from wattwatch.fleet.readers import write_rejects

    n_readings = None
    if engine == "local":
        from wattwatch.fleet.features import pod_periods
        from wattwatch.fleet.readers import read_fleet

        stage("reading", None)
        got = read_fleet(paths, mapping=mapping, energy=energy)
        secs["read"] = time.perf_counter() - t
        n_readings = len(got.frame)
        stage(f"features per POD and {period} of {n_readings:,} readings", None)
        t = time.perf_counter()
        ff = pod_periods(got.frame, period, tz=tz, min_coverage=min_coverage, min_peers=min_peers, panels=pan)
        rej, notes = got.rejects, list(got.notes)
    else:
        from wattwatch.fleet.spark import pod_periods_spark, read_fleet_spark
        from wattwatch.runners.spark import cancelled_on_interrupt, session

        if mapping is not None:
            raise InputError("--mapping is for the local engine; the Spark engine reads canonical columns and the "
                             "nested smart-meter JSON")
        stage(f"starting Spark ({master})", None)
        spark = session(master)
        # (pv) A Ctrl-C or SIGTERM cancels the jobs this run started (its reads' actions, the features'
        # toPandas): the JVM stops working for a run that was stopped.
        with cancelled_on_interrupt(spark.sparkContext):
            stage("reading (Spark)", None)
            sdf, rej, notes = read_fleet_spark(spark, paths, energy=energy)
            secs["read"] = time.perf_counter() - t
            stage(f"features per POD and {period} (Spark)", None)
            t = time.perf_counter()
            from wattwatch.fleet.spark import partitions_for

            ff = pod_periods_spark(sdf, period, tz=tz, min_coverage=min_coverage, min_peers=min_peers, panels=pan,
                                   partitions=partitions_for(paths))
    secs["features"] = time.perf_counter() - t
    notes = notes + ff.notes
    if pan is not None and len(pan):
        have = set(ff.hourly["pod_id"].astype(str))
        for _, row in pan[~pan["meter_id"].isin(have)].iterrows():
            notes.append(f"panel meter {row['meter_id']} of {row['panel_id']} (--panels) has no readings with a value: "
                         f"{row['panel_id']} is not balanced")
    run = FleetRun(features=ff, rejects=len(rej), readings=n_readings, notes=notes, seconds=secs)
    if rejects is not None:
        write_rejects(rejects, rej)
    if ff.features.empty and ff.excluded.empty:
        # Not one reading read: the input (or its rejects) is the problem, not coverage.
        where = f" (see {rejects})" if rejects is not None and rej else ""
        n = f"{len(rej):,}"
        if engine == "spark":
            from wattwatch.fleet.spark import MAX_REJECTS_COLLECTED

            n = f"{n} or more" if len(rej) >= MAX_REJECTS_COLLECTED else n
        raise InputError(f"no readings: all {n} record(s) rejected{where}" if rej else "no readings in the input")
    if ff.features.empty:
        if out_paths is not None:
            _write_excluded(ff, out_paths["excluded"])
        why = f" ({len(ff.excluded)} excluded, see {out_paths['excluded']})" if out_paths is not None and len(ff.excluded) else ""
        # A value column under a name the fleet does not read is the likeliest cause: say it here,
        # where the user looks (the notes are printed only after a run that scored).
        unread = [n for n in notes if "column(s) not read" in n]
        raise InputError(f"no POD has complete data in every {period} to score{why}" + "".join(f"; {n}" for n in unread))
    # ---- the seam: cross-meter models and energy balance (fleetmodels' modules) ----
    table = ff.features
    if models:
        t = time.perf_counter()
        run.scores = _score(ff, seed, stage, notes)
        if run.scores is not None:
            table = ff.features.merge(run.scores.table, on=["pod_id", "period"], how="left", suffixes=("", "_score"))
        secs["models"] = time.perf_counter() - t
        t = time.perf_counter()
        run.balance = _balance(ff, period, tz, stage, notes)
        secs["balance"] = time.perf_counter() - t
    run.table = table
    if out_paths is not None:
        stage("writing", None)
        run.written = _write(run, out_paths, period, engine, master)
    return run


def _score(ff: FleetFeatures, seed: int, stage, notes: list):
    from wattwatch.fleet import models

    stage(f"scoring {len(ff.features):,} POD-periods (PCA, Isolation Forest, LOF)", None)
    return models.score(ff.features, seed=seed)


def _balance(ff: FleetFeatures, period: str, tz: str, stage, notes: list):
    from wattwatch.fleet import balance

    if ff.panels.empty:
        notes.append("energy balance skipped: no panel meter (a meter whose id is its panel_id, or --panels)")
        return None
    stage(f"energy balance of {ff.panels['panel_id'].nunique()} panel(s)", None)
    return balance.energy_balance(ff.hourly, ff.panels, period, tz=tz)


def _panels(panels) -> pd.DataFrame | None:
    if panels is None or isinstance(panels, pd.DataFrame):
        return panels
    p = Path(panels)
    if not p.is_file():
        raise InputError(f"{p}: no such panel mapping file")
    try:
        m = pd.read_csv(p, dtype=str)
    except Exception as exc:  # noqa: BLE001 - a CSV that pandas cannot read at all
        raise InputError(f"{p}: unreadable panel mapping: {exc}".splitlines()[0]) from exc
    miss = {"panel_id", "meter_id"} - set(m.columns)
    if miss:
        raise InputError(f"{p}: the panel mapping needs columns panel_id, meter_id (missing {', '.join(sorted(miss))})")
    m = m[["panel_id", "meter_id"]].apply(lambda c: c.str.strip())
    line = pd.Series(range(2, len(m) + 2), index=m.index)
    for c in ("panel_id", "meter_id"):
        empty = m[c].isna() | (m[c] == "")
        if empty.any():
            raise InputError(f"{p}: line {line[empty].iloc[0]}: {c} is empty")
    # A meter is the panel meter of one panel: under two, the balance would take one of them silently.
    first = m.drop_duplicates().drop_duplicates("meter_id")
    again = m.drop_duplicates()
    again = again[~again.index.isin(first.index) & again["meter_id"].isin(first["meter_id"])]
    if len(again):
        row = again.iloc[0]
        was = first[first["meter_id"] == row["meter_id"]].iloc[0]
        raise InputError(f"{p}: line {line[again.index[0]]}: meter_id {row['meter_id']} is already the panel meter of "
                         f"{was['panel_id']} (line {line[was.name]}); a meter measures one panel")
    return m


def _write_excluded(ff: FleetFeatures, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ff.excluded.to_csv(path, index=False)


def _write(run: FleetRun, paths: dict[str, Path], period: str, engine: str, master: str) -> dict:
    written = {}
    table = paths["table"]
    table.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(table) as fh:
        run.table.to_parquet(fh, index=False)
    written["table"] = str(table)
    _write_excluded(run.features, paths["excluded"])
    written["excluded"] = str(paths["excluded"])
    if run.balance is not None:
        run.balance.periods.to_parquet(paths["balance"], index=False)
        run.balance.suspects.to_csv(paths["suspects"], index=False)
        written["balance"] = str(paths["balance"])
        written["suspects"] = str(paths["suspects"])
    f = run.features.features
    summary = {"engine": engine, "master": master if engine == "spark" else None, "period": period,
               "pods_scored": int(f["pod_id"].nunique()), "rows": int(len(f)),
               "periods": sorted(f["period"].unique().tolist()), "excluded": int(len(run.features.excluded)),
               "panels": int(len(run.features.panels)), "rejects": run.rejects, "readings": run.readings,
               "notes": run.notes, "seconds": {k: round(v, 3) for k, v in run.seconds.items()}, "outputs": written}
    if run.scores is not None:
        summary["chosen"] = getattr(run.scores, "chosen", None)
        summary["silhouette"] = getattr(run.scores, "silhouette", None)
    paths["summary"].write_text(json.dumps(finite(summary), default=str, indent=1, allow_nan=False) + "\n")
    written["summary"] = str(paths["summary"])
    return written


__all__ = ["run_fleet", "FleetRun", "siblings", "ENGINES"]
