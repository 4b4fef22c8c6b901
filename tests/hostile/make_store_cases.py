"""Generate the hostile store corpus: ``tests/hostile/corpus/store/<case>/`` (see README.md here).

Run from the repository root: ``.venv/bin/python tests/hostile/make_store_cases.py``. The output
is deterministic and committed. DuckDB files are written with 16 KB blocks (DuckDB's smallest) so
that each stays at a few tens of KB (mostly zeros; git stores each in about a KB).

Cases whose refusal lives in a command that still has to call the store's check
(``--rejects`` equal to the store or an input: :func:`wattwatch.store.duck.check_paths` from
``run_ingest`` in ``app/cli.py``) are written only once ``app/cli.py`` calls it.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "hostile" / "corpus" / "store"
sys.path.insert(0, str(ROOT / "src"))

from wattwatch.store import Store  # noqa: E402

T = "2025-01-01T{:02d}:{:02d}:00Z"


def good_rows(meters=("M1", "M2"), hours=3, skip_hour=None, only_hour=None) -> tuple[str, int, float]:
    """A 5-minute CSV with a cumulative register in quarter kWh (exact sums): text, rows, energy."""
    lines, n, energy = ["meter_id,ts,p_kw,v_l1_v,e_kwh"], 0, 0.0
    for k, m in enumerate(meters):
        e, first = 100.0 * (k + 1), None
        for i in range(hours * 12):
            h, mi = divmod(i * 5, 60)
            e += 0.25 * ((i * (k + 3)) % 4)
            keep = (skip_hour is None or h != skip_hour) and (only_hour is None or h == only_hour)
            if keep:
                lines.append(f"{m},{T.format(h, mi)},{1 + (i % 5) * 0.5},230.0,{e}")
                n += 1
            first = e if first is None else first
        energy += e - first
    return "\n".join(lines) + "\n", n, energy


GOOD, GOOD_N, GOOD_E = good_rows()
BAD = GOOD + "M1,2025-01-01T05:00:00Z,abc,230.0,200.0\n"


def duck(path: Path, statements: list[str]) -> None:
    """A small DuckDB file (16 KB blocks) holding what ``statements`` make."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{path}' AS f (BLOCK_SIZE 16384)")
    con.execute("USE f")
    for s in statements:
        con.execute(s)
    con.execute("CHECKPOINT f")
    con.close()


