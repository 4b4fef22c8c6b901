"""Review: a stream carrying baseline_macd's closed hours (a building whose floor veto fires, a
bypass left on for weeks) given a stretch of readings ten days late (inside the carried hours,
long out of the raw tail), stopped and started again from its checkpoint on the way: its alerts
equal `detect` on the same readings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store

from tests.detect.test_stitch_hours_building import _fleet
from tests.live.test_rejudge import _mismatches

CONFIG = {"engine": {"profile_days": 30.0, "profile_max_share": 0.6},
          "detectors": ["supply_outage", "sensor_fault", "frozen_readings", "baseline_macd"]}


def _schedule(frame: pd.DataFrame):
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    day = frame["ts"].min() + pd.Timedelta("30D")
    late = (frame["meter_id"] == "school") & (frame["ts"] >= "2025-02-12 09:00Z") & (frame["ts"] < "2025-02-12 15:00Z")
    due = frame["ts"].where(~late, pd.Timestamp("2025-02-22 12:00Z"))
    yield frame[frame["ts"] < day]
    rest = frame["ts"] >= day
    for _, p in frame[rest].groupby(due[rest].dt.floor("13h"), sort=True):
        yield p


@pytest.mark.parametrize("step", ["15min", "60min"])
def test_late_stretch_inside_the_carried_hours_and_a_restart_give_detect_alerts(tmp_path, step):
    frame = _fleet(step)
    want = api.detect(frame, db=tmp_path / "batch.duckdb", config=CONFIG).alerts
    assert any(a.detector == "baseline_macd" for a in want)
    path = tmp_path / "live.duckdb"
    store = Store(path)
    mk = lambda s: StreamEngine(s, api.build_detectors(None, CONFIG), api._engine(CONFIG),  # noqa: E731
                                StreamConfig(checkpoint_s=0))
    eng = mk(store)
    alerts = {}
    for k, piece in enumerate(_schedule(frame)):
        if k == 30:   # stopped and started again from the checkpoint
            eng.checkpoint()
            alerts.update(eng.alerts)
            store.close()
            store = Store(path)
            eng = mk(store)
            assert any(eng.stitcher.hours.values()), "the carried hours come back from the checkpoint"
        eng.add(piece)
        eng.step()
    eng.flush()
    assert eng.counters["late"] >= 1 and eng.counters["rewinds"] >= 1, dict(eng.counters)
    alerts.update(eng.alerts)
    problems = _mismatches(want, list(alerts.values()))
    assert not problems, "\n".join(problems[:10])
    store.close()


def test_a_stretch_older_than_the_carried_hours_arrives_late(tmp_path):
    """Profiled on a week (the limits do not recalibrate: a reach of days, not six weeks), the
    school's 2025-01-14 working hours arrive six weeks late, long before the hours carried then."""
    cfg = {**CONFIG, "engine": {"profile_days": 7.0, "profile_max_share": 0.6}}
    frame = _fleet("60min").sort_values("ts", kind="stable").reset_index(drop=True)
    want = api.detect(frame, db=tmp_path / "batch.duckdb", config=cfg).alerts
    assert any(a.detector == "baseline_macd" for a in want)
    late = ((frame["meter_id"] == "school") & (frame["ts"] >= "2025-01-14 09:00Z")
            & (frame["ts"] < "2025-01-14 15:00Z")).to_numpy()
    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, cfg), api._engine(cfg), StreamConfig(checkpoint_s=0))
    day = frame["ts"].min() + pd.Timedelta("7D")
    eng.add(frame[(frame["ts"] < day).to_numpy()])
    eng.step()
    rest = frame[(frame["ts"] >= day).to_numpy() & ~late]
    for _, p in rest.groupby(rest["ts"].dt.floor("1D"), sort=True):
        eng.add(p)
        eng.step()
    eng.settle()   # the slow tier's last judgement carries the hours looked at next (its worker may still run)
    h = eng.stitcher.hours["baseline_macd"]["school"]
    assert h.h0 > pd.Timestamp("2025-01-15", tz="UTC").timestamp(), "the late stretch is older than the carry"
    eng.add(frame[late])
    eng.step()
    eng.flush()
    assert eng.counters["rewinds"] >= 1, dict(eng.counters)
    problems = _mismatches(want, list(eng.alerts.values()))
    assert not problems, "\n".join(problems[:10])
    store.close()
