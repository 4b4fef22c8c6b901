"""The Spark engine reads exactly the files given, whatever their names, and names them as given (sp3).

Spark hands every path to Hadoop's globber: a local file whose name has ``*``, ``?``, ``[``, ``{``
or a backslash was read as a pattern (another file picked up, or "Path does not exist"), and Spark
names a file by its URI, percent-encoded (``sp%20ace.csv``). The pandas engine reads each such file
and names it as given: both engines now agree. Each test reads a few small files in one Spark read.
"""

from __future__ import annotations

import gzip

import pytest

from wattwatch.errors import InputError
from wattwatch.fleet.readers import read_fleet

HEAD = "meter_id,ts,p_kw\n"


def _rows(meter: str, bad: str | None = "x") -> str:
    """Five readings of ``meter``, then (``bad``) a sixth whose power is not a number (a reject at line 7)."""
    body = "".join(f"{meter},2025-01-06T{h:02d}:00:00Z,{h}\n" for h in range(5))
    return body + (f"{meter},2025-01-06T05:00:00Z,{bad}\n" if bad is not None else "")


def _outcome(frame, rejects):
    return sorted(frame["meter_id"].astype(str)), sorted(rejects)


def test_spark_reads_files_named_like_globs_exactly_and_names_them_as_given(spark, tmp_path, monkeypatch):
    """Files named with glob characters, a backslash, a space and a percent sign, read together by
    their relative names: every one is read, and only those (``star*x.csv`` must not pick up
    ``starx.csv`` beside it, nor ``q?x.csv`` ``qax.csv``); rows and rejects (file as given, line,
    field, reason) are pandas'. Each file is read again by its name (for the readings; a file with a
    reject also as numbered text, for its rejects' lines)."""
    from wattwatch.fleet.spark import read_fleet_spark

    monkeypatch.chdir(tmp_path)
    names = {"star*x.csv": "S1", "q?x.csv": "S2", "br[a]x.csv": "S3", "cu{a,b}x.csv": "S4", "back\\slash.csv": "S5",
             "sp ace.csv": "S6", "pct%20.csv": "S7", "clean[1].csv": "S8"}
    for name, meter in names.items():
        (tmp_path / name).write_text(HEAD + _rows(meter, None if name == "clean[1].csv" else "x"))
    # the names a glob of each would also match: never read
    for decoy, meter in (("starx.csv", "D1"), ("qax.csv", "D2"), ("brax.csv", "D3"), ("cuax.csv", "D4"),
                         ("clean1.csv", "D5")):
        (tmp_path / decoy).write_text(HEAD + _rows(meter))
    with gzip.open(tmp_path / "gz{1}.csv.gz", "wt") as fh:
        fh.write(HEAD + _rows("G1", "inf"))
    # rsp3: a user's glob in a folder named like a glob lists that folder (not ``d1`` beside it), and
    # a name given with ``./`` is named as pandas names it
    (tmp_path / "d[1]").mkdir()
    (tmp_path / "d[1]" / "in.csv").write_text(HEAD + _rows("G2", None))
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "in.csv").write_text(HEAD + _rows("D6"))
    given = [*names, "./gz{1}.csv.gz"]
    want = read_fleet([*given, "d[1]/in.csv"])
    sdf, rejects, _ = read_fleet_spark(spark, [*given, "d[1]/*.csv"])
    got = sdf.select("meter_id").toPandas()
    assert _outcome(got, rejects) == _outcome(want.frame, want.rejects)
    assert not {m for m in got["meter_id"]} & {"D1", "D2", "D3", "D4", "D5", "D6"}
    assert {r[0] for r in rejects} == {*names, "gz{1}.csv.gz"} - {"clean[1].csv"}
    assert ("back\\slash.csv", 7, "p_kw", "not a number") in rejects


def test_spark_names_a_refused_file_as_given(spark, tmp_path, monkeypatch):
    """An error about one file (a quoted field never closed) names it as given, as the pandas engine
    does, not by its resolved path or URI. Its lines are read again as numbered text by its name,
    which Hadoop would take for a glob."""
    from wattwatch.fleet.spark import read_fleet_spark

    monkeypatch.chdir(tmp_path)
    name = "open [quote] 100%.csv"
    (tmp_path / name).write_text(HEAD + "M1,2025-01-06T00:00:00Z,1\n" + 'M1,"2025-01-06T01:00:00Z,2\nM1,x,3\n')
    with pytest.raises(InputError) as pandas_err:
        read_fleet([name])
    with pytest.raises(InputError) as spark_err:
        read_fleet_spark(spark, [name])
    assert str(spark_err.value) == str(pandas_err.value)
    assert str(spark_err.value).startswith(f"{name}: a quoted field never closed (the record from line 3")


def test_spark_refuses_a_file_name_with_a_colon_before_any_job(spark, tmp_path):
    """Hadoop takes ``col:`` for a URI scheme (a file's checksum name ``.col:on.csv.crc``): Spark fails
    inside a job with a Java stack trace naming no file. Refused before any job, naming the file."""
    from wattwatch.fleet.spark import read_fleet_spark

    ok = tmp_path / "ok.csv"
    ok.write_text(HEAD + _rows("M1"))
    colon = tmp_path / "col:on.csv"
    colon.write_text(HEAD + _rows("M2"))
    assert len(read_fleet([ok, colon]).frame) == 10  # pandas reads it
    sc = spark.sparkContext
    group = "sp3-colon"
    sc.setJobGroup(group, group)
    try:
        with pytest.raises(InputError) as err:
            read_fleet_spark(spark, [str(ok), str(colon)])
        jobs = len(sc.statusTracker().getJobIdsForGroup(group))
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert str(err.value).startswith(f"{colon}: a ':' in this file's path cannot be read by Spark")
    assert jobs == 0


def test_spark_reads_a_csv_too_wide_for_a_chain_of_column_tests(spark, tmp_path):
    """A CSV of 600 columns (450 already failed on main; the hostile corpus has a 12,000-column
    header): the reader's check for a double quote in any field was a chain of ORs as deep as the
    header is wide, which overflowed the JVM's stack ("An error occurred while calling o<N>.select",
    no cause named). pandas reads the row and notes the columns it does not read; so does Spark now."""
    from wattwatch.fleet.spark import read_fleet_spark

    n = 600  # rsp3: 1,000 cost twice as long; main fails from 450 (o458.select), 600 with a margin
    wide = tmp_path / "wide.csv"
    wide.write_text("meter_id,ts,p_kw," + ",".join(f"c{i}" for i in range(n)) + "\n"
                    + "W1,2025-01-06T00:00:00Z,1," + ",".join("0" for _ in range(n)) + "\n"
                    + "W1,2025-01-06T01:00:00Z,2," + ",".join("0" for _ in range(n)) + "\n")
    want = read_fleet([wide])
    sdf, rejects, notes = read_fleet_spark(spark, [str(wide)])
    assert _outcome(sdf.select("meter_id").toPandas(), rejects) == _outcome(want.frame, want.rejects)
    assert sdf.count() == 2 and rejects == []
    assert notes == want.notes
