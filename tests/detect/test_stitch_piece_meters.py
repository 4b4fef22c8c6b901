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
from wattwatch.detect.stitch import Stitcher, Stitchers, read_channels
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


def _read_only(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each of its NumPy columns a read-only copy (a write through any view of it raises)."""
    cols = {}
    for c in df.columns:
        a = df[c].array
        if isinstance(a, pd.arrays.NumpyExtensionArray):
            a = a.to_numpy().copy()
            a.setflags(write=False)
        cols[c] = a
    return pd.DataFrame(cols, copy=False)


def test_the_callers_arrays_are_never_written_by_any_group():
    """rnp: each group's frame holds the caller's arrays (``_own`` no longer copies the channels it
    keeps; a group that keeps every channel never did), so no step of a feed may write into them:
    here they are read-only (a write raises) through a first piece (its arrays handed to the core and
    every fast detector as they are) and a piece with copies of a reading within it (the most complete
    kept, its missing channel filled from the other copy: on a copy of the column, not the caller's)."""
    sim = simulate(SimConfig(meters=3, days=2.0, step="15min", seed=5121, fault_share=0.0, profile_days=1.0))
    frame = sim["frame"].drop_duplicates(["meter_id", "ts"]).sort_values(["meter_id", "ts"]).reset_index(drop=True)
    dets = registry.build_all(["supply_outage", "harmonic_noise", "loose_ct", "packet_loss", "frozen_readings",
                               "channel_invalid"])
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    st = Stitchers(dets, keep_scores=False)
    assert any(p.columns is not None and len(p.columns) < len(frame.columns) - 2 for p in st.parts)
    t0 = frame["ts"].min()
    first = _read_only(frame[frame["ts"] < t0 + pd.Timedelta(hours=36)].reset_index(drop=True))
    before = first.copy()
    st.feed(first)
    pd.testing.assert_frame_equal(first, before)

    nxt = frame[(frame["ts"] >= t0 + pd.Timedelta(hours=36)) & (frame["ts"] < t0 + pd.Timedelta(hours=38))]
    row = nxt.iloc[[0]]
    chan = "i_l1_a"
    piece = pd.concat([row.assign(**{chan: np.nan}), row.assign(v_l1_v=np.nan), nxt.iloc[1:]], ignore_index=True)
    piece = _read_only(piece)
    before = piece.copy()
    st.feed(piece)
    pd.testing.assert_frame_equal(piece, before)
    # the copies made one reading, its channel filled from the other copy
    m, ts = row["meter_id"].iloc[0], row["ts"].iloc[0]
    held = [t[(t["meter_id"].astype(str) == str(m)).to_numpy() & (t["ts"] == ts).to_numpy()] for t in st.tails]
    held = [h for h in held if len(h) and chan in h.columns]
    assert held and all(len(h) == 1 and h[chan].iloc[0] == row[chan].iloc[0] for h in held)
