"""The ``wattwatch`` command line."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wattwatch import atomicfile
from wattwatch.app.progress import err_console, progress_bar, stages
from wattwatch.jsonsafe import finite

# `-h` is help everywhere, like `--help`.
HELP = {"help_option_names": ["-h", "--help"]}


def _flag_type(self, ctx):
    """Flags show no value type in help (typer printed `--json <bool>`, yet `--json true` fails)."""
    if getattr(self, "is_flag", False):
        return None
    return _display_type_rich(self, ctx)


_display_type_rich = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type

app = typer.Typer(add_completion=False, no_args_is_help=True, context_settings=HELP,
                  help="Find what is wrong in electrical telemetry.")
store_app = typer.Typer(no_args_is_help=True, context_settings=HELP, help="Inspect and maintain the store.")


class _BenchGroup(typer.core.TyperGroup):
    """(m1) Every ``bench`` command runs as detect and ingest do under Ctrl-C and SIGTERM
    (:func:`_on_ctrl_c`, :mod:`wattwatch.sigterm`): a SIGTERM raises in the main thread, so the
    clean-ups run (the child a bench spawned or runs stopped, its temporary folders removed), then
    one message and exit 143 (130 for a Ctrl-C). Before, SIGTERM ended the parent at once and left
    its child running (``bench poll``'s device servers, a ``bench detect`` run) and a Ctrl-C
    ended it with exit 130 and no word."""

    def resolve_command(self, ctx, args):
        name, cmd, rest = super().resolve_command(ctx, args)
        ctx.meta["wattwatch.bench"] = name
        return name, cmd, rest

    def invoke(self, ctx):
        def said(since) -> None:
            how, code = _stopped_by()
            _fail(f"bench {ctx.meta.get('wattwatch.bench') or ''}: {how}; no figures", code)

        with _on_ctrl_c(said):
            return super().invoke(ctx)


bench_app = typer.Typer(no_args_is_help=True, context_settings=HELP, help="Benchmarks that print figures and ratios.",
                        cls=_BenchGroup)
alerts_app = typer.Typer(no_args_is_help=True, context_settings=HELP,
                         help="Alerts kept in the store: list, acknowledge, clear.")
app.add_typer(store_app, name="store")
app.add_typer(bench_app, name="bench")
app.add_typer(alerts_app, name="alerts")
nab_app = typer.Typer(no_args_is_help=True, context_settings=HELP,
                      help="The Numenta Anomaly Benchmark: run a detector, score it.")
app.add_typer(nab_app, name="nab")
console = Console()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("wattwatch")
        except PackageNotFoundError:
            v = "unknown (not installed)"
        print(f"wattwatch {v}")
        raise typer.Exit()


@app.callback()
def _quiet_numerics(_v: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                            help="Print the version and exit.")) -> None:
    """Find what is wrong in electrical telemetry."""
    # numpy's RuntimeWarnings (an all-NaN slice, 0/0 on a meter with no load) say nothing a user
    # can act on: what cannot be judged is NaN and reported as a notice, not a warning trace.
    import warnings

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    # Other warnings (a detector that could judge nothing) are notes: the message, not a source line.
    warnings.showwarning = _warning_note


def _warning_note(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[yellow]note:[/yellow] {_term(message)}", highlight=False, soft_wrap=True)

DB_OPTION = typer.Option("wattwatch.duckdb", "--db", help="DuckDB store file.")
MIN_SEVERITY = typer.Option(None, "--min-severity", help="Only alerts at least this severe: info, warning or critical.")
MIN_SCORE = typer.Option(None, "--min-score", help="Only alerts with at least this calibrated score "
                         "(0.5 = at the limit, 0.75 = twice it).")


# Control characters in user text (a meter id, a path) must not reach the terminal as commands
# (ESC sequences, bell, carriage return): shown as escapes; newlines and tabs kept.
_TERM = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7f, *range(0x80, 0xa0)] if c not in (0x0a, 0x09)}


def _term(text) -> str:
    """``text`` for the terminal: Rich markup escaped, control characters shown as escapes."""
    return escape(str(text).translate(_TERM))


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[red]error:[/red] {_term(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# (adv2) A new user with their own export read "TOML column mapping." and had to find what one looks like.
MAPPING_HELP = ('TOML column mapping, for columns not named as wattwatch knows them: \\[columns] ts = "Zeit", '
                'p_kw = "P_W" (channel = your column), \\[scale] p_kw = 0.001 (W to kW), \\[defaults] meter_id = '
                '"M1", \\[options] timezone = "Europe/Rome"; the README\'s "Column mapping" has every key.')


# (adv2) Said on every command that ingests files: the file is appended to (it was rewritten by each run,
# so a second ingest lost the first one's rejects), and where the run's rows are.
REJECTS_HELP = ("CSV the rows that cannot be read are appended to: file, line, field, reason, and run (this "
                "command's start, UTC; earlier runs' rows are kept). Created only when a row is rejected.")


def _os_message(path, exc: OSError, what: str) -> str:
    """``path: what: reason`` for an OSError, saying plainly when the disk is full."""
    import errno

    where = exc.filename if getattr(exc, "filename", None) else path
    why = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        why = "no space left on device (the disk is full)"
    elif exc.errno == errno.EDQUOT:
        why = "disk quota exceeded"
    return f"{where}: {what}: {why}"


def _json(doc, indent=None) -> str:
    """Strict JSON (null where a value is NaN or infinite)."""
    return json.dumps(finite(doc, str_keys=False), allow_nan=False, default=str, indent=indent)


def _log(*parts) -> None:
    """Progress lines of the benchmarks (paths and names in them are not markup)."""
    err_console.print(escape(" ".join(map(str, parts))), highlight=False, soft_wrap=True)


def _one_line(x) -> str:
    """User text (meter ids, messages, paths) for a terminal: one line, no control characters."""
    from wattwatch.alerts.model import log_safe

    return log_safe(str(x))


def _open_store(db: Path, read_only: bool = False, must_exist: bool = False):
    from wattwatch.store import Store, StoreError

    if must_exist and not Path(db).exists():
        _fail(f"{db}: no such store (only `wattwatch ingest` creates one; check --db)")
    if Path(db).is_dir():
        _fail(f"{db}: is a folder, not a store file (--db)")
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
    waveform: Optional[str] = typer.Option(None, "--waveform", help="Sampled waveforms for the edge meter instead: "
                                           "comma-separated scenarios (bypass, partial_earth_return, intermittent_bypass, "
                                           "leakage, motor_starts, led_smps, voltage_sags, normal) or all."),
    seconds: float = typer.Option(120.0, "--seconds", min=1.0, help="--waveform: seconds per scenario."),
    rate: float = typer.Option(3200.0, "--rate", help="--waveform: samples per second (3200-6400)."),
    phases: int = typer.Option(1, "--phases", help="--waveform: 1 or 3."),
) -> None:
    """Write a labelled synthetic fleet: telemetry plus events.json (meter, type, start, end); with
    --waveform, sampled waveforms (<scenario>.wwf, see `wattwatch edge`) plus events.json."""
    from wattwatch.sim import SimConfig, simulate as run

    if waveform is not None:
        from wattwatch.app.edgecli import simulate_waveform

        res = simulate_waveform(out, waveform, seconds, rate, phases, seed)
        for name, path in res["files"].items():
            n = sum(e["expect_alert"] for e in res["events"][name]["events"])
            console.print(f"  {name:22s} {_term(str(path))} ({n} tamper event{'s' if n != 1 else ''})")
        return

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
        _fail(str(exc))
    if out.exists() and not out.is_dir():
        _fail(f"{out}: exists and is not a folder (simulate writes a folder of files)")
    with progress_bar("simulate", meters) as advance:
        done = [0]

        def tick(k):
            advance(k - done[0])
            done[0] = k

        try:
            result = run(cfg, out, formats=formats, on_progress=tick)
        except OSError as exc:
            _fail(_os_message(out, exc, "cannot write the simulated fleet"))
    faults_n = sum(e["expect_alert"] for e in result["events"])
    console.print(f"simulated {meters} meters x {days:g} days: {result['rows']:,} rows, "
                  f"{faults_n} fault events -> {_term(str(out))}")
    for kind, path in result["files"].items():
        console.print(f"  {kind:8s} {_term(str(path))}")


# -------------------------------------------------------------------------------------- ingest

_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq", ".json", ".json.gz", ".jsonl", ".jsonl.gz",
             ".ndjson", ".db", ".sqlite", ".sqlite3")


_SIDECARS = ("events.json", "meters.json")


def _few(names: list[str], n: int = 5) -> str:
    """Up to ``n`` names, then how many more."""
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _ctrl_c(exc: BaseException) -> bool:
    """``exc`` is a Ctrl-C: a KeyboardInterrupt, DuckDB's "Query interrupted" for one inside a
    statement, or a CommittedError (a COMMIT made, then interrupted) caused by one, or an error
    of Py4J or pyspark raised while handling one; or (b3) any error once a SIGTERM came (:func:`_stopped_by`), which
    is turned into one of these on its way."""
    from wattwatch import sigterm
    from wattwatch.errors import CommittedError
    from wattwatch.store.duck import interrupted

    if interrupted(exc) or (isinstance(exc, CommittedError) and interrupted(exc.__cause__)) or sigterm.received():
        return True
    # (m1) An error of Py4J or pyspark raised while a Ctrl-C was on its way out (Py4J's next call
    # after the call the Ctrl-C interrupted: "Answer from Java side is empty") is that Ctrl-C. (rm1)
    # Only theirs: any other error raised in a Ctrl-C's clean-up (a ROLLBACK or a temporary file's
    # removal that failed) is said as it is, not hidden behind "interrupted".
    return type(exc).__module__.split(".")[0] in ("py4j", "pyspark") and sigterm.from_interrupt(exc.__context__)


def _stopped_by() -> tuple[str, int]:
    """(b3) How the run was stopped, for its message, and the exit code: a Ctrl-C (130) or SIGTERM
    (143: a service manager's or container's stop, ``kill PID``, a scheduler's time limit)."""
    from wattwatch import sigterm

    return ("terminated (SIGTERM)", sigterm.EXIT_CODE) if sigterm.received() else ("interrupted (Ctrl-C)", 130)


@contextmanager
def _on_ctrl_c(said):
    """Run the block; a Ctrl-C in it (:func:`_ctrl_c`) calls ``said(since)``, which exits 130 saying
    what the run left (asked of the store: what was committed after ``since``, the block's start,
    which the block gets too). Any other error goes on as it was. (b3) SIGTERM gets the same
    treatment (:mod:`wattwatch.sigterm`: the clean-ups of a Ctrl-C run, forked workers are
    stopped and reaped) and the message says "terminated (SIGTERM)", exit 143."""
    import logging
    from datetime import datetime, timezone

    from wattwatch import sigterm

    from wattwatch.runners import spark

    # A logger's filter sees only the records made on it, not those its children pass up.
    loggers = [logging.getLogger(n) for n in _INTERRUPT_LOGGERS]
    for lg in loggers:
        lg.addFilter(_no_interrupt_traceback)
    # (rm1) A Spark session made in the block leaves pyspark's SIGINT handler out (its Ctrl-C is this
    # block's); one made by a library caller keeps it.
    pyspark_sigint, spark.PYSPARK_SIGINT = spark.PYSPARK_SIGINT, False
    try:
        with sigterm.as_interrupt():
            since = datetime.now(timezone.utc)
            try:
                yield since
            except BaseException as exc:
                if not _ctrl_c(exc):
                    raise
                said(since)
    finally:
        spark.PYSPARK_SIGINT = pyspark_sigint
        for lg in loggers:
            lg.removeFilter(_no_interrupt_traceback)


# Where Py4J logs the call a Ctrl-C or SIGTERM interrupted: the root logger ("KeyboardInterrupt while
# sending command."), its own loggers (a connection it then fails to shut down).
_INTERRUPT_LOGGERS = ("", "py4j", "py4j.java_gateway", "py4j.clientserver")


def _no_interrupt_traceback(record) -> bool:
    """(m1) A logged traceback of a Ctrl-C or SIGTERM (a KeyboardInterrupt), or of an error raised
    while one was handled, is not shown: the command says what the run left (``detect --engine
    spark`` printed Py4J's before its message)."""
    from wattwatch import sigterm

    return not sigterm.from_interrupt(record.exc_info[1] if record.exc_info else None)


def _run_kept(db, since) -> dict | None:
    """What a run started at ``since`` committed to the store ``db``, asked of the store (after a
    Ctrl-C, which may come during a COMMIT that DuckDB completes): the sources it stored (their
    ``ingest_log`` rows), the meters whose state it learned, the alerts it wrote. None when there
    is no store to read (interrupted while it was being made)."""
    from wattwatch.store import Store

    try:
        s = Store(db, read_only=True)
    except Exception:  # noqa: BLE001 - no store (yet): nothing kept
        return None
    out = {"files": [], "state": 0, "alerts": 0}
    try:
        for key, sql in (("files", "SELECT source FROM ingest_log WHERE started >= ? ORDER BY started"),
                         ("state", "SELECT count(DISTINCT meter_id) FROM meter_state WHERE fitted_at >= ?"),
                         ("alerts", "SELECT count(*) FROM alerts WHERE last_seen >= ?")):
            try:
                rows = s.con.execute(sql, [since]).fetchall()
            except Exception:  # noqa: BLE001 - a table an old store opened read-only lacks
                continue
            out[key] = [r[0] for r in rows] if key == "files" else int(rows[0][0])
    finally:
        s.close()
    return out


def _stored_files(kept: dict | None, files: list[str]) -> str:
    """Which of ``files`` a run stored before it was interrupted, which not (each file is one transaction)."""
    done = [f for f in files if kept and f in kept["files"]]
    left = [f for f in files if f not in done]
    out = (f"stored by this run: {_few(done)} ({len(done)} of {len(files)} file(s), each committed on its own)"
           if done else "none of its files was stored")
    if left:
        out += f"; not stored (rolled back or not started): {_few(left)}"
    return out


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
    """Ingest ``paths``; return (per-file counts, errors). Shared by ``ingest`` and ``demo``. A Ctrl-C
    exits 130 saying which files are in the store."""
    from wattwatch.ingest.mapping import Mapping, MappingError
    from wattwatch.ingest.pipeline import RejectsWriter

    try:
        mapping = Mapping.from_toml(mapping_file) if mapping_file else Mapping()
    except MappingError as exc:
        _fail(str(exc))
    if not any(p.exists() for p in paths):
        _fail(f"{paths[0]}: no such file or folder" if len(paths) == 1 else "none of the paths exist: "
              + ", ".join(map(str, paths)), 1)
    _no_clobber(db, [p for p in paths if p.exists()], rejects=rejects)
    # A folder stands for the data files in it; one that holds files but none of them telemetry is an
    # error for that folder (likely the wrong one: it was ingested as nothing, exit 0, not a word),
    # and files it skips by their name are said. An empty folder is a note: a drop folder a
    # scheduled ingest reads holds nothing on a day nothing arrived, and that must not fail the job.
    files, errors = _expand(paths), []
    for p in paths:
        if not p.is_dir():
            continue
        found = [f for f in sorted(p.iterdir()) if f.is_file()]
        other = [f.name for f in found if not f.name.lower().endswith(_SUFFIXES)]
        if not found:
            if not quiet:
                err_console.print(f"[yellow]note:[/yellow] {_term(p)}: the folder holds no files, nothing to ingest "
                                  "(subfolders are not read)", highlight=False, soft_wrap=True)
        elif len(other) == len(found):
            errors.append(f"{p}: no telemetry files in this folder (looked for {', '.join(_SUFFIXES)}; "
                          f"found {_few(other)}; subfolders are not read)")
        elif other and not quiet:
            err_console.print(f"[yellow]note:[/yellow] {_term(p)}: skipped {len(other)} file(s) that are not "
                              f"telemetry by their name: {_term(_few(other))}", highlight=False, soft_wrap=True)
    if not files:
        if errors:
            _fail("; ".join(errors), 1)
        return [], [], RejectsWriter(rejects)   # empty folders only: nothing to do, no store made
    for e in errors:
        err_console.print(f"[red]error:[/red] {_term(e)}", highlight=False, soft_wrap=True)
    current: list[Path] = []   # the file being ingested

    def said(since):
        # (st2) Ctrl-C: exit 130 saying which files are in the store (a traceback before, for one
        # that came inside a DuckDB statement; nothing said for one in Python code).
        names = [str(p) for p, _ in files]
        kept = _run_kept(db, since)
        # (rst2) not "while ingesting" a file the store holds (a Ctrl-C just after its COMMIT)
        where = f" while ingesting {current[0]}" if current and not (kept and str(current[0]) in kept["files"]) else ""
        how, code = _stopped_by()
        _fail(f"{db}: {how}{where}: {_stored_files(kept, names)}. Ingest again to "
              "finish (a reading is never stored twice)", code)

    with _on_ctrl_c(said):
        return _ingest_files(files, db, mapping, rejects, quiet, errors, current)


def _remove_new_store(db: Path) -> None:
    """Remove the store file (and its .wal) that a failed first ingest made, unless another process
    has opened it since (rm1s: `watch` waits up to 15 s for a store's lock with create=True, so it may
    open the file the moment the ingest closes it; unlinked then, its readings would go to a file no
    path names). Checked under a POSIX lock on the file, which DuckDB's own (read or write) lock
    excludes; without fcntl (Windows: an open file is not removed there anyway) it is removed as is."""
    try:
        fd = os.open(db, os.O_RDWR)
    except OSError:
        return
    try:
        try:
            import fcntl

            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass
        except OSError:
            return          # another process has it open: it is that process's store now
        for f in (Path(str(db) + ".wal"), db):   # the .wal first: the file's lock guards it
            try:
                f.unlink()
            except OSError:
                pass
    finally:
        os.close(fd)


def _ingest_files(files, db, mapping, rejects, quiet, errors, current):
    """:func:`run_ingest`'s work once the files are known (``current`` receives the file being ingested)."""
    from wattwatch.ingest.mapping import MappingError
    from wattwatch.ingest.pipeline import IngestError, RejectsWriter, ingest_path

    created = not Path(db).exists()
    store = _open_store(db)
    writer = RejectsWriter(rejects)
    results = []
    failed: list[OSError] = []
    try:
        for path, explicit in files:
            current[:] = [path]
            size = path.stat().st_size if path.is_file() else 0
            with progress_bar(f"ingest {escape(path.name)}", size or None, bytes_mode=True) as advance:
                try:
                    counts = ingest_path(store, path, mapping, on_progress=advance)
                except IngestError as exc:
                    if not explicit and isinstance(exc.__cause__, MappingError):
                        err_console.print(f"[yellow]note:[/yellow] {_term(path)} skipped: not telemetry "
                                          "(no timestamp or meter column)", highlight=False, soft_wrap=True)
                        continue
                    errors.append(str(exc))
                    err_console.print(f"[red]error:[/red] {_term(exc)}", highlight=False, soft_wrap=True)
                    continue
            results.append(counts)  # committed: a full disk below loses the rejects file, not these
            current.clear()
            if not failed:
                try:
                    writer.write(counts.reject_lines)
                except OSError as exc:
                    failed.append(exc)
            if counts.read == 0 and not quiet:
                # A header and no rows (an export of a day without readings) stores nothing: said,
                # not an error, so that a scheduled ingest of an empty day does not fail.
                err_console.print(f"[yellow]note:[/yellow] {_term(path)}: no rows to read (a header or schema only)",
                                  highlight=False, soft_wrap=True)
            if not quiet:
                for note in counts.notes:
                    err_console.print(f"[yellow]note:[/yellow] {_term(note)}", highlight=False, soft_wrap=True)
    finally:
        try:
            writer.close()
        except OSError as exc:
            failed.append(exc)
        store.close()
    if created and not results:
        # (m1s) A first ingest that stored no file (each failed, rolled back) leaves no store behind:
        # an empty store file made `store info` and `detect` take the failed ingest for an empty site.
        _remove_new_store(Path(db))
    if failed:
        msg = (_os_message(rejects, failed[0], "cannot write the rejected rows (--rejects)") +
               f"; the readings of {len(results)} file(s) were stored and are kept in {db}; ingest again with "
               "another --rejects to get the rejected rows (re-ingesting stores nothing twice)")
        errors.append(msg)
        err_console.print(f"[red]error:[/red] {_term(msg)}", highlight=False, soft_wrap=True)
        writer.count = 0
    return results, errors, writer


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="CSV(.gz), Parquet, JSON/JSONL or SQLite .db files."),
    db: Path = DB_OPTION,
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help=MAPPING_HELP),
    rejects: Path = typer.Option("wattwatch-rejects.csv", "--rejects", help=REJECTS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print counts as JSON."),
) -> None:
    """Load files into the store (idempotent: re-ingesting adds nothing).

    Each file is stored in one transaction. Interrupted (Ctrl-C), it exits 130 saying which files
    the store holds. Per file: read = stored + duplicates + rejected; duplicates are the copies
    (within the file, or of readings already stored) that stored no new reading, conflicts those of
    them that gave other values than the reading kept (whose values stay; said in a note)."""
    results, errors, writer = run_ingest(paths, db, mapping, rejects)
    if as_json:
        print(_json({"files": [
            {"source": c.source, "read": c.read, "stored": c.stored, "duplicates": c.duplicates + c.merged,
             "already_stored": c.merged, "conflicts": c.conflicts, "rejected": c.rejected, "values_dropped": dict(sorted(c.values_dropped.items())),
             "channels_mostly_bad": c.mostly_bad, "seconds": round(c.seconds, 3)} for c in results],
            "errors": errors, "rejects_file": str(writer.path) if writer.count else None,
            "rejects_run": writer.run if writer.count else None}))
    else:
        # The values dropped and the conflicts get a column when there are some (a clean ingest's
        # table is as it was).
        drops = any(c.values_dropped for c in results)
        conflicts = any(c.conflicts for c in results)
        table = Table("file", "read", "stored", "duplicates", *(["conflicts"] if conflicts else []),
                      "rejected", *(["values dropped"] if drops else []), "rows/s", title=f"ingest -> {_term(str(db))}")
        for c in results:
            table.add_row(escape(_one_line(Path(c.source).name)), f"{c.read:,}", f"{c.stored:,}", f"{c.duplicates + c.merged:,}",
                          *([f"{c.conflicts:,}"] if conflicts else []),
                          f"{c.rejected:,}", *([f"{sum(c.values_dropped.values()):,}"] if drops else []),
                          f"{c.rows_per_s:,.0f}")
        if results:   # (adv) a table with no row under the error of the one file given said nothing
            _print_listing(table)   # (rfh) in a pipe a long file name was cut at 80 columns
        if conflicts:
            # (m2) as a watcher counts them (fast): copies of stored readings with other values, and
            # each group of copies within a file with different values once; the notes show one each.
            console.print(f"conflicts: {sum(c.conflicts for c in results):,} reading(s) given again with other values "
                          "than those kept (counted in duplicates; the kept values stay; see the notes)",
                          highlight=False, soft_wrap=True)
        dropped: dict[str, int] = {}
        for c in results:
            for ch, n in c.values_dropped.items():
                dropped[ch] = dropped.get(ch, 0) + n
        if dropped:
            console.print("values dropped (unreadable or implausible, stored as missing; each reading kept its "
                          "other channels): " + ", ".join(f"{ch} {n:,}" for ch, n in sorted(dropped.items())),
                          highlight=False, soft_wrap=True)
        if writer.count:
            console.print(f"{writer.count:,} rejected row(s) and value(s) with line, field and reason -> "
                          f"{_term(str(writer.path))} (appended, run {writer.run})", highlight=False, soft_wrap=True)
    # A file whose every row was rejected gave nothing usable (a re-ingest of a partly bad file
    # still counts its duplicates as read).
    unusable = [c.source for c in results if c.rejected > 0 and c.stored + c.merged + c.duplicates == 0]
    if unusable:
        where = f" (reasons in {_term(str(writer.path))})" if writer.count else ""
        err_console.print(f"[red]error:[/red] nothing usable read from {', '.join(_term(str(u)) for u in unusable)}: "
                          f"every row was rejected{where}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    # A channel unreadable or implausible on most of a file's rows is a mapping mistake (W read as
    # kW, the wrong column): its readings are kept without it, but a scheduled ingest must not pass.
    mostly = [(c.source, ch) for c in results for ch in c.mostly_bad]
    if mostly:
        where = f"; reasons in {_term(str(writer.path))}" if writer.count else ""
        err_console.print("[red]error:[/red] " + "; ".join(f"{_term(str(src))}: {ch} unreadable or implausible on "
                                                           f"most rows" for src, ch in mostly)
                          + escape(f" (see the note above: a [units], [scale] or [ranges] mistake?") + f"{where})",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if errors:
        raise typer.Exit(1)


# --------------------------------------------------------------------------------------- store


@store_app.command("info")
def store_info(db: Path = DB_OPTION, as_json: bool = typer.Option(False, "--json")) -> None:
    """Readings, meters, time span and register energy (kWh, per meter and in total) of the store."""
    from wattwatch.store import StoreError

    import duckdb

    store = _open_store(db, read_only=True, must_exist=True)
    try:
        info = store.info(energy=True)
    except StoreError as exc:
        _fail(str(exc))
    except duckdb.Error as exc:  # a damaged block found only when read
        _fail(f"{db}: cannot read store (damaged file?): {str(exc).strip().splitlines()[0]}")
    finally:
        store.close()
    if as_json:
        print(json.dumps(info))
        return
    energy = info.pop("energy_kwh")
    table = Table("key", "value", title=_term(str(db)))
    for k, v in info.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) else _term(str(v)))
    table.add_row("energy_kwh", f"{energy['total']:,.3f}")
    _print_listing(table)
    per = energy["meters"]
    if per:
        shown = 20
        et = Table("meter", "energy_kwh", title="register energy per meter")
        for m, v in list(per.items())[:shown]:
            et.add_row(escape(m), f"{v:,.3f}")
        if len(per) > shown:
            et.add_row(f"... {len(per) - shown:,} more", "(see --json)")
        _print_listing(et)


