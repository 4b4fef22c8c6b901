"""neutral_tamper: one hourly reading of a neutral bypass is an alert alone (q63, issue 14).

The post-rules ask for two anomalous readings: one snapshot cannot be told from a one-reading glitch.
At 1-15 minutes two readings are minutes; hourly they are two hours, and a one-hour bypass (the
simulator's intermittent episodes are 1-4 h) read by one reading was never reported, though that
reading showed the neutral gone while the phase carried amps (scores 2-20 on seed 199). Now a reading
half as far again over the limit (``single_score`` 1.5) alerts alone where it stands for an hour
(``single_s``: the meter's cadence is at least 3600 s); at finer cadences nothing changes, and a
reading just over the limit stays a blip at any cadence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import core, registry
from wattwatch.detect.base import PostRule
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.postrules import group
from wattwatch.detect.stitch import _as_class

T0 = pd.Timestamp("2025-01-06", tz="UTC")
DAYS = 10


def _meter(name: str, step: str, faults: list[tuple[float, int, float]], seed: int) -> pd.DataFrame:
    """A single-phase home every ``step`` for ``DAYS`` days: 3-7 A by day, 0.6 A at night, its
    neutral the phase current less ~20 mA of leakage, both CTs 0.5 % class. ``faults``: (day,
    readings, share of the current the neutral loses) from the reading nearest that day on."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(T0, T0 + pd.Timedelta(days=DAYS), freq=step, inclusive="left")
    h = ((ts - T0) / pd.Timedelta(hours=1)).to_numpy() % 24
    day = (h >= 7) & (h < 22)
    i_true = np.where(day, 5 + 2 * np.sin(2 * np.pi * (h - 7) / 15), 0.6) * (1 + 0.05 * rng.standard_normal(len(ts)))
    i_n = (i_true - 0.02 * (1 + 0.2 * rng.standard_normal(len(ts)))) * (1 + rng.normal(0, 0.005, len(ts)))
    for d, n, lost in faults:
        k = int(round(d * 86400 / pd.Timedelta(step).total_seconds()))
        i_n[k:k + n] = np.where(lost >= 1, np.abs(rng.normal(0, 0.01, n)), i_n[k:k + n] * (1 - lost))
    i_l = i_true * (1 + rng.normal(0, 0.005, len(ts)))
    ts = ts + pd.to_timedelta(rng.uniform(-2, 2, len(ts)), unit="s")  # the meters' jitter
    return pd.DataFrame({"meter_id": name, "ts": ts, "v_l1_v": 230.0, "i_l1_a": np.round(i_l, 3),
                         "i_n_a": np.round(i_n, 3), "p_kw": np.round(0.23 * i_l, 4)})


# Day 5.5 is 12:00 (6.7 A), 6.1 is 02:24 (0.6 A: the light-load limit, half the current).
CASES = {
    "ok": [],
    "noon": [(5.5, 1, 1.0)],           # the neutral gone for one reading at 5 A
    "night": [(6.1, 1, 1.0)],          # ... at 0.6 A (score ~2.0 of the light-load limit)
    "blip": [(5.5, 1, 0.09)],          # 9 % of 6.7 A lost on one reading: ~1.2 x the 0.5-A limit
    "blips": [(4.5, 1, 0.09), (5.5, 1, 0.1), (6.5, 1, 0.09)],
    "pair": [(7.5, 2, 1.0)],           # two readings: an alert at every cadence (as before)
}


def _fleet(step: str) -> pd.DataFrame:
    return pd.concat([_meter(m, step, f, seed=k) for k, (m, f) in enumerate(CASES.items())], ignore_index=True)


def _alerts(frame: pd.DataFrame):
    dets = registry.build_all(["neutral_tamper"])
    profile(prepare(frame), dets, EngineConfig(profile_days=3.0, workers=1))
    return dets, core.run(frame, dets).alerts


@pytest.mark.parametrize("step,lone", [("60min", {"noon", "night"}), ("120min", {"noon", "night"}),
                                       ("30min", set()), ("15min", set()), ("5min", set())])
def test_one_hourly_reading_of_a_missing_neutral_alerts_alone_and_a_finer_one_does_not(step, lone):
    _, alerts = _alerts(_fleet(step))
    by = sorted(a.meter_id for a in alerts)
    assert by == sorted(lone | {"pair"}), [(a.meter_id, a.message) for a in alerts]
    for a in alerts:
        assert a.code == "ERR_IMBAL_LIMIT_EXCEEDED"
        if a.meter_id in lone:  # the one reading: its span is that reading, said as a bypass
            assert a.start == a.end
            assert a.evidence["i_n_a"] < 0.1 and a.evidence["delta_a"] >= 0.5
        if a.meter_id == "noon":
            assert a.evidence["kind"] == "neutral_bypass" and a.severity == "critical"


def test_a_reading_just_over_the_limit_stays_a_blip_hourly():
    """The lone readings of ``blip``/``blips`` score over the limit but under ``single_score``: the
    guard is the score, not the cadence alone."""
    frame = _fleet("60min")
    dets, _ = _alerts(frame)
    d = dets[0]
    s = d.score(frame[frame.meter_id.isin(["blip", "blips"])]).to_numpy(float)
    hot = s[s >= 1.0]
    assert len(hot) == 4 and (hot < d.config.post.single_score).all(), hot


def test_scores_held_as_their_class_group_as_the_scores_do():
    """A stream holds a blocker's older scores as their class (``stitch._as_class``); with a reading
    that alerts alone, the class keeps it apart from one that does not."""
    post = PostRule(min_duration_s=30.0, min_readings=2, merge_gap_s=3600.0, max_bridge_s=4 * 3600.0,
                    single_s=3600.0, single_score=1.5)
    rng = np.random.default_rng(3)
    n_seg, n = 6, 400
    seg = np.repeat(np.arange(n_seg), n)
    t = np.tile(np.arange(n) * 3600.0, n_seg)
    s = np.where(rng.random(n_seg * n) < 0.03, rng.uniform(0.5, 3.0, n_seg * n), 0.1)
    s[rng.random(n_seg * n) < 0.05] = np.nan
    eff = post.at(np.array([3600.0, 3600.0, 900.0, 300.0, 7200.0, np.nan]))
    a = group(seg, t, s, post, eff)
    b = group(seg, t, _as_class(s, post.threshold, post.strong), post, eff)
    assert a.alerts() and [list(x) for x in a.alerts()] == [list(x) for x in b.alerts()]
    # Some alert is one reading (on an hourly meter) and none is on the finer or unknown ones.
    one = [x for x in a.alerts() if len(x) == 1]
    assert one and {int(seg[x[0]]) for x in one} <= {0, 1, 4}


def test_single_score_is_refused_below_one():
    with pytest.raises(ValueError, match="single_score"):
        PostRule(single_s=3600.0, single_score=0.5)
    with pytest.raises(ValueError, match="single_s"):
        PostRule(single_s=-1.0)


def test_hourly_lone_bypasses_streamed_in_pieces_give_the_whole_historys_alerts():
    """Batch == stitched == calm stream: the lone-reading alerts come out of a stream of uneven
    pieces exactly as out of the whole history."""
    from tests.detect.test_stitch_calm import _compare

    frame = _fleet("60min")
    dets, whole = _alerts(frame)
    assert sorted(a.meter_id for a in whole) == ["night", "noon", "pair"]
    _compare(frame, dets, 6 * 3600.0, 5, want=whole)