def store_file(path: Path, statements: list[str] = (), rows: str | None = GOOD, compact_as_of: str | None = None) -> None:
    """A real wattwatch store (16 KB blocks), optionally compacted, then altered by ``statements``."""
    duck(path, [])
    from wattwatch.ingest.pipeline import ingest_path

    with Store(path) as s:
        if rows:
            src = path.with_suffix(".src.csv")
            src.write_text(rows)
            ingest_path(s, src)
            src.unlink()
        if compact_as_of:
            s.compact(older_than_days=0, as_of=compact_as_of)
        s.con.execute("CHECKPOINT")
    # Slim: alert and state tables are created again by a writable open; stores made before
    # them had none. Re-written into a fresh file so that freed blocks do not stay in it.
    con = duckdb.connect(str(path))
    for t in ("alerts", "fleet_models", "meter_state", "rule_resets", "ingest_log"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    for st in statements:
        con.execute(st)
    con.close()
    slim = path.with_suffix(".slim")
    con = duckdb.connect()
    con.execute(f"ATTACH '{path}' AS src (READ_ONLY)")
    con.execute(f"ATTACH '{slim}' AS dst (BLOCK_SIZE 16384)")
    con.execute("COPY FROM DATABASE src TO dst")
    con.execute("CHECKPOINT dst")
    con.close()
    slim.replace(path)
    wal = Path(str(path) + ".wal")
    if wal.exists():
        wal.unlink()


def toml(value) -> str:
    return json.dumps(value)


CASES: list[tuple[str, dict, dict]] = []  # (name, spec, files: name -> str | bytes | callable(path))


def case(name: str, files: dict | None = None, **spec) -> None:
    CASES.append((name, spec, files or {}))


STORE_CMDS = {
    "ingest": lambda db: ["ingest", "{case}/good.csv", "--db", db, "--rejects", "{tmp}/rejects.csv"],
    "info": lambda db: ["store", "info", "--db", db],
    "info_json": lambda db: ["store", "info", "--db", db, "--json"],
    "compact": lambda db: ["store", "compact", "--db", db, "--older-than-days", "0", "--as-of", "2025-02-01"],
}


def hostile_db(stem: str, about: str, make, stderr: list[str], cmds=("ingest", "info", "compact"), extra=None):
    """One case per store command against a hostile --db file made by ``make(path)``."""
    for cmd in cmds:
        files = {"good.csv": GOOD, "db.duckdb": make}
        files.update(extra or {})
        case(f"{stem}_{cmd}", files, about=f"{about} ({cmd})", args=STORE_CMDS[cmd]("{case}/db.duckdb"),
             exit="nonzero", stderr=["db.duckdb", *stderr], unchanged=["{case}/db.duckdb"])


# ------------------------------------------------------------------ foreign DuckDB files

hostile_db("foreign_table", "a DuckDB file of another application is not a wattwatch store",
           lambda p: duck(p, ["CREATE TABLE sales (id INTEGER, amount DOUBLE)", "INSERT INTO sales VALUES (1, 2.5)"]),
           ["not a wattwatch store"], cmds=("ingest", "info", "info_json", "compact"))
hostile_db("foreign_readings_raw", "a foreign file with a table named like wattwatch's, no meta",
           lambda p: duck(p, ["CREATE TABLE readings_raw (sid INTEGER, ts TIMESTAMPTZ)"]),
           ["not a wattwatch store"])
hostile_db("foreign_view_only", "a foreign file holding only a view",
           lambda p: duck(p, ["CREATE VIEW v AS SELECT 42 AS answer"]), ["not a wattwatch store"])
hostile_db("foreign_many_tables", "a foreign file with many tables (the message lists a few)",
           lambda p: duck(p, [f"CREATE TABLE t{i} (x INTEGER)" for i in range(12)]), ["not a wattwatch store"],
           cmds=("ingest", "info"))
hostile_db("foreign_meta_other_shape", "a foreign table named meta with other columns",
           lambda p: duck(p, ["CREATE TABLE meta (k INTEGER, v INTEGER)", "INSERT INTO meta VALUES (1, 2)"]),
           ["meta"])
hostile_db("foreign_meta_no_version", "a meta(key, value) table without a schema_version row",
           lambda p: duck(p, ["CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
                              "INSERT INTO meta VALUES ('owner', 'someone else')"]), ["schema_version"])

# ------------------------------------------------------------------ damaged wattwatch stores

# The tables the version check reads (a whole store only adds size: the check comes first).
META = ["CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        "INSERT INTO meta VALUES ('schema_version', '1'), ('store_version', '2')",
        "CREATE TABLE readings_raw (sid INTEGER NOT NULL, ts TIMESTAMPTZ NOT NULL, p_kw DOUBLE)"]

for stem, stmts, want in [
    ("version_999", ["UPDATE meta SET value = '999' WHERE key = 'schema_version'"], ["schema version 999"]),
    ("version_text", ["UPDATE meta SET value = 'abc' WHERE key = 'schema_version'"], ["schema_version", "abc"]),
    ("version_empty", ["UPDATE meta SET value = '' WHERE key = 'schema_version'"], ["schema_version"]),
    ("version_float", ["UPDATE meta SET value = '1.0' WHERE key = 'schema_version'"], ["schema_version"]),
    ("version_null", ["UPDATE meta SET value = NULL WHERE key = 'schema_version'"], ["schema_version"]),
    ("version_negative", ["UPDATE meta SET value = '-1' WHERE key = 'schema_version'"], ["schema version -1"]),
    ("layout_newer", ["UPDATE meta SET value = '7' WHERE key = 'store_version'"], ["layout version 7"]),
    ("layout_text", ["UPDATE meta SET value = 'x' WHERE key = 'store_version'"], ["store_version"]),
    ("meta_empty", ["DELETE FROM meta"], ["no schema_version"]),
]:
    hostile_db(stem, f"a wattwatch store whose meta table is damaged: {stmts[0]}",
               lambda p, st=stmts: duck(p, [*META, *st]), want, cmds=("ingest", "info"))

hostile_db("tables_dropped", "a wattwatch store whose readings tables were dropped (read-only commands refuse)",
           lambda p: store_file(p, ["DROP VIEW readings", "DROP TABLE readings_raw", "DROP TABLE meters"]),
           ["missing"], cmds=("info",))


def _truncate(share: float):
    def make(p: Path):
        store_file(p)
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * share)])
    return make


