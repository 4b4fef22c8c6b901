"""(m2) Batch ``ingest`` reports conflicts as a watcher does (fast, rfast): readings given again
with other values than those kept (each copy of a stored reading; each group of copies within a
file once). Before, its table and ``--json`` counted them only inside ``duplicates`` (the notes
said them in words): a script could not tell a corrected export from a plain re-send.
``duplicates`` keeps its meaning (read = stored + duplicates + rejected); conflicts are among them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from wattwatch.app.cli import app
from wattwatch.store import Store

HEAD = "meter_id,ts,p_kw,v_l1_v\n"


def _run(*args, json_out: bool):
    res = CliRunner().invoke(app, [str(a) for a in args] + (["--json"] if json_out else []),
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads(res.stdout)["files"][0] if json_out else res.stdout


def test_batch_ingest_counts_conflicts_apart_like_the_live_ingest(tmp_path: Path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    a.write_text(HEAD + "C,2025-01-06T00:00:00Z,1.0,230\n"
                        "C,2025-01-06T00:15:00Z,1.0,230\n"
                        "C,2025-01-06T00:00:00Z,2.0,230\n"     # a copy in the file, another p_kw: 1
                        "C,2025-01-06T00:30:00Z,1.0,\n")
    # A corrected export: a plain copy, two copies of 00:15 with other values (and from one another:
    # the group once, its kept row against the stored reading once), a copy filling 00:30's blank
    # (no conflict), a new reading.
    b.write_text(HEAD + "C,2025-01-06T00:00:00Z,1.0,230\n"
                        "C,2025-01-06T00:15:00Z,5.0,230\n"
                        "C,2025-01-06T00:15:00Z,6.0,230\n"
                        "C,2025-01-06T00:30:00Z,1.0,231\n"
                        "C,2025-01-06T00:45:00Z,1.0,230\n")
    c.write_text(HEAD + "C,2025-01-06T00:45:00Z,1.0,230\n")   # a plain re-send: no conflict
    db = tmp_path / "s.duckdb"
    got = [_run("ingest", f, "--db", db, "--rejects", tmp_path / f"r{i}.csv", json_out=True)
           for i, f in enumerate((a, b, c))]
    keep = ("read", "stored", "duplicates", "already_stored", "conflicts", "rejected")
    assert [tuple(g[k] for k in keep) for g in got] == [(4, 3, 1, 0, 1, 0), (5, 1, 4, 3, 2, 0), (1, 0, 1, 1, 0, 0)]
    with Store(db, read_only=True) as s:   # the stored values kept, the blank filled
        q = s.query(columns=["p_kw", "v_l1_v"])
    assert list(q.p_kw) == [1.0] * 4 and list(q.v_l1_v) == [230.0, 230.0, 231.0, 230.0]

    # The table: a conflicts column and a line saying what it counts, only when there are any.
    d = tmp_path / "d.csv"
    d.write_text(HEAD + "C,2025-01-06T00:45:00Z,3.0,230\n")
    out = _run("ingest", d, c, "--db", db, "--rejects", tmp_path / "rd.csv", json_out=False)
    rows = {ln.split()[1]: ln.replace("┃", "│").split("│")[1:-1] for ln in out.splitlines()
            if ln.startswith(("┃ file", "│ "))}
    assert [x.strip() for x in rows["file"]] == ["file", "read", "stored", "duplicates", "conflicts", "rejected",
                                                 "rows/s"], out
    assert [x.strip() for x in rows["d.csv"]][:6] == ["d.csv", "1", "0", "1", "1", "0"], out
    assert [x.strip() for x in rows["c.csv"]][:6] == ["c.csv", "1", "0", "1", "0", "0"], out
    assert "conflicts: 1 reading(s) given again with other values than those kept (counted in duplicates" \
        in " ".join(out.split()), out
    out = _run("ingest", c, "--db", db, "--rejects", tmp_path / "rc.csv", json_out=False)
    assert "conflicts" not in out, out
