"""baseline_macd's stored state is versioned: since the base-load floor is learned on buildings
too (a floor above ``floor_max_share`` of the mean load, read by the veto), a state stored before
(version 1, no floor there) is not used but profiled again, so an old store does not judge its
buildings with the veto off until someone thinks of running ``wattwatch fit``."""

from __future__ import annotations

import duckdb
import numpy as np

from wattwatch.detect import registry
from wattwatch.detect import state as state_mod
from wattwatch.detect.frame import prepare

from tests.detect.test_macd_building_floor import school


def test_a_state_stored_before_the_building_floor_is_profiled_again(tmp_path):
    df = school(days=10)
    macd = registry.build("baseline_macd").fit(prepare(df[df.ts < df.ts.min() + np.timedelta64(7, "D")]))
    st = macd.state_["school"]
    assert np.isfinite(st["floor_kw"]) and st["floor_kw"] > macd.config.floor_max_share * st["mean_kw"], \
        "a building: its floor is learned above floor_max_share of the mean (for the veto)"
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    # The store as version 1 wrote it: no floor on a building.
    old = {**st, "floor_kw": None, "floor_spread": None, "floor_spread_low": None, "state_version": 1}
    macd.state_["school"] = old
    assert state_mod.save(con, [macd]) == 1
    assert con.execute("SELECT state_version FROM meter_state").fetchall() == [(1,)]

    fresh = registry.build("baseline_macd")
    notices = state_mod.load(con, [fresh], ["school"])
    assert "school" not in getattr(fresh, "state_", {}), "a version-1 state must not be used"
    assert any("another version" in n and "profiled again" in n for n in notices), notices

    # A state this version wrote is used as it is.
    macd.state_["school"] = st
    state_mod.save(con, [macd])
    again = registry.build("baseline_macd")
    assert state_mod.load(con, [again], ["school"]) == []
    assert again.state_["school"]["floor_kw"] == st["floor_kw"] and again.state_["school"]["state_version"] == macd.state_version == 7
