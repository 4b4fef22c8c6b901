"""(rev46) A few glitched values in a small file are not a mapping mistake.

fld46 calls a channel "mostly bad" (a loud note, ``ingest`` exits 1) when more than half of its
given values are bad. On a small file (a scheduled job's few minutes of one meter) two glitches in
three readings met that bar: the file whose readings were all kept exited 1, where main before
fld46 (which rejected those two rows whole) exited 0. A mapping mistake must be told from chance:
the share bad must be more than half beyond doubt (one-sided binomial test), as the 40-of-40
W-as-kW feeder of ``test_value_drops.py`` still is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wattwatch.store.duck import IngestCounts


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wattwatch.app.cli", *args], capture_output=True, text=True)


def test_two_glitches_in_three_readings_keep_the_exit_0(tmp_path: Path):
    p = tmp_path / "few.csv"
    p.write_text("meter_id,ts,p_kw,v_l1_v\nm1,2026-10-01T00:00:00Z,1,230\n"
                 "m1,2026-10-01T00:15:00Z,abc,230\nm1,2026-10-01T00:30:00Z,inf,231\n")
    out = _cli("ingest", str(p), "--db", str(tmp_path / "s.duckdb"), "--rejects", str(tmp_path / "r.csv"), "--json")
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)["files"][0]
    assert (c["read"], c["stored"], c["rejected"]) == (3, 3, 0)
    assert c["values_dropped"] == {"p_kw": 2} and c["channels_mostly_bad"] == []
    assert "most of the channel" not in out.stderr
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 3   # the header and the two values


def test_mostly_bad_needs_evidence_not_a_bare_majority():
    c = IngestCounts("x", bad_values={"p_kw": 2, "v_l1_v": 1, "i_l1_a": 40, "pf": 30},
                     given={"p_kw": 3, "v_l1_v": 1, "i_l1_a": 40, "pf": 100})
    assert c.mostly_bad == ["i_l1_a"]
    # All bad on 7 values is past doubt (0.5 ** 7 < 1 %); on 6 it is not.
    assert IngestCounts("y", bad_values={"p_kw": 7}, given={"p_kw": 7}).mostly_bad == ["p_kw"]
    assert IngestCounts("y", bad_values={"p_kw": 6}, given={"p_kw": 6}).mostly_bad == []