def _flip(p: Path):
    store_file(p)
    data = bytearray(p.read_bytes())
    rng = random.Random(5)
    for i in range(4096, len(data), 97):
        data[i] ^= rng.randrange(1, 256)
    p.write_bytes(bytes(data))


hostile_db("truncated_header", "a store cut after its first 4 KB", lambda p: (_truncate(1.0)(p), p.write_bytes(p.read_bytes()[:4096])),
           ["cannot"])
hostile_db("truncated_half", "a store cut in half", _truncate(0.5), ["store"], cmds=("info",))
hostile_db("text_named_duckdb", "a CSV file named .duckdb", lambda p: p.write_text(GOOD), ["cannot open store"],
           cmds=("ingest", "info", "info_json", "compact"))
hostile_db("zero_bytes", "an empty (0-byte) file named .duckdb", lambda p: p.write_bytes(b""), ["cannot open store"])
hostile_db("random_bytes", "8 KB of random bytes named .duckdb",
           lambda p: p.write_bytes(random.Random(1).randbytes(8192)), ["cannot open store"])
hostile_db("sqlite_named_duckdb", "a SQLite database named .duckdb",
           lambda p: p.write_bytes(b"SQLite format 3\x00" + bytes(4080)), ["cannot open store"], cmds=("ingest", "info"))


def _flipped_case(cmd: str) -> None:
    # Damage in data blocks may only show when a query reads them: any outcome but a traceback.
    case(f"flipped_blocks_{cmd}", {"good.csv": GOOD, "db.duckdb": _flip},
         about=f"a store with bytes flipped after its header ({cmd}): a clear error or a result, never a traceback",
         args=STORE_CMDS[cmd]("{case}/db.duckdb"), exit="nonzero", stderr=["db.duckdb"])


_flipped_case("info")

# ------------------------------------------------------------------ paths that are not store files

case("db_is_folder_ingest", {"good.csv": GOOD, "d.duckdb/keep.txt": "a folder named like a store\n"},
     about="--db names a folder", args=STORE_CMDS["ingest"]("{case}/d.duckdb"), exit="nonzero", stderr=["folder"])
case("db_is_folder_info", {"d.duckdb/keep.txt": "x\n"}, about="store info on a folder", args=STORE_CMDS["info"]("{case}/d.duckdb"),
     exit="nonzero", stderr=["d.duckdb"])
case("db_is_folder_compact", {"d.duckdb/keep.txt": "x\n"}, about="store compact on a folder",
     args=STORE_CMDS["compact"]("{case}/d.duckdb"), exit="nonzero", stderr=["d.duckdb"])
case("db_is_the_input", {"good.csv": GOOD}, about="--db names the input CSV itself: refused, the CSV untouched",
     args=["ingest", "{case}/good.csv", "--db", "{case}/good.csv"], exit="nonzero", stderr=["good.csv"],
     unchanged=["{case}/good.csv"])
case("db_parent_missing", {"good.csv": GOOD}, about="--db in a folder that does not exist",
     args=["ingest", "{case}/good.csv", "--db", "{tmp}/no/such/dir/s.duckdb"], exit="nonzero", stderr=["s.duckdb"],
     absent=["{tmp}/no"])
case("info_missing", {}, about="store info on a missing path does not create it",
     args=["store", "info", "--db", "{tmp}/s.duckdb"], exit="nonzero", stderr=["no such store"], absent=["{tmp}/s.duckdb"])
case("info_missing_json", {}, about="store info --json on a missing path does not create it",
     args=["store", "info", "--db", "{tmp}/s.duckdb", "--json"], exit="nonzero", stderr=["no such store"],
     absent=["{tmp}/s.duckdb"])
