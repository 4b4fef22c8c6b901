"""np (issue 16): the meters a stitcher judges at a piece are found from the piece's codes (its rows
after its copies are dropped) and the stale meters: not from its ``meter_id`` categories, which may
name meters the piece has no row of (a Categorical's unused categories, a meter whose only rows were
copies of readings its tail holds). A group's piece is its channels' arrays in a new frame (not
copied): the caller's piece is left as it was.

Three meters at 15 min (seed 5121), the stream's supply_outage + harmonic_noise + loose_ct group (it keeps its
channels only, so the piece is cut to them): after a first piece, a piece whose ``meter_id`` has all
three meters as categories but rows of two, plus a copy of the third's last reading, judges the two;
a piece of one meter with another marked stale judges both."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect import registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitcher, read_channels
from wattwatch.sim import SimConfig, simulate


def test_the_meters_judged_are_those_the_piece_has_rows_of_and_the_stale_ones():
    sim = simulate(SimConfig(meters=3, days=2.0, step="15min", seed=5121, fault_share=0.0, profile_days=1.0))
    frame = sim["frame"].drop_duplicates(["meter_id", "ts"]).sort_values(["meter_id", "ts"]).reset_index(drop=True)
    dets = registry.build_all(["supply_outage", "harmonic_noise", "loose_ct"])
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    st = Stitcher(dets, keep_scores=False, columns=read_channels(dets))
    assert st.columns is not None and len(st.columns) < len(frame.columns) - 2   # the piece is cut to them
    names = sorted(frame["meter_id"].astype(str).unique())
    t0 = frame["ts"].min()
    first = frame[frame["ts"] < t0 + pd.Timedelta(hours=36)]
    assert st.feed(first).judged == set(names)

    a, b, c = names
    nxt = frame[(frame["ts"] >= t0 + pd.Timedelta(hours=36)) & (frame["ts"] < t0 + pd.Timedelta(hours=38))]
    copy = first[first["meter_id"].astype(str) == c].tail(1)   # c's last reading again: a copy, dropped
    piece = pd.concat([nxt[nxt["meter_id"].astype(str).isin([a, b])], copy], ignore_index=True)
    piece["meter_id"] = pd.Categorical(piece["meter_id"].astype(str), categories=names)
    before = piece.copy()
    step = st.feed(piece)
    assert step.judged == {a, b}, step.judged
    pd.testing.assert_frame_equal(piece, before)   # the caller's piece untouched
    held = st.tail[st.tail["meter_id"].astype(str) == c]
    assert held["ts"].max() == copy["ts"].iloc[0] and held["ts"].is_unique   # c's tail as it was

    later = frame[(frame["ts"] >= t0 + pd.Timedelta(hours=38)) & (frame["ts"] < t0 + pd.Timedelta(hours=39))]
    st.stale = {c}
    piece = later[later["meter_id"].astype(str) == a]
    piece = piece.assign(meter_id=pd.Categorical(piece["meter_id"].astype(str), categories=names))
    assert st.feed(piece).judged == {a, c}
    assert np.isin([a, b, c], st.tail["meter_id"].astype(str).unique()).all()
