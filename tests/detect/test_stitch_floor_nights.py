"""baseline_macd's two days' floor excused at a profiled night the standby reads as a drop
(``floor_two_nights``, the nights stored as ``floor_nights_kw``, state version 7): the state kept in a
store and loaded again, streamed a day at a time and resumed from a checkpoint, gives every reading the
score and every alert the whole history at once gives (batch, stream and rejudge read the same state)."""

from __future__ import annotations

import duckdb
import pandas as pd

from wattwatch.detect import core, registry
from wattwatch.detect import state as state_mod
from wattwatch.detect.frame import prepare

from tests.detect.test_macd_floor_least import TIGHT, _home
from tests.detect.test_stitch_standby import day_by_day_mismatches


def test_the_excused_standby_and_a_bypass_streamed_from_a_stored_state_equal_the_whole_history(tmp_path):
    # rh7's home: a profiled week of one ordinary night (0.20 kW) and six loaded ones, then its own standby
    # (0.19 kW: excused) and a three-day bypass keeping 0.47 (judged).
    frame = _home("2025-01-13 18:00", keep_days=3.0, floors=TIGHT)
    fitted = registry.build("baseline_macd").fit(prepare(frame[frame.ts < "2025-01-13"]))
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert state_mod.save(con, [fitted]) == 1
    macd = registry.build("baseline_macd")
    assert state_mod.load(con, [macd], ["home"]) == []
    nights = macd.state_["home"]["floor_nights_kw"]
    assert len(nights) == 7 and min(nights) * (1 + macd.config.min_rel) < macd.state_["home"]["standby_kw"], nights

    whole = core.run(frame, [macd])
    floor = [a for a in whole.alerts if a.detector == "baseline_macd" and a.evidence.get("basis") == "floor"]
    assert len(floor) == 1 and "two days" in floor[0].message and \
        pd.Timestamp(floor[0].start) > pd.Timestamp("2025-01-13 18:00", tz="UTC"), \
        [(a.start, a.message) for a in whole.alerts]

    problems = day_by_day_mismatches(frame, macd, whole, resume_at=2)
    assert not problems, "\n".join(problems[:12])
