"""(fz) A watcher resumed on a store whose ``frozen_readings`` and ``supply_outage`` state was written
before ``temp_moves`` (state version 1): both detectors profile the meter again, as ``detect`` does,
and the logger frozen on an outage's reading is then reported as frozen readings (a version-1 state
would read it as the outage's): rhd3's restart path, for this bump."""

from __future__ import annotations

import pandas as pd

from tests.detect.test_frozen_outage import I0, OUT_N, _meter
from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 2.0}, "detectors": ["supply_outage", "frozen_readings"]}


def test_a_version_1_state_is_profiled_again_after_a_restart_and_the_freeze_is_found(tmp_path):
    frame = _meter("FRZ", 1, True)
    cut = frame["ts"].iloc[I0 - 8]                 # two hours before the outage
    mk = lambda s: StreamEngine(s, api.build_detectors(None, CONFIG), api._engine(CONFIG),  # noqa: E731
                                StreamConfig(checkpoint_s=1e9, slow_thread=False))
    path = tmp_path / "live.duckdb"
    store = Store(path)
    eng = mk(store)
    eng.add(frame[frame["ts"] < cut])
    eng.step()
    assert all("FRZ" in d.state_ for d in eng.dets)
    eng.checkpoint()
    eng.close()
    store.con.execute("UPDATE meter_state SET state_version = 1 WHERE detector IN ('frozen_readings', 'supply_outage')")
    store.close()
    store = Store(path)
    eng = mk(store)
    assert eng.resumed
    eng.add(frame[frame["ts"] >= cut])
    rep = eng.step(final=True)
    eng.close()
    said = " | ".join(rep.notices)
    assert "profiled again" in said and "lack state" not in said, said
    for d in eng.dets:
        assert "temp_moves" in d.state_["FRZ"], d.name
    got = sorted((a.detector, pd.Timestamp(a.start)) for a in eng.alerts.values() if a.meter_id == "FRZ")
    assert [d for d, _ in got] == ["frozen_readings", "supply_outage"], got
    assert got[0][1] >= pd.Timestamp(frame["ts"].iloc[I0 + OUT_N]) - pd.Timedelta(seconds=5), got
    store.close()
