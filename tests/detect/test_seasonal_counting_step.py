"""seasonal_profile's point evidence on a meter that counts its energy in steps (q68, issue 14).

BDG2's Mouse_lodging_Vicente reads its hourly energy in 10-kWh counts (84 % of its normal hours are
whole multiples of 10; the rest are an exporter's filled values such as 40.924). A count read at
both ends of an hour is off the hour's true energy by less than one step, so an hour read at 20
between two 40s may have used 30 between two 30s: two single-reading "drops to 20 where 40 was
expected" on it were its only false alerts that the plain and expert-kind labels both leave out.
The point evidence now measures how far a reading stands off its neighbours from the least to the
most each could have been (``_band``), with the meter's counting step learned from its normal
period (``_counting_step``); a meter read to the watt has no step and is judged as before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api

NORMAL_END = "2024-02-26"


def hotel(seed: int = 3, weeks: int = 16, filled: float = 0.1) -> pd.DataFrame:
    """A hotel read hourly by a 10-kWh pulse counter: about 40 kWh an hour at night, 60 by day,
    noise 4 %; each hour's reading is the counts between the hour's two ends (so 30, 40 and 50
    alternate as the load wanders); ``filled``: the share of normal-period hours an exporter filled
    with a mean of its own (not a multiple of 10)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=weeks * 7 * 24, freq="1h")
    h = ts.hour.to_numpy()
    load = np.where((h >= 7) & (h < 22), 60.0, 40.0) * (1 + 0.04 * rng.standard_normal(len(ts)))
    counts = np.floor((np.cumsum(load) + 3.0) / 10.0)
    p = np.diff(np.r_[np.floor(3.0 / 10.0), counts]) * 10.0
    fill = (ts < pd.Timestamp(NORMAL_END)) & (rng.random(len(ts)) < filled)
    p = np.where(fill, np.round(load, 3) + 0.001, p)
    return pd.DataFrame({"meter_id": "hotel", "ts": ts, "p_kw": p})


def _set(df: pd.DataFrame, at: str, values: tuple[float, ...]) -> None:
    t0 = pd.Timestamp(at)
    for k, v in enumerate(values):
        df.loc[df.ts == t0 + pd.Timedelta(hours=k - 1), "p_kw"] = v


def _alerts(df: pd.DataFrame) -> list[tuple[str, str]]:
    fitted = api.fit(df, detectors=["seasonal_profile"], normal_end=NORMAL_END)
    res = api.detect(df, state=fitted)
    return [(a.start[:13], a.message) for a in res.alerts if a.start >= NORMAL_END]


def test_the_counting_step_is_learned_where_the_readings_are_counts_and_zero_where_they_are_not():
    from wattwatch.detect.baseline.seasonal import _counting_step

    x = hotel()["p_kw"].to_numpy()[: 8 * 7 * 24]
    assert _counting_step(x, float(np.min(np.diff(np.unique(x))))) == 10.0
    rng = np.random.default_rng(0)
    cont = np.round(100 + 5 * rng.standard_normal(2000), 2)          # a building read to 10 W
    assert _counting_step(cont, 0.01) == 0.0
    assert _counting_step(np.full(100, 336.4486), 0.0) == 0.0         # one value: no change at all
    assert _counting_step(np.array([np.nan, np.nan]), 0.0) == 0.0


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_two_counts_below_both_neighbours_is_no_drop_on_a_counting_meter_a_real_dip_still_is(seed):
    """At night (40 kWh an hour): an hour read at 20 between two 40s is within the counting of
    its hour and theirs (fails before q68: 'a single reading dropping to 20 where 40 was expected').
    By day: an hour read at 10 between two 60s could at most have been 20 between 50s, a dip (one
    single-reading alert, found before and after)."""
    df = hotel(seed=seed)
    _set(df, "2024-03-13 02:00", (40.0, 20.0, 40.0))
    _set(df, "2024-04-10 13:00", (60.0, 10.0, 60.0))
    got = _alerts(df)
    assert [t for t, _ in got] == ["2024-04-10T13"], got
    assert "dropping to 10" in got[0][1]


def test_a_readings_isolation_is_taken_between_what_each_hour_could_have_been():
    """``_isolation`` with a counting band: a 20 between two 40s on a 10-kWh counter stands off
    neither (30 and 30 at most); a 10 between two 60s still stands below both (by 20 against 50 at
    least); a 70 between 40s above both (60 against 50). No band (step 0): the readings as read."""
    from wattwatch.detect.baseline.seasonal import _band, _isolation, _log_load

    x = np.array([40.0, 20.0, 40.0, 60.0, 10.0, 60.0, 40.0, 70.0, 40.0])
    seg, t, cad, eps = np.zeros(9, np.int64), np.arange(9) * 3600.0, np.full(9, 3600.0), np.full(9, 6.0)
    y = _log_load(x, eps)
    plain = _isolation(y, seg, t, cad)
    assert plain[1] == pytest.approx(np.log(26 / 46)) and plain[4] == pytest.approx(np.log(16 / 66))
    counted = _isolation(y, seg, t, cad, band=_band(x, np.full(9, 10.0), eps))
    assert counted[1] == 0.0
    assert counted[4] == pytest.approx(np.log(26 / 56)) and counted[7] == pytest.approx(np.log(66 / 56))
    np.testing.assert_array_equal(_isolation(y, seg, t, cad, band=_band(x, np.zeros(9), eps)), plain)
