"""The `status` output of `watch` that the Live page follows: written after every step, whole."""

from __future__ import annotations

import json

import pytest

from wattwatch import api
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store


def test_watch_writes_counters_meters_and_open_alerts(tmp_path):
    simulate(SimConfig(meters=3, days=2.0, step="15min", seed=5, fault_share=1.0, profile_days=1.0), tmp_path)
    cfg = tmp_path / "site.toml"
    cfg.write_text('[store]\npath = "s.duckdb"\n[[sources]]\ntype = "replay"\npath = "telemetry.parquet"\n'
                   'cycle_s = 900\n[[sinks]]\ntype = "status"\npath = "live.json"\n[engine]\nprofile_days = 1.0\n')
    res = api.watch(cfg, until_done=True)
    doc = json.loads((tmp_path / "live.json").read_text())
    with Store(tmp_path / "s.duckdb", read_only=True) as s:
        stored = s.con.execute("SELECT count(*) FROM readings_raw").fetchone()[0]
        open_ids = {r[0] for r in s.con.execute("SELECT id FROM alerts WHERE status = 'open'").fetchall()}
    final = json.loads(json.dumps(res.counters))
    final.pop("checkpoints", None)          # the last checkpoint comes after the last step
    assert {k: v for k, v in doc["counters"].items() if k != "checkpoints"} == final
    assert sum(m["readings"] for m in doc["meters"]) >= stored and len(doc["meters"]) == 3
    assert open_ids and {a["id"] for a in doc["open"]} == open_ids and doc["open_total"] == len(open_ids)
    assert not (tmp_path / "live.json.tmp").exists()


@pytest.mark.parametrize("sink, why", [('path = ""', "path must be a file name"),
                                       ('path = "x.json"\nopen_limit = -1', "open_limit must be"),
                                       ('path = "x.json"\ncolour = "red"', "unknown key")])
def test_bad_status_sinks_are_refused_naming_the_key(tmp_path, sink, why):
    (tmp_path / "t.csv").write_text("meter_id,ts,p_kw\nm,2025-01-01T00:00:00Z,1\n")
    cfg = tmp_path / "site.toml"
    cfg.write_text(f'[store]\npath = "s.duckdb"\n[[sources]]\ntype = "replay"\npath = "t.csv"\n'
                   f'[[sinks]]\ntype = "status"\n{sink}\n')
    with pytest.raises(api.ConfigError, match=why):
        api.load_site(cfg)