@store_app.command("compact")
def store_compact(
    db: Path = DB_OPTION,
    older_than_days: float = typer.Option(30.0, "--older-than-days", help="Compact the readings older than this "
                                          "many days before --as-of; the raw readings are replaced by hourly rows."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Reference time (default now), ISO-8601. On a history "
                                        "imported from the past give its end: counted from now, every reading of "
                                        "last year's export is compacted."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Downsample readings older than N days to hourly aggregates (energy still adds up).

    The days are counted back from --as-of, which is now by default: on an imported history (an export
    of last year) that is all of it, and its raw readings are gone; give --as-of the export's last day.

    Exit status: 0 done; 2 refused or failed before its commit (nothing changed); 3 committed
    (the result is printed as usual) but the checkpoint after it failed: the store keeps the
    compaction; 130 interrupted (the message says whether it was committed)."""
    from wattwatch.store import CommittedError, StoreError
    from wattwatch.store.duck import interrupted

    import duckdb

    store = _open_store(db, must_exist=True)
    reached: list[str] = []   # the stages started: "checkpointing" comes after the COMMIT

    def stage(description: str, total=None) -> None:
        reached.append(description)
        st.stage(description, total)

    def stopped(done: bool) -> None:
        _fail(f"{db}: interrupted " + ("after the compaction was committed (the store keeps it; DuckDB replays its "
                                       "write-ahead log when the store is next opened)" if done else
                                       "before the compaction was committed: nothing changed"), 130)

    committed = None
    try:
        with stages("compact") as st:
            result = store.compact(older_than_days=older_than_days, as_of=as_of, on_stage=stage)
    except (ValueError, TypeError, OverflowError) as exc:
        _fail(f"{db}: {exc}")
    except CommittedError as exc:   # (a StoreError: before it) the compaction is in the store
        if interrupted(exc.__cause__):   # (rfix3) a Ctrl-C in DuckDB's COMMIT or CHECKPOINT
            stopped(True)
        committed, result = exc, exc.result
    except StoreError as exc:
        _fail(str(exc))
    except duckdb.Error as exc:  # a damaged block found only when read; the compaction was rolled back
        if interrupted(exc):
            stopped(False)
        _fail(f"{db}: cannot compact (damaged file?), nothing changed: {str(exc).strip().splitlines()[0]}")
    except (KeyboardInterrupt, RuntimeError) as exc:
        # (rfix3) A Ctrl-C while DuckDB runs a statement is its "Query interrupted" RuntimeError; one
        # made after the COMMIT is a CommittedError (above), save in Python code after "checkpointing".
        if not interrupted(exc):
            raise
        stopped(bool(reached) and reached[-1] == "checkpointing")
    finally:
        store.close()
    if as_json:
        print(json.dumps({**result, "checkpointed": committed is None}))
    else:
        console.print(f"compacted {result['readings_compacted']:,} readings older than {result['cutoff']} "
                      f"into {result['hourly_rows_written']:,} hourly rows")
    if committed is not None:
        _fail(str(committed), 3)


# -------------------------------------------------------------------------------------- detect


class _errors:
    """Turn wattwatch's own errors into a clear message and a non-zero exit (no traceback);
    ``also``: what the failed command leaves, said after the error."""

    def __init__(self, also: str = ""):
        self.also = f"; {also}" if also else ""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        from wattwatch.errors import WattwatchError

        if exc is not None and isinstance(exc, WattwatchError):
            _fail(str(exc) + self.also)
        if exc is not None and isinstance(exc, OSError):
            _fail(_os_message(None, exc, "cannot read or write") + self.also)
        return False


def _no_clobber(db, inputs, **outputs) -> None:
    """Refuse, before any work, an output (``--rejects``, ``--out``, ``--log``, ``--scores``) that
    is the store, its WAL or one of the inputs (writing it would destroy what it names), or two
    outputs that are one file."""
    from wattwatch.store import StoreError
    from wattwatch.store.duck import check_paths, same_file

    try:
        check_paths(db, inputs=list(inputs or []), outputs=outputs)
    except StoreError as exc:
        _fail(str(exc))
    outs = [(o, Path(p)) for o, p in outputs.items() if p is not None and o != "rejects"]
    for i, (o1, p1) in enumerate(outs):
        for o2, p2 in outs[i + 1:]:
            if same_file(p1, p2):
                _fail(f"--{o1} and --{o2} are the same file ({p1}); give two paths")


def _check_out(path: Path, option: str) -> None:
    """Refuse before any work an output path that is a folder or cannot be created."""
    if path.is_dir():
        _fail(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not path.is_file():
        if not os.access(path, os.W_OK):
            _fail(f"{option} {path}: cannot write there (not writable)")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        _fail(f"{option} {path}: cannot write there ({parent} is not a writable folder)")


def _write_atomic(path: Path, text: str, option: str, kept: str = "") -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder: a full disk leaves
    the old file as it was and says so (``kept``: what is safe elsewhere)."""
    if path.exists() and not path.is_file():  # a device or FIFO (/dev/stdout): written in place, never replaced
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            _fail(_os_message(path, exc, f"cannot write {option}") + (f"; {kept}" if kept else ""), 1)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write_text(path, text)
    except OSError as exc:
        _fail(_os_message(path, exc, f"cannot write {option}") + (f"; {kept}" if kept else ""), 1)


def _summary_table(alerts, title: str) -> Table:
    counts: dict = {}
    for a in alerts:
        counts.setdefault(a.code, {"info": 0, "warning": 0, "critical": 0, "meters": set()})
        counts[a.code][a.severity] += 1
        counts[a.code]["meters"].add(a.meter_id)
    table = Table("code", "alerts", "critical", "warning", "info", "meters", title=title)
    for code, c in sorted(counts.items()):
        table.add_row(escape(_one_line(code)), str(c["info"] + c["warning"] + c["critical"]), str(c["critical"]), str(c["warning"]),
                      str(c["info"]), str(len(c["meters"])))
    return table


def _source(paths, db: Optional[Path]):
    """(source, db) for the API: a store path, or files (ingested into ``db`` when given)."""
    paths = list(paths or [])
    stores = [p for p in paths if p.suffix == ".duckdb"]
    files = [p for p in paths if p.suffix != ".duckdb"]
    if len(stores) > 1 or (stores and db) or (stores and files):
        _fail("give one store (a .duckdb path or --db), with or without files to ingest into it")
    if stores:
        if not stores[0].exists():
            _fail(f"{stores[0]}: no such store (only `wattwatch ingest` creates one)")
        if stores[0].is_dir():
            _fail(f"{stores[0]}: is a folder, not a store file")
        return stores[0], None
    if not files:
        db = db or Path("wattwatch.duckdb")
        if not db.exists():
            _fail(f"{db}: no such store; nothing to read (give telemetry files, or a store `wattwatch ingest` "
                  "created)")
        if db.is_dir():
            _fail(f"{db}: is a folder, not a store file (--db)")
        return db, None
    if db is not None and db.is_dir():
        _fail(f"{db}: is a folder, not a store file (--db)")
    missing = [f for f in files if not f.exists()]
    if missing:
        _fail(f"{missing[0]}: no such file or folder")
    # A folder stands for its telemetry: the labels and fleet description `simulate` writes next to it
    # are not readings (an explicitly named file is always read).
    expanded = [f for f, explicit in _expand(files) if explicit or f.name not in _SIDECARS]
    if not expanded:
        _fail(f"no telemetry files in {', '.join(map(str, files))}")
    return expanded, db


INFLUX_HELP = ("Read the readings from InfluxDB 1.x instead of files: influx://[USER[:PASSWORD]@]HOST:PORT/DB?"
               "measurement=M[&rp=RP][&chunk=1D] (influxs:// for https); with --db they are ingested into that store.")


def _influx_source(influx: Optional[str], paths, db: Optional[Path]):
    """(url, db) for --influx, or None. --db stays the DuckDB store that keeps state and alerts."""
    if db is not None and str(db).startswith(("influx:", "influxs:")):
        _fail("--db is the DuckDB store that keeps state and alerts; give the InfluxDB measurement to read as "
              "--influx influx://HOST:PORT/DB?measurement=M (and --db FILE.duckdb to keep the results)")
    if influx is None:
        return None
    if paths:
        _fail("give the readings either as files/a store or as --influx URL, not both")
    if not influx.startswith(("influx://", "influxs://")):
        _fail(f"--influx: expected influx://HOST:PORT/DB?measurement=M, got {influx!r}")
    if db is not None and db.is_dir():
        _fail(f"{db}: is a folder, not a store file (--db)")
    return influx, db


def _check_times(**times) -> None:
    """Refuse times far outside any telemetry (year 9999 or 0001 overflowed nanosecond arithmetic
    deep in a run); unreadable ones are left to the API, which says what it expected."""
    import math

    import pandas as pd

    for option, value in times.items():
        if value is None:
            continue
        if isinstance(value, float):
            if not math.isfinite(value) or value <= 0:
                _fail(f"--{option.replace('_', '-')} must be a finite number > 0, got {value!r}")
            continue
        try:
            t = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            continue
        if t is not pd.NaT and not (1900 <= t.year <= 2200):
            _fail(f"--{option.replace('_', '-')} {value}: out of range (telemetry times lie between 1900 and 2200)")


def _names(detectors: Optional[str]):
    """Comma-separated names, each once, in the order given (a name twice ran a detector twice)."""
    if not detectors:
        return None
    names = list(dict.fromkeys(d.strip() for d in detectors.split(",") if d.strip()))
    return names or None


@app.command()
def detect(
    paths: Optional[list[Path]] = typer.Argument(None, help="Telemetry files, or a .duckdb store (default: --db)."),
    out: Path = typer.Option(Path("alerts.jsonl"), "--out", "-o", help="Alerts, one JSON object per line."),
    db: Optional[Path] = typer.Option(None, "--db", help="Store to read (and keep state and alerts in); default, when no file is "
                                        "given: wattwatch.duckdb. Files given are ingested into it (without --db they are "
                                        "judged on their own and their alerts kept only in --out)."),
    detectors: Optional[str] = typer.Option(None, "--detectors", help="Comma-separated detector names (default: the default set)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML detector configuration."),
    start: Optional[str] = typer.Option(None, "--start", help="Judge readings from this time (UTC, ISO-8601)."),
    end: Optional[str] = typer.Option(None, "--end", help="... up to this time (exclusive)."),
    meters: Optional[str] = typer.Option(None, "--meters", help="Comma-separated meter ids (default: all)."),
    log: Optional[Path] = typer.Option(None, "--log", help="Human log (default: OUT with .log)."),
    scores: Optional[Path] = typer.Option(None, "--scores", help="Also write every reading's score per detector and "
                                          "combined (Parquet: meter_id, ts, one column per detector, score, detector)."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help=MAPPING_HELP),
    rejects: Path = typer.Option("wattwatch-rejects.csv", "--rejects", help=REJECTS_HELP),
    models: Optional[Path] = typer.Option(None, "--models", help="Trained learned detectors (`wattwatch train`) "
                                          "to use instead of training them on this data."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    min_severity: Optional[str] = MIN_SEVERITY,
    min_score: Optional[float] = MIN_SCORE,
    engine: str = typer.Option("local", "--engine", help="local (process pool) or spark (meter groups in "
                               "Spark tasks, each fitting its meters' missing state and judging them; fleet models "
                               "trained on the driver and broadcast); same alerts."),
    master: Optional[str] = typer.Option(None, "--master", help="Spark master for --engine spark: local[2] "
                                         "(default), spark://HOST:7077, yarn."),
    influx: Optional[str] = typer.Option(None, "--influx", help=INFLUX_HELP),
) -> None:
    """Find faults: files or a store in, alerts out (exit 0 with or without alerts).

    Meters are judged with the state kept in the store (`wattwatch fit`); a meter without state is
    profiled once on its own first days and that state is kept. With --start/--end the result for
    those days is the one a run over the whole history gives."""
    from wattwatch import api

    _check_times(start=start, end=end)
    _check_filters(min_severity, min_score)
    if engine not in ("local", "spark"):
        _fail(f"--engine: expected local or spark, got {engine!r}")
    if master is not None and engine != "spark":
        _fail("--master is for --engine spark")
    from_influx = _influx_source(influx, paths, db)
    source, db_arg = from_influx or _source(paths, db)
    log = log or out.with_suffix(".log")
    files = source if isinstance(source, list) else []
    store_path = db_arg if isinstance(source, list) or from_influx else source
    _no_clobber(store_path, files, out=out, log=log, scores=scores, rejects=rejects if files else None)
    for path, option in ((out, "--out"), (log, "--log"), (scores, "--scores"), (rejects, "--rejects")):
        if path is not None and (option != "--rejects" or isinstance(source, list)):
            _check_out(path, option)
    with _errors():
        with _on_ctrl_c(lambda since: _detect_interrupted(store_path, since, [str(f) for f, _ in _expand(files)], out)):
            with stages("detect") as st:
                result = api.detect(source, db=db_arg, detectors=_names(detectors), config=config, start=start,
                                    end=end, meters=_names(meters), models=models, scores=scores is not None,
                                    mapping=mapping, rejects=rejects, engine=engine, master=master,
                                    on_progress=st.advance, on_stage=st.stage)
    kept = "the alerts are kept in the store (`wattwatch alerts list`)" if result.stored else ""
    alerts = [a for a in result.alerts if _passes(a, min_severity, min_score)]
    _write_atomic(out, "".join(a.to_json() + "\n" for a in alerts), "--out", kept)
    _write_atomic(log, "".join(a.log_line() + "\n" for a in alerts), "--log", kept)
    if scores is not None and result.scores is not None:
        from wattwatch.detect.scores import write as write_scores

        try:
            write_scores(result.scores, scores)
        except OSError as exc:
            _fail(_os_message(scores, exc, "cannot write --scores") + f"; the alerts are in {out}", 1)
    for n in result.notices:
        err_console.print(f"[yellow]note:[/yellow] {_term(n)}", highlight=False, soft_wrap=True)
    if result.stored is None:
        err_console.print(f"[yellow]note:[/yellow] no store: the alerts are kept only in {_term(out)} (and {_term(log)}); "
                          "give --db FILE to keep them in a store for `wattwatch alerts list|ack|clear`",
                          highlight=False, soft_wrap=True)
    summary = {"alerts": len(alerts), "meters": result.meters, "readings": result.readings,
               "seconds": round(result.seconds, 3), "readings_per_s": round(result.readings_per_s) if result.seconds else 0,
               "out": str(out), "log": str(log), "stored": result.stored, "notices": len(result.notices),
               "ongoing": len(result.open_ids), "filtered_out": len(result.alerts) - len(alerts)}
    if as_json:
        print(_json(summary))
        return
    _print_listing(_summary_table(alerts, f"detect: {result.readings:,} readings, {result.meters} meters"))
    if len(alerts) < len(result.alerts):
        err_console.print(f"[yellow]note:[/yellow] {len(result.alerts) - len(alerts)} alert(s) below --min-severity/"
                          "--min-score left out of the output" + (" (the store keeps them)" if result.stored else ""),
                          highlight=False, soft_wrap=True)
    console.print(f"{len(alerts)} alert(s) -> {_term(str(out))}  (log {_term(str(log))}; {summary['readings_per_s']:,} readings/s)")


def _detect_interrupted(store, since, files: list[str], out: Path) -> None:
    """(st2) ``detect`` stopped by a Ctrl-C (a traceback before, for one inside a DuckDB statement):
    exit 130 saying what the run committed to the store (each file ingested, the state learned and
    the alerts written are each committed on their own), asked of the store."""
    how, code = _stopped_by()
    head = f"{how}; {out} was not written"
    if store is None or str(store) == ":memory:":
        _fail(head + " (no store: nothing was kept)", code)
    kept = _run_kept(store, since)
    if not kept or not (kept["files"] or kept["state"] or kept["alerts"]):
        said = [head, "nothing of this run was committed to the store"]
    else:
        said = [head] + ([_stored_files(kept, files)] if files else [])
        if kept["state"]:
            said.append(f"the state of {kept['state']:,} meter(s) learned by this run is kept")
        if kept["alerts"]:
            said.append(f"{kept['alerts']:,} alert(s) written by this run are kept (`wattwatch alerts list`)")
    _fail(f"{store}: " + "; ".join(said) + ". Run detect again to finish (a file ingested again stores nothing "
          "twice)", code)


@app.command()
def fit(
    paths: Optional[list[Path]] = typer.Argument(None, help="Telemetry files, or a .duckdb store (default: --db)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Store to keep the state in; default, when no file is given: "
                                        "wattwatch.duckdb. Files given are ingested into it (they need one)."),
    normal_start: Optional[str] = typer.Option(None, "--normal-start", help="Start of the period you declare normal (UTC)."),
    normal_end: Optional[str] = typer.Option(None, "--normal-end", help="End of the period you declare normal (UTC)."),
    days: Optional[float] = typer.Option(None, "--days", help="Without a declared period: each meter's first DAYS days "
                                         "(at most half its data; default: \\[engine] profile_days of --config, 7 days)."),
    detectors: Optional[str] = typer.Option(None, "--detectors", help="Comma-separated detector names (default: the default set)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML detector configuration."),
    meters: Optional[str] = typer.Option(None, "--meters", help="Comma-separated meter ids (default: all)."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help=MAPPING_HELP),
    rejects: Path = typer.Option("wattwatch-rejects.csv", "--rejects", help=REJECTS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
    influx: Optional[str] = typer.Option(None, "--influx", help=INFLUX_HELP),
) -> None:
    """Learn every meter's state (profiles, calibrations, thermal models, fleet models) on a normal
    period and keep it in the store; every later `detect` uses it."""
    from wattwatch import api

    _check_times(normal_start=normal_start, normal_end=normal_end, days=days)
    from_influx = _influx_source(influx, paths, db)
    source, db_arg = from_influx or _source(paths, db)
    if (isinstance(source, list) or from_influx) and db_arg is None:
        _fail("give a store to keep the state in (--db FILE); without one it would be lost when fit ends")
    if isinstance(source, list):
        _no_clobber(db_arg, source, rejects=rejects)
    store = db_arg if isinstance(source, list) or from_influx else source
    with _errors():
        with _on_ctrl_c(lambda since: _fit_interrupted(
                store, since, [str(f) for f, _ in _expand(source)] if isinstance(source, list) else [])):
            with stages("fit") as st:
                fitted = api.fit(source, db=db_arg, detectors=_names(detectors), config=config,
                                 normal_start=normal_start, normal_end=normal_end, days=days, meters=_names(meters),
                                 mapping=mapping, rejects=rejects, on_stage=st.stage)
    for n in fitted.notices:
        err_console.print(f"[yellow]note:[/yellow] {_term(n)}", highlight=False, soft_wrap=True)
    summary = {"meters": fitted.meters, "readings": fitted.readings, "detectors": [d.name for d in fitted.detectors],
               "seconds": round(fitted.seconds, 2), "normal_start": normal_start, "normal_end": normal_end,
               "days": days, "store": str(db_arg or source), "notices": len(fitted.notices)}
    if as_json:
        print(_json(summary))
        return
    period = f"{normal_start or 'first reading'} .. {normal_end or 'end'}" if (normal_start or normal_end) else \
        f"each meter's first {days if days is not None else 'profile'} days"
    console.print(f"fitted {len(fitted.detectors)} detectors on {fitted.readings:,} readings of {fitted.meters} meters "
                  f"({escape(period)}) in {fitted.seconds:.1f} s -> {escape(summary['store'])}")


def _manifest_of(out: Path) -> bytes | None:
    """The bytes of ``out``'s manifest now (None: none, or unreadable)."""
    from wattwatch.atomicfile import read_regular
    from wattwatch.detect.learned.persist import MANIFEST, MAX_MANIFEST_BYTES

    try:
        return read_regular(out / MANIFEST, MAX_MANIFEST_BYTES, follow=False)
    except (OSError, ValueError):
        return None


def _models_kept(out: Path, before: bytes | None, what: str = "the error") -> str:
    """What a failed or stopped ``train --out OUT`` leaves there, said with its error (``before``:
    the manifest when the train started; ``what``: what ended it): a model set is replaced only when
    the new one is complete (``persist.save_models``), so the old set, unless it ended after the switch."""
    now = _manifest_of(out)
    if now is not None and now != before:
        return f"the new models were written to {out} whole before {what}"
    if now is not None:
        return f"the models in {out} are kept as they were"
    return f"no model set was written to {out}"


def _fit_interrupted(store, since, files: list[str], models: Optional[Path] = None,
                     before: bytes | None = None) -> None:
    """(st3) ``fit`` or ``train`` stopped by a Ctrl-C (before: a traceback for one inside a DuckDB
    statement, else exit 130 with nothing said): exit 130 saying what the store holds of this run,
    asked of it (each file ingested is committed on its own; fit keeps all its state in one
    transaction) and, for ``train``, what the model folder is."""
    kept = _run_kept(store, since) if store is not None else None
    said = [_stored_files(kept, files)] if files else []
    if models is None:
        said.append(f"the state learned by this run is kept ({kept['state']:,} meter(s))" if kept and kept["state"]
                    else "none of the state it learned was kept (the store keeps what it had before)")
    else:   # (the manifest's bytes against those at the train's start: one answer with a failed train's)
        said.append(_models_kept(models, before, "it was stopped"))
    how, code = _stopped_by()
    _fail(f"{store if store is not None else 'train'}: {how}: " + "; ".join(said), code)


state_app = typer.Typer(no_args_is_help=True, context_settings=HELP, help="Meter state kept in the store: list, show, drop.")
app.add_typer(state_app, name="state")


@state_app.command("list")
def state_list(db: Path = DB_OPTION, as_json: bool = typer.Option(False, "--json")) -> None:
    """One row per meter: how and when its state was learned, on which period, for which detectors."""
    from wattwatch.detect import state

    store = _open_store(db, read_only=True, must_exist=True)
    try:
        df = state.listing(store.con)
        fleets = state.fleet_listing(store.con)
    finally:
        store.close()
    rows = []
    for m, g in df.groupby("meter_id", sort=True):
        rows.append({"meter_id": m, "detectors": len(g), "how": ",".join(sorted(set(g["how"].dropna()))),
                     "fitted_at": _iso(g["fitted_at"].max()), "normal_start": _iso(g["normal_start"].min()),
                     "normal_end": _iso(g["normal_end"].max()), "version": ",".join(map(str, sorted(set(g["state_version"])))),
                     "cadence_s": json.loads(g["params"].iat[0]).get("cadence_s")})
    if as_json:
        print(_json({"meters": rows, "fleet_models": [
            {"detector": r.detector, "grid_s": r.grid_s, "format": int(r.format), "trained_at": _iso(r.trained_at),
             "bytes": int(r.bytes)} for r in fleets.itertuples()]}))
        return
    table = Table("meter", "detectors", "how", "normal period", "cadence s", "fitted at", title=f"meter state ({_term(str(db))})")
    for r in rows:
        table.add_row(escape(_one_line(r["meter_id"])), _term(str(r["detectors"])), escape(_one_line(r["how"])), f"{r['normal_start']} .. {r['normal_end']}",
                      f"{r['cadence_s']:.0f}" if r["cadence_s"] else "", r["fitted_at"] or "")
    _print_listing(table)
    for r in fleets.itertuples():
        console.print(f"fleet model {escape(r.detector)} at the {r.grid_s:.0f} s grid: {int(r.bytes):,} bytes, trained {_iso(r.trained_at)}")


@state_app.command("show")
def state_show(meter: str = typer.Argument(..., help="Meter id."), db: Path = DB_OPTION,
               detector: Optional[str] = typer.Option(None, "--detector", help="Only this detector."),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """What each detector learned about one meter (JSON)."""
    from wattwatch.detect import state

    store = _open_store(db, read_only=True, must_exist=True)
    try:
        df = state.listing(store.con, meter)
    finally:
        store.close()
    if detector:
        df = df[df["detector"] == detector]
    if not len(df):
        _fail(f"no state for meter {meter!r}" + (f" and detector {detector!r}" if detector else "") + f" in {db}")
    doc = {r.detector: {"how": r.how, "fitted_at": _iso(r.fitted_at), "normal_start": _iso(r.normal_start),
                        "normal_end": _iso(r.normal_end), "version": int(r.state_version), "state": json.loads(r.params)}
           for r in df.itertuples()}
    print(_json({"meter_id": meter, "detectors": doc}, indent=None if as_json else 1))


@state_app.command("drop")
def state_drop(meters: list[str] = typer.Argument(..., help="Meter id(s)."), db: Path = DB_OPTION,
               detector: Optional[str] = typer.Option(None, "--detector", help="Only this detector's state.")) -> None:
    """Forget meters' state; the next detect profiles them again (or `wattwatch fit` refits them)."""
    from wattwatch.detect import state

    store = _open_store(db, must_exist=True)
    try:
        n = state.drop(store.con, list(meters), detector)
    finally:
        store.close()
    if not n:
        _fail(f"no state for {', '.join(meters)}" + (f" and detector {detector!r}" if detector else "") + f" in {db}")
    console.print(f"dropped {n} state row(s) of {len(meters)} meter(s)")


def _iso(t) -> str | None:
    import pandas as pd

    if t is None or pd.isna(t):
        return None
    return pd.Timestamp(t).tz_convert("UTC").isoformat().replace("+00:00", "Z")


@app.command()
def detectors(name: Optional[str] = typer.Argument(None, help="One detector: its code, channels, parameters and defaults."),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """The registered detectors: code, what they judge and explain, default set, parameters."""
    import dataclasses

    from wattwatch.codes import SEVERITY_POLICY
    from wattwatch.detect import registry

    names = registry.names()
    if name is not None:
        if name not in names:
            _fail(f"no detector {name!r}; the detectors are: {', '.join(names)}")
        names = [name]
    rows = []
    for n in names:
        d = registry.build(n)
        params = {f.name: getattr(d.config, f.name) for f in dataclasses.fields(d.config) if f.name != "post"}
        params = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in params.items()}  # an ensemble member's table
        floor, ceiling, _, why = SEVERITY_POLICY.get(d.code, ("info", "critical", True, ""))
        rows.append({"name": n, "code": d.code, "default": n in registry.DEFAULT_DETECTORS,
                     "requires": list(d.channels()), "judges": list(d.judges),
                     "explains": sorted({k for e in d.explains for k in e.kinds}), "causal": bool(d.causal),
                     "severity": {"floor": floor, "ceiling": ceiling, "consequence": why},
                     "params": params, "post": dataclasses.asdict(d.config.post)})
    if as_json:
        print(_json(rows[0] if name is not None else rows))
        return
    if name is not None:
        r = rows[0]
        table = Table("", "", title=f"detector {escape(_one_line(name))}", show_header=False)
        for k, v in (("code", r["code"]), ("in the default set", "yes" if r["default"] else "no"),
                     ("channels needed", ", ".join(r["requires"]) or "-"), ("judges", ", ".join(r["judges"]) or "-"),
                     ("explains", ", ".join(r["explains"]) or "-"), ("causal", "yes" if r["causal"] else "no"),
                     ("severity", f"{r['severity']['floor']} .. {r['severity']['ceiling']}: {r['severity']['consequence']}")):
            table.add_row(k, escape(_one_line(v)))
        for k, v in r["params"].items():
            for key, x in (((f"[{name}.{k}] {k2}", x2) for k2, x2 in v.items()) if isinstance(v, dict) else
                           ((f"[{name}] {k}", v),)):
                table.add_row(escape(_one_line(key)), escape(_one_line(repr(x) if isinstance(x, str) else x)))
        for k, v in r["post"].items():
            table.add_row(escape(_one_line(f"[{name}.post] {k}")), escape(_one_line(v)))
        console.print(table)
        console.print("Parameters and their defaults; set them in a --config TOML under the section shown.")
        return
    table = Table("detector", "code", "default", "needs", "judges", "explains", "parameters", title="detectors")
    for r in rows:
        table.add_row(*(escape(_one_line(x)) for x in (
            r["name"], r["code"], "yes" if r["default"] else "", ", ".join(r["requires"]), ", ".join(r["judges"]),
            ", ".join(r["explains"]), ", ".join(f"{k}={v}" for k, v in r["params"].items()))))
    console.print(table)   # (adv) not _print_listing: its parameters column made 2,589-character lines in a pipe
    console.print("`wattwatch detectors NAME` shows one detector's parameters and defaults.")


def _config_sha256(config: Optional[Path]) -> Optional[str]:
    """The sha256 of the config file a model folder was trained with (None: none, or unreadable)."""
    import hashlib

    from wattwatch.atomicfile import read_regular

    if config is None:
        return None
    try:
        return hashlib.sha256(read_regular(config, 16 << 20)).hexdigest()
    except (OSError, ValueError):
        return None


@app.command()
def train(
    paths: Optional[list[Path]] = typer.Argument(None, help="Telemetry files, or a .duckdb store (default: --db)."),
    out: Path = typer.Option(Path("models"), "--out", "-o", help="Model folder to write."),
    db: Optional[Path] = typer.Option(None, "--db", help="Store to read; default, when no file is given: wattwatch.duckdb. "
                                        "Files given are ingested into it."),
    detectors: str = typer.Option("learned_ensemble", "--detectors", help="Comma-separated learned detectors."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML detector configuration."),
    normal_start: Optional[str] = typer.Option(None, "--normal-start", help="Start of the period you declare normal (UTC)."),
    normal_end: Optional[str] = typer.Option(None, "--normal-end", help="End of the period you declare normal (UTC)."),
    days: float = typer.Option(7.0, "--days", help="Without a declared period: each meter's first DAYS days (at most half its data)."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help=MAPPING_HELP),
    rejects: Path = typer.Option("wattwatch-rejects.csv", "--rejects", help=REJECTS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Train learned detectors' fleet models on normal telemetry and save them in a model folder
    (for `detect --models` on other data; `wattwatch fit` keeps them in the store instead)."""
    from wattwatch import api
    from wattwatch.detect.learned.detectors import LearnedDetector
    from wattwatch.detect.learned.persist import ModelFormatError, check_folder, provenance, save_models

    _check_times(normal_start=normal_start, normal_end=normal_end, days=days)
    try:
        # not a folder, a dangling symlink, another tool's manifest.json: refused before the training, not after it
        check_folder(out)
    except ModelFormatError as exc:
        _fail(str(exc))
    before = _manifest_of(out)
    kept = _models_kept(out, before)
    source, db_arg = _source(paths, db)
    if isinstance(source, list):
        _no_clobber(db_arg, source, rejects=rejects)
    files = [str(f) for f, _ in _expand(source)] if isinstance(source, list) else []
    store = db_arg if isinstance(source, list) else source
    interrupted = lambda since: _fit_interrupted(store, since, files, models=out, before=before)  # noqa: E731
    with _errors(kept):
        dets = api.build_detectors(_names(detectors), config)
        bad = [d.name for d in dets if not isinstance(d, LearnedDetector)]
        if bad:
            _fail(f"not learned detectors (nothing to train): {', '.join(bad)}")
        with _on_ctrl_c(interrupted) as since:
            with stages("train") as st:
                try:
                    fitted = api.fit(source, db=db_arg, detectors=[d.name for d in dets], config=config,
                                     normal_start=normal_start, normal_end=normal_end, days=days, mapping=mapping,
                                     rejects=rejects, keep=False, on_stage=st.stage)
                except MemoryError:
                    _fail(f"train: out of memory while training (fewer meters, a shorter period or a smaller "
                          f"max_train_rows need less); {kept}", 1)
    dets = [d for d in fitted.detectors if d.locked]
    if not dets:
        _fail("; ".join(fitted.notices + [kept]) if fitted.notices else f"no fleet model could be trained; {kept}")
    period = f"{normal_start or 'start'} .. {normal_end or 'end'}" if (normal_start or normal_end) else \
        f"each meter's first {days:g} days"
    trained_on = {"readings": fitted.readings, "meters": fitted.meters, "period": period}
    # (mf) which meters, cadences, span and channels: `detect --models` says when it judges others
    trained_on.update(provenance(dets, fitted.channels, _config_sha256(config)))
    try:
        folder = save_models(dets, out, trained_on)
    except OSError as exc:
        _fail(_os_message(out, exc, "cannot write the model folder") + f"; {_models_kept(out, before)}", 1)
    except ModelFormatError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        interrupted(since)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the user is told which models DIR holds
        _fail(f"{out}: cannot write the model folder: {type(exc).__name__}: {exc}; {_models_kept(out, before)}", 1)
    summary = {"models": str(folder), "detectors": [d.name for d in dets],
               **{k: v for k, v in trained_on.items() if k != "meter_cadence_s"},
               "grids_s": sorted({g for d in dets for g in d.fleets_}), "seconds": round(fitted.seconds, 2)}
    if as_json:
        print(_json(summary))
        return
    console.print(f"trained {escape(', '.join(summary['detectors']))} on {fitted.readings:,} readings of {fitted.meters} "
                  f"meters ({escape(period)}) in {summary['seconds']} s -> {_term(str(folder))}")


@app.command()
def evaluate(
    events: Path = typer.Option(..., "--events", help="Labelled events (events.json)."),
    alerts: Optional[Path] = typer.Option(None, "--alerts", help="Alerts (alerts.jsonl): event recall, precision, F1."),
    scores: Optional[Path] = typer.Option(None, "--scores", help="Per-reading scores (`detect --scores`): ROC-AUC "
                                          "and PR-AUC of the combined score and of each detector."),
    tolerance_s: float = typer.Option(3600.0, "--tolerance-s", help="Overlap tolerance either side of an event."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Event-level recall per fault type, alert precision, F1 and detection delay (--alerts);
    ROC-AUC and PR-AUC of per-reading scores (--scores)."""
    from wattwatch.alerts.model import read_jsonl
    from wattwatch.evaluate.events import evaluate as score, load_events, meter_kinds, score_auc

    if alerts is None and scores is None:
        _fail("give --alerts FILE (alerts.jsonl), --scores FILE (detect --scores) or both")
    doc = {}
    try:
        labelled = load_events(events)
        if alerts is not None:
            doc["alerts"] = score(labelled, read_jsonl(alerts), tolerance_s)
        if scores is not None:
            doc["scores"] = score_auc(labelled, _read_scores(scores), meter_kinds(events), codes=_detector_codes())
    except (OSError, ValueError, KeyError) as exc:
        _fail(str(exc))
    if as_json:
        # --alerts alone keeps its document as it was; --scores adds one of its own.
        print(_json(doc["alerts"] if scores is None else doc["scores"] if alerts is None else doc))
        return
    if "alerts" in doc:
        _print_listing(_evaluation_table(doc["alerts"]))
    if "scores" in doc:
        _print_listing(_auc_table(doc["scores"]))


def _detector_codes() -> dict:
    """Registered detector name -> the alert code it raises."""
    from wattwatch.detect import registry

    return {n: registry.build(n).code for n in registry.names()}


def _read_scores(path: Path):
    """The scores table from ``detect --scores``; errors name the file."""
    import pandas as pd

    if path.is_dir():
        raise ValueError(f"--scores {path}: is a folder, not a scores file")
    if not path.exists():
        raise ValueError(f"--scores {path}: no such file")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own types for a file that is not Parquet
        raise ValueError(f"--scores {path}: not a Parquet scores file ({str(exc).splitlines()[0][:200]}); "
                         "write one with `wattwatch detect ... --scores FILE`") from None


def _auc_table(r: dict) -> Table:
    def f(x):
        return "" if x is None else f"{x:.3f}"

    table = Table("scores", "positives", "negatives", "base rate", "judged", "ROC-AUC", "PR-AUC",
                  title=f"per-reading scores: {r['rated']:,} readings rated, {r['positives']:,} inside faults "
                        f"({r['left_out_in_outages']:,} in outages left out)")
    rows = [(c, v) for c, v in r["overall"].items()]
    rows += [(f"{r['column']} on {k}", v) for k, v in r["per_type"].items()]
    rows += [(f"{r['column']} on {k} meters", v) for k, v in r["per_kind"].items()]
    rows += [(f"{k} on {', '.join(v['fault_types'])}", v) for k, v in r.get("per_detector", {}).items()]
    for name, v in rows:
        table.add_row(escape(_one_line(name)), f"{v['positives']:,}", f"{v['negatives']:,}", f(v["base_rate"]),
                      f(v["judged_share"]), f(v["roc_auc"]), f(v["pr_auc"]))
    return table


def _evaluation_table(result: dict) -> Table:
    visible = result.get("visible_events")
    has_vis = visible is not None and visible != result.get("events")
    title = (f"recall {result['recall']:.3f}" + (f" (visible faults {result['recall_visible']:.3f})" if has_vis else "")
             + f" · precision {result['precision']:.3f} ({result['true_alerts']}/{result['alerts']} alerts) "
             f"· F1 {result['f1']:.3f}")
    cols = ["event type", "events", "detected", "recall"]
    if has_vis:
        cols += ["visible", "recall visible", "not visible because"]
    table = Table(*cols, "median delay (min)", "expected code", title=title)
    for k, v in result["per_type"].items():
        delay = "" if v["median_delay_min"] is None else f"{v['median_delay_min']:.0f}"
        row = [escape(_one_line(k)), str(v["events"]), str(v["detected"]), f"{v['recall']:.2f}"]
        if has_vis:
            rv = v.get("recall_visible", float("nan"))
            row += [str(v.get("visible", v["events"])), "" if rv != rv else f"{rv:.2f}",
                    escape("; ".join(f"{n} {why}" for why, n in (v.get("invisible") or {}).items()))]
        table.add_row(*row, delay, escape(", ".join(v["expected_code"])))
    return table


# -------------------------------------------------------------------------------------- alerts


def _check_filters(min_severity: Optional[str], min_score: Optional[float]) -> None:
    """--min-severity names a tier, --min-score is a calibrated score in [0, 1]."""
    import math

    from wattwatch.codes import SEVERITIES

    if min_severity is not None and min_severity not in SEVERITIES:
        _fail(f"--min-severity must be one of {', '.join(SEVERITIES)}, not {min_severity!r}")
    if min_score is not None and not (math.isfinite(min_score) and 0 <= min_score <= 1):
        _fail(f"--min-score must be a calibrated score between 0 and 1 (0.5 = at the limit), not {min_score!r}")


def _passes(a, min_severity: Optional[str], min_score: Optional[float]) -> bool:
    from wattwatch.codes import severity_rank

    if min_severity is not None and severity_rank(a.severity) < severity_rank(min_severity):
        return False
    return min_score is None or (a.score is not None and a.score >= min_score)




def _print_listing(table: Table) -> None:
    """A table on stdout (a listing, a summary, an evaluation, a bench's figures). In a pipe or a file
    Rich's 80 columns wrapped every cell into word fragments ("WAR…", "Mouse_health…" for two meters, an
    alert over 20 lines; (adv) the demo's and `evaluate`'s "theft_under_r…" / "WARN_FIRMWAR…", `bench
    quality`'s "firmware…" and "level_sh…"); there each row is one line at the table's own width, for grep,
    `alerts ack` and a CI log."""
    if console.is_terminal:
        for column in table.columns:   # (adv) a narrow terminal folds a long name, never cuts it ("theft_under_r…")
            if column.overflow == "ellipsis" and not any(map(_is_value, column.cells)):
                column.overflow = "fold"
        console.print(table)
        return
    natural = console.measure(table, options=console.options.update_width(4000)).maximum
    Console(width=max(console.width, natural)).print(table)   # (Console.print's own width is capped at 80)


# (radv) One token with a digit: a number, an alert or meter id, a time. Folded, "1,234,567" read "1,23" over
# "4,56" over "7" and "M-00004" read "M-0000" over "4" (another meter); cut, "1,2…" says it is cut. An alert
# code (ERR_PHASE_IMBALANCE_01) is a name: it may fold.
_VALUE = re.compile(r"\S*\d\S*")
_CODE = re.compile(r"[A-Z]{2,}(?:_[A-Z]{2,})+(?:_\d+)?")


def _is_value(cell) -> bool:
    text = cell if isinstance(cell, str) else getattr(cell, "plain", None)
    return isinstance(text, str) and bool(_VALUE.fullmatch(text)) and not _CODE.fullmatch(text)


def _id_column(table: Table) -> None:
    """Full ids when stdout is not a terminal (a pipe, a file): an id there is for `alerts ack`."""
    if not console.is_terminal:
        table.columns[0].no_wrap = True
        table.columns[0].min_width = 16


@alerts_app.command("list")
def alerts_list(db: Path = DB_OPTION, status: str = typer.Option("open", "--status", help="open, acknowledged, cleared or all"),
                meter: Optional[str] = typer.Option(None, "--meter"), as_json: bool = typer.Option(False, "--json"),
                min_severity: Optional[str] = MIN_SEVERITY, min_score: Optional[float] = MIN_SCORE) -> None:
    """Alerts in the store (the fields of alerts.jsonl, with their status)."""
    from wattwatch.alerts import store as alert_store
    from wattwatch.alerts.model import record

    if status != "all" and status not in alert_store.STATUSES:
        _fail(f"--status must be one of {', '.join(alert_store.STATUSES)} or all, not {status!r}")
    _check_filters(min_severity, min_score)
    store = _store_or_watcher(db, read_only=True)
    if store is None:   # `watch` holds the store: it lists the alerts for us between steps
        rows = _ask_watcher(db, {"op": "list", "status": status, "meter": meter, "min_severity": min_severity,
                                 "min_score": min_score})["alerts"]
    else:
        try:
            df = alert_store.list_alerts(store.con, status, meter, min_severity, min_score)
        except ValueError as exc:
            _fail(str(exc))
        finally:
            store.close()
        rows = [record(r) for r in df.to_dict("records")]
    if as_json:
        print(_json(rows))
        return
    table = Table("id", "meter", "code", "severity", "score", "start", "end", "status", "message", title=f"alerts ({status})")
    _id_column(table)
    for r in rows:
        score = "" if r["score"] is None else f"{r['score']:.2f}"
        table.add_row(*(escape(_one_line(r[k])) for k in ("id", "meter_id", "code", "severity")), score,
                      *(escape(_one_line(r[k])) for k in ("start", "end", "status")), escape(_one_line(r["message"])[:80]))
    _print_listing(table)


@alerts_app.command("show")
def alerts_show(alert_id: str = typer.Argument(..., help="Alert id (or a unique prefix)."), db: Path = DB_OPTION,
                as_json: bool = typer.Option(False, "--json")) -> None:
    """One alert: its fields, status, and every action taken for it (`\\[\\[actions]]` of `watch`)
    with its outcome. A withdrawn alert (late readings or a final verdict no longer make it: its row
    is gone from `alerts list`) is shown as the store last had it, with when and why it was withdrawn."""
    import pandas as pd

    from wattwatch.actions.base import actions_for
    from wattwatch.alerts import withdrawn
    from wattwatch.alerts.model import iso

    if not alert_id.strip():
        _fail("give an alert id (or a unique prefix of one); `wattwatch alerts list` shows them")
    store = _store_or_watcher(db)
    if store is None:   # `watch` holds the store: it reads the alert for us between steps
        ans = _ask_watcher(db, {"op": "show", "id": alert_id})
        rec = ans["alert"]
        acts = pd.DataFrame(ans["actions"], columns=["action", "kind", "event", "done_at", "dry_run", "outcome",
                                                     "detail", "attempts", "ms"])
        acts["done_at"] = pd.to_datetime(acts["done_at"], utc=True)
        acts[["attempts", "ms"]] = acts[["attempts", "ms"]].astype(float)
    else:
        try:
            try:   # (al) a withdrawn alert (its row deleted) is shown from ``alerts_withdrawn``
                rec = withdrawn.show(store.con, alert_id)
            except KeyError as exc:
                _fail(str(exc.args[0]))
            acts = actions_for(store.con, rec["id"])
        finally:
            store.close()
    taken = [{"action": r["action"], "kind": r["kind"], "event": r["event"], "at": iso(r["done_at"]),
              "dry_run": bool(r["dry_run"]), "outcome": r["outcome"], "detail": r["detail"],
              "attempts": None if r["attempts"] != r["attempts"] else int(r["attempts"]),
              "ms": None if r["ms"] != r["ms"] else float(r["ms"])} for r in acts.to_dict("records")]
    if as_json:
        print(_json({**rec, "actions": taken}))
        return
    table = Table("field", "value", title=f"alert {escape(_one_line(rec['id']))}", show_header=False)
    for k in ("meter_id", "code", "severity", "score", "start", "end", "status", "detector", "message", "action", "note"):
        v = rec.get(k)
        if v is not None and v != "":
            table.add_row(k, escape(_one_line(f"{v:.2f}" if k == "score" else v)))
    w = rec.get("withdrawn")
    if w:   # (al) when and why (its row is gone: what the store keeps of it; the reason says "withdrawn: ...")
        times = f" (withdrawn {w['times']} times: the last)" if w.get("times", 1) > 1 else ""
        table.add_row("withdrawn", escape(_one_line((f"{w['at']} " if w.get("at") else "") + w["reason"] + times)))
    console.print(table)
    if not taken:
        console.print("no action taken for this alert")
        return
    # One line per action (the detail is what one reads: a table would cut it).
    console.print(f"actions ({len(taken)}):")
    for r in taken:
        how = f"{r['attempts']} attempt(s)" + ("" if r["ms"] is None else f", {r['ms']:.0f} ms")
        line = (f"{r['at']} {r['action']} ({r['kind']}) {r['event']}: {r['outcome']}"
                + (" [dry run]" if r["dry_run"] else "") + f" [{how}] {r['detail'] or ''}")
        console.print("  " + escape(_one_line(line)), highlight=False, soft_wrap=True)


def _store_or_watcher(db: Path, read_only: bool = False):
    """The store opened (for writing unless ``read_only``), or None when a running `watch` holds
    it (the command is then handed to the watcher: wattwatch.runners.control)."""
    from wattwatch.runners import control
    from wattwatch.store import Store, StoreError

    _open_store_checks(db)
    try:
        return control.open_or_hand_over(db, lambda: Store(db, read_only=read_only))
    except StoreError as exc:
        _fail(str(exc))


def _open_store_checks(db: Path) -> None:
    if not Path(db).exists():
        _fail(f"{db}: no such store (only `wattwatch ingest` creates one; check --db)")
    if Path(db).is_dir():
        _fail(f"{db}: is a folder, not a store file (--db)")


def _ask_watcher(db: Path, req: dict) -> dict:
    """Hand ``req`` to the watcher holding ``db``; its answer (errors become a clear failure)."""
    from wattwatch.runners import control

    ans = control.ask(db, req)
    if not ans.get("ok"):
        _fail(str(ans.get("error") or "the watcher refused the request"))
    return ans


def _set_status(alert_id: str, status: str, db: Path, note: Optional[str]) -> None:
    from wattwatch.alerts import store as alert_store

    if not alert_id.strip():
        _fail("give an alert id (or a unique prefix of one); `wattwatch alerts list` shows them")
    store = _store_or_watcher(db)
    if store is None:   # `watch` holds the store: it applies the change (and re-learns) between steps
        res = _ask_watcher(db, {"op": "set_status", "id": alert_id, "status": status, "note": note})
    else:
        try:
            res = alert_store.set_status(store.con, alert_id, status, note)
        except (KeyError, ValueError) as exc:
            _fail(str(exc.args[0]) if exc.args else str(exc))
        finally:
            store.close()
    if res.get("unchanged"):
        # Exit 0: the alert is in the state asked for; a script that acks twice has not failed.
        err_console.print(f"[yellow]note:[/yellow] alert {escape(_one_line(res['id']))} is already {status}"
                          + (f" (since {escape(_one_line(res['since']))})" if res.get("since") else "")
                          + "; nothing changed", highlight=False, soft_wrap=True)
        return
    who = " and ".join(res.get("detectors") or [res["detector"]])
    console.print(f"{escape(_one_line(res['id']))} {status}; {escape(_one_line(who))} re-learn"
                  f"{'' if ' and ' in who else 's'} "
                  f"{escape(_one_line(res['meter_id']))} from after {escape(_one_line(res['reset_at']))}")


@alerts_app.command("ack")
def alerts_ack(alert_id: str = typer.Argument(..., help="Alert id (or a unique prefix)."), db: Path = DB_OPTION,
               note: Optional[str] = typer.Option(None, "--note")) -> None:
    """Acknowledge an alert (known issue); resets the meter's rule state for that detector. While
    `watch` holds the store, the running watcher does it (and re-learns the meter live)."""
    _set_status(alert_id, "acknowledged", db, note)


@alerts_app.command("clear")
def alerts_clear(alert_id: str = typer.Argument(..., help="Alert id (or a unique prefix)."), db: Path = DB_OPTION,
                 note: Optional[str] = typer.Option(None, "--note")) -> None:
    """Clear an alert (false positive or fixed); resets the meter's rule state for that detector. While
    `watch` holds the store, the running watcher does it (and re-learns the meter live)."""
    _set_status(alert_id, "cleared", db, note)


# -------------------------------------------------------------------------------------- dashboard


@app.command()
def dashboard(
    db: Path = typer.Option(Path("wattwatch.duckdb"), "--db", help="The store to show (uploads are ingested into it)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8501, "--port", min=1, max=65535),
    users: Optional[Path] = typer.Option(None, "--users", help="Users TOML, a table users.NAME per user: role = viewer|operator, "
                                         "password = a hash from --hash-password (also WATTWATCH_DASHBOARD_USERS)."),
    read_only: bool = typer.Option(False, "--read-only", help="Nobody may acknowledge, clear, upload or run."),
    session_minutes: float = typer.Option(480.0, "--session-minutes", min=1, help="A sign-in lasts at most this long."),
    idle_minutes: float = typer.Option(30.0, "--idle-minutes", min=1, help="... and ends after this long idle."),
    fleet: Optional[Path] = typer.Option(None, "--fleet", help="A `wattwatch fleet` table (fleet.parquet) to show."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="The --out folder of `wattwatch grid simulate|monitor`."),
    events: Optional[Path] = typer.Option(None, "--events", help="Labelled events.json for the Evaluation page."),
    status: Optional[Path] = typer.Option(None, "--status", help="The status file a running `watch` writes "
                                          "(\\[\\[sinks]] type = \"status\") for the Live page."),
    refresh_s: float = typer.Option(5.0, "--refresh-s", min=0.5, help="Live page refresh period."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="A folder of model folders (`wattwatch "
                                              "train --out`): the Data page lists those under it to run detection "
                                              "with (nothing outside it can be chosen)."),
    log: Optional[Path] = typer.Option(None, "--log", help="Append sign-ins, refusals and every write (who, what) "
                                       "to this file (they also go to stderr)."),
    proxy_header: Optional[str] = typer.Option(None, "--proxy-header", help="Behind a TLS proxy on this host: "
                                               "the header it names the client in, X-Forwarded-For (its last "
                                               "address) or X-Real-IP, for the sign-in lock per address. Without "
                                               "it a connection from this host is one address, whatever it sends."),
    hash_password: bool = typer.Option(False, "--hash-password", help="Read a password (prompted, or one line "
                                       "on stdin) and print its scrypt hash for the users file; then exit."),
) -> None:
    """Serve the dashboard (Streamlit): fleet, meter, alerts with ack/clear, uploads and runs, live,
    grid, evaluation; signed in, operators write, viewers read."""
    from wattwatch.dashboard import auth, serve
    from wattwatch.dashboard.settings import Settings

    if hash_password:
        import getpass

        if sys.stdin.isatty():
            pw = getpass.getpass("password: ")
            if pw != getpass.getpass("again: "):
                _fail("the two passwords differ")
        else:
            pw = sys.stdin.readline().rstrip("\r\n")
        if not pw:
            _fail("an empty password")
        print(auth.hash_password(pw))
        return
    try:
        found = auth.load_users(users)
    except auth.UsersError as exc:
        _fail(str(exc))
    if not found:
        _fail("no users: give --users FILE or WATTWATCH_DASHBOARD_USERS (hashes from `wattwatch dashboard --hash-password`)")
    if Path(db).is_dir():
        _fail(f"{db}: is a folder, not a store file (--db)")
    for name, p in (("--fleet", fleet), ("--events", events)):
        if p is not None and not p.is_file():
            _fail(f"{p}: no such file ({name})")
    if grid is not None and not (grid / "intervals.parquet").is_file():
        _fail(f"{grid}: not a grid run folder (no intervals.parquet) (--grid)")
    if models_dir is not None and not models_dir.is_dir():
        _fail(f"{models_dir}: no such folder (--models-dir)")
    if proxy_header is not None:
        from wattwatch.dashboard.settings import PROXY_HEADERS

        named = {h.lower(): h for h in PROXY_HEADERS}.get(proxy_header.strip().lower())
        if named is None:
            _fail(f"--proxy-header: one of {', '.join(PROXY_HEADERS)}, got {proxy_header!r}")
        proxy_header = named
    settings = Settings(db=db.resolve(), users_file=users.resolve() if users else None, read_only=read_only,
                        session_minutes=session_minutes, idle_minutes=idle_minutes,
                        uploads=db.resolve().parent / (db.name + ".uploads"), fleet=fleet, grid=grid, events=events,
                        status=status, refresh_s=refresh_s, log=log.resolve() if log else None,
                        models_dir=models_dir.resolve() if models_dir else None, proxy_header=proxy_header)
    err_console.print(f"wattwatch dashboard on http://{host}:{port}  ({len(found)} user(s); "
                      f"{'read-only' if read_only else 'operators may write'}; store {_term(str(db))})", highlight=False)
    raise typer.Exit(serve.run(settings, host, port))


# -------------------------------------------------------------------------------------- report


@app.command()
def report(
    db: Optional[Path] = typer.Option(None, "--db", help="Store: its telemetry, and its alerts unless --alerts is given "
                                      "(default: wattwatch.duckdb when neither is given)."),
    alerts: Optional[Path] = typer.Option(None, "--alerts", help="Alerts file (JSON Lines, as `detect` writes it)."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="The HTML file to write."),
    meters: Optional[str] = typer.Option(None, "--meters", help="Comma-separated meter ids (default: every alerting meter)."),
    start: Optional[str] = typer.Option(None, "--from", help="Only alerts and readings from this time (UTC, ISO-8601)."),
    end: Optional[str] = typer.Option(None, "--to", help="... up to this time (exclusive)."),
) -> None:
    """Write a self-contained HTML report of a run (opens offline): a fleet overview, then per
    alerting meter its channels with the alert spans shaded, evidence and recommended action.

    Exit 1 when there is no alert to report, 2 on a usage or input error."""
    from wattwatch import api
    from wattwatch.report.data import NothingToReport

    _check_times(**{"from": start, "to": end})
    if db is None and alerts is None:
        db = Path("wattwatch.duckdb")
        if not db.exists():
            _fail("give --db STORE or --alerts FILE (no wattwatch.duckdb here)")
    if db is not None and not db.exists():
        _fail(f"{db}: no such store (only `wattwatch ingest` creates one; check --db)")
    if db is not None and db.is_dir():
        _fail(f"{db}: is a folder, not a store file (--db)")
    if alerts is not None and not alerts.exists():
        _fail(f"{alerts}: no such alerts file (--alerts)")
    _no_clobber(db, [alerts] if alerts is not None else [], out=out)
    _check_out(out, "--out")
    with _errors():
        try:
            path = api.report(out, db=db, alerts=alerts, meters=_names(meters), start=start, end=end)
        except NothingToReport as exc:
            _fail(str(exc), 1)
    console.print(f"report -> {_term(str(path))} ({path.stat().st_size / 1e6:.2f} MB)")


# --------------------------------------------------------------------------------------- fleet


@app.command()
def fleet(
    paths: list[str] = typer.Argument(..., help="Nested smart-meter JSON (SCPS UrbanDataset or flat PODID records) or any "
                                      "file `ingest` reads; on --engine spark also hdfs://, s3a:// paths and globs."),
    period: str = typer.Option("month", "--period", help="month, week or day."),
    engine: str = typer.Option("local", "--engine", help="local (pandas) or spark."),
    master: str = typer.Option("local[2]", "--master", help="Spark master: local[N], spark://HOST:7077 or yarn."),
    out: Path = typer.Option(Path("fleet.parquet"), "--out", "-o", help="Table per POD and period; the excluded list, "
                             "balance and a JSON summary are written next to it."),
    tz: str = typer.Option("UTC", "--tz", help="Time zone of periods, night and weekend (e.g. Europe/Rome)."),
    min_coverage: float = typer.Option(0.8, "--min-coverage", min=0.0, max=1.0,
                                       help="A POD is scored only with at least this coverage in every period."),
    min_peers: int = typer.Option(5, "--min-peers", min=1, help="Smallest panel or town that is its own peer group."),
    panels: Optional[Path] = typer.Option(None, "--panels", help="CSV panel_id,meter_id naming the panel meters "
                                          "(default: a meter whose id is its panel_id)."),
    energy_register: bool = typer.Option(False, "--energy-register", help="TotalActiveEnergy is a cumulative register "
                                         "(default: the energy of each record's interval, as the platform documents)."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help=MAPPING_HELP + " (local engine)"),
    rejects: Path = typer.Option("wattwatch-rejects.csv", "--rejects", help=REJECTS_HELP),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed of the models' random choices."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score a fleet of PODs per period: consumption features, cross-meter models and energy balance.

    Exit 0 when the table is written, 2 on a usage or input error."""
    from wattwatch import api
    from wattwatch.fleet.run import ENGINES, siblings
    from wattwatch.fleet.features import PERIODS

    if period not in PERIODS:
        _fail(f"--period must be one of {', '.join(PERIODS)}, not {period!r}")
    if engine not in ENGINES:
        _fail(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    from wattwatch.fleet.spark import is_remote

    local_inputs = [Path(p) for p in paths if not (engine == "spark" and is_remote(p))]
    missing = [str(p) for p in local_inputs if not p.exists()]
    if missing:
        _fail(f"{missing[0]}: no such file or folder")
    outs = siblings(out)
    _no_clobber(None, local_inputs, rejects=rejects, out=out, **{"excluded list": outs["excluded"],
                                                                "summary": outs["summary"]})
    _check_out(out, "--out")

    def interrupted(since) -> None:
        # (pv) as detect and bench: one message, exit 130 / 143; Spark's jobs of the run were cancelled
        # (runners.spark.cancelled_on_interrupt) and pyspark's own SIGINT handler left out (_on_ctrl_c)
        how, code = _stopped_by()
        # (rpv) the table is written whole or not at all (atomic_file), the files beside it are not
        _fail(f"fleet: {how}; {out} and the files beside it may not all be written, and one beside it may be "
              "cut short: run fleet again", code)

    with _errors(), _on_ctrl_c(interrupted):
        with stages("fleet") as st:
            run = api.fleet(paths, period=period, engine=engine, master=master, out=out, tz=tz,
                            min_coverage=min_coverage, min_peers=min_peers, panels=panels,
                            energy="register" if energy_register else "interval", mapping=mapping, rejects=rejects,
                            seed=seed, on_stage=st.stage)
    f = run.features.features
    if as_json:
        print(_json({"pods_scored": int(f["pod_id"].nunique()), "rows": len(f), "excluded": len(run.features.excluded),
                     "rejects": run.rejects, "notes": run.notes, "outputs": run.written,
                     "seconds": {k: round(v, 3) for k, v in run.seconds.items()}}))
        return
    for note in run.notes:
        err_console.print(f"[yellow]note:[/yellow] {_term(note)}", highlight=False, soft_wrap=True)
    table = Table("output", "rows", "file", title=f"fleet ({engine}, per {period})")
    table.add_row("per POD and period", f"{len(run.table):,}", _term(run.written.get("table", "")))
    table.add_row("excluded", f"{len(run.features.excluded):,}", _term(run.written.get("excluded", "")))
    if run.balance is not None:
        table.add_row("energy balance", f"{len(run.balance.periods):,}", _term(run.written.get("balance", "")))
    _print_listing(table)
    console.print(f"{f['pod_id'].nunique():,} POD(s) scored over {f['period'].nunique()} {period}(s); "
                  f"{len(run.features.excluded):,} excluded (reasons in {_term(run.written.get('excluded', ''))})")
    if run.rejects:
        console.print(f"{run.rejects:,} rejected record(s) with file, line and field -> {_term(str(rejects))} (appended)")


# ---------------------------------------------------------------------------------------- demo


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Working folder for data, store and report."),
    meters: int = typer.Option(60, "--meters"),
    days: float = typer.Option(14.0, "--days"),
    seed: int = typer.Option(7, "--seed"),
) -> None:
    """Simulate a labelled fleet, ingest it, detect, evaluate, and write an HTML report; offline."""
    from wattwatch.evaluate.events import evaluate as score
    from wattwatch.sim import SimConfig, simulate as run

    try:
        cfg = SimConfig(meters=meters, days=days, seed=seed)
    except ValueError as exc:
        _fail(str(exc))
    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(_os_message(out, exc, "cannot create the demo folder"))
    db = out / "wattwatch.duckdb"
    for p in (db, Path(str(db) + ".wal")):
        p.unlink(missing_ok=True)
    with progress_bar("simulate", meters) as advance:
        done = [0]

        def tick(k):
            advance(k - done[0])
            done[0] = k

        sim = run(cfg, out / "fleet", formats=("parquet",), on_progress=tick)
    results, errors, _ = run_ingest([Path(sim["files"]["parquet"])], db, None, out / "rejects.csv", quiet=True)
    if errors:
        _fail("; ".join(errors), 1)
    c = results[0]
    from wattwatch import api

    with _errors():
        with stages("detect") as st:
            result = api.detect(db, on_progress=st.advance, on_stage=st.stage)
    alerts_path = out / "alerts.jsonl"
    alerts_path.write_text("".join(a.to_json() + "\n" for a in result.alerts))
    (out / "alerts.log").write_text("".join(a.log_line() + "\n" for a in result.alerts))
    ev = score(sim["events"], result.alerts)
    summary = {"meters": meters, "days": days, "seed": seed, "readings": result.readings, "alerts": len(result.alerts),
               "recall": round(ev["recall"], 3), "precision": round(ev["precision"], 3)}
    report = out / "report.html"
    if result.alerts:
        with _errors():
            api.report(report, db=db, alerts=result.alerts, title="wattwatch demo", evaluation=ev, summary=summary)
    faults = [e for e in sim["events"] if e["expect_alert"]]
    table = Table("step", "result", title="wattwatch demo")
    table.add_row("simulate", f"{meters} meters x {days:g} days, {sim['rows']:,} rows, {len(faults)} fault events")
    table.add_row("ingest", f"{c.stored:,} stored, {c.duplicates + c.merged:,} duplicates merged"
                            + (f" ({c.conflicts:,} with other values)" if c.conflicts else "") + ", "
                            f"{c.rejected:,} rejected, {c.rows_per_s:,.0f} rows/s")
    table.add_row("detect", f"{len(result.alerts)} alerts on {len({a.meter_id for a in result.alerts})} meters, "
                            f"{result.readings_per_s:,.0f} readings/s")
    table.add_row("evaluate", f"event recall {ev['recall']:.3f}, alert precision {ev['precision']:.3f}, F1 {ev['f1']:.3f}")
    _print_listing(table)
    _print_listing(_evaluation_table(ev))
    console.print(f"alerts: {_term(str(alerts_path))}\nreport: "
                  + (_term(str(report.resolve())) if result.alerts else "none (no alerts)"))


# --------------------------------------------------------------------------------------- bench


@app.command()
def watch(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Site config (TOML): \\[\\[sources]], "
                                          "\\[store], \\[stream], \\[models], \\[\\[sinks]], \\[\\[actions]], "
                                          "\\[meter_tags], detectors."),
    until_done: bool = typer.Option(False, "--until-done", help="Stop when every source is finished (a replay at "
                                    "its end), judging what is pending as final."),
    demo: bool = typer.Option(False, "--demo", help="Start simulated devices on 127.0.0.1 (Modbus/TCP and RTU "
                              "gateways, MQTT meters, the SNMP PDU if available) with faults on a schedule, and watch "
                              "them. Each device is learned on its first 60 s and judged from then on; its faults "
                              "start 70-100 s after its first reading: give it 3 minutes (--duration 180)."),
    duration: Optional[float] = typer.Option(None, "--duration", "--until", help="Stop after this many seconds."),
) -> None:
    """Watch a site live: read its sources (Modbus/TCP, MQTT, replayed files), store every reading, judge it
    as it arrives with the same rules and state as `detect`, keep alerts (opened at once, grown, ended)
    in the store. SIGINT/SIGTERM stop cleanly; a restart resumes from the store's checkpoint."""
    import logging
    import threading

    from wattwatch import api
    from wattwatch.app.watchview import LogLines, render

    if (config is None) == (not demo):
        _fail("give --config SITE.toml or --demo (not both)")
    if duration is not None and not duration > 0:
        _fail("--duration must be > 0 seconds")
    running_demo = None
    if demo:
        from wattwatch.devices.demo import Demo

        running_demo = Demo(log=lambda m: print(_one_line(m), flush=True))
        config = running_demo.site
        for k, ep in running_demo.endpoints().items():
            print(_one_line(f"device {k}: {ep}"), flush=True)
        for e in running_demo.events:
            print(_one_line(e), flush=True)
        print(_one_line(f"site config: {config}"), flush=True)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)   # its own connect/retry chatter
    try:
        _watch_run(api, config, until_done, duration, running_demo, LogLines, render, logging, threading)
    finally:
        if running_demo is not None:
            running_demo.stop()


def _watch_run(api, config, until_done, duration, running_demo, LogLines, render, logging, threading) -> None:
    stop = threading.Event()
    timer = None
    if duration is not None:   # counted from the first step: the watcher is up (detectors built, store open)
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True

    def started(step):
        def on(*a):
            if timer is not None and not timer.is_alive() and not stop.is_set():
                timer.start()
            if running_demo is not None:   # the demo's faults count from the watcher's first reading of a device
                running_demo.on_step(*a)
            return step(*a)
        return on
    with _errors():
        site = api.load_site(config)
    tty = console.is_terminal and os.environ.get("WATTWATCH_PROGRESS") != "0"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    wlog = logging.getLogger("wattwatch.watch")
    wlog.addHandler(handler)
    wlog.setLevel(logging.INFO)
    lines = LogLines(lambda m: print(_one_line(m), flush=True))
    with _errors():
        if tty:
            from rich.live import Live

            holder = {}
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                def on_step(engine, rep, batches):
                    holder["e"] = engine
                    live.update(render(engine, site.sources, site.outputs, running_demo))
                result = api.watch(site, until_done=until_done, on_step=started(on_step), stop=stop)
        else:
            result = api.watch(site, until_done=until_done, on_step=started(lines), stop=stop)
    if timer is not None:
        timer.cancel()
    from wattwatch.app.watchview import stopped_line

    print(_one_line(stopped_line(result.counters, len(result.open_ids), result.resumed, result.learning,
                                 result.profile_s)), flush=True)
    for v in result.sources:
        print(_one_line(f"source {v['name']}: {v['status']}, " + ", ".join(
            f"{k} {int(v[k]):,}" for k in sorted(v) if k not in ("name", "kind", "status", "p50_ms"))), flush=True)
    for v in result.outputs:  # sinks and actions: their counters (an InfluxDB sink: written, buffered, flushed, ...)
        nums = ", ".join(f"{k} {int(v[k]):,}" for k in sorted(v)
                         if isinstance(v[k], (int, float)) and not isinstance(v[k], bool))
        print(_one_line(f"output {v['name']} ({v['kind']}): {v['status']}, {nums}"
                        + (f"; last error: {v['last_error']}" if v.get("last_error") else "")), flush=True)


@bench_app.command("stream")
def bench_stream(
    meters: int = typer.Option(200, "--meters"),
    cadence_s: float = typer.Option(60.0, "--cadence-s", help="Each meter's cadence."),
    hours: Optional[float] = typer.Option(None, "--hours", help="Hours of readings streamed after the profiling "
                                          "day (default: enough for the windows). With one --rate: the whole "
                                          "stream at that rate instead of a --window-s window (the old mode)."),
    rate: str = typer.Option("1000,5000,20000", "--rate", help="Offered readings per second of wall time: one "
                             "rate, a comma-separated list (a window each, one after the other on the same engine) "
                             "or 'auto' (doubling from 500/s while the engine keeps up, to 2x 20,000/s)."),
    window_s: float = typer.Option(10.0, "--window-s", help="Seconds of wall time each rate is offered."),
    max_backlog_s: float = typer.Option(5.0, "--max-backlog-s", help="Stop offering a rate once a reading has waited "
                                        "this many seconds untaken (checked every poll cycle, while a step runs "
                                        "too: the engine is not keeping up); 0: never."),
    river_readings: int = typer.Option(50_000, "--river-readings", help="Readings the river baseline runs on."),
    workdir: Optional[Path] = typer.Option(None, "--workdir"),
    seed: int = typer.Option(7, "--seed"),
    detectors: Optional[str] = typer.Option(None, "--detectors", help="Comma-separated detectors (default: the "
                                            "default set)."),
    tick_s: float = typer.Option(0.01, "--tick-s", "--piece-s", help="The poll cycle: the producer hands the "
                                 "readings that arrived over in pieces this often (a reading waits for its "
                                 "cycle's end); the engine steps on every piece that arrived."),
    slow_every_s: Optional[float] = typer.Option(None, "--slow-every-s", help="The slow tier's clock in seconds of "
                                                 "data time (\\[stream] slow_every_s; 0: every detector every step)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Readings/s (per core) through the stream engine with the full default rule set at offered
    rates, p50/p99 latency from a reading's arrival to its step's alerts being written (a producer
    thread delivers the readings in real time), whether it kept up, state per meter, against
    river's HalfSpaceTrees (learn_one + score_one) on the same readings."""
    from wattwatch.app.benchstream import parse_rates, stream_benchmark

    if meters < 1 or (hours is not None and hours <= 0) or cadence_s < 1 or tick_s <= 0 or window_s <= 0 \
            or max_backlog_s < 0:
        _fail("--meters must be >= 1, --hours, --window-s and --tick-s > 0, --cadence-s >= 1, --max-backlog-s >= 0")
    try:
        rates = parse_rates(rate)
    except ValueError as exc:
        _fail(str(exc))
    with _errors():
        r = stream_benchmark(meters=meters, cadence_s=cadence_s, stream_hours=hours, rate=rates, seed=seed,
                             river_readings=river_readings, workdir=workdir, detectors=_names(detectors), log=_log,
                             piece_s=tick_s, window_s=window_s, max_backlog_s=max_backlog_s or None,
                             slow_every_s=slow_every_s)
    if as_json:
        print(_json(r))
        return
    from wattwatch.app.benchstream import stream_table

    for title, cols, rows in stream_table(r):
        t = Table(*cols, title=title)
        for row in rows:
            t.add_row(*row)
        _print_listing(t)
    print(r["verdict"])


@bench_app.command("poll")
def bench_poll(
    devices: int = typer.Option(1000, "--devices", help="Simulated Modbus meters (in a child process)."),
    registers: int = typer.Option(20, "--registers", help="Contiguous holding registers per meter (1..28)."),
    units: int = typer.Option(20, "--units", help="Meters (unit ids) per gateway."),
    interval_s: float = typer.Option(1.0, "--interval-s", help="Poll interval; a poll's deadline is the next tick."),
    seconds: float = typer.Option(20.0, "--seconds", help="How long to poll."),
    concurrency: int = typer.Option(256, "--concurrency", help="Device polls in flight at once."),
    workers: int = typer.Option(2, "--workers", help="Processes serving the simulated gateways (each its "
                                "gateways on one event loop; none is the poller's)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Poll many simulated Modbus devices from one process: the share of device polls due (every
    device once a tick) that were answered by their tick's end, what became of the others, p50/p99
    response time, and the CPU the poller and the servers used."""
    from wattwatch.app.benchpoll import poll_benchmark

    if devices < 1 or units < 1 or interval_s <= 0 or seconds <= 0 or concurrency < 1 or workers < 1:
        _fail("--devices, --units, --concurrency and --workers must be >= 1, --interval-s and --seconds > 0")
    if devices % units:
        _fail(f"--devices ({devices}) must be a multiple of --units ({units})")
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    with _errors():
        try:
            r = poll_benchmark(devices=devices, registers=registers, interval_s=interval_s, seconds=seconds,
                               units=units, concurrency=concurrency, workers=workers, log=_log)
        except ValueError as exc:
            _fail(str(exc))
    if as_json:
        print(_json(r))
        return
    t = Table("figure", "value", title=f"bench poll ({r['machine']})")
    for k, v in [("devices x registers", f"{r['devices']:,} x {r['registers']} ({r['gateways']} gateways x "
                                         f"{r['units_per_gateway']} units, {r['requests_per_poll']} request/poll)"),
                 ("interval", f"{r['interval_s']:g} s for {r['duration_s']:g} s ({r['ticks']} ticks, "
                              f"{r['cycles']} cycles)"),
                 ("separate devices", f"{r['servers']} pymodbus servers (ports), {r['units_asked']:,} unit ids asked, "
                                      f"{r['devices_answered']:,} devices answered; last cycle "
                                      f"{r['last_cycle_distinct_values']:,} distinct of {r['last_cycle_readings']:,} "
                                      "readings"),
                 ("polls due (every device once a tick)", f"{r['polls_due']:,} ({r['polls_made']:,} made)"),
                 ("met their deadline (answered by their tick's end)",
                  f"{r['polls_met_deadline']:,} ({100 * r['met_deadline_share']:.2f} %)"),
                 ("missed: late / lost / never returned / not made (a tick no cycle started in)",
                  f"{r['polls_late']:,} / {r['polls_lost']:,} / {r['polls_never_returned']:,} / "
                  f"{r['polls_not_made']:,}"),
                 ("the poller's own count: on time / polls; late cycles; wrong unit",
                  f"{r['poller_counted']['on_time']:,} / {r['poller_counted']['polls']:,}; "
                  f"{r['poller_counted']['late_cycles']:,}; {r['poller_counted']['wrong_unit']:,}"),
                 ("response p50 / p99", f"{r['response_ms']['p50']} / {r['response_ms']['p99']} ms"),
                 ("cycle p50 / max", f"{r['cycle_ms']['p50']} / {r['cycle_ms']['max']} ms"),
                 ("poller CPU", f"{r['poller_cpu_s_per_s']} s per s ({r['poller_cpu_ms_per_poll']} ms per device poll)"),
                 ("servers CPU", f"{r['servers_cpu_s_per_s']} s per s over the run, in {r['server_processes']} "
                                 f"processes; {r['servers_cpu_s']} s in all ({r['server_requests']:,} requests, "
                                 f"{r['server_cpu_ms_per_request']} ms each, start-up included)"),
                 ("waited runnable for a CPU (s per s): poller / servers",
                  f"{r['poller_waited_for_cpu_s_per_s']} / {r['servers_waited_for_cpu_s_per_s']}"),
                 ("load average (1/5/15 min)", " / ".join(str(x) for x in r["load_average"]))]:
        t.add_row(k, v)
    _print_listing(t)


@app.command()
def devices(
    config: Path = typer.Option(..., "--config", "-c", help="Devices file (TOML): \\[\\[devices]] tables (type = "
                                "modbus, mqtt or snmp) and shared \\[models.NAME] register maps."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds (default: "
                                             "until Ctrl-C)."),
    every_s: float = typer.Option(10.0, "--every", help="Seconds between counter lines."),
) -> None:
    """Run simulated field devices on 127.0.0.1 (Modbus/TCP and RTU-over-TCP meters, MQTT meters, the
    SNMP PDU) until Ctrl-C; prints each device's endpoint, then its counters now and then."""
    import json
    import signal
    import threading

    from wattwatch import devices as devs

    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        running = devs.start_all(config)
    except ValueError as exc:
        _fail(str(exc))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        for r in running:
            print(_one_line(f"device {r.name}: {json.dumps(r.endpoint, default=str)}"), flush=True)
        t0 = time.monotonic()
        while not stop.wait(min(every_s, max(0.05, (duration or 1e9) - (time.monotonic() - t0)))):
            if duration is not None and time.monotonic() - t0 >= duration:
                break
            for r in running:
                v = r.view()
                print(_one_line(f"{v.get('name')}: " + ", ".join(f"{k} {v[k]}" for k in v if k != "name")), flush=True)
    finally:
        for r in running:
            r.stop()
    print("devices stopped", flush=True)


@bench_app.command("ingest")
def bench_ingest(
    rows: int = typer.Option(5_000_000, "--rows", help="Approximate rows in the simulated file."),
    workdir: Path = typer.Option(Path("bench-out"), "--workdir"),
    formats: str = typer.Option("parquet,csv", "--formats", help="parquet, csv and/or wide (a wide Parquet export, "
                                "one column per meter and channel, against DuckDB's UNPIVOT of it)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rows/s of Parquet and CSV ingest of a simulated fleet, against raw DuckDB loads."""
    from wattwatch.app.bench import ingest_benchmark

    if rows < 1000:
        _fail(f"--rows must be at least 1000, got {rows}")
    names = tuple(f.strip() for f in formats.split(","))
    if not names or not set(names) <= {"parquet", "csv", "wide"}:
        _fail(f"--formats: choose from parquet, csv, wide; got {formats!r}")
    with _errors():
        result = ingest_benchmark(rows=rows, workdir=workdir, formats=names, log=_log)
    if as_json:
        print(_json(result))
        return
    table = Table("format", "rows", "wattwatch rows/s", "target", "baseline rows/s", "ratio", "peak RSS MB",
                  title=f"bench ingest ({result['machine']})")
    for r in result["results"]:
        table.add_row(r["format"], f"{r['rows']:,}", f"{r['rows_per_s']:,.0f}",
                      f"{r['target_rows_per_s']:,}" if r["target_rows_per_s"] else "-",
                      f"{r['baseline_rows_per_s']:,.0f}", f"{r['ratio_to_baseline']:.2f}", f"{r['peak_rss_mb']:,.0f}")
    _print_listing(table)


@bench_app.command("detect")
def bench_detect(
    rows: int = typer.Option(10_000_000, "--rows", help="Approximate readings (1,000 meters at 5 min)."),
    workdir: Path = typer.Option(Path("bench-out"), "--workdir"),
    repeats: int = typer.Option(3, "--repeats", help="Timed runs on the loaded frame; the median is reported."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Readings/s of the full rule set on a simulated fleet, peak memory, ratio to a one-rule floor."""
    from wattwatch.app.bench import detect_benchmark

    if rows < 1000 or repeats < 1:
        _fail(f"--rows must be at least 1000 and --repeats at least 1, got {rows} and {repeats}")
    with _errors():
        r = detect_benchmark(rows=rows, workdir=workdir, log=_log, repeats=repeats)
    if as_json:
        print(_json(r))
        return
    table = Table("readings", "meters", "alerts", "detect s", "readings/s", "target", "floor readings/s", "ratio",
                  "peak RSS MB", title=f"bench detect ({r['machine']})")
    table.add_row(f"{r['readings']:,}", str(r["meters"]), str(r["alerts"]), f"{r['seconds']:.1f}",
                  f"{r['readings_per_s']:,.0f}", f"{r['target_readings_per_s']:,}", f"{r['floor_readings_per_s']:,.0f}",
                  f"{r['ratio_to_floor']:.3f}", f"{r['peak_rss_mb']:,.0f}")
    _print_listing(table)
    console.print(f"readings/s of each run (median above): {', '.join(f'{x:,}' for x in r['runs_readings_per_s'])}; "
                  f"load from store {r['load_seconds']:.1f} s; detection workers' peak RSS {r['worker_peak_rss_mb']:,.0f} MB "
                  "(pages shared with the parent counted in both)")
    console.print(f"default set (rules + learned ensemble), state fitted beforehand in {r['fit_seconds']:.1f} s: "
                  f"{r['default_readings_per_s']:,.0f} readings/s median of "
                  f"{', '.join(f'{x:,}' for x in r['default_runs_readings_per_s'])} ({r['default_seconds']:.1f} s, "
                  f"{r['default_alerts']:,} alerts)")


@bench_app.command("fleet")
def bench_fleet(
    meters: int = typer.Option(200, "--meters", help="Meters in the simulated fleet (5-min cadence)."),
    days: float = typer.Option(14.0, "--days"),
    seed: int = typer.Option(0, "--seed"),
    masters: str = typer.Option("local[2],local[1]", "--masters", help="Spark masters, each run in its own process."),
    pods: Optional[int] = typer.Option(None, "--pods", help="Also `fleet --engine spark` on this many PODs x one "
                                       "month (wattwatch.fleet.bench.run_pods)."),
    workdir: Path = typer.Option(Path("bench-out"), "--workdir"),
    repeats: int = typer.Option(3, "--repeats", help="Rounds per master, each timing both sides on the whole "
                                "fleet, every other meter and every fourth (alternating order); medians reported."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per-meter cost of detect --engine spark against a naive applyInPandas (one meter per group,
    fit and score inside the UDF) on the same fleet; local[1] against local[2]; totals and the
    marginal cost per meter (the slope through the whole fleet, half and a quarter of it)."""
    from wattwatch.app.bench import FLEET_TARGET_RATIO, fleet_benchmark, pods_available

    if meters < 4 or days < 2 or seed < 0 or repeats < 1:
        _fail(f"--meters must be at least 4 (half and a quarter of them are timed too), --days at least 2, --seed >= 0 and "
              f"--repeats at least 1, got {meters}, {days}, {seed}, {repeats}")
    names = tuple(m.strip() for m in masters.split(",") if m.strip())
    if not names:
        _fail("--masters: give at least one Spark master, e.g. local[2]")
    if pods is not None:
        if pods < 1:
            _fail(f"--pods must be at least 1, got {pods}")
        if not pods_available():
            _fail("--pods needs wattwatch.fleet.bench.run_pods (the fleet feature benchmark), which this "
                  "installation lacks")
    from wattwatch.runners.spark import java_major

    if (java_major() or 0) < 17:
        _fail("Spark needs a Java 17 runtime: run `make setup` (it installs openjdk-17-jre-headless) or set JAVA_HOME")
    with _errors():
        r = fleet_benchmark(meters=meters, days=days, seed=seed, masters=names, pods=pods, workdir=workdir, log=_log,
                            repeats=repeats)
    if as_json:
        print(_json(r))
        return
    table = Table("master", "meters", "readings", "ours s", "ours ms/meter", "naive s", "naive ms/meter",
                  f"ratio (<= {FLEET_TARGET_RATIO}), each round", "marginal ms/meter ours / naive", "marginal ratio, each round",
                  "alerts ours / naive", "peak RSS MB", title=f"bench fleet ({r['machine']}; medians of {r['repeats']} rounds)")
    for x in r["runs"]:
        ok = "[green]" if x["ratio"] <= FLEET_TARGET_RATIO else "[red]"
        mr = x["marginal_ratio"]
        mok = "[green]" if mr is not None and mr <= FLEET_TARGET_RATIO else "[red]"
        rng = x.get("marginal_ratio_range")
        pooled = x.get("marginal_ratio_pooled")
        table.add_row(x["master"], f"{x['meters']:,}", f"{x['readings']:,}", f"{x['ours_s']:.1f}",
                      f"{x['ours_ms_per_meter']:.1f}", f"{x['naive_s']:.1f}", f"{x['naive_ms_per_meter']:.1f}",
                      f"{ok}{x['ratio']:.3f}[/] ({', '.join(f'{v:.2f}' for v in x['ratios'])})",
                      f"{x['ours_marginal_ms_per_meter']:.1f} / {x['naive_marginal_ms_per_meter']:.1f}",
                      (f"{mok}{mr:.3f}[/]" if mr is not None else "[red]unresolved[/]")
                      + f" ({', '.join('-' if v is None else f'{v:.2f}' for v in x['marginal_ratios'])}"
                      + (f"; range {rng[0]:.2f}-{rng[1]:.2f}" if rng else "")
                      + (f"; pooled {pooled:.2f}" if pooled is not None else "") + ")",
                      f"{x['ours_alerts']} / {x['naive_alerts']}", f"{x['peak_rss_mb']:,.0f}")
    _print_listing(table)
    console.print("marginal = the slope of seconds against meters through the whole fleet, every other meter and "
                  "every fourth, per side and round (median, range; pooled = one line through every round's points): "
                  "a meter's cost once each job's fixed cost is paid; '-': naive's slope was not positive that round")
    for x in r["runs"]:
        console.print(f"{x['master']}: ours = {x['ours_fit_s']:.1f} s on the driver before the job + "
                      f"{x['ours_judge_s']:.1f} s fitting and judging in {x['groups']} group(s) on Spark; "
                      f"warm-up job {x['warmup_s']:.1f} s, not counted")
        if "cpu_ratio" in x:
            console.print(f"{x['master']}: CPU seconds of the process tree (driver, JVM, Python workers), medians: "
                          f"ours {x['ours_cpu_s']:.1f}, naive {x['naive_cpu_s']:.1f}, ratio {x['cpu_ratio']:.3f}")
    console.print("both sides: the default detectors without the learned ensemble (a fleet model cannot be trained "
                  "on one meter, so the naive UDF could not run it)")
    if "scaling_ours" in r:
        console.print(f"local[1] / local[2] time (medians): ours {r['scaling_ours']:.2f}x, naive {r['scaling_naive']:.2f}x "
                      f"({r['isolation']})")
    if "pods" in r:
        console.print("fleet --engine spark on PODs: " + ", ".join(f"{k} = {v}" for k, v in r["pods"].items()))


# The synthetic fleet `bench dashboard` and `bench report` build and time in Chromium.
_SYNTH = {"meters": typer.Option(1000, "--meters", help="Meters in the synthetic fleet."),
          "days": typer.Option(35.0, "--days"),
          "alerts": typer.Option(1000, "--alerts", help="Synthetic alerts kept in the store."),
          "cadence_s": typer.Option(900, "--cadence-s", help="Seconds between readings."),
          "workdir": typer.Option(Path("bench-out"), "--workdir")}


@bench_app.command("dashboard")
def bench_dashboard(
    meters: int = _SYNTH["meters"],
    days: float = _SYNTH["days"],
    alerts: int = _SYNTH["alerts"],
    cadence_s: int = _SYNTH["cadence_s"],
    workdir: Path = _SYNTH["workdir"],
    repeats: int = typer.Option(3, "--repeats", help="Browser sessions; medians reported."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Page load, fleet view and meter view times of the served dashboard in headless Chromium
    (1,000 meters x 35 days, plus one meter with a year of 1-minute readings)."""
    from wattwatch.dashboard.bench import dashboard_benchmark
    from wattwatch.dashboard.browser import CHROMIUM

    _browser_bench_checks(meters, alerts, days, cadence_s, repeats, CHROMIUM)
    with _errors():
        r = dashboard_benchmark(meters=meters, days=days, cadence_s=cadence_s, alerts=alerts, workdir=workdir,
                                repeats=repeats, log=_log)
    if as_json:
        print(_json(r))
        return
    table = Table("fleet", "page load s", "sign-in page ready s", "fleet after sign-in s", "fleet s (<= 2)", "meter s",
                  "1-year 1-min meter after sign-in s", title=f"bench dashboard ({r['machine']}; medians of {r['repeats']})")
    table.add_row(f"{r['meters']} x {r['days']:g} d, {r['alerts']} alerts", f"{r['median_load_s']:.2f}",
                  f"{r['median_sign_in_ready_s']:.2f}",
                  f"{r['median_fleet_after_sign_in_s']:.2f}", f"{r['median_fleet_s']:.2f}", f"{r['median_meter_s']:.2f}",
                  f"{r['median_year_meter_after_sign_in_s']:.2f}")
    _print_listing(table)
    console.print(f"meter query: a year of 1-min readings binned to {r['query_year_points']} points in "
                  f"{r['query_year_binned_s']:.2f} s; one day raw ({r['query_one_day_points']} readings) in "
                  f"{r['query_one_day_raw_s']:.2f} s")


def _browser_bench_checks(meters: int, alerts: int, days: float, cadence_s: int, repeats: int, chromium: str,
                          use: str = "") -> None:
    """The synthetic fleet's sizes of `bench dashboard|report`, and the Chromium they time in."""
    if meters < 1 or alerts < 1 or days <= 0 or cadence_s < 1 or repeats < 1:
        _fail("--meters, --alerts, --cadence-s and --repeats must be at least 1 and --days > 0")
    if not Path(chromium).exists():
        _fail(f"{chromium}: no Chromium{use} (install it: bash scripts/system-deps.sh)")


@bench_app.command("report")
def bench_report(
    meters: int = _SYNTH["meters"],
    days: float = _SYNTH["days"],
    alerts: int = _SYNTH["alerts"],
    cadence_s: int = _SYNTH["cadence_s"],
    workdir: Path = _SYNTH["workdir"],
    repeats: int = typer.Option(3, "--repeats", help="Page opens (alternated with the floor); medians reported."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Size and open time (headless Chromium) of the report of a synthetic fleet, against a floor
    page that only loads the same plotly.js and draws one figure."""
    from wattwatch.app.bench import CHROMIUM, report_benchmark

    _browser_bench_checks(meters, alerts, days, cadence_s, repeats, CHROMIUM, " to open the report in")
    with _errors():
        r = report_benchmark(meters=meters, days=days, alerts=alerts, cadence_s=cadence_s, workdir=workdir,
                             repeats=repeats, log=_log)
    if as_json:
        print(_json(r))
        return
    table = Table("fleet", "alerts", "MB (<= 2)", "open s (<= 2)", "one meter s", "floor s", "ratio",
                  title=f"bench report ({r['machine']})")
    table.add_row(f"{r['meters']} x {r['days']:g} d", str(r["alerts"]), f"{r['bytes'] / 1e6:.2f}", f"{r['open_s']:.2f}",
                  f"{r['meter_s']:.2f}", f"{r['floor_open_s']:.2f}", f"{r['ratio_to_floor']:.2f}")
    _print_listing(table)
    console.print(f"{r['sections']} meter sections; open s of each run (median above): "
                  f"{', '.join(f'{x:.2f}' for x in r['runs_open_s'])} (page clock, from navigation start; from "
                  f"Playwright's goto to the page built: {', '.join(f'{x:.2f}' for x in r['runs_wall_s'])}); report written in {r['write_s']:.1f} s; plotly.js is {r['plotly_bytes'] / 1e6:.2f} MB of the file; "
                  "floor = a page with the same plotly.js drawing one figure"
                  + (f"; console errors: {'; '.join(r['errors'])}" if r["errors"] else ""))


@bench_app.command("learned")
def bench_learned(
    rows: int = typer.Option(1_000_000, "--rows", help="Feature rows (5-min bins) to score."),
    repeats: int = typer.Option(1, "--repeats", help="Timed runs of each side, alternated; medians reported."),
    detectors: Optional[str] = typer.Option(None, "--detectors", help="Comma-separated learned detectors (default: all five)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rows/s of each learned detector against the library it wraps, same rows, same process."""
    from wattwatch.app.bench import learned_benchmark

    names = [d.strip() for d in detectors.split(",")] if detectors else None
    if rows < 1000 or repeats < 1 or seed < 0:
        _fail(f"--rows must be at least 1000, --repeats at least 1 and --seed >= 0, got {rows}, {repeats}, {seed}")
    if names:
        from wattwatch.app.bench import LEARNED_BASELINES

        unknown = [n for n in names if n not in LEARNED_BASELINES]
        if unknown:
            _fail(f"--detectors: no benchmark for {', '.join(unknown)}; choose from {', '.join(LEARNED_BASELINES)}")
    with _errors():
        r = learned_benchmark(rows=rows, seed=seed, repeats=repeats, detectors=names, log=_log)
    if as_json:
        print(_json(r))
        return
    table = Table("detector", "ours rows/s", "library", "library rows/s", "ratio (>= 0.9)", "rank corr.",
                  "scaling rows/s", "end to end rows/s", "model load s (pickle s)",
                  title=f"bench learned: {r['rows']:,} feature rows ({r['machine']})")
    for x in r["results"]:
        ok = "[green]" if x["ratio"] >= 0.9 else "[red]"
        table.add_row(x["detector"], f"{x['ours_rows_per_s']:,}", x["library"], f"{x['library_rows_per_s']:,}",
                      f"{ok}{x['ratio']:.2f}", f"{x['rank_correlation']:.2f}", f"{x['features_rows_per_s']:,}",
                      f"{x['end_to_end_rows_per_s']:,}", f"{x['load_s']:.3f} ({x['pickle_load_s']:.3f})")
    _print_listing(table)
    console.print("ratio = library time / our time on the same scaled feature rows (ours: model, calibration to "
                  "exceedance probability, placement on the grid); scaling = the feature stage (quantile map, "
                  "sequences) both sides need, timed apart; end to end = scaling + ours; "
                  "rank corr. = Spearman between the two scorings of the same rows; model load = the stored fleet "
                  "state read back and validated (no pickle), against pickle.loads of the same state")


# ----------------------------------------------------------------------------------------- nab

NAB_RECOMMENDED = "window_novelty"
NAB_DATA = typer.Option(None, "--data", help="NAB repository layout (data/, labels/, config/, results/). Default: "
                        "$WATTWATCH_NAB_DIR, else ../shared/data/nab from the working folder, else from the wattwatch checkout.")


def _nab_candidates() -> list[Path]:
    """Where the NAB corpus is looked for when --data is not given, in order."""
    if os.environ.get("WATTWATCH_NAB_DIR"):
        return [Path(os.environ["WATTWATCH_NAB_DIR"])]
    here = Path("../shared/data/nab")
    checkout = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "nab"
    return [here, Path(os.path.normpath(checkout))]


def _nab_data(data: Optional[Path]) -> Path:
    """--data, or the first default location that holds the corpus; an error that says where it
    looked and how to pass it otherwise."""
    if data is not None:
        return data
    places = _nab_candidates()
    for p in places:
        if (p / "labels").is_dir():
            return p
    where = ", ".join(str(p.resolve() if not p.is_absolute() else p) for p in places)
    _fail(f"no NAB corpus found (looked in {where}); give its folder with --data DIR or set WATTWATCH_NAB_DIR "
          "(the NAB repository layout: data/, labels/, config/)")
NAB_OUT = typer.Option(Path("nab-results"), "--out", help="Results folder (NAB layout).")


def _nab_corpus(data: Optional[Path]):
    from wattwatch.evaluate.nab.corpus import NabError, load_corpus

    data = _nab_data(data)
    try:
        return load_corpus(data)
    except NabError as exc:
        _fail(str(exc))


def _nab_run(detector: str, data: Path, out: Path, config: Optional[Path]) -> None:
    from wattwatch.detect.registry import build, load_config
    from wattwatch.evaluate.nab.runner import run

    corpus = _nab_corpus(data)
    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: exists and is not a folder")
    try:
        cfg = load_config(config) if config else {}
        det = build(detector, cfg.get(detector))
        with progress_bar("nab run", len(corpus.files)) as tick:
            run(det, corpus, out, log=lambda *_: tick(1))
    except (ValueError, TypeError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(_os_message(out, exc, "cannot write NAB results"))


@nab_app.command("run")
def nab_run(
    detector: str = typer.Option(NAB_RECOMMENDED, "--detector", help="Registered detector name (must be causal)."),
    data: Optional[Path] = NAB_DATA,
    out: Path = NAB_OUT,
    config: Optional[Path] = typer.Option(None, "--config", help="TOML with a section for the detector."),
) -> None:
    """Score every NAB data file with a detector (learns on the probationary 15 %, scores causally)."""
    _nab_run(detector, data, out, config)
    err_console.print(f"results -> {_term(str(out / detector))}")


@nab_app.command("score")
def nab_score(
    detector: Optional[str] = typer.Option(None, "--detector", help=f"Default: {NAB_RECOMMENDED} (run if needed)."),
    data: Optional[Path] = NAB_DATA,
    out: Path = NAB_OUT,
    as_json: bool = typer.Option(False, "--json", help="Print the normalised scores as JSON."),
) -> None:
    """NAB scores (standard, low-FP, low-FN) next to the published table."""
    from wattwatch.evaluate.nab.runner import score

    corpus = _nab_corpus(data)
    name = detector or NAB_RECOMMENDED
    if not (out / name).exists():
        if detector:
            _fail(f"{out / name}: no results; run `wattwatch nab run --detector {name}` first")
        _nab_run(name, data, out, None)
    try:
        summary = score(corpus, out, name)
        published = corpus.published()
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(_os_message(out, exc, "cannot read or write NAB results"))
    if as_json:
        short = {"reward_low_FP_rate": "reward_low_FP", "reward_low_FN_rate": "reward_low_FN"}
        print(_json({"detector": name, **{short.get(p, p): round(v["score"], 2) for p, v in summary.items()},
                          "raw": {p: round(v["raw"], 4) for p, v in summary.items()},
                          "thresholds": {p: v["threshold"] for p, v in summary.items()}}))
        return
    table = Table("detector", "standard", "reward_low_FP_rate", "reward_low_FN_rate",
                  title=f"NAB scores ({len(corpus.files)} files, {corpus.n_windows} windows)")
    rows = {f"wattwatch {name}": {p: v["score"] for p, v in summary.items()}, **published}
    for det, sc in sorted(rows.items(), key=lambda kv: -kv[1].get("standard", 0)):
        style = "bold green" if det.startswith("wattwatch") else None
        table.add_row(escape(_one_line(det)), *(f"{sc.get(p, float('nan')):.1f}" for p in
                             ("standard", "reward_low_FP_rate", "reward_low_FN_rate")), style=style)
    _print_listing(table)


# ------------------------------------------------------------------------------------ grid

grid_app = typer.Typer(no_args_is_help=True, context_settings=HELP,
                       help="Prosumer grid: neighbour watch, penalties and isolation (SPEC §5).")
app.add_typer(grid_app, name="grid")


def _broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        _fail(f"--broker {text!r}: expected HOST:PORT")
    return host, int(port)


def _grid_summary(alerts, isolations, extra: dict, as_json: bool, paths: dict) -> None:
    summary = {**extra, "alerts": len(alerts), "isolations": [
        {k: (str(v) if k == "ts" else v) for k, v in r.items()} for r in isolations], "out": paths}
    if as_json:
        print(_json(summary))
        return
    _print_listing(_summary_table(alerts, f"grid: {len(isolations)} isolation(s)"))
    for r in isolations:
        conv = r.get("redispatch_converged")
        tail = "" if conv is None else f"; re-dispatch {r.get('redispatch_method')} " + ("converged" if conv else "did NOT converge")
        console.print(f"isolated {_term(r['prosumer'])} at {r['ts']}: {r['signals']}/{r['watchers']} neighbours, "
                      f"penalty {r['penalty']:.3g}{tail}", highlight=False)
    if paths:
        console.print(f"{len(alerts)} alert(s) -> {_term(paths.get('alerts', ''))}; plots {_term(paths.get('plot', ''))}")


@grid_app.command("simulate")
def grid_simulate(
    case: Optional[str] = typer.Option(None, "--case", help="case5 (the paper's), case30, case118 or case300 "
                                       "(default: the scenario's; case5 for the built-in ones)."),
    scenario: str = typer.Option("paper", "--scenario", "-s", help="paper, accidental, persistent, fdi, or a scenario TOML."),
    out: Path = typer.Option(Path("grid-run"), "--out", "-o", help="Output folder (Parquet, alerts.jsonl, PNG)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    transport: str = typer.Option("inprocess", "--transport", help="inprocess (agents, default), mqtt (agents over a "
                                  "broker) or batch (vectorised)."),
    broker: str = typer.Option("127.0.0.1:1883", "--broker", help="MQTT broker HOST:PORT (with --transport mqtt)."),
    topic: str = typer.Option("wattwatch/grid", "--topic", help="MQTT topic prefix."),
    db: Optional[Path] = typer.Option(None, "--db", help="Store to keep the alerts in (`wattwatch alerts list`)."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Skip the PNG."),
    measurements: bool = typer.Option(False, "--measurements", help="Also write measurements.parquet, references.parquet "
                                      "and topology.toml (the inputs of `wattwatch grid monitor`)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Simulate prosumers on a pandapower case, watched by their neighbours.

    The reference comes from the OPF; neighbours probe each other from tie-line meters; penalties
    grow with the mismatch; the utility isolates and re-dispatches."""
    from wattwatch import api

    if out.exists() and not out.is_dir():
        _fail(f"{out}: exists and is not a folder (--out takes a folder)")
    with _errors():
        with stages("grid") as st:
            st.stage("simulating", None)
            run = api.grid_simulate(scenario, case=case, seed=seed, transport=transport,
                                    broker=_broker(broker) if transport == "mqtt" else None, topic=topic, out=out, db=db,
                                    plot=not no_plot, on_progress=st.advance, measurements=measurements)
    not_conv = [d for d in run.dispatches if not d["converged"]]
    for d in run.dispatches:
        if d["method"] != "ac-opf" and not d["note"].startswith("cached"):
            err_console.print(f"[yellow]note:[/yellow] {_term(d['why'])}: {_term(d['note'])}; reference from {d['method']}",
                              highlight=False, soft_wrap=True)
    for d in not_conv:
        err_console.print(f"[yellow]note:[/yellow] {_term(d['why'])}: operating point did NOT converge ({_term(d['note'])})",
                          highlight=False, soft_wrap=True)
    _grid_summary(run.alerts, run.isolations, {"case": run.meta["case"], "prosumers": run.meta["prosumers"],
                                                "intervals": run.meta["intervals"], "transport": transport,
                                                "seconds": round(run.seconds, 3), "stored": run.stored,
                                                "dispatches": run.dispatches}, as_json, run.paths)


@grid_app.command("monitor")
def grid_monitor(
    measurements: Path = typer.Argument(..., help="Tie-line flows: CSV/Parquet with ts, line, at, p_mw."),
    topology: Path = typer.Option(..., "--topology", "-t", help="Grid TOML: \\[\\[line]] id/from/to, \\[grid] slack, \\[watch]."),
    references: Path = typer.Option(..., "--references", "-r", help="Agreed references: CSV/Parquet with ts, prosumer, p_ref_mw."),
    out: Path = typer.Option(Path("grid-monitor"), "--out", "-o", help="Output folder."),
    db: Optional[Path] = typer.Option(None, "--db", help="Store to keep the alerts in."),
    no_plot: bool = typer.Option(False, "--no-plot", help="Skip the PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Watch prosumers from your own tie-line measurements and agreed references."""
    from wattwatch import api

    if out.exists() and not out.is_dir():
        _fail(f"{out}: exists and is not a folder (--out takes a folder)")
    with _errors():
        res = api.grid_monitor(measurements, topology=topology, references=references, out=out, db=db, plot=not no_plot)
    for n in res.notices:
        err_console.print(f"[yellow]note:[/yellow] {_term(n)}", highlight=False, soft_wrap=True)
    _grid_summary(res.alerts, res.isolations, {"prosumers": int(res.intervals["prosumer"].nunique()) if len(res.intervals) else 0,
                                               "stored": res.stored, "notices": res.notices}, as_json, res.paths)


from wattwatch.app import quality as _quality  # noqa: E402,F401 - registers bench quality(-real), nab folds
from wattwatch.app import edgecli as _edgecli  # noqa: E402

_edgecli.register(app, bench_app)  # edge, bench edge


def main() -> None:
    from wattwatch.sigterm import EXIT_CODE, Terminated

    try:
        app()
    except Terminated:   # (b3) a SIGTERM a command's own message did not take
        sys.exit(EXIT_CODE)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    # `python -m wattwatch.app.cli`: this file runs as `__main__`, a second copy of the module, and the
    # commands other modules register on import (bench quality, edge, nab folds) are on the imported
    # copy, `wattwatch.app.cli`; run that one ("No such command 'quality'" before).
    from wattwatch.app import cli as _cli

    _cli.main()