case("compact_missing", {}, about="store compact on a missing path does not create it",
     args=["store", "compact", "--db", "{tmp}/s.duckdb"], exit="nonzero", stderr=["no such store"],
     absent=["{tmp}/s.duckdb"])

# ------------------------------------------------------------------ compact arguments

SETUP = [["ingest", "{case}/good.csv", "--db", "{tmp}/s.duckdb"]]


def compact_case(name: str, args: list[str], about: str, exit=0, stored=None, stderr=(), stdout=()):
    spec = dict(about=about, setup=SETUP, args=["store", "compact", "--db", "{tmp}/s.duckdb", *args], exit=exit)
    if stored is not None:
        spec["stored"] = stored
    if stderr:
        spec["stderr"] = list(stderr)
    if stdout:
        spec["stdout"] = list(stdout)
    case(name, {"good.csv": GOOD}, **spec)


compact_case("compact_age_1e10", ["--older-than-days", "1e10"], "an age beyond the calendar compacts nothing", stored=GOOD_N)
compact_case("compact_age_1e308", ["--older-than-days", "1e308"], "an age of 1e308 days compacts nothing", stored=GOOD_N)
compact_case("compact_age_negative", ["--older-than-days", "-1"], "a negative age is refused", exit="nonzero",
             stored=GOOD_N, stderr=["older-than-days"])
compact_case("compact_age_nan", ["--older-than-days", "nan"], "a NaN age is refused", exit="nonzero", stored=GOOD_N,
             stderr=["older-than-days"])
compact_case("compact_age_inf", ["--older-than-days", "inf"], "an infinite age is refused", exit="nonzero",
             stored=GOOD_N, stderr=["older-than-days"])
compact_case("compact_age_minus_inf", ["--older-than-days", "-inf"], "-inf is refused", exit="nonzero",
             stored=GOOD_N, stderr=["older-than-days"])
compact_case("compact_age_text", ["--older-than-days", "ten"], "a word for an age is refused", exit="nonzero",
             stored=GOOD_N, stderr=["older-than-days"])
compact_case("compact_as_of_year_1", ["--as-of", "0001-01-01"], "as-of year 1 minus 30 days: nothing to compact",
             stored=GOOD_N)
compact_case("compact_as_of_year_1_age_0", ["--older-than-days", "0", "--as-of", "0001-01-01T00:00:00Z"],
             "as-of year 1: nothing to compact", stored=GOOD_N)
compact_case("compact_as_of_9999", ["--older-than-days", "0", "--as-of", "9999-12-31T00:00:00Z"],
             "as-of 9999-12-31: everything compacted, energy kept", stored=0)
compact_case("compact_as_of_9999_end", ["--older-than-days", "0", "--as-of", "9999-12-31T23:59:59.999999Z"],
             "as-of the last microsecond of 9999", stored=0)
compact_case("compact_as_of_garbage", ["--as-of", "garbage"], "an unreadable --as-of is refused", exit="nonzero",
             stored=GOOD_N, stderr=["as-of", "garbage"])
compact_case("compact_as_of_bad_month", ["--as-of", "2025-13-45"], "a month 13 is refused", exit="nonzero",
             stored=GOOD_N, stderr=["as-of"])
compact_case("compact_as_of_sql", ["--as-of", "2025-01-01'; DROP TABLE readings_raw; --"],
             "SQL in --as-of is a bad time, nothing dropped", exit="nonzero", stored=GOOD_N, stderr=["as-of"])
compact_case("compact_as_of_offset", ["--older-than-days", "0", "--as-of", "2025-01-01T02:00:00+14:00"],
             "an --as-of with a +14:00 offset is before the data (12:00 the day before UTC)", stored=GOOD_N)
compact_case("compact_as_of_naive", ["--older-than-days", "0", "--as-of", "2025-01-01T02:00:00"],
             "a naive --as-of is UTC: the first two hours compacted", stored=GOOD_N - 2 * 24)
compact_case("compact_as_of_mid_hour", ["--older-than-days", "0", "--as-of", "2025-01-01T01:30:00Z"],
             "the cutoff is floored to the hour", stored=GOOD_N - 24)
compact_case("compact_fractional_age", ["--older-than-days", "0.04", "--as-of", "2025-01-01T03:00:00Z"],
             "a fractional age (57.6 minutes: cutoff 02:02 floored to 02:00)", stored=GOOD_N - 2 * 24)
