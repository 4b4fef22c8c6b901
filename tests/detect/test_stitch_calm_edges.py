"""rev29: edges of the calm path (live25) a stitcher with calm meters must carry as judging every
meter does: a meter silent for longer than packet_loss's window and then back (the gap's loss
lands on the readings around it), jittered stamps, a cadence that changes from 1 to 15 minutes,
readings exactly at a tail's last time and late ones, a detector's state changed (re-learned)
while a meter is calm, and a restart from the carry in the middle of calm steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import core

from tests.detect.test_stitch_calm import _compare, _fleet, _pieces


def _edit(frame: pd.DataFrame, dets, case: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    meters = sorted(frame["meter_id"].astype(str).unique())
    m = frame["meter_id"].astype(str).to_numpy()
    t0 = frame["ts"].min()
    if case == "gap":   # two meters silent 14 h (longer than the 12-h window) from hour 30 / 40:
        # meters that raise no alert otherwise (calm up to the gap)
        quiet = [q for q in meters if q not in {a.meter_id for a in core.run(frame, dets).alerts}]
        drop = ((m == quiet[0]) & (frame["ts"] > t0 + pd.Timedelta(hours=30)) & (frame["ts"] < t0 + pd.Timedelta(hours=44))) \
            | ((m == quiet[1]) & (frame["ts"] > t0 + pd.Timedelta(hours=40)) & (frame["ts"] < t0 + pd.Timedelta(hours=54)))
        return frame[~drop].reset_index(drop=True)
    if case == "jitter":   # every stamp moved up to 20 % of a minute, order kept
        out = frame.copy()
        out["ts"] = out["ts"] + pd.to_timedelta(rng.uniform(-12, 12, len(out)).round(3), unit="s")
        return out.sort_values(["meter_id", "ts"], kind="stable").drop_duplicates(["meter_id", "ts"]).reset_index(drop=True)
    if case == "cadence":   # three meters go from 1 to 15 minutes in the middle of the stream
        after = frame["ts"] > t0 + pd.Timedelta(hours=34)
        slow = np.isin(m, meters[:3]) & after.to_numpy() & (frame["ts"].dt.minute.to_numpy() % 15 != 0)
        return frame[~slow].reset_index(drop=True)
    raise ValueError(case)


def _dup(frame: pd.DataFrame, piece_s: float, seed: int):
    """The pieces, now and then each meter's last reading of a piece sent again with the next."""
    rng = np.random.default_rng(seed)
    prev = None
    for p in _pieces(frame, piece_s, seed):
        if prev is not None and len(prev) and rng.random() < 0.3:
            last = prev.groupby(prev["meter_id"].astype(str), sort=False).tail(1)
            p = pd.concat([last, p]).sort_values(["meter_id", "ts"], kind="stable")
        prev = p
        yield p


@pytest.mark.parametrize("case", ["gap", "jitter", "cadence"])
def test_calm_edges_as_judging(case):
    frame, dets = _fleet("1min", 3)
    frame = _edit(frame, dets, case, 3)
    calm = _compare(frame, dets, 300.0, 3)
    assert calm.calm_fed > 0


def test_calm_restarted_from_checkpoints():
    """Restarted from the carry (as a checkpoint loads it) at several pieces in the middle of calm
    steps: judged afresh once, then calm again; the same alerts as never stopping."""
    frame, dets = _fleet("5min", 5)
    calm = _compare(frame, dets, 1800.0, 5, restart_at={3, 10, 11, 25, 40})
    assert calm.calm_fed > 0


def test_calm_with_duplicates_of_the_tails_last_reading():
    """A piece that starts with a meter's last reading again (at exactly its tail's last time):
    that meter is judged (calm needs readings after its tail), as judging every meter does."""
    frame, dets = _fleet("1min", 3)
    calm = _compare(frame, dets, 300.0, 3, whole=False, pieces=_dup)
    assert calm.calm_fed > 0


@pytest.mark.parametrize("dtype", ["float64", "Float64", "Int64", "int64", "float32", "object", "string", "bool",
                                   "category", "double[pyarrow]"])
def test_prepare_takes_channels_as_to_numeric_does(dtype):
    """live25 takes a float64 channel as it is: every other dtype (pandas' nullable ones, objects
    holding text, Arrow's doubles) still becomes what ``pd.to_numeric(errors="coerce")`` gives."""
    from wattwatch.detect.frame import prepare
    from wattwatch.schema import CHANNEL_NAMES

    raw = {"float64": [1.5, np.nan, 3.0], "Float64": [1.5, None, 3.0], "Int64": [1, None, 3], "int64": [1, 2, 3],
           "float32": [1.5, np.nan, 3.0], "object": ["1.5", "x", None], "string": ["1", None, "a"],
           "bool": [True, False, True], "category": [1.0, 2.0, np.nan], "double[pyarrow]": [1.5, None, 3.0]}[dtype]
    col = pd.Series(raw, dtype=dtype)
    ch = CHANNEL_NAMES[0]
    frame = pd.DataFrame({"meter_id": ["m"] * 3, "ts": pd.date_range("2025-01-01", periods=3, freq="1min", tz="UTC"),
                          ch: col})
    got = prepare(frame)[ch].to_numpy()
    want = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    assert got.dtype == np.float64 and np.array_equal(got, want, equal_nan=True)
