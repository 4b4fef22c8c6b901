"""The stream's piece skips its sort when the handed rows are already in meter and time order
(``stream._by_meter_time``): that must hold exactly when a stable sort by meter then time would
leave the rows where they are, else a piece could reach the stitcher out of order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.runners.stream import _by_meter_time


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    meters = np.array(["m10", "m2", "m1", "a", "m1 "])[rng.integers(0, 5, n)]
    ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 6, n), unit="min")
    return pd.DataFrame({"meter_id": meters, "ts": ts.astype("datetime64[us, UTC]"), "p_kw": rng.normal(size=n)})


def test_in_order_exactly_when_the_stable_sort_is_the_identity():
    rng = np.random.default_rng(16)
    seen = {True: 0, False: 0}
    for k in range(400):
        df = _frame(rng, int(rng.integers(0, 9)))
        if k % 2:   # half of them sorted, so both answers are tried often
            df = df.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
        order = df.sort_values(["meter_id", "ts"], kind="stable").index.to_numpy()
        want = bool(np.array_equal(order, np.arange(len(df))))
        assert _by_meter_time(df) == want, df
        seen[want] += 1
    assert seen[True] > 100 and seen[False] > 100


def test_equal_keys_in_either_order_are_in_order():
    ts = pd.Series(pd.to_datetime(["2026-01-01 00:00", "2026-01-01 00:00", "2026-01-01 00:01"], utc=True))
    df = pd.DataFrame({"meter_id": ["a", "a", "b"], "ts": ts, "p_kw": [2.0, 1.0, 0.0]})
    assert _by_meter_time(df)
    assert not _by_meter_time(df.iloc[::-1].reset_index(drop=True))
