"""The ``wattwatch`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wattwatch.app.progress import err_console, progress_bar

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Find what is wrong in electrical telemetry.")
store_app = typer.Typer(no_args_is_help=True, help="Inspect and maintain the store.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures and ratios.")
app.add_typer(store_app, name="store")
app.add_typer(bench_app, name="bench")
console = Console()

DB_OPTION = typer.Option("wattwatch.duckdb", "--db", help="DuckDB store file.")


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _open_store(db: Path, read_only: bool = False):
    from wattwatch.store import Store, StoreError

    try:
        return Store(db, read_only=read_only)
    except StoreError as exc:
        _fail(str(exc))


# ------------------------------------------------------------------------------------ simulate


@app.command()
def simulate(
    out: Path = typer.Argument(..., help="Output folder (telemetry.parquet, telemetry.csv, events.json)."),
    meters: int = typer.Option(50, "--meters", "-n", min=1),
    days: float = typer.Option(14.0, "--days", "-d", min=0.1),
    seed: int = typer.Option(0, "--seed", "-s"),
    step: str = typer.Option("5min", "--step", help="Reading cadence (pandas offset, e.g. 1min, 5min, 15min)."),
    fault_share: float = typer.Option(0.4, "--fault-share", min=0.0, max=1.0, help="Share of meters with a fault."),
    faults: Optional[str] = typer.Option(None, "--faults", help="Comma-separated fault types (default: all)."),
    fmt: str = typer.Option("parquet,csv", "--format", help="parquet, csv or both."),
    clean: bool = typer.Option(False, "--clean", help="No jitter, duplicates, NaN holes or disorder."),
    start: str = typer.Option("2025-01-06T00:00:00Z", "--start", help="First timestamp (UTC)."),
) -> None:
    """Write a labelled synthetic fleet: telemetry plus events.json (meter, type, start, end)."""
    from wattwatch.sim import FAULT_CODES, SimConfig, simulate as run

    kw = {}
    if faults:
        kw["faults"] = tuple(f.strip() for f in faults.split(",") if f.strip())
    if clean:
        kw.update(jitter_s=0.0, duplicate_rate=0.0, nan_rate=0.0, disorder_rate=0.0, background_loss=0.0)
    formats = tuple(f.strip() for f in fmt.split(","))
    if not set(formats) <= {"parquet", "csv"}:
        _fail(f"--format must be parquet, csv or both, not {fmt!r}")
    try:
        cfg = SimConfig(meters=meters, days=days, seed=seed, step=step, fault_share=fault_share, start=start, **kw)
        cfg.step_s
    except ValueError as exc:
        _fail(f"{exc} (fault types: {', '.join(FAULT_CODES)})")
    with progress_bar("simulate", meters) as advance:
        done = [0]

        def tick(k):
            advance(k - done[0])
            done[0] = k

        result = run(cfg, out, formats=formats, on_progress=tick)
    faults_n = sum(e["expect_alert"] for e in result["events"])
    console.print(f"simulated {meters} meters x {days:g} days: {result['rows']:,} rows, "
                  f"{faults_n} fault events -> {out}")
    for kind, path in result["files"].items():
        console.print(f"  {kind:8s} {path}")


# -------------------------------------------------------------------------------------- ingest

_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq", ".json", ".json.gz", ".jsonl", ".jsonl.gz",
             ".ndjson", ".db", ".sqlite", ".sqlite3")


def _expand(paths: list[Path]) -> list[tuple[Path, bool]]:
    """(file, named explicitly) pairs: a folder stands for the data files in it (sorted, not
    recursive); a file found in a folder that holds no telemetry is skipped, not an error."""
    out = []
    for p in paths:
        if p.is_dir():
            out += [(f, False) for f in sorted(p.iterdir()) if f.is_file() and f.name.lower().endswith(_SUFFIXES)]
        else:
            out.append((p, True))
    return out



def run_ingest(paths: list[Path], db: Path, mapping_file: Optional[Path], rejects: Path, quiet: bool = False):
    """Ingest ``paths``; return (per-file counts, errors). Shared by ``ingest`` and ``demo``."""
    from wattwatch.ingest.mapping import Mapping, MappingError
    from wattwatch.ingest.pipeline import IngestError, RejectsWriter, ingest_path

    try:
        mapping = Mapping.from_toml(mapping_file) if mapping_file else Mapping()
    except MappingError as exc:
        _fail(str(exc))
    store = _open_store(db)
    writer = RejectsWriter(rejects)
    results, errors = [], []
    try:
        for path, explicit in _expand(paths):
            size = path.stat().st_size if path.is_file() else 0
            with progress_bar(f"ingest {path.name}", size or None, bytes_mode=True) as advance:
                try:
                    counts = ingest_path(store, path, mapping, on_progress=advance)
                except IngestError as exc:
                    if not explicit and isinstance(exc.__cause__, MappingError):
                        err_console.print(f"[yellow]note:[/yellow] {escape(str(path))} skipped: not telemetry "
                                          "(no timestamp or meter column)", highlight=False, soft_wrap=True)
                        continue
                    errors.append(str(exc))
                    err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
                    continue
            writer.write(counts.rejects)
            results.append(counts)
            if not quiet:
                for note in counts.notes:
                    err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    finally:
        writer.close()
        store.close()
    return results, errors, writer


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="CSV(.gz), Parquet, JSON/JSONL or SQLite .db files."),
    db: Path = DB_OPTION,
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help="TOML column mapping."),
    rejects: Path = typer.Option("wattwatch-rejects.csv", "--rejects", help="Where unreadable rows go."),
    as_json: bool = typer.Option(False, "--json", help="Print counts as JSON."),
) -> None:
    """Load files into the store (idempotent: re-ingesting adds nothing)."""
    results, errors, writer = run_ingest(paths, db, mapping, rejects)
    if as_json:
        print(json.dumps({"files": [
            {"source": c.source, "read": c.read, "stored": c.stored, "duplicates": c.duplicates + c.merged,
             "already_stored": c.merged, "rejected": c.rejected, "seconds": round(c.seconds, 3)} for c in results],
            "errors": errors, "rejects_file": str(writer.path) if writer.count else None}))
    else:
        table = Table("file", "read", "stored", "duplicates", "rejected", "rows/s", title=f"ingest -> {db}")
        for c in results:
            table.add_row(Path(c.source).name, f"{c.read:,}", f"{c.stored:,}", f"{c.duplicates + c.merged:,}",
                          f"{c.rejected:,}", f"{c.rows_per_s:,.0f}")
        console.print(table)
        if writer.count:
            console.print(f"{writer.count:,} rejected row(s) with line and reason -> {writer.path}")
    if errors:
        raise typer.Exit(1)


# --------------------------------------------------------------------------------------- store


@store_app.command("info")
def store_info(db: Path = DB_OPTION, as_json: bool = typer.Option(False, "--json")) -> None:
    """Readings, meters and time span of the store."""
    store = _open_store(db, read_only=True)
    try:
        info = store.info()
    finally:
        store.close()
    if as_json:
        print(json.dumps(info))
        return
    table = Table("key", "value", title=str(db))
    for k, v in info.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    console.print(table)


@store_app.command("compact")
def store_compact(
    db: Path = DB_OPTION,
    older_than_days: float = typer.Option(30.0, "--older-than-days", min=0.0),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Reference time (default now), ISO-8601."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Downsample readings older than N days to hourly aggregates (energy still adds up)."""
    store = _open_store(db)
    try:
        result = store.compact(older_than_days=older_than_days, as_of=as_of)
    except (ValueError, TypeError) as exc:
        _fail(f"--as-of: {exc}")
    finally:
        store.close()
    if as_json:
        print(json.dumps(result))
    else:
        console.print(f"compacted {result['readings_compacted']:,} readings older than {result['cutoff']} "
                      f"into {result['hourly_rows_written']:,} hourly rows")


