"""(rev46) The rejects file's order is the file's own, whatever order the engine's threads return.

Rows were sorted by (file, line) alone: a wide export gives one reading per meter column on a line,
and the bad cells of one line came out in DuckDB's thread order, so the same file ingested twice
wrote its rejects file in two orders (measured: 150 meters x 3,000 lines, three runs, three different
files; main before fld46 too). Within a line they now follow the field (the meter of a wide cell, the
channel of a dropped value), then the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.ingest.mapping import Mapping
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.store import Store
from wattwatch.store.duck import IngestCounts


def _key(r):
    return (r[0], r[1], r[2], r[3])


def test_reject_lines_within_a_line_follow_the_field():
    c = IngestCounts("x", rejects=[("f", 2, "m9", "m9: p_kw: 'x' is not a number; no channel value left")],
                     dropped=[("f", 2, "m3", "m3: v_l1_v: infinite"), ("f", 1, "p_kw", "p_kw: infinite"),
                              ("f", 2, "m1", "m1: v_l1_v: infinite")])
    assert [(r[1], r[2]) for r in c.reject_lines] == [(1, "p_kw"), (2, "m1"), (2, "m3"), (2, "m9")]


def test_a_wide_file_writes_its_rejects_in_one_order(tmp_path: Path):
    rng = np.random.default_rng(3)
    n, meters = 600, 40
    d = {"time": pd.date_range("2026-03-28", periods=n, freq="15min").strftime("%Y-%m-%d %H:%M:%S")}
    for m in range(meters):
        p = np.round(rng.random(n) * 1000, 1).astype(object)
        v = np.round(230 + rng.random(n), 1).astype(object)
        p[rng.random(n) < 0.05] = "abc"
        v[rng.random(n) < 0.05] = "inf"
        d[f"m{m:02d}_P"], d[f"m{m:02d}_V"] = p, v
    pd.DataFrame(d).to_csv(tmp_path / "w.csv", index=False)
    (tmp_path / "m.toml").write_text('[options]\ntimezone = "Europe/Berlin"\n[wide]\nts = "time"\nmeter_columns = "*"\n'
                                     '[units]\np_kw = "W"\n[wide.channels]\np_kw = "{meter}_P"\nv_l1_v = "{meter}_V"\n')
    mapping = Mapping.from_toml(tmp_path / "m.toml")
    got = []
    for k in range(2):
        with Store(tmp_path / f"s{k}.duckdb") as s:
            got.append(ingest_path(s, tmp_path / "w.csv", mapping).reject_lines)
    assert got[0] == got[1] and got[0] == sorted(got[0], key=_key)
    c = got[0]
    assert len(c) > 100 and any(a[1] == b[1] for a, b in zip(c, c[1:]))   # many lines with more than one
