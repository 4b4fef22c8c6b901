"""frame.meter_names is kept in the frame's scratch space: the same answer as computing it, read-only,
and computed again when the frame's meter columns are replaced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect.frame import meter_names, prepare


def _frame(meters):
    ts = pd.date_range("2025-01-06", periods=4, freq="5min", tz="UTC")
    return prepare(pd.DataFrame({"meter_id": np.repeat(meters, 4), "ts": np.tile(ts, len(meters)),
                                 "p_kw": np.arange(4.0 * len(meters))}))


def test_cached_names_follow_the_frame():
    df = _frame(["b", "a", "c"])
    first = meter_names(df)
    assert list(first) == ["a", "b", "c"] and meter_names(df) is first  # kept
    with pytest.raises(ValueError):
        first[0] = "x"  # shared: nobody may change it
    # The meter columns replaced on the same object: the names are those of the new columns.
    df["meter_id"] = pd.Categorical(np.repeat(["p", "q", "r"], 4))
    assert list(meter_names(df)) == ["p", "q", "r"]
    df["_seg"] = np.repeat(np.array([0, 0, 1], np.int32), 4)
    assert list(meter_names(df)) == ["p", "r"]
    # A frame derived from it starts with its own answer.
    sub = prepare(df.iloc[4:])
    assert list(meter_names(sub)) == ["q", "r"]