# ---------------------------------------------------------------------------------------- demo


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Working folder for data, store and report."),
    meters: int = typer.Option(60, "--meters"),
    days: float = typer.Option(14.0, "--days"),
    seed: int = typer.Option(7, "--seed"),
) -> None:
    """Simulate a labelled fleet, ingest it and run detection; works offline."""
    from wattwatch.sim import SimConfig, simulate as run

    out.mkdir(parents=True, exist_ok=True)
    db = out / "wattwatch.duckdb"
    if db.exists():
        db.unlink()
    cfg = SimConfig(meters=meters, days=days, seed=seed)
    with progress_bar("simulate", meters) as advance:
        sim = run(cfg, out / "fleet", formats=("parquet",), on_progress=lambda k: None)
    results, errors, writer = run_ingest([Path(sim["files"]["parquet"])], db, None, out / "rejects.csv", quiet=True)
    if errors:
        _fail("; ".join(errors), 1)
    c = results[0]
    faults = [e for e in sim["events"] if e["expect_alert"]]
    table = Table("step", "result", title="wattwatch demo")
    table.add_row("simulate", f"{meters} meters x {days:g} days, {sim['rows']:,} rows, {len(faults)} fault events")
    table.add_row("ingest", f"{c.stored:,} stored, {c.duplicates + c.merged:,} duplicates merged, "
                            f"{c.rejected:,} rejected, {c.rows_per_s:,.0f} rows/s")
    table.add_row("detect", "no detectors yet (the detection engine lands with issue 3)")
    console.print(table)
    console.print(f"store: {db}   events: {sim['files']['events']}")


# --------------------------------------------------------------------------------------- bench


@bench_app.command("ingest")
def bench_ingest(
    rows: int = typer.Option(5_000_000, "--rows", help="Approximate rows in the simulated file."),
    workdir: Path = typer.Option(Path("bench-out"), "--workdir"),
    formats: str = typer.Option("parquet,csv", "--formats"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rows/s of Parquet and CSV ingest of a simulated fleet, against raw DuckDB loads."""
    from wattwatch.app.bench import ingest_benchmark

    result = ingest_benchmark(rows=rows, workdir=workdir, formats=tuple(formats.split(",")), log=err_console.print)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("format", "rows", "wattwatch rows/s", "target", "baseline rows/s", "ratio", "peak RSS MB",
                  title=f"bench ingest ({result['machine']})")
    for r in result["results"]:
        table.add_row(r["format"], f"{r['rows']:,}", f"{r['rows_per_s']:,.0f}", f"{r['target_rows_per_s']:,}",
                      f"{r['baseline_rows_per_s']:,.0f}", f"{r['ratio_to_baseline']:.2f}", f"{r['peak_rss_mb']:,.0f}")
    console.print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
