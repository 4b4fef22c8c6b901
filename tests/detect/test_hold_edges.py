"""Edges of the post-rules' hold (``PostRule.hold``: one alert per lasting change), found in review:
a change of side on a group's own last reading, stretches with no judged reading, detectors whose
alerts explain others, and the stream's carried tail behind a held alert."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import core
from wattwatch.detect.base import DetectorConfig, Explains, PostRule
from wattwatch.detect.stitch import Stitcher, _by_meter, _merge, latest

from tests.detect.test_core import _Given

POST = dict(min_duration_s=2 * 3600, min_readings=3, merge_gap_s=2 * 3600, max_bridge_s=3 * 3600)


class Given(_Given):
    """test_core's given score (``score_1``) with a side (``score_2``); post-rules given per test."""

    def side(self, df, ctx=None):
        return df["score_2"].to_numpy(float)


def _frame(score, side=1.0, start="2025-01-07 04:00"):
    ts = pd.date_range(start, periods=len(score), freq="h", tz="UTC")
    return pd.DataFrame({"meter_id": "M0", "ts": ts, "score_1": np.asarray(score, float), "score_2": side})


def _spans(alerts):
    return sorted((a.start, a.end) for a in alerts)


def _stream(f, det, cuts):
    st, ups, lo = Stitcher([det]), [], 0
    for c in [*cuts, len(f)]:
        ups += st.feed(f.iloc[lo:c]).alerts
        lo = c
    return _spans(latest(ups + st.flush().alerts).values()), st


def test_a_change_of_side_on_a_groups_last_reading_is_judged_alike_whole_and_stitched():
    n = np.nan
    score = [0.1, 0.1, 2, 2, 2, n, n, n, 2, 2, 2, 0.1, 0.1]   # 06-08 hot, 09-11 unknown, 12-14 hot
    side = [1, 1, 1, -1, 1, 1, 1, 1, 1, 1, 1, 1, 1]             # 07:00 off the other way, 08:00 back
    f = _frame(score, side)
    det = Given(config=DetectorConfig(post=PostRule(**POST, hold=0.25))).fit(f)
    whole = _spans(core.run(f, [det]).alerts)
    assert whole == [("2025-01-07T06:00:00.000Z", "2025-01-07T14:00:00.000Z")]
    # Cut where the unknown stretch ends: the first piece's group ends on the change of side
    # (before the fix the stream closed it there and opened a second alert).
    assert _stream(f, det, [8])[0] == whole


def test_a_hold_does_not_bridge_weeks_without_a_judged_reading():
    n_h = 24 * 60
    score = np.full(n_h, np.nan)
    score[:5], score[5:10], score[-10:] = 0.1, 2.0, 2.0       # an alert, 60 days unknown, another
    f = _frame(score, start="2025-01-01")
    for hold, expect in ((0.25, 2), (0.0, 2)):
        det = Given(config=DetectorConfig(post=PostRule(**POST, hold=hold))).fit(f)
        assert len(core.run(f, [det]).alerts) == expect
    # Within hold_gap_s the unknown stretch is bridged (an outage inside one change): one alert.
    short = _frame(np.r_[[0.1] * 5, [2.0] * 5, [np.nan] * 40, [2.0] * 5], start="2025-01-01")
    det = Given(config=DetectorConfig(post=PostRule(**POST, hold=0.25))).fit(short)
    assert len(core.run(short, [det]).alerts) == 1
    det = Given(config=DetectorConfig(post=PostRule(**POST, hold=0.25, hold_gap_s=24 * 3600))).fit(short)
    assert len(core.run(short, [det]).alerts) == 2


def test_a_held_alert_is_not_kept_open_for_readings_that_never_come():
    n_h = 24 * 30
    score = np.full(n_h, np.nan)
    score[:5], score[5:10] = 0.1, 2.0                          # an alert, then nothing judged
    f = _frame(score, start="2025-01-01")
    det = Given(config=DetectorConfig(post=PostRule(**POST, hold=0.25))).fit(f)
    spans, st = _stream(f, det, list(range(24, n_h, 24)))
    assert spans == _spans(core.run(f, [det]).alerts)
    # Held open within hold_gap_s (3 days), closed after: the carried tail does not grow with it.
    assert not st.open.get("M0")
    assert len(st.tail) < 48


def test_hold_is_refused_on_a_detector_whose_alerts_explain_others():
    class Root(Given):
        name = "root"
        explains = (Explains(("consumption",)),)

    with pytest.raises(ValueError, match="post.hold must be 0"):
        Root(config=DetectorConfig(post=PostRule(hold=0.25)))
    Root(config=DetectorConfig(post=PostRule()))
    with pytest.raises(ValueError, match="hold_gap_s"):
        PostRule(hold_gap_s=-1.0)


def test_the_stitchers_merge_keeps_a_pieces_finer_timestamps():
    tail = pd.DataFrame({"meter_id": pd.Categorical(["m"]),
                         "ts": pd.DatetimeIndex(["2024-01-01 00:00:00"]).as_unit("s").tz_localize("UTC"),
                         "p_kw": [1.0]})
    piece = pd.DataFrame({"meter_id": pd.Categorical(["m", "m"]),
                          "ts": pd.DatetimeIndex(["2024-01-01 00:00:01.250", "2024-01-01 00:00:01.750"])
                          .as_unit("ms").tz_localize("UTC"),
                          "p_kw": [2.0, 3.0]})
    out = _merge(_by_meter(tail), _by_meter(piece))
    want = pd.concat([tail, piece], ignore_index=True)["ts"]
    assert list(out["ts"]) == list(want)
    assert out["ts"].iloc[1] != out["ts"].iloc[2]


def test_a_lasting_change_with_fragments_inside_is_one_alert_whole_and_stitched():
    # An alert (13 h), two fragments too short to alert (2 h each), another alert (13 h), with the
    # hours between them at half the threshold: the deviation never returned to normal.
    hot, mid = [2.0], [0.5]
    score = [0.1] * 3 + hot * 13 + mid * 13 + hot * 2 + mid * 13 + hot * 2 + mid * 13 + hot * 13 + [0.1] * 3
    f = _frame(score, start="2025-01-01")
    post = PostRule(min_duration_s=12 * 3600, min_readings=6, merge_gap_s=12 * 3600, hold=0.25)
    det = Given(config=DetectorConfig(post=post)).fit(f)
    whole = _spans(core.run(f, [det]).alerts)
    assert whole == [("2025-01-01T03:00:00.000Z", "2025-01-03T23:00:00.000Z")]
    for cuts in ([30], [45, 60], list(range(10, len(f), 10))):
        assert _stream(f, det, cuts)[0] == whole, cuts
