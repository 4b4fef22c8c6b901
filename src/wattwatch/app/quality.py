"""Quality commands: ``bench quality-real`` (labelled real data, wattwatch vs a library peer),
``bench quality`` (a simulated labelled fleet at a chosen cadence) and ``nab folds`` (NAB with
parameters chosen on the other half of the corpus). Registered on the CLI's ``bench`` and ``nab``
groups when :mod:`wattwatch.app.cli` is imported."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from wattwatch.app.cli import _fail, _json, _print_listing, bench_app, console, nab_app


def _f(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


# ------------------------------------------------------------------------------------ real data

REAL_DATA = typer.Option(None, "--data", help="The real-data folder (shared/data/real layout). Default: "
                         "$WATTWATCH_REAL_DIR, else ../shared/data/real from the working folder, else next to the "
                         "wattwatch checkout.")


@bench_app.command("quality-real")
def bench_quality_real(
    data: Optional[Path] = REAL_DATA,
    datasets: Optional[str] = typer.Option(None, "--datasets", help="Comma-separated subset of: uci_household, "
                                           "ampds2, steel, bdg2, opsd, pvdaq (default: all)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels file (default: data/real_labels/labels.json "
                                          "of the checkout)."),
    peer: bool = typer.Option(True, "--peer/--no-peer", help="Also run the PyOD IsolationForest peer."),
    local_time: bool = typer.Option(True, "--local-time/--utc", help="Give seasonal_profile each meter's "
                                    "wall-clock time zone where the dataset says it (BDG2 metadata, OPSD, steel); "
                                    "--utc: none, as a user who gives no zone."),
    wall_clock: bool = typer.Option(False, "--wall-clock", help="Give both detectors each meter's naive "
                                    "wall-clock stamps read as UTC and no zone, as a user whose export is in local "
                                    "time gets with the defaults (alerts scored back on true UTC)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """wattwatch (defaults, each meter fitted on its first 8 weeks / first quarter) and a PyOD
    IsolationForest peer against the plain faults labelled in real data: event recall, alert
    precision, event F1 (alert within -1 h/+6 h of a labelled run), per kind, false alerts per
    1,000 meter-days outside the labels, and the mean per-reading PR-AUC of each one's scores over
    the meters with a labelled reading."""
    from wattwatch.evaluate.real import run
    from wattwatch.evaluate.real_data import DATASETS, candidates, find_data

    root = find_data(data)
    if root is None or not root.is_dir():
        where = ", ".join(str(p) for p in ([data] if data else candidates()))
        _fail(f"no real-data folder found (looked in {where}); give it with --data DIR or set WATTWATCH_REAL_DIR")
    names = [n.strip() for n in datasets.split(",") if n.strip()] if datasets else list(DATASETS)
    bad = [n for n in names if n not in DATASETS]
    if bad:
        _fail(f"--datasets: unknown {', '.join(bad)}; known: {', '.join(DATASETS)}")
    t0 = time.perf_counter()
    try:
        result = run(root, names, labels, peer=peer, log=(lambda *a: None) if as_json else
                     (lambda m: console.print(escape(m), style="dim")), local_time=local_time,
                     wall_clock=wall_clock)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    result["seconds"] = time.perf_counter() - t0
    if as_json:
        print(_json(result))
        return
    who = ["wattwatch", "peer"] if peer else ["wattwatch"]
    table = Table("dataset", "detector", "labels", "found", "recall", "alerts", "precision", "event F1",
                  "false / 1000 meter-days", "mean PR-AUC (meters)", "s",
                  title=f"Faults labelled in real data ({labels.name if labels else 'labels.json: plain faults'})")
    rows = list(result["datasets"].items()) + [("all", {**result["overall"], "overall": True})]
    for name, row in rows:
        for w in who:
            r = row.get(w)
            if r is None:
                continue
            secs = _f(row.get(f"{w}_s"), 1) if name != "all" else _f(result["seconds"], 1)
            if "error" in r:
                table.add_row(name, w, str(row.get("labels_total", "")), "", "", "", "", "",
                              escape("crash: " + r["error"].splitlines()[0][:80]), "", secs)
                continue
            label = "wattwatch" if w == "wattwatch" else "PyOD IForest"
            table.add_row(name, label, str(r["labels"]), str(r["detected"]), _f(r["recall"]), str(r["alerts"]),
                          _f(r["precision"]), _f(r["f1"]), _f(r["false_per_1000_meter_days"], 1),
                          f"{_f(r.get('pr_auc_mean'))} ({r.get('pr_auc_meters', 0)})", secs,
                          style="bold" if name == "all" else None)
    _print_listing(table)
    kinds = Table("kind", *[f"{w} found/labels" for w in who], title="Recall per kind (all datasets)")
    for k in sorted({k for w in who for k in result["overall"].get(w, {}).get("per_kind", {})}):
        kinds.add_row(k, *[(lambda r: f"{r['detected']}/{r['labels']}" if r else "-")(
            result["overall"].get(w, {}).get("per_kind", {}).get(k)) for w in who])
    _print_listing(kinds)
    crashed = [n for n, row in result["datasets"].items() if "error" in row.get("wattwatch", {})]
    if crashed:
        console.print(f"wattwatch crashed on {', '.join(crashed)} (the 'all' row leaves them out); "
                      "the traceback is in --json", style="yellow")


# ------------------------------------------------------------------------------------ simulated fleet


@bench_app.command("quality")
def bench_quality(
    step: str = typer.Option("5min", "--step", help="Cadence of the simulated fleet (e.g. 5min, 15min, 60min)."),
    meters: int = typer.Option(60, "--meters", min=1),
    days: float = typer.Option(21.0, "--days", min=2.0),
    seed: int = typer.Option(42, "--seed"),
    fault_share: float = typer.Option(0.5, "--fault-share", min=0.0, max=1.0),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Keep the fleet, store and alerts here "
                                           "(default: a temporary folder)."),
    shapes: str = typer.Option("synthetic", "--shapes", help="Where the meters' load comes from: synthetic "
                               "(a daily/weekly formula) or real (real household and commercial load shapes "
                               "from the real-data extracts; half homes, half three-phase commercial)."),
    data: Optional[Path] = typer.Option(None, "--data", help="--shapes real: the real-data folder (default "
                                        "$WATTWATCH_REAL_DIR, else ../shared/data/real)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Simulate a labelled fleet at --step, ingest it, detect with the default configuration and
    evaluate: recall, precision and F1 per fault type (a crash is reported with its traceback)."""
    from wattwatch.evaluate.fleet import quality

    if shapes not in ("synthetic", "real"):
        _fail(f"--shapes must be synthetic or real, got {shapes!r}")
    try:
        result = quality(step=step, meters=meters, days=days, seed=seed, fault_share=fault_share, workdir=workdir,
                         shapes=shapes, data=data)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        print(_json(result))
        return
    if "error" in result:
        console.print(f"default detect crashed at {step}: {escape(result['error'])}", style="red")
        console.print(escape(result["traceback"]))
        raise typer.Exit(1)
    ev = result["evaluation"]
    table = Table("fault type", "events", "found", "recall", "recall (visible)", "precision", "F1",
                  "median delay min",
                  title=f"Simulated fleet ({shapes} load shapes) at {step}: {meters} meters x {days:g} days, "
                        f"seed {seed} "
                        f"({result['seconds']:.0f} s)")
    for k, r in ev["per_type"].items():
        table.add_row(k, str(r["events"]), str(r["detected"]), _f(r["recall"]), _f(r["recall_visible"]),
                      _f(r["precision"]), _f(r["f1"]), _f(r["median_delay_min"], 0))
    table.add_row("all faults", str(ev["events"]), str(ev["detected"]), _f(ev["recall"]), _f(ev["recall_visible"]),
                  _f(ev["precision"]), _f(ev["f1"]), "", style="bold")
    _print_listing(table)
    console.print(f"alerts {ev['alerts']}, correct {ev['true_alerts']}: precision {_f(ev['precision'])}, "
                  f"F1 {_f(ev['f1'])}; false alerts by code: {ev['false_alerts_by_code']}")