compact_case("compact_json", ["--older-than-days", "0", "--as-of", "2025-01-01T01:00:00Z", "--json"],
             "compact --json", stored=GOOD_N - 24, stdout=['"readings_compacted": 24'])

# ------------------------------------------------------------------ energy and counts across compaction

CUT = ["store", "compact", "--db", "{tmp}/s.duckdb", "--older-than-days", "0", "--as-of", "2025-01-01T02:00:00Z"]
total = f'"total": {json.dumps(round(GOOD_E, 6))}'
case("reingest_after_compaction", {"good.csv": GOOD}, about="re-ingest after compaction adds nothing (issue 12 #2)",
     setup=[*SETUP, CUT], args=["ingest", "{case}/good.csv", "--db", "{tmp}/s.duckdb", "--json"], exit=0,
     stored=GOOD_N - 2 * 24, stdout=['"stored": 0'])
case("reingest_after_compaction_energy", {"good.csv": GOOD},
     about="energy after re-ingest and a second compaction equals the file's", setup=[*SETUP, CUT, SETUP[0], CUT],
     args=["store", "info", "--db", "{tmp}/s.duckdb", "--json"], exit=0, stored=GOOD_N - 2 * 24, stdout=[total])
part, n_part, _ = good_rows(skip_hour=0)
late, n_late, _ = good_rows(only_hour=0)
case("late_hour_after_compaction", {"part.csv": part, "late.csv": late, "good.csv": GOOD},
     about="a late hour after its neighbours were compacted keeps energy (issue 12 #1)",
     setup=[["ingest", "{case}/part.csv", "--db", "{tmp}/s.duckdb"], CUT,
            ["ingest", "{case}/late.csv", "--db", "{tmp}/s.duckdb"], CUT],
     args=["store", "info", "--db", "{tmp}/s.duckdb", "--json"], exit=0, stored=GOOD_N - 2 * 24, stdout=[total])
case("late_hour_before_compaction", {"part.csv": part, "late.csv": late},
     about="a late hour into compacted ones, energy before the next compaction",
     setup=[["ingest", "{case}/part.csv", "--db", "{tmp}/s.duckdb"], CUT,
            ["ingest", "{case}/late.csv", "--db", "{tmp}/s.duckdb"]],
     args=["store", "info", "--db", "{tmp}/s.duckdb", "--json"], exit=0, stdout=[total])
case("late_reingest_count", {"part.csv": part, "late.csv": late},
     about="the late hour ingested twice around a compaction: its readings counted once",
     setup=[["ingest", "{case}/part.csv", "--db", "{tmp}/s.duckdb"], CUT,
            ["ingest", "{case}/late.csv", "--db", "{tmp}/s.duckdb"], CUT],
     args=["ingest", "{case}/late.csv", "--db", "{tmp}/s.duckdb", "--json"], exit=0, stdout=['"stored": 0'])
case("info_energy", {"good.csv": GOOD}, about="store info --json reports the register energy in total",
     setup=SETUP, args=["store", "info", "--db", "{tmp}/s.duckdb", "--json"], exit=0, stored=GOOD_N,
     stdout=[total, '"M1"', '"M2"'])
case("info_energy_compacted_all", {"good.csv": GOOD}, about="energy after compacting everything",
     setup=[*SETUP, ["store", "compact", "--db", "{tmp}/s.duckdb", "--older-than-days", "0", "--as-of", "9999-01-01"]],
     args=["store", "info", "--db", "{tmp}/s.duckdb", "--json"], exit=0, stored=0, stdout=[total])
case("info_table", {"good.csv": GOOD}, about="store info as a table shows the energy", setup=SETUP,
     args=["store", "info", "--db", "{tmp}/s.duckdb"], exit=0, stdout=["energy_kwh", "M1"])
case("compact_twice", {"good.csv": GOOD}, about="compacting twice with the same reference changes nothing",
     setup=[*SETUP, CUT], args=[*CUT, "--json"], exit=0, stored=GOOD_N - 2 * 24, stdout=['"readings_compacted": 0'])


