"""(rhd3) A watcher started on a store whose state of one detector was written by another version
(baseline_macd's ``state_version`` 6 -> 7, hd3): that detector's state is dropped, and the meter is
profiled again, as ``detect`` profiles it, and said so at start. Before, the meter counted profiled (the
other detectors' state, the checkpoint's list) and baseline_macd skipped it for good ("lack state (never
fitted)"): a watcher resumed across the version bump never judged its meters' energy again."""

from __future__ import annotations

import pandas as pd

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store

from tests.detect.test_macd_floor_least import TIGHT, _home

CONFIG = {"engine": {"profile_days": 7.0}, "detectors": ["baseline_macd", "packet_loss"]}


def test_a_state_of_another_version_is_profiled_again_after_a_restart_from_the_checkpoint(tmp_path):
    # rh7's home (a profiled week of mostly loaded nights, then its standby) and a three-day bypass.
    frame = _home("2025-01-13 18:00", keep_days=3.0, floors=TIGHT)
    mk = lambda s: StreamEngine(s, api.build_detectors(None, CONFIG), api._engine(CONFIG),  # noqa: E731
                                StreamConfig(checkpoint_s=1e9, slow_thread=False))
    path = tmp_path / "live.duckdb"
    store = Store(path)
    eng = mk(store)
    eng.add(frame[frame["ts"] < "2025-01-13 12:00"])   # (the profiled week and a half day)
    eng.step()
    assert all("home" in d.state_ for d in eng.dets)
    eng.checkpoint()
    eng.close()
    # The store as an earlier version left it: baseline_macd's state of version 6.
    store.con.execute("UPDATE meter_state SET state_version = 6 WHERE detector = 'baseline_macd'")
    store.close()
    store = Store(path)
    eng = mk(store)
    assert eng.resumed
    eng.add(frame[frame["ts"] >= "2025-01-13 12:00"])
    rep = eng.step(final=True)
    eng.close()
    macd = next(d for d in eng.dets if d.name == "baseline_macd")
    said = " | ".join(rep.notices)
    assert "home" in macd.state_ and "profiled again" in said and "lack state" not in said, said
    kept = store.con.execute("SELECT state_version FROM meter_state WHERE detector = 'baseline_macd'").fetchall()
    assert kept == [(macd.state_version,)], kept
    got = [a for a in eng.alerts.values() if a.detector == "baseline_macd"]
    assert any(pd.Timestamp(a.start) > pd.Timestamp("2025-01-13 18:00", tz="UTC") for a in got), \
        [(a.start, a.message) for a in got]
    store.close()