# ------------------------------------------------------------------------------------ NAB folds


def _parse_grid(text: str) -> dict[str, list]:
    """``"window=4,8,16;onset=25,50"`` -> {"window": [4, 8, 16], "onset": [25, 50]}."""
    grid: dict[str, list] = {}
    for part in (p.strip() for p in text.split(";") if p.strip()):
        name, eq, vals = part.partition("=")
        if not eq or not name.strip() or not vals.strip():
            raise ValueError(f"--grid: {part!r} is not NAME=V1,V2,...")
        out = []
        for v in vals.split(","):
            v = v.strip()
            try:
                out.append(int(v))
            except ValueError:
                try:
                    out.append(float(v))
                except ValueError:
                    raise ValueError(f"--grid: {name.strip()}: {v!r} is not a number") from None
        grid[name.strip()] = out
    if not grid:
        raise ValueError("--grid: empty")
    return grid


@nab_app.command("folds")
def nab_folds(
    detector: str = typer.Option("window_novelty", "--detector", help="Registered causal detector."),
    data: Optional[Path] = typer.Option(None, "--data", help="NAB repository layout (as for `nab run`)."),
    grid: Optional[str] = typer.Option(None, "--grid", help="Parameter grid, e.g. 'window=4,8,16;onset=25,50' "
                                       "(default: the declared grid for window_novelty)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """NAB with parameters chosen on the other half of the corpus: files alternate into folds A/B
    within each category (sorted by name); the grid's best configuration and threshold on A score
    B and vice versa. Shown next to the full-corpus score with default parameters (threshold
    optimised on the whole corpus, NAB's own protocol) and the published table."""
    from wattwatch.app.cli import _nab_corpus
    from wattwatch.detect.registry import build
    from wattwatch.evaluate.nab.folds import DEFAULT_GRID, all_scores, configs, cross_fold
    from wattwatch.evaluate.nab.runner import file_scores
    from wattwatch.evaluate.nab.scorer import normalised, threshold_curve

    try:
        g = _parse_grid(grid) if grid else DEFAULT_GRID.get(detector)
    except ValueError as exc:
        _fail(str(exc))
    if not g:
        _fail(f"no declared grid for {detector}; give one with --grid 'name=v1,v2;...'")
    corpus = _nab_corpus(data)
    t0 = time.perf_counter()
    try:
        det0 = build(detector, None)
        if not getattr(det0, "causal", False):
            _fail(f"{detector} is not causal; NAB requires causal detectors")
        cfgs = configs(g)
        scores = all_scores(lambda p: build(detector, p), corpus, cfgs)
        default_scores = [file_scores(det0, f) for f in corpus.files]
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    result = cross_fold(corpus, cfgs, scores)
    layouts = [f.layout for f in corpus.files]
    full = {}
    for profile in corpus.profiles:
        best = threshold_curve(list(zip(default_scores, layouts)), profile).best
        full[profile.name] = normalised(best.score, corpus.n_windows, profile)
    result.update(detector=detector, grid=g, full_corpus_default=full, published=corpus.published(),
                  seconds=time.perf_counter() - t0)
    if as_json:
        print(_json(result))
        return
    profiles = [p.name for p in corpus.profiles]
    table = Table("detector / protocol", *profiles,
                  title=f"NAB ({len(corpus.files)} files, {corpus.n_windows} windows; folds A {len(result['folds']['A'])}"
                        f" / B {len(result['folds']['B'])} files)")
    table.add_row(f"wattwatch {detector}, two-fold (grid of {len(cfgs)} chosen on the other half)",
                  *[_f(result["profiles"][p]["cross_fold"], 1) for p in profiles], style="bold green")
    table.add_row(f"wattwatch {detector}, defaults, threshold on the whole corpus",
                  *[_f(full[p], 1) for p in profiles], style="green")
    for det, sc in sorted(result["published"].items(), key=lambda kv: -kv[1].get("standard", 0)):
        table.add_row(escape(str(det)), *[_f(sc.get(p), 1) for p in profiles])
    _print_listing(table)
    for p in profiles:
        for name, r in result["profiles"][p]["folds"].items():
            console.print(f"{p}: {name}: {r['params']}, threshold {r['threshold']:.4f}, "
                          f"fold score {r['fold_score']:.1f} (on the choice fold {r['score_on_choice_fold']:.1f})",
                          style="dim")
    console.print(f"{result['seconds']:.0f} s", style="dim")