def _layout1(p: Path):
    store_file(p, ["ALTER TABLE readings_hourly DROP COLUMN ts_list", "ALTER TABLE readings_hourly DROP COLUMN e_list",
                   "DELETE FROM meta WHERE key = 'store_version'"], compact_as_of="2025-01-01T02:00:00Z")


case("layout1_info", {"old.duckdb": _layout1}, about="a store of the previous layout opens read-only with its energy",
     args=["store", "info", "--db", "{case}/old.duckdb", "--json"], exit=0, stdout=[total])
case("layout1_reingest", {"old.duckdb": _layout1, "good.csv": GOOD},
     about="re-ingest into a store of the previous layout (migrated) adds nothing",
     args=["ingest", "{case}/good.csv", "--db", "{case}/old.duckdb", "--json"], exit=0, stdout=['"stored": 0'])

# ------------------------------------------------------------------ other commands on hostile stores

FOREIGN = lambda p: duck(p, ["CREATE TABLE sales (id INTEGER)"])  # noqa: E731
for name, args in [
    ("foreign_detect", ["detect", "{case}/db.duckdb", "--out", "{tmp}/a.jsonl"]),
    ("foreign_state_list", ["state", "list", "--db", "{case}/db.duckdb"]),
    ("foreign_alerts_list", ["alerts", "list", "--db", "{case}/db.duckdb"]),
]:
    case(name, {"db.duckdb": FOREIGN}, about=f"{args[0]} on a foreign DuckDB file", args=args, exit="nonzero",
         stderr=["not a wattwatch store"], unchanged=["{case}/db.duckdb"])

# ------------------------------------------------------------------ --rejects onto the store or an input

PENDING = []
for name, files, args, about in [
    ("rejects_is_store", {"bad.csv": BAD},
     ["ingest", "{case}/bad.csv", "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}/s.duckdb"], "--rejects = --db"),
    ("rejects_is_input", {"bad.csv": BAD},
     ["ingest", "{case}/bad.csv", "--db", "{tmp}/s.duckdb", "--rejects", "{case}/bad.csv"], "--rejects = the input"),
    ("rejects_is_store_dotted", {"bad.csv": BAD},
     ["ingest", "{case}/bad.csv", "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}/./s.duckdb"], "--rejects = ./--db"),
    ("rejects_is_file_in_input_folder", {"in/bad.csv": BAD},
     ["ingest", "{case}/in", "--db", "{tmp}/s.duckdb", "--rejects", "{case}/in/bad.csv"], "--rejects = a file of the folder"),
]:
    PENDING.append(name)
    case(name, files, about=f"{about}: refused, nothing written", args=args, exit="nonzero", stderr=["--rejects"],
         unchanged=[a for a in args if a.startswith("{case}/") and a.endswith(".csv")])
case("rejects_is_existing_store", {"bad.csv": BAD, "good.csv": GOOD},
     about="--rejects = an existing store: refused, the store keeps its readings",
     setup=SETUP, args=["ingest", "{case}/bad.csv", "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}/s.duckdb"],
     exit="nonzero", stderr=["--rejects"], stored=GOOD_N)
PENDING.append("rejects_is_existing_store")


def main() -> None:
    wired = "check_paths" in (ROOT / "src" / "wattwatch" / "app" / "cli.py").read_text()
    if OUT.exists():
        shutil.rmtree(OUT)
    written = 0
    for name, spec, files in CASES:
        if name in PENDING and not wired:
            continue
        d = OUT / name
        d.mkdir(parents=True)
        for fname, content in files.items():
            p = d / fname
            p.parent.mkdir(parents=True, exist_ok=True)
            if callable(content):
                content(p)
            elif isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
        lines = [f"about = {toml(spec.pop('about'))}"]
        for key in ("setup", "args", "exit", "stderr", "stdout", "stored", "rejects", "unchanged", "absent"):
            if key in spec:
                lines.append(f"{key} = {toml(spec[key])}")
        (d / "case.toml").write_text("\n".join(lines) + "\n")
        written += 1
    print(f"{written} cases in {OUT}" + ("" if wired else f" ({len(PENDING)} --rejects cases wait for run_ingest "
                                                          "to call wattwatch.store.duck.check_paths)"))


if __name__ == "__main__":
    main()
