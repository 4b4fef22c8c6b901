"""Late readings for a watcher on a compacted store (cut30, ba90069): a late reading for a compacted
hour re-judges nothing (it stays raw until the next compaction and is not judged, as ``detect`` does
not load it), and a re-judging treats the meter's compaction cut as its first reading even when a
raw reading before the cut (a backlog ingested after the compaction) is in the store. Guards B6 and
B7 of docs/live-log.md (tt8, rtt8), which no watch test of test_compaction_cut.py catches (there the
compacted-hour reading always comes with one after the cut, and the re-judge's own clamp hides it).
In-process engine on a small fleet: a few seconds."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from wattwatch import api
from wattwatch.alerts import store as alert_store
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}}
# Detectors of short reach (about 7 h ahead and 8.5 h back at 15 min): a re-judge from an hour
# after the cut starts about 14.5 h before it, after the backlog reading 20 h before it, so the
# meter's first raw reading does not make it the meter's origin; only the cut does.
DETECTORS = ["supply_outage", "phase_imbalance"]


@pytest.fixture(scope="module")
def compacted(tmp_path_factory):
    """3 meters x 4 days at 15 min (seed 1601), compacted up to 60 h after the first midnight, then
    a backlog reading of one meter 20 h before the cut ingested raw: (frame, db, cut, meter)."""
    frame = simulate(SimConfig(meters=3, days=4, step="15min", seed=1601, fault_share=0.9, profile_days=1.0,
                               outage_share=0.5))["frame"]
    db = tmp_path_factory.mktemp("compacted-late") / "s.duckdb"
    api.ingest(frame, db)
    cut = frame["ts"].min().floor("D") + pd.Timedelta(hours=60)
    with Store(db) as s:
        s.compact(older_than_days=0, as_of=cut)
    m = sorted(frame["meter_id"].unique())[0]
    api.ingest(_late(frame, m, cut - pd.Timedelta(hours=20)), db)
    return frame, db, cut, m


def _late(frame, meter, at):
    """A new reading of ``meter``: a minute after its first one at or after ``at``."""
    r = frame[(frame["meter_id"] == meter) & (frame["ts"] >= at)].iloc[[0]].copy()
    r["ts"] = r["ts"] + pd.Timedelta(minutes=1)
    return r


def _watcher(compacted, tmp_path):
    """A watcher started on a copy of the compacted store, having judged all it holds."""
    _, base, cut, m = compacted
    db = tmp_path / "s.duckdb"
    shutil.copy(base, db)
    s = Store(db)
    eng = StreamEngine(s, api.build_detectors(DETECTORS, CONFIG), api._engine(CONFIG), StreamConfig(checkpoint_s=0))
    assert m in eng.cut and eng.first[m] < eng.cut[m] * 1e6, "the backlog reading before the cut is raw"
    eng.step(final=True)
    return s, eng


def test_a_late_reading_for_a_compacted_hour_re_judges_nothing(compacted, tmp_path):
    """B6 (`tj = tm`: every late reading marks a re-judge): the meter was re-judged from the
    compacted hour (a rewind of ~240 readings) for a reading nothing judges."""
    frame, _, cut, m = compacted
    s, eng = _watcher(compacted, tmp_path)
    try:
        before = alert_store.list_alerts(s.con, "all")
        eng.add(_late(frame, m, cut - pd.Timedelta(hours=5)))
        eng.step()
        assert eng.counters["stored"] == 1 and eng.counters["late"] == 1, dict(eng.counters)
        assert eng.counters["rewinds"] == 0 and eng.counters["rejudged"] == 0, dict(eng.counters)
        eng.flush()
        after = alert_store.list_alerts(s.con, "all")
    finally:
        eng.close()
        s.close()
    pd.testing.assert_frame_equal(before[["id", "start", "end"]], after[["id", "start", "end"]])


def test_a_re_judging_judges_a_compacted_meter_from_its_cut_as_its_first_reading(compacted, tmp_path):
    """B7 (the re-judge's first raw reading without the meter's cut): with the backlog reading
    before the cut, the re-judge's start (after that reading, before the cut) read as the middle of
    the meter's data, judged without its compacted hours' carry, instead of from its first reading
    (the cut, as ``detect`` judges it): every feed of the re-judge must judge the meter from its
    origin."""
    frame, _, cut, m = compacted
    s, eng = _watcher(compacted, tmp_path)
    seen = []
    feed = eng.stitcher.feed

    def watched(piece, *a, **k):   # what the stitcher is told of the meter when the re-judge feeds it
        seen.append((eng.stitcher.origin.get(m), eng.stitcher.n_before.get(m)))
        return feed(piece, *a, **k)
    try:
        eng.stitcher.feed = watched
        eng.add(_late(frame, m, cut + pd.Timedelta(hours=1)))
        eng.step()
        assert eng.counters["rewinds"] == 1 and eng.counters["rejudged"] > 0, dict(eng.counters)
    finally:
        eng.close()
        s.close()
    assert seen and all(o is True and n == 0 for o, n in seen), seen
