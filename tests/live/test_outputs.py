"""Outputs of `watch` (sinks, actions) see what the store committed, and never stop the engine."""

from __future__ import annotations

from wattwatch import api
from wattwatch.sinks import Output
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store


class Recorder(Output):
    kind = "recorder"

    def __init__(self, name="rec", fail=False):
        super().__init__(name)
        self.rows, self.ids, self.ended, self.closed, self.fail = 0, set(), set(), 0, fail

    def readings(self, frame):
        if self.fail:
            raise RuntimeError("sink down")
        self.rows += len(frame)

    def alerts(self, report, engine):
        if self.fail:
            raise RuntimeError("sink down")
        self.ids |= {a.id for a in report.alerts}
        self.ended |= set(report.ended)

    def close(self):
        self.closed += 1


def test_outputs_get_every_committed_reading_and_alert_and_a_failing_one_is_counted(tmp_path):
    simulate(SimConfig(meters=3, days=2.0, step="15min", seed=5, fault_share=1.0, profile_days=1.0), tmp_path)
    cfg = tmp_path / "site.toml"
    cfg.write_text('[store]\npath = "s.duckdb"\n[[sources]]\ntype = "replay"\npath = "telemetry.parquet"\n'
                   'cycle_s = 900\n[engine]\nprofile_days = 1.0\n')
    site = api.load_site(cfg)
    good, bad = Recorder(), Recorder("down", fail=True)
    site.outputs += [bad, good]
    res = api.watch(site, until_done=True)
    with Store(tmp_path / "s.duckdb", read_only=True) as s:
        stored = s.con.execute("SELECT count(*) FROM readings_raw").fetchone()[0]
        ids = {r[0] for r in s.con.execute("SELECT id FROM alerts").fetchall()}
    assert ids and good.ids == ids
    assert good.rows >= stored > 0          # every committed reading (duplicates included) went out
    assert good.closed == 1 and bad.closed == 1
    assert bad.counters["failures"] > 0     # counted, and the engine went on (the good one got everything)
    views = {v["name"]: v for v in res.outputs}
    assert views["down"]["failures"] == bad.counters["failures"] and views["rec"]["kind"] == "recorder"
