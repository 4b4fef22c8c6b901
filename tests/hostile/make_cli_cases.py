"""Write the hostile-input cases of the command line, events files, model folders and NAB corpora
(``corpus/cli``, ``corpus/events``, ``corpus/models``, ``corpus/nab``; format: README.md here).

    python tests/hostile/make_cli_cases.py      # rewrites those four folders

Every case is small (a few hundred bytes of telemetry at most) and runs in well under a second;
none writes outside its ``{tmp}`` folder. Model manifests are written with this version's model
format, schema and feature names, so that each case reaches the check it is about."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

HERE = Path(__file__).parent / "corpus"
AREAS = ("cli", "events", "models", "nab")

TELEMETRY = ("meter_id,ts,v_l1_v,i_l1_a,i_n_a,p_kw,e_kwh\n" + "".join(
    f"{m},2025-01-06T{h:02d}:00:00Z,230,2.0,2.0,0.45,{100 + 0.45 * h:.2f}\n" for m in ("M1", "M2") for h in range(6)))
OUTAGE = ("meter_id,ts,v_l1_v,i_l1_a,i_n_a,p_kw,e_kwh\n" + "".join(
    f"M1,2025-01-06T{h:02d}:00:00Z,{0 if 4 <= h < 8 else 230},{0 if 4 <= h < 8 else 2.0},"
    f"{0 if 4 <= h < 8 else 2.0},{0 if 4 <= h < 8 else 0.45},{100 + 0.45 * min(h, 4) + 0.45 * max(0, h - 8):.2f}\n"
    for h in range(14)))
# A file with a rejects line: line 3's -5 V is dropped (fld46: its reading is kept, 3 readings stored).
REJECTS = ("meter_id,ts,v_l1_v,i_l1_a,p_kw\nM1,2025-01-06T00:00:00Z,230,1,0.2\nM1,2025-01-06T00:05:00Z,-5,1,0.2\n"
           "M1,2025-01-06T00:10:00Z,231,1,0.2\n")
MARKUP = ("meter_id,ts,v_l1_v,i_l1_a,i_n_a,p_kw\n" + "".join(
    f'"{m}",2025-01-06T{h:02d}:00:00Z,230,2.0,2.0,0.45\n' for m in ("[/bold]M1", "[red]M2", "M3[/]") for h in range(4)))
INGEST = ["ingest", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}/r.csv"]
GOOD_EVENT = {"meter_id": "M1", "type": "open_ct", "start": "2025-01-06T01:00:00Z", "end": "2025-01-06T03:00:00Z"}
ALERT = {"meter_id": "M1", "start": "2025-01-06T01:00:00Z", "end": "2025-01-06T02:00:00Z", "code": "SENSOR_FAULT",
         "severity": "warning", "score": 1.2, "detector": "sensor_fault", "message": "m"}

CASES: dict[str, dict] = {}


def case(area: str, name: str, about: str, args: list, *, exit=2, stderr=(), stdout=(), setup=(), files=None,
         **extra) -> None:
    assert area in AREAS and f"{area}/{name}" not in CASES, name
    spec = {"about": about, "setup": [list(s) for s in setup], "args": list(args), "exit": exit,
            "stderr": list(stderr), "stdout": list(stdout), **extra}
    CASES[f"{area}/{name}"] = {"spec": spec, "files": files or {}}


def _toml(spec: dict) -> str:
    def v(x):
        if isinstance(x, str):
            return json.dumps(x)
        if isinstance(x, bool):
            return "true" if x else "false"
        if isinstance(x, (int, float)):
            return repr(x)
        return "[" + ", ".join(v(y) for y in x) + "]"

    return "".join(f"{k} = {v(x)}\n" for k, x in spec.items())


# ----------------------------------------------------------------------------------- simulate

for name, args, words in [
    ("step_zero", ["--step", "0s"], ["between 1 s and 1 day"]),
    ("step_negative", ["--step", "-5min"], ["between 1 s and 1 day"]),
    ("step_nanosecond", ["--step", "1ns"], ["between 1 s and 1 day"]),
    ("step_two_days", ["--step", "2D"], ["between 1 s and 1 day"]),
    ("step_not_a_duration", ["--step", "often"], ["not a duration"]),
    ("step_empty", ["--step", ""], ["step"]),
    ("start_garbage", ["--start", "garbage"], ["start", "not a time"]),
    ("start_year_9999", ["--start", "9999-12-31T00:00:00Z"], ["start", "between"]),
    ("start_year_1", ["--start", "0001-01-01"], ["start", "between"]),
    ("start_empty", ["--start", ""], ["start"]),
    ("start_nat", ["--start", "NaT"], ["start", "not a time"]),
    ("days_huge", ["--days", "1e12"], ["between"]),
    ("days_infinite", ["--days", "inf"], ["days"]),
    ("seed_negative", ["--seed", "-1"], ["seed"]),
    ("faults_unknown", ["--faults", "nope"], ["unknown fault"]),
    ("format_unknown", ["--format", "xml"], ["--format"]),
    ("fault_share_above_one", ["--fault-share", "2"], ["fault-share"]),
    ("meters_zero", ["--meters", "0"], ["meters"]),
]:
    case("cli", f"simulate_{name}", f"simulate {' '.join(args)}",
         ["simulate", "{tmp}/f", "--meters", "1", "--days", "1", *[a for a in args if a != "--meters"]]
         if name != "meters_zero" else ["simulate", "{tmp}/f", "--meters", "0", "--days", "1"],
         stderr=words, absent=["{tmp}/f"])
case("cli", "simulate_out_is_a_file", "simulate into a path that is a file", ["simulate", "{case}/t.csv", "--meters",
     "1", "--days", "1"], stderr=["not a folder"], files={"t.csv": TELEMETRY}, unchanged=["{case}/t.csv"])
case("cli", "simulate_out_under_a_file", "simulate into a folder under a file",
     ["simulate", "{case}/t.csv/sub", "--meters", "1", "--days", "1"], stderr=["cannot write"], files={"t.csv": TELEMETRY})
case("cli", "simulate_day_step_finishes", "a 1-day step (looped forever placing intermittent faults)",
     ["simulate", "{tmp}/f", "--meters", "1", "--days", "2", "--step", "1D", "--format", "csv"], exit=0)
case("cli", "simulate_eight_hour_step", "an 8-hour step", ["simulate", "{tmp}/f", "--meters", "1", "--days", "2",
     "--step", "8h", "--format", "csv"], exit=0)

# ------------------------------------------------------------------------------------- ingest

case("cli", "ingest_missing_file", "ingest a file that does not exist (no store is created)",
     ["ingest", "{tmp}/nope.csv", "--db", "{tmp}/s.duckdb"], exit=1, stderr=["nope.csv", "no such file"],
     absent=["{tmp}/s.duckdb"])
case("cli", "ingest_db_is_a_folder", "--db names a folder", ["ingest", "{case}/t.csv", "--db", "{tmp}"],
     exit="nonzero", stderr=["folder"], files={"t.csv": TELEMETRY})
case("cli", "ingest_db_with_markup", "a --db path holding Rich markup ([/b]) crashed after the commit",
     ["ingest", "{case}/t.csv", "--db", "{tmp}/[/b]s.duckdb", "--rejects", "{tmp}/r.csv"], exit=0,
     setup=[["simulate", "{tmp}/[", "--meters", "1", "--days", "0.1", "--step", "1h", "--format", "csv"]],
     files={"t.csv": TELEMETRY})
case("cli", "ingest_file_name_with_markup", "a file name holding Rich markup",
     ["ingest", "{case}/[red]x[bold].csv", "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}/r.csv"], exit=0,
     stored=12, files={"[red]x[bold].csv": TELEMETRY})
case("cli", "ingest_meter_ids_with_markup", "meter ids holding Rich markup are stored as they are",
     ["ingest", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}/r.csv"], exit=0, stored=12,
     files={"t.csv": MARKUP})
# A full disk (/dev/full) is tried in tests/app/test_hostile_cli.py, skipped where there is none.
case("cli", "ingest_rejects_is_a_folder", "rejects cannot be written (a folder): say so, keep the readings",
     ["ingest", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}"], exit=1,
     stderr=["cannot write the rejected rows", "were stored and are kept"], stored=3, files={"t.csv": REJECTS})
case("cli", "ingest_rejects_under_a_file", "rejects under a file: say so, keep the readings",
     ["ingest", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--rejects", "{case}/t.csv/r.csv"], exit=1,
     stderr=["cannot write the rejected rows", "were stored and are kept"], stored=3, files={"t.csv": REJECTS},
     unchanged=["{case}/t.csv"])
case("cli", "detect_outage_alerts_written", "the outage fleet used by the full-disk test gives an alert",
     ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl", "--detectors", "supply_outage", "--json"], exit=0,
     stdout=['"alerts": 1'], setup=[INGEST], files={"t.csv": OUTAGE})

# ---------------------------------------------------------------------- store must exist (14)

for cmd in (["alerts", "list"], ["alerts", "list", "--json"], ["alerts", "list", "--status", "all"],
            ["alerts", "ack", "abc"], ["alerts", "clear", "abc"], ["state", "list"], ["state", "list", "--json"],
            ["state", "show", "M1"], ["state", "drop", "M1"], ["detect", "--out", "{tmp}/a.jsonl"], ["fit"],
            ["train", "--out", "{tmp}/models"]):
    case("cli", "typo_db_" + "_".join(c.strip("-") for c in cmd[:2] if not c.startswith("{")).replace("-", "_")
         + ("_json" if "--json" in cmd else "") + ("_all" if "all" in cmd else ""),
         f"a typo'd --db for `{' '.join(cmd)}` must not create an empty store", [*cmd, "--db", "{tmp}/typo.duckdb"],
         exit="nonzero", stderr=["no such store"], absent=["{tmp}/typo.duckdb", "{tmp}/typo.duckdb.wal"])
case("cli", "detect_store_path_missing", "a .duckdb path that does not exist",
     ["detect", "{tmp}/nope.duckdb", "--out", "{tmp}/a.jsonl"], stderr=["no such store"], absent=["{tmp}/nope.duckdb"])
case("cli", "detect_db_is_a_folder", "--db names a folder", ["detect", "--db", "{tmp}", "--out", "{tmp}/a.jsonl"],
     stderr=["is a folder"])
case("cli", "alerts_list_db_is_a_folder", "--db names a folder", ["alerts", "list", "--db", "{tmp}"],
     stderr=["is a folder"])
case("cli", "detect_two_stores", "two stores at once", ["detect", "{tmp}/a.duckdb", "--db", "{tmp}/b.duckdb",
     "--out", "{tmp}/a.jsonl"], stderr=["one store"], absent=["{tmp}/a.duckdb", "{tmp}/b.duckdb"])
case("cli", "detect_missing_file", "a telemetry file that does not exist",
     ["detect", "{tmp}/nope.csv", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl"],
     stderr=["nope.csv", "no such file"], absent=["{tmp}/s.duckdb"])
case("cli", "fit_files_without_db", "fit on files with nowhere to keep the state",
     ["fit", "{case}/t.csv", "--rejects", "{tmp}/r.csv"], stderr=["--db"], files={"t.csv": TELEMETRY})

# -------------------------------------------------------------------------------- alerts text

case("cli", "alerts_list_markup_meters", "alerts list over meter ids with Rich markup (MarkupError)",
     ["alerts", "list", "--db", "{tmp}/s.duckdb", "--status", "all"], exit=0, setup=[
         INGEST, ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl", "--detectors", "supply_outage"]],
     files={"t.csv": MARKUP})
case("cli", "alerts_list_bad_status", "an unknown --status", ["alerts", "list", "--db", "{tmp}/s.duckdb",
     "--status", "bogus"], stderr=["--status", "bogus"], setup=[INGEST], files={"t.csv": TELEMETRY})
case("cli", "alerts_list_markup_status", "a --status holding markup",
     ["alerts", "list", "--db", "{tmp}/s.duckdb", "--status", "[/red]"], stderr=["[/red]"], setup=[INGEST],
     files={"t.csv": TELEMETRY})
case("cli", "alerts_list_markup_meter_filter", "a --meter holding markup", ["alerts", "list", "--db", "{tmp}/s.duckdb",
     "--meter", "[/bold]M1"], exit=0, setup=[INGEST], files={"t.csv": MARKUP})
for name, prefix in (("percent", "%"), ("underscore", "_"), ("underscores", "________________"), ("both", "_%")):
    case("cli", f"alerts_ack_wildcard_{name}", f"`{prefix}` is a character of the id prefix, not a LIKE wildcard",
         ["alerts", "ack", prefix, "--db", "{tmp}/s.duckdb"], stderr=["no alert"], setup=[INGEST],
         files={"t.csv": TELEMETRY})
case("cli", "alerts_ack_empty_id", "an empty alert id", ["alerts", "ack", "", "--db", "{tmp}/s.duckdb"],
     stderr=["alert id"], setup=[INGEST], files={"t.csv": TELEMETRY})
case("cli", "alerts_clear_markup_id", "an id holding markup", ["alerts", "clear", "[/b]x", "--db", "{tmp}/s.duckdb"],
     stderr=["no alert", "[/b]x"], setup=[INGEST], files={"t.csv": TELEMETRY})
case("cli", "state_show_markup_meter", "state show of a meter id holding markup",
     ["state", "show", "[/bold]M9", "--db", "{tmp}/s.duckdb"], stderr=["[/bold]m9"], setup=[INGEST],
     files={"t.csv": TELEMETRY})
case("cli", "state_drop_unknown_meter", "state drop of a meter without state",
     ["state", "drop", "[red]M9", "--db", "{tmp}/s.duckdb"], stderr=["no state", "[red]m9"], setup=[INGEST],
     files={"t.csv": TELEMETRY})

# ------------------------------------------------------------------------------------- detect

DETECT = ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl", "--detectors", "supply_outage"]
case("cli", "detect_out_is_a_folder", "--out names a folder (IsADirectoryError after the run)",
     ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}", "--detectors", "supply_outage"], stderr=["is a folder"],
     setup=[INGEST], files={"t.csv": TELEMETRY})
case("cli", "detect_log_is_a_folder", "--log names a folder", [*DETECT, "--log", "{tmp}"], stderr=["--log", "folder"],
     setup=[INGEST], files={"t.csv": TELEMETRY})
case("cli", "detect_scores_is_a_folder", "--scores names a folder", [*DETECT, "--scores", "{tmp}"],
     stderr=["--scores", "folder"], setup=[INGEST], files={"t.csv": TELEMETRY})
case("cli", "detect_out_under_a_file", "--out under a file", ["detect", "--db", "{tmp}/s.duckdb", "--out",
     "{case}/t.csv/a.jsonl"], stderr=["--out", "cannot write"], setup=[INGEST], files={"t.csv": TELEMETRY})
case("cli", "detect_markup_out_path", "an --out path holding markup",
     ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/[red]a[bold].jsonl", "--detectors", "supply_outage"], exit=0,
     setup=[INGEST], files={"t.csv": TELEMETRY})
for name, args, words in [
    ("start_garbage", ["--start", "garbage"], ["start", "not", "garbage"]),
    ("end_before_start", ["--start", "2025-01-07", "--end", "2025-01-06"], ["start must come before end"]),
    ("unknown_detector", ["--detectors", "nope"], ["unknown detector 'nope'"]),
    ("markup_detector", ["--detectors", "[/red]"], ["unknown detector", "[/red]"]),
    ("missing_config", ["--config", "{tmp}/nope.toml"], ["nope.toml"]),
    ("config_is_a_folder", ["--config", "{tmp}"], ["folder"]),
    ("missing_models", ["--models", "{tmp}/nope"], ["nope"]),
    ("missing_mapping_for_store", ["--mapping", "{tmp}/nope.toml", "{case}/t.csv"], []),
]:
    args2 = [a for a in DETECT if a not in ("--detectors", "supply_outage")] if "--detectors" in args else list(DETECT)
    if name == "missing_mapping_for_store":
        case("cli", f"detect_{name}", "a mapping file that does not exist",
             ["detect", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl", "--rejects", "{tmp}/r.csv",
              "--mapping", "{tmp}/nope.toml"], exit="nonzero", stderr=["nope.toml"], files={"t.csv": TELEMETRY})
        continue
    case("cli", f"detect_{name}", f"detect {' '.join(args)}", [*args2, *args], stderr=words, setup=[INGEST],
         files={"t.csv": TELEMETRY})

CONFIGS = {
    "engine_profile_days_negative": ("[engine]\nprofile_days = -1\n", ["profile_days"]),
    "engine_profile_days_string": ("[engine]\nprofile_days = \"week\"\n", ["profile_days"]),
    "engine_workers_fraction": ("[engine]\nworkers = 1.5\n", ["workers"]),
    "engine_trace_infinite": ("[engine]\nmax_trace_days = inf\n", ["max_trace_days"]),
    "engine_unknown_key": ("[engine]\nturbo = true\n", ["turbo"]),
    "engine_not_a_table": ("engine = 3\n", ["engine"]),
    "threshold_nan": ("[neutral_tamper.post]\nthreshold = nan\n", ["threshold"]),
    "threshold_negative": ("[neutral_tamper.post]\nthreshold = -1.0\n", ["threshold"]),
    "post_not_a_table": ("[neutral_tamper]\npost = 3\n", ["post"]),
    "post_min_readings_negative": ("[neutral_tamper.post]\nmin_readings = -3\n", ["min_readings"]),
    "limit_negative": ("[neutral_tamper]\nabs_limit_a = -0.5\n", ["abs_limit_a"]),
    "limit_nan": ("[neutral_tamper]\nabs_limit_a = nan\n", ["abs_limit_a"]),
    "limit_string": ("[neutral_tamper]\nabs_limit_a = \"high\"\n", ["abs_limit_a"]),
    "window_zero": ("[packet_loss]\nwindow_s = 0\n", ["window_s"]),
    "flag_string": ("[baseline_macd]\nuse_register = \"yes\"\n", ["use_register"]),
    "taus_negative": ("[thermal_drift]\ntaus_min = [15, -1]\n", ["taus_min"]),
    "int_param_fraction": ("[packet_loss]\nmin_lost = 2.5\n", ["min_lost"]),
    "unknown_parameter": ("[neutral_tamper]\nno_such_knob = 1\n", ["no_such_knob"]),
    "unknown_section": ("[nuclear_tamper]\nx = 1\n", ["nuclear_tamper"]),
    "detectors_string": ("detectors = \"neutral_tamper\"\n", ["detectors"]),
    "detectors_unknown": ("detectors = [\"nope\"]\n", ["nope"]),
    "section_not_a_table": ("neutral_tamper = 3\n", ["neutral_tamper"]),
    "top_level_key": ("colour = \"red\"\n", ["colour"]),
    "not_toml": ("[neutral_tamper\n", ["rules.toml"]),
}
for name, (text, words) in CONFIGS.items():
    case("cli", f"config_{name}", f"detector config: {text.strip()}",
         ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl", "--config", "{case}/rules.toml"],
         stderr=["rules.toml", *words], setup=[INGEST], files={"t.csv": TELEMETRY, "rules.toml": text},
         absent=["{tmp}/a.jsonl"])
case("cli", "config_binary", "a binary detector config", ["detect", "--db", "{tmp}/s.duckdb", "--out",
     "{tmp}/a.jsonl", "--config", "{case}/rules.toml"], stderr=["rules.toml", "utf-8"], setup=[INGEST],
     files={"t.csv": TELEMETRY, "rules.toml": b"\xff\xfe\x00bin"})
case("cli", "fit_config_negative_profile", "fit with a negative profile_days",
     ["fit", "--db", "{tmp}/s.duckdb", "--config", "{case}/rules.toml"], stderr=["profile_days"], setup=[INGEST],
     files={"t.csv": TELEMETRY, "rules.toml": "[engine]\nprofile_days = -7\n"})

# ------------------------------------------------------------------------------ fit and train

for name, args, words in [
    ("days_negative", ["--days", "-1"], ["days"]),
    ("days_nan", ["--days", "nan"], ["days"]),
    ("normal_start_garbage", ["--normal-start", "garbage"], ["normal_start", "garbage"]),
    ("normal_end_before_start", ["--normal-start", "2025-01-07", "--normal-end", "2025-01-06"], ["normal"]),
]:
    case("cli", f"fit_{name}", f"fit {' '.join(args)}", ["fit", "--db", "{tmp}/s.duckdb", *args],
         exit="nonzero", stderr=words, setup=[INGEST], files={"t.csv": TELEMETRY})
case("cli", "train_days_negative", "train --days -1", ["train", "--db", "{tmp}/s.duckdb", "--days", "-1", "--out",
     "{tmp}/m"], stderr=["days"], setup=[INGEST], files={"t.csv": TELEMETRY}, absent=["{tmp}/m"])
case("cli", "train_not_learned", "train a rule (nothing to train)", ["train", "--db", "{tmp}/s.duckdb", "--detectors",
     "neutral_tamper", "--out", "{tmp}/m"], stderr=["not learned"], setup=[INGEST], files={"t.csv": TELEMETRY},
     absent=["{tmp}/m"])
case("cli", "train_too_little_data", "train on six hours", ["train", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/m"],
     exit="nonzero", stderr=[], setup=[INGEST], files={"t.csv": TELEMETRY}, absent=["{tmp}/m"])

for name, args, words in [
    ("detect_start_year_9999", ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl", "--start",
                                "9999-01-01"], ["--start", "out of range"]),
    ("detect_end_year_1", ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl", "--end", "0001-01-01"],
     ["--end", "out of range"]),
    ("fit_normal_start_year_9999", ["fit", "--db", "{tmp}/s.duckdb", "--normal-start", "9999-01-01"],
     ["--normal-start", "out of range"]),
    ("fit_days_infinite", ["fit", "--db", "{tmp}/s.duckdb", "--days", "inf"], ["--days", "finite"]),
    ("train_days_infinite", ["train", "--db", "{tmp}/s.duckdb", "--days", "inf", "--out", "{tmp}/m"],
     ["--days", "finite"]),
    ("train_out_is_a_file", ["train", "--db", "{tmp}/s.duckdb", "--out", "{case}/t.csv"], ["not a folder"]),
]:
    case("cli", name, " ".join(args[:1] + args[3:]), args, stderr=words, setup=[INGEST], files={"t.csv": TELEMETRY},
         absent=["{tmp}/a.jsonl", "{tmp}/m"])
for name, args, words in [
    ("bench_ingest_negative_rows", ["bench", "ingest", "--rows", "-1", "--workdir", "{tmp}/b"], ["--rows"]),
    ("bench_detect_zero_rows", ["bench", "detect", "--rows", "0", "--workdir", "{tmp}/b"], ["--rows"]),
    ("bench_detect_zero_repeats", ["bench", "detect", "--repeats", "0", "--workdir", "{tmp}/b"], ["--repeats"]),
    ("bench_learned_unknown_detector", ["bench", "learned", "--rows", "2000", "--detectors", "nope"], ["nope"]),
    ("bench_learned_rule", ["bench", "learned", "--rows", "2000", "--detectors", "neutral_tamper"],
     ["neutral_tamper"]),
]:
    case("cli", name, " ".join(args), args, stderr=words, absent=["{tmp}/b"])
case("cli", "evaluate_tolerance_huge", "evaluate --tolerance-s 1e300 (OverflowError)", [
    "evaluate", "--events", "{case}/events.json", "--alerts", "{case}/a.jsonl", "--tolerance-s", "1e300"],
    stderr=["tolerance"], files={"events.json": json.dumps([GOOD_EVENT]), "a.jsonl": ""})

for name, args in [
    ("detect_out_is_the_input", ["detect", "{case}/t.csv", "--out", "{case}/t.csv"]),
    ("detect_log_is_the_input", ["detect", "{case}/t.csv", "--out", "{tmp}/a.jsonl", "--log", "{case}/t.csv"]),
    ("detect_scores_is_the_input", ["detect", "{case}/t.csv", "--out", "{tmp}/a.jsonl", "--scores", "{case}/t.csv"]),
    ("detect_out_is_the_store", ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/s.duckdb"]),
    ("detect_out_is_the_wal", ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/s.duckdb.wal"]),
    ("detect_rejects_is_the_input", ["detect", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl",
                                     "--rejects", "{case}/t.csv"]),
    ("detect_rejects_is_the_store", ["detect", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl",
                                     "--rejects", "{tmp}/s.duckdb"]),
    ("fit_rejects_is_the_store", ["fit", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}/s.duckdb"]),
    ("train_rejects_is_the_input", ["train", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/m",
                                    "--rejects", "{case}/t.csv"]),
    ("ingest_rejects_is_the_input", ["ingest", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--rejects",
                                     "{case}/t.csv"]),
    ("detect_out_and_log_the_same", ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl", "--log",
                                     "{tmp}/a.jsonl"]),
]:
    case("cli", name, "an output that would overwrite the store or an input: refused before any work", args,
         stderr=["would" if "same" not in name else "same file"], setup=[INGEST], files={"t.csv": REJECTS},
         unchanged=["{case}/t.csv"], stored=3, absent=["{tmp}/a.jsonl", "{tmp}/m"])

case("cli", "detect_simulated_folder", "a simulated fleet's folder: its events.json and meters.json are not read "
     "as telemetry", ["detect", "{case}/fleet", "--out", "{tmp}/a.jsonl", "--rejects", "{tmp}/r.csv", "--detectors",
                      "supply_outage"], exit=0,
     files={"fleet/telemetry.csv": TELEMETRY, "fleet/events.json": json.dumps([GOOD_EVENT]),
            "fleet/meters.json": json.dumps({"config": {"step": "1h"}, "meters": []})})
case("cli", "detect_detector_named_twice", "a detector named twice runs once (its alerts were doubled)",
     ["detect", "--db", "{tmp}/s.duckdb", "--out", "{tmp}/a.jsonl", "--detectors", "supply_outage,supply_outage",
      "--json"], exit=0, stdout=['"alerts": 1'], setup=[INGEST], files={"t.csv": OUTAGE})

# ---------------------------------------------------------------------------------- misc

case("cli", "evaluate_tolerance_negative", "evaluate --tolerance-s -1", ["evaluate", "--events", "{case}/events.json",
     "--alerts", "{case}/a.jsonl", "--tolerance-s", "-1"], stderr=["tolerance"],
     files={"events.json": json.dumps([GOOD_EVENT]), "a.jsonl": ""})
case("cli", "evaluate_tolerance_nan", "evaluate --tolerance-s nan", ["evaluate", "--events", "{case}/events.json",
     "--alerts", "{case}/a.jsonl", "--tolerance-s", "nan"], stderr=["tolerance"],
     files={"events.json": json.dumps([GOOD_EVENT]), "a.jsonl": ""})
case("cli", "demo_zero_meters", "demo --meters 0", ["demo", "--out", "{tmp}/d", "--meters", "0"], stderr=["meters"],
     absent=["{tmp}/d"])
case("cli", "demo_out_is_a_file", "demo --out a file", ["demo", "--out", "{case}/t.csv", "--meters", "2", "--days",
     "1"], stderr=["not a folder"], files={"t.csv": TELEMETRY}, unchanged=["{case}/t.csv"])
case("cli", "detectors_json", "the detector listing is strict JSON", ["detectors", "--json"], exit=0,
     stdout=['"name": "neutral_tamper"'])

# ------------------------------------------------------------------------------------- events

EVENTS_BAD = {
    "not_json": ("this is not json", ["events.json", "not json"]),
    "empty_file": ("", ["events.json", "not json"]),
    "truncated": ('[{"meter_id": "M1", "type": "open_ct"', ["events.json", "not json"]),
    "object_not_list": (json.dumps({"meter_id": "M1"}), ["events.json", "expected a json list"]),
    "events_key_not_list": (json.dumps({"events": {"a": 1}}), ["events.json", "expected a json list"]),
    "string": (json.dumps("events"), ["expected a json list"]),
    "number": ("42", ["expected a json list"]),
    "null": ("null", ["expected a json list"]),
    "list_of_numbers": (json.dumps([1, 2]), ["event 0", "expected an object"]),
    "list_of_lists": (json.dumps([["M1", "open_ct"]]), ["event 0", "expected an object"]),
    "missing_end": (json.dumps([{k: v for k, v in GOOD_EVENT.items() if k != "end"}]), ["event 0", "missing", "end"]),
    "missing_meter": (json.dumps([GOOD_EVENT, {k: v for k, v in GOOD_EVENT.items() if k != "meter_id"}]),
                      ["event 1", "missing", "meter_id"]),
    "start_null": (json.dumps([{**GOOD_EVENT, "start": None}]), ["event 0", "start"]),
    "end_null": (json.dumps([GOOD_EVENT, GOOD_EVENT, {**GOOD_EVENT, "end": None}]), ["event 2", "end"]),
    "reversed_times": (json.dumps([{**GOOD_EVENT, "start": "2025-01-07T00:00:00Z"}]), ["event 0", "before start"]),
    "start_number": (json.dumps([{**GOOD_EVENT, "start": 1736125200}]), ["event 0", "start"]),
    "start_garbage": (json.dumps([{**GOOD_EVENT, "start": "soonish"}]), ["event 0", "start", "not a time"]),
    "start_year_99999": (json.dumps([{**GOOD_EVENT, "start": "99999-01-01"}]), ["event 0", "start"]),
    "meter_number": (json.dumps([{**GOOD_EVENT, "meter_id": 17}]), ["event 0", "meter_id"]),
    "meter_empty": (json.dumps([{**GOOD_EVENT, "meter_id": ""}]), ["event 0", "meter_id"]),
    "type_list": (json.dumps([{**GOOD_EVENT, "type": ["open_ct"]}]), ["event 0", "type"]),
    "type_null": (json.dumps([{**GOOD_EVENT, "type": None}]), ["event 0", "type"]),
    "detail_string": (json.dumps([{**GOOD_EVENT, "detail": "big"}]), ["event 0", "detail"]),
    "cadence_string": (json.dumps([{**GOOD_EVENT, "cadence_s": "5min"}]), ["event 0", "cadence_s"]),
    "nan_literal": ('[{"meter_id": "M1", "type": "open_ct", "start": NaN, "end": NaN}]', ["nan"]),
    "deep_nesting": ("[" * 5_000, ["events.json"]),
    "latin1": ('[{"meter_id": "M\xe9", "type": "open_ct"}]'.encode("latin-1"), ["events.json", "utf-8"]),
}
for name, (text, words) in EVENTS_BAD.items():
    case("events", name, f"events.json: {name.replace('_', ' ')}",
         ["evaluate", "--events", "{case}/events.json", "--alerts", "{case}/alerts.jsonl"], stderr=words,
         files={"events.json": text, "alerts.jsonl": json.dumps(ALERT) + "\n"})
case("events", "events_is_a_folder", "--events names a folder", ["evaluate", "--events", "{tmp}", "--alerts",
     "{case}/alerts.jsonl"], stderr=["folder"], files={"alerts.jsonl": ""})
case("events", "events_missing", "--events does not exist", ["evaluate", "--events", "{tmp}/nope.json", "--alerts",
     "{case}/alerts.jsonl"], stderr=["nope.json"], files={"alerts.jsonl": ""})
case("events", "naive_times_are_utc", "event times without an offset are UTC (TypeError comparing with alerts)",
     ["evaluate", "--events", "{case}/events.json", "--alerts", "{case}/alerts.jsonl", "--json"], exit=0,
     stdout=['"detected": 1'], files={"events.json": json.dumps([{**GOOD_EVENT, "start": "2025-01-06T01:00:00",
                                                                   "end": "2025-01-06T03:00:00"}]),
                                     "alerts.jsonl": json.dumps(ALERT) + "\n"})
case("events", "json_output_has_no_nan", "--json with nothing to recall prints null, not NaN",
     ["evaluate", "--events", "{case}/events.json", "--alerts", "{case}/alerts.jsonl", "--json"], exit=0,
     stdout=['"recall": null'], files={"events.json": json.dumps([{**GOOD_EVENT, "type": "motor_start"}]),
                                       "alerts.jsonl": ""})
ALERTS_BAD = {
    "alerts_not_json": ("not json\n", ["alerts.jsonl", "line 1"]),
    "alerts_list_line": ("[1, 2]\n", ["line 1", "json object"]),
    "alerts_missing_keys": (json.dumps(ALERT) + "\n" + json.dumps({"meter_id": "M1"}) + "\n", ["line 2", "missing"]),
    "alerts_start_null": (json.dumps({**ALERT, "start": None}) + "\n", ["line 1", "start"]),
    "alerts_start_garbage": (json.dumps({**ALERT, "start": "soon"}) + "\n", ["line 1", "start", "not a time"]),
    "alerts_meter_number": (json.dumps({**ALERT, "meter_id": 5}) + "\n", ["line 1", "meter_id"]),
    "alerts_evidence_list": (json.dumps({**ALERT, "evidence": [1]}) + "\n", ["line 1", "evidence"]),
    "alerts_binary": (b"\xff\xfe\x00\x01\n", ["alerts.jsonl"]),
}
for name, (text, words) in ALERTS_BAD.items():
    case("events", name, f"alerts file: {name.replace('_', ' ')}",
         ["evaluate", "--events", "{case}/events.json", "--alerts", "{case}/alerts.jsonl"], stderr=words,
         files={"events.json": json.dumps([GOOD_EVENT]), "alerts.jsonl": text})

# ------------------------------------------------------------------------------------- models


def _manifest(entry: dict | None = None, name: str = "pca_reconstruction", **top) -> str:
    from wattwatch.detect import registry
    from wattwatch.detect.learned import persist
    from wattwatch.schema import SCHEMA_VERSION

    d = registry.build(name)
    base = {"file": f"{name}.wwm", "sha256": "0" * 64, "config": d.config.to_dict(),
            "features": d.config.features().names() if hasattr(d.config, "features") else []}
    doc = {"format": persist.MODEL_FORMAT, "wattwatch": "corpus", "schema": SCHEMA_VERSION,
           "detectors": {name: {**base, **(entry or {})}}, "trained_on": {}}
    doc.update(top)
    return json.dumps(doc, indent=1, default=str)


class _Boom:
    def __reduce__(self):
        return (print, ("PWNED: the model folder ran code",))


PICKLE = pickle.dumps({"model_": _Boom()})
FAKE_ARCHIVE = b"PK\x03\x04 not really a zip"


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


MODELS_RUN = ["detect", "{case}/t.csv", "--db", "{tmp}/s.duckdb", "--models", "{case}/m", "--out", "{tmp}/a.jsonl",
              "--rejects", "{tmp}/r.csv"]


def models_case(name: str, about: str, files: dict, words: list, **kw) -> None:
    case("models", name, about, MODELS_RUN, exit="nonzero", stderr=["{case}/m", *words],
         files={"t.csv": TELEMETRY, **{f"m/{k}": v for k, v in files.items()}}, absent=["{tmp}/a.jsonl"], **kw)


models_case("no_manifest", "a folder without manifest.json", {"x.wwm": b"x"}, ["manifest.json"])
models_case("manifest_not_json", "manifest.json is not JSON", {"manifest.json": "{"}, ["manifest"])
models_case("manifest_list", "manifest.json is a list", {"manifest.json": "[]"}, ["manifest"])
models_case("manifest_binary", "manifest.json is binary", {"manifest.json": b"\xff\xfe\x00"}, ["manifest"])
models_case("manifest_deep", "manifest.json nested 5,000 deep", {"manifest.json": "[" * 5_000}, ["manifest"])
models_case("old_format_joblib", "a joblib folder of model format 3 (pickles)",
            {"manifest.json": _manifest({"file": "pca_reconstruction.joblib"}, format=3),
             "pca_reconstruction.joblib": PICKLE}, ["model format 3", "retrain"], stdout=[])
models_case("wrong_schema", "another schema version", {"manifest.json": _manifest(schema=999)}, ["schema 999"])
models_case("detectors_list", "detectors is a list", {"manifest.json": json.dumps(
    {**json.loads(_manifest()), "detectors": []})}, ["no detectors"])
models_case("entry_not_object", "a detector entry that is a number", {"manifest.json": json.dumps(
    {**json.loads(_manifest()), "detectors": {"pca_reconstruction": 5}})}, ["pca_reconstruction"])
models_case("unknown_detector", "a detector wattwatch does not know", {"manifest.json": json.dumps(
    {**json.loads(_manifest()), "detectors": {"evil": {"config": {}}}})}, ["evil"])
models_case("rule_not_learned", "a rule in a model folder", {"manifest.json": json.dumps(
    {**json.loads(_manifest()), "detectors": {"neutral_tamper": {"config": {}}}})}, ["not a learned detector"])
models_case("config_bad_value", "a config value of the wrong type", {"manifest.json": _manifest(
    {"config": {"alpha": "x"}})}, ["alpha"])
models_case("config_negative", "a negative config value", {"manifest.json": _manifest(
    {"config": {"max_train_rows": -5}})}, ["max_train_rows"])
models_case("features_changed", "trained on other features", {"manifest.json": _manifest(
    {"features": ["f1", "f2"]})}, ["features"])
models_case("no_sha256", "the manifest records no hash", {"manifest.json": _manifest({"sha256": None}),
                                                          "pca_reconstruction.wwm": FAKE_ARCHIVE}, ["sha256"])
models_case("sha256_not_hex", "a hash that is not sha256 hex", {"manifest.json": _manifest({"sha256": "abc"}),
                                                                 "pca_reconstruction.wwm": FAKE_ARCHIVE}, ["sha256"])
models_case("sha256_mismatch", "the file changed since it was saved", {
    "manifest.json": _manifest({"sha256": _sha(b"other")}), "pca_reconstruction.wwm": FAKE_ARCHIVE},
    ["does not match the sha256"])
for name, file in (("dotdot", "../t.csv"), ("absolute", "/etc/passwd"), ("nested", "sub/x.wwm"),
                   ("dot", "."), ("empty", ""), ("backslash", "..\\t.csv"), ("nul", "x\u0000.wwm")):
    models_case(f"file_{name}", f"the manifest names {file!r}: only plain names inside the folder",
                {"manifest.json": _manifest({"file": file, "sha256": _sha(TELEMETRY.encode())})},
                ["plain names inside the model folder"])
models_case("file_number", "the manifest names a number as file", {"manifest.json": _manifest({"file": 7})},
            ["plain names"])
models_case("file_missing", "the file the manifest names is missing", {"manifest.json": _manifest(
    {"file": "gone.wwm", "sha256": _sha(b"x")})}, ["gone.wwm", "missing"])
models_case("file_is_folder", "the file the manifest names is a folder", {
    "manifest.json": _manifest({"file": "sub", "sha256": _sha(b"x")}), "sub/keep": "x"}, ["sub", "not a regular file"])
models_case("pickle_with_right_hash", "a pickle whose hash matches: never unpickled", {
    "manifest.json": _manifest({"file": "pca_reconstruction.wwm", "sha256": _sha(PICKLE)}),
    "pca_reconstruction.wwm": PICKLE}, ["pickle"])
models_case("joblib_with_right_hash", "a .joblib pickle named with its hash: never unpickled", {
    "manifest.json": _manifest({"file": "model.joblib", "sha256": _sha(PICKLE)}), "model.joblib": PICKLE}, ["pickle"])
models_case("fake_zip_with_right_hash", "junk starting like a zip, right hash", {
    "manifest.json": _manifest({"sha256": _sha(FAKE_ARCHIVE)}), "pca_reconstruction.wwm": FAKE_ARCHIVE},
    ["pca_reconstruction.wwm"])
case("models", "models_is_a_file", "--models names a file", ["detect", "{case}/t.csv", "--db", "{tmp}/s.duckdb",
     "--models", "{case}/t.csv", "--out", "{tmp}/a.jsonl", "--rejects", "{tmp}/r.csv"], exit="nonzero",
     stderr=["t.csv"], files={"t.csv": TELEMETRY})
case("models", "models_missing", "--models does not exist", ["detect", "{case}/t.csv", "--db", "{tmp}/s.duckdb",
     "--models", "{tmp}/nope", "--out", "{tmp}/a.jsonl", "--rejects", "{tmp}/r.csv"], exit="nonzero",
     stderr=["nope"], files={"t.csv": TELEMETRY})

# ---------------------------------------------------------------------------------------- NAB


def _series(n: int = 120) -> str:
    import math

    rows = []
    for i in range(n):
        d, r = divmod(i * 5, 1440)
        rows.append(f"2014-01-{1 + d:02d} {r // 60:02d}:{r % 60:02d}:00,{5 + math.sin(i / 7):.4f}\n")
    return "timestamp,value\n" + "".join(rows)


SERIES = _series()
NAB_RUN = ["nab", "run", "--detector", "window_novelty", "--data", "{case}/nab", "--out", "{tmp}/out"]


def nab_case(name: str, about: str, labels, files: dict, words: list, args=None, **kw) -> None:
    f = {"nab/labels/combined_windows.json": labels if isinstance(labels, (str, bytes)) else json.dumps(labels)}
    f.update({f"nab/{k}": v for k, v in files.items()})
    case("nab", name, about, args or NAB_RUN, exit=kw.pop("exit", 2), stderr=words, files=f, **kw)


nab_case("label_key_dotdot", "a label key with ../ read outside --data and wrote outside --out",
         {"../outside.csv": []}, {"outside.csv": SERIES, "data/cat/x.csv": SERIES}, ["label key", "../outside.csv"],
         absent=["{tmp}/window_novelty_outside.csv", "{tmp}/out/window_novelty_outside.csv"])
nab_case("label_key_deep_dotdot", "cat/../../x", {"cat/../../outside.csv": []}, {"outside.csv": SERIES},
         ["label key"])
nab_case("label_key_absolute", "an absolute label key", {"/etc/hostname.csv": []}, {}, ["label key"])
nab_case("label_key_backslash", "a Windows-style key", {"cat\\..\\..\\x.csv": []}, {}, ["label key"])
nab_case("label_key_drive", "a drive letter", {"C:/x.csv": []}, {}, ["label key"])
nab_case("label_key_not_csv", "a key that is not a .csv", {"cat/x.json": []}, {"data/cat/x.json": "{}"},
         ["label key"])
nab_case("label_key_empty_part", "cat//x.csv", {"cat//x.csv": []}, {}, ["label key"])
nab_case("label_key_newline", "a key with a newline", {"cat/x\n.csv": []}, {}, ["label key"])
nab_case("labels_not_json", "the label file is not JSON", "{not json", {}, ["combined_windows.json", "not json"])
nab_case("labels_list", "the label file is a list", ["cat/x.csv"], {}, ["combined_windows.json", "expected an object"])
nab_case("labels_empty", "the label file lists nothing", {}, {}, ["lists no data files"])
nab_case("labels_binary", "the label file is binary", b"\xff\xfe\x00", {}, ["combined_windows.json"])
nab_case("windows_not_list", "windows given as a string", {"cat/x.csv": "all"}, {"data/cat/x.csv": SERIES},
         ["cat/x.csv", "list of [start, end]"])
nab_case("window_one_time", "a window with one time", {"cat/x.csv": [["2014-01-01 00:00:00"]]},
         {"data/cat/x.csv": SERIES}, ["window 0", "[start, end]"])
nab_case("window_garbage", "window times that are not times", {"cat/x.csv": [["soon", "later"]]},
         {"data/cat/x.csv": SERIES}, ["window 0", "not a pair of times"])
nab_case("window_reversed", "a window that ends before it starts",
         {"cat/x.csv": [["2014-01-01 05:00:00", "2014-01-01 01:00:00"]]}, {"data/cat/x.csv": SERIES},
         ["window 0", "before start"])
nab_case("window_off_grid", "a window that does not fall on the file's timestamps",
         {"cat/x.csv": [["2014-01-01 00:01:00", "2014-01-01 01:00:00"]]}, {"data/cat/x.csv": SERIES},
         ["window 0", "does not start and end"])
nab_case("data_missing", "a data file the labels list is missing", {"cat/x.csv": []}, {"data/keep": ""},
         ["x.csv", "missing"])
nab_case("data_empty", "an empty data file", {"cat/x.csv": []}, {"data/cat/x.csv": ""}, ["x.csv", "empty"])
nab_case("data_wrong_columns", "columns other than timestamp,value", {"cat/x.csv": []},
         {"data/cat/x.csv": "a,b\n1,2\n3,4\n"}, ["x.csv", "timestamp,value"])
nab_case("data_bad_timestamp", "a timestamp that is not a time", {"cat/x.csv": []},
         {"data/cat/x.csv": "timestamp,value\n2014-01-01 00:00:00,1\nlater,2\n"}, ["x.csv", "line 3", "timestamp"])
nab_case("data_bad_value", "a value that is not a number", {"cat/x.csv": []},
         {"data/cat/x.csv": "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,abc\n"},
         ["x.csv", "line 3", "value"])
nab_case("data_infinite_value", "an infinite value", {"cat/x.csv": []},
         {"data/cat/x.csv": "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,inf\n"},
         ["x.csv", "line 3", "value"])
nab_case("data_one_row", "a data file with one row", {"cat/x.csv": []},
         {"data/cat/x.csv": "timestamp,value\n2014-01-01 00:00:00,1\n"}, ["x.csv", "at least 2"])
nab_case("data_unclosed_quote", "an unclosed quote", {"cat/x.csv": []},
         {"data/cat/x.csv": 'timestamp,value\n2014-01-01 00:00:00,"1\n'}, ["x.csv"])
nab_case("data_binary", "a binary data file", {"cat/x.csv": []}, {"data/cat/x.csv": b"\xff\xfe\x00\x01\x02"},
         ["x.csv"])
nab_case("profiles_bad", "a cost profile without weights", {"cat/x.csv": []},
         {"data/cat/x.csv": SERIES, "config/profiles.json": json.dumps({"standard": {"CostMatrix": {}}})},
         ["profiles.json"])
nab_case("profiles_not_json", "profiles.json is not JSON", {"cat/x.csv": []},
         {"data/cat/x.csv": SERIES, "config/profiles.json": "{"}, ["profiles.json"])
nab_case("data_folder_missing", "no data folder at all", {"cat/x.csv": []}, {}, ["x.csv", "missing"])
nab_case("out_is_a_file", "--out names a file", {"cat/x.csv": []}, {"data/cat/x.csv": SERIES},
         ["not a folder"], args=["nab", "run", "--detector", "window_novelty", "--data", "{case}/nab", "--out",
                                 "{case}/nab/data/cat/x.csv"], unchanged=["{case}/nab/data/cat/x.csv"])
nab_case("detector_unknown", "an unknown detector", {"cat/x.csv": []}, {"data/cat/x.csv": SERIES},
         ["unknown detector"], args=["nab", "run", "--detector", "nope", "--data", "{case}/nab", "--out", "{tmp}/out"])
nab_case("detector_not_causal", "a detector that looks ahead", {"cat/x.csv": []}, {"data/cat/x.csv": SERIES},
         ["not causal"], args=["nab", "run", "--detector", "neutral_tamper", "--data", "{case}/nab", "--out",
                               "{tmp}/out"])
nab_case("data_root_missing", "--data does not exist", {"cat/x.csv": []}, {},
         ["no such folder"], args=["nab", "run", "--data", "{tmp}/nope", "--out", "{tmp}/out"])
nab_case("score_without_results", "score a detector never run", {"cat/x.csv": []}, {"data/cat/x.csv": SERIES},
         ["no results"], args=["nab", "score", "--detector", "window_novelty", "--data", "{case}/nab", "--out",
                               "{tmp}/out"])
nab_case("score_corrupt_results", "score results someone truncated", {"cat/x.csv": []},
         {"data/cat/x.csv": SERIES}, ["window_novelty_x.csv"],
         args=["nab", "score", "--detector", "window_novelty", "--data", "{case}/nab", "--out", "{case}/out"])
CASES["nab/score_corrupt_results"]["files"]["out/window_novelty/cat/window_novelty_x.csv"] = "timestamp,value\n"
nab_case("score_corrupt_final_results", "a final_results.json that is not JSON", {"cat/x.csv": []},
         {"data/cat/x.csv": SERIES}, ["final_results.json"],
         args=["nab", "score", "--detector", "window_novelty", "--data", "{case}/nab", "--out", "{case}/out"])
CASES["nab/score_corrupt_final_results"]["files"].update({
    "out/final_results.json": "[1, 2", "out/window_novelty/cat/window_novelty_x.csv":
    "timestamp,value,anomaly_score,label\n" + "".join(
        f"{line.split(',')[0]},{line.split(',')[1].strip()},0.0,0\n" for line in SERIES.splitlines()[1:])})
def _rows(values, stamps=None) -> str:
    ts = [line.split(",")[0] for line in SERIES.splitlines()[1:]]
    return "timestamp,value\n" + "".join(f"{(stamps or ts)[i]},{v}\n" for i, v in enumerate(values))


for name, about, text in [
    ("data_constant", "a constant series", _rows([5] * 120)),
    ("data_extreme_values", "values near the float limit", _rows([1e308 if i % 7 else -1e308 for i in range(120)])),
    ("data_reversed_times", "times in reverse order", _rows(list(range(120)), [line.split(",")[0] for line in
                                                                                SERIES.splitlines()[1:]][::-1])),
    ("data_repeated_times", "every time twice", _rows(list(range(120)), [line.split(",")[0] for line in
                                                                          SERIES.splitlines()[1:] for _ in (0, 1)])),
    ("data_two_rows", "two rows: nothing to judge (a note, no warning trace)", _rows([1, 2])),
    ("data_offsets", "times with an offset", _rows(list(range(120)), [line.split(",")[0] + "+02:00" for line in
                                                                      SERIES.splitlines()[1:]])),
]:
    nab_case(name, about, {"cat/x.csv": []}, {"data/cat/x.csv": text}, [], exit=0)
nab_case("valid_small_corpus", "a small valid corpus runs", {"cat/x.csv": [["2014-01-01 05:00:00",
         "2014-01-01 06:00:00"]]}, {"data/cat/x.csv": SERIES}, [], exit=0)


# ------------------------------------------------------------------------------------- write


def write() -> int:
    for area in AREAS:
        shutil.rmtree(HERE / area, ignore_errors=True)
    for key, c in sorted(CASES.items()):
        folder = HERE / key
        folder.mkdir(parents=True)
        spec = {k: v for k, v in c["spec"].items() if v != [] or k in ("args",)}
        (folder / "case.toml").write_text(_toml(spec))
        for rel, data in c["files"].items():
            p = folder / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                p.write_bytes(data)
            else:
                p.write_text(data, encoding="utf-8")
    return len(CASES)


if __name__ == "__main__":
    n = write()
    print(f"{n} cases in {', '.join(AREAS)}: " + ", ".join(
        f"{a} {sum(k.startswith(a + '/') for k in CASES)}" for a in AREAS))
