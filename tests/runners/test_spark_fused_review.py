"""Review: detect --engine spark's fused fit with a user's state covering some meters (the others
fitted in their tasks), on a store, with and without --start/--end: the local engine's alerts,
notices and stored state."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from wattwatch import api
from wattwatch.detect import registry, state
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

CFG = {"engine": {"profile_days": 2.0}}


@pytest.fixture(scope="module")
def sim():
    return simulate(SimConfig(meters=8, days=5, seed=7, fault_share=0.6, profile_days=2.0, outage_share=0.3))


@pytest.mark.parametrize("window", [{}, {"start": True}])
def test_user_state_for_half_the_meters_then_spark_fits_the_rest(spark, sim, tmp_path, window):
    frame = sim["frame"]
    meters = sorted(frame["meter_id"].astype(str).unique())
    half = frame[frame["meter_id"].astype(str).isin(meters[:4])]
    t0 = frame["ts"].min()
    win = {k: t0 + pd.Timedelta("3D") for k in window}
    out = {}
    for engine in ("local", "spark"):
        db = tmp_path / f"{engine}.duckdb"
        api.ingest(frame, db)
        fitted = api.fit(half, config=CFG)
        res = api.detect(db, state=fitted, engine=engine, config=CFG, **win)
        with Store(db) as store:
            dets = registry.build_all()
            state.load(store.con, dets, meters)
        out[engine] = res, {d.name: json.dumps(d.get_state(), sort_keys=True) for d in dets}
    (a, sa), (b, sb) = out["local"], out["spark"]
    assert [x.to_json() for x in a.alerts] == [x.to_json() for x in b.alerts]
    assert a.notices == b.notices
    assert sa == sb
