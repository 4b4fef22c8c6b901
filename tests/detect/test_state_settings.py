"""A detector's stored state and the settings it was learned with: a setting that only shapes the
scores of a learned state (``DetectorConfig.scoring_only``) does not make it "learned with other
settings"."""

from __future__ import annotations

import json

import duckdb

from tests.detect.conftest import healthy
from wattwatch.detect import registry
from wattwatch.detect import state as state_mod
from wattwatch.detect.frame import prepare


def test_a_setting_that_only_shapes_scores_does_not_ask_for_a_refit(tmp_path):
    """phase_imbalance learns its profiled imbalance and normal shares; its limits (``level_k``,
    ``margin``, ``spread_k``...) are drawn from them when scoring (``scoring_only``). A state stored
    before lead32 added ``level_k`` (its settings without it) or with another margin is the same
    state: no "learned with other settings, run wattwatch fit" notice. A setting the learning reads
    (``min_mean_a``) still gives it."""
    df = healthy("commercial", days=4)
    det = registry.build("phase_imbalance").fit(prepare(df))
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert state_mod.save(con, [det]) == 1
    old = json.loads(con.execute("SELECT settings FROM meter_state").fetchone()[0])
    old.pop("level_k")
    con.execute("UPDATE meter_state SET settings = ?", [json.dumps(old, sort_keys=True)])
    for params, refit in (({}, False), ({"margin": 0.08}, False), ({"min_mean_a": 2.0}, True)):
        fresh = registry.build("phase_imbalance", params)
        notices = state_mod.load(con, [fresh], list(det.state_))
        assert set(fresh.state_) == set(det.state_), "the stored state is used as it is"
        assert any("other settings" in n for n in notices) == refit, (params, notices)
        if refit:
            assert "min_mean_a" in notices[0] and "level_k" not in notices[0], notices
