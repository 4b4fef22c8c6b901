"""packet_loss on a meter reconfigured after its state was learned (adv36 finding #9, issue 14).

AMI meters are reconfigured mid-history (1 -> 5 min, 1 -> 15, 5 -> 1, 15 -> 5, 60 -> 15). Judged at
the cadence learned on its first days, a meter now reporting every 5 minutes read as 80 % of its
readings lost for as long as it reported (a critical alert), and one now reporting every minute
had a 3-hour gap unseen. packet_loss now judges each stretch at the cadence its gaps show: the
clean new stretch raises nothing, a real loss in it is found and said at the new cadence; random
loss, however heavy, is still loss at the meter's own cadence; stitched pieces are the whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import run
from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import meter_names, prepare

T0 = pd.Timestamp("2025-01-06", tz="UTC")


def _meter(name: str, parts: list[tuple[str, float]], drop: tuple[float, float, float] | None = None,
           gap: tuple[float, float] | None = None, seed: int = 0) -> pd.DataFrame:
    """A meter at each ``(freq, days)`` in turn; ``drop``: (day, hours, share) readings lost at
    random from then; ``gap``: (day, hours) without readings."""
    ts, t0 = [], T0
    for freq, days in parts:
        step = pd.Timedelta(freq)
        ts.append(pd.date_range(t0, periods=int(pd.Timedelta(days=days) / step), freq=step))
        t0 = ts[-1][-1] + step
    t = ts[0].append(ts[1:])
    keep = np.ones(len(t), bool)
    if drop:
        s = T0 + pd.Timedelta(days=drop[0])
        inside = (t >= s) & (t < s + pd.Timedelta(hours=drop[1]))
        keep &= ~(inside & (np.random.default_rng(seed).random(len(t)) < drop[2]))
    if gap:
        s = T0 + pd.Timedelta(days=gap[0])
        keep &= ~((t > s) & (t < s + pd.Timedelta(hours=gap[1])))
    t = t[keep]
    i = 3 + np.sin(np.arange(len(t)) / 50)
    return pd.DataFrame({"meter_id": name, "ts": t, "v_l1_v": 230.0, "i_l1_a": i, "p_kw": 0.23 * i})


def _loss(alerts):
    return [a for a in alerts if a.code == "ALRM_PKT_LOSS_CRIT"]


# (first cadence, its days, new cadence, its days): learned on the first 3 days (conftest.run).
CHANGES = [("1min", 6, "5min", 8), ("1min", 6, "15min", 10), ("15min", 10, "5min", 8),
           ("5min", 6, "1min", 6), ("60min", 20, "15min", 10)]


@pytest.mark.parametrize("old,d_old,new,d_new", CHANGES, ids=[f"{c[0]}-{c[2]}" for c in CHANGES])
def test_a_reconfigured_meter_is_judged_at_its_new_cadence(old, d_old, new, d_new):
    parts = [(old, d_old), (new, d_new)]
    c_new = pd.Timedelta(new).total_seconds()
    # The clean new stretch is not loss (1 -> 5 min was "80 % missing" for all 8 days).
    assert _loss(run(_meter("M", parts), ["packet_loss"])) == []
    # A 3-hour gap in it is a data gap, counted at the new cadence (5 -> 1 min: unseen before).
    day = d_old + 2.3
    got = _loss(run(_meter("M", parts, gap=(day, 3)), ["packet_loss"]))
    assert len(got) == 1, [a.message for a in got]
    ev = got[0].evidence
    assert ev["kind"] == "data_gap" and ev["cadence_s"] == c_new
    assert ev["gap_readings"] == round(ev["gap_hours"] * 3600 / c_new) - 1
    # 20 % of the readings lost at random over 12 hours: packet loss at the new cadence.
    f = _meter("M", parts, drop=(d_old + 2, 12, 0.2), seed=4)
    lost = int(12 * 3600 / c_new) - int(((f.ts >= T0 + pd.Timedelta(days=d_old + 2))
                                         & (f.ts < T0 + pd.Timedelta(days=d_old + 2, hours=12))).sum())
    got = _loss(run(f, ["packet_loss"]))
    assert len(got) == 1, [a.message for a in got]
    ev = got[0].evidence
    assert ev["kind"] == "packet_loss" and ev["cadence_s"] == c_new
    assert 0.5 * lost <= ev["missing_readings"] <= lost


def _cadences(f: pd.DataFrame, learn_days: float = 3.0) -> tuple[np.ndarray, float]:
    """packet_loss's cadence per reading of ``f`` (one meter), learned on its first days."""
    d = registry.build("packet_loss")
    df = prepare(f)
    d.fit(df[df["ts"] < df["ts"].min() + pd.Timedelta(days=learn_days)].reset_index(drop=True))
    cad_m = d._param(df, "cadence_s")
    c_row, _ = d._cadence_rows(meter_names(df), df["_seg"].to_numpy(), df["_dt"].to_numpy(), cad_m)
    return c_row, float(cad_m[0])


@pytest.mark.parametrize("share", [0.5, 0.8])
def test_heavy_random_loss_on_a_steady_meter_is_loss_at_its_own_cadence(share):
    """Random loss never makes most gaps one other value (at most 1/4 of them any k >= 2
    cadences): a 5-minute meter losing 50 or 80 % of its readings for two days is judged at 5
    minutes throughout and alerts with that share."""
    f = _meter("M", [("5min", 12)], drop=(6, 48, share), seed=2)
    c_row, learned = _cadences(f)
    assert learned == 300.0 and (c_row == 300.0).all()
    got = _loss(run(f, ["packet_loss"]))
    assert len(got) == 1 and got[0].evidence["cadence_s"] == 300.0
    assert abs(got[0].evidence["missing_share"] - share) < 0.05


def test_a_jittery_steady_meter_keeps_its_learned_cadence():
    """Stamps jittering by +-0.45 of the cadence scatter the gaps: no cluster, no other cadence."""
    rng = np.random.default_rng(3)
    n = 6 * 288
    ts = T0 + pd.to_timedelta((np.arange(n) + rng.uniform(-0.45, 0.45, n)) * 300, unit="s")
    f = pd.DataFrame({"meter_id": "J", "ts": ts, "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})
    c_row, learned = _cadences(f.sort_values("ts").reset_index(drop=True))
    assert abs(learned - 300.0) < 5 and (c_row == learned).all()


def test_reconfigured_meters_streamed_in_pieces_give_the_whole_historys_alerts():
    """The cadence a reading is judged at comes from the readings around it (its reach in
    readings): a stream of uneven pieces, calm meters among them, gives exactly the alerts of
    the whole history judged at once."""
    from tests.detect.test_stitch_calm import _compare

    frame = pd.concat([_meter("A", [("1min", 1.5), ("5min", 1.5)], drop=(2.2, 8, 0.2), seed=1),
                       _meter("B", [("5min", 1.5), ("1min", 1.5)], gap=(2.3, 3)),
                       _meter("C", [("15min", 1.5), ("5min", 1.5)], gap=(2.0, 3)),
                       _meter("D", [("5min", 3)], drop=(2.0, 6, 0.1), seed=2),
                       _meter("E", [("1min", 3)])], ignore_index=True)
    dets = registry.build_all(["packet_loss"])
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    whole = core.run(frame, dets).alerts
    assert {a.meter_id for a in _loss(whole)} >= {"A", "B", "C"}
    calm = _compare(frame, dets, 1800.0, 5, want=whole)
    assert calm.calm_fed > 0


@pytest.mark.parametrize("cadence_s", [60.0, 300.0, 899.9, 900.0, 900.1, 910.0])
def test_the_gaps_that_say_a_cadence_keep_packet_loss_in_the_streams_fast_tier(cadence_s):
    """The reach in readings (the gaps either side that say a reading's cadence) spans at most 2 h
    at the learned cadence: at 15 minutes, 10 h of window and those gaps stay within the stream's
    fast tier of 12 h (24 gaps there, or 8 of a jittered 900.1 s, took packet_loss out of it).
    pkt: the share window ends at the reading, so ahead a reading's score waits for those gaps
    alone (2 h at most); back it reads its whole window, 6-6.7 h at 1 and 5 minutes (fast tier),
    20 h at 15 minutes (the slow tier, judged every hour of data: its alerts no more than an hour
    later than the gaps allow, not the 12 h of the window's centred half)."""
    from wattwatch.runners.stream import StreamConfig, fast_tier

    d = registry.build("packet_loss")
    d.state_ = {"m": {"cadence_s": cadence_s}}
    r = d.reach(["m"])
    assert r.back_n[0] >= 6 and r.ahead_n[0] >= 6
    assert r.ahead_s[0] + r.ahead_n[0] * cadence_s <= 2 * 3600 * 1.02
    assert ("packet_loss" in fast_tier([d], ["m"], StreamConfig().fast_reach_s)) == (cadence_s < 600)


def test_hourly_data_gaps_streamed_in_pieces_give_the_whole_historys_alerts():
    """q56: a gap of three hourly readings in a row is a data gap on its own (its two edges). A
    stream of uneven pieces, calm meters among them (a meter that lost three readings in a row is
    never calm), gives exactly the alerts of the whole history judged at once; two in a row and
    single losses alert nowhere."""
    from tests.detect.test_stitch_calm import _compare

    rng = np.random.default_rng(7)
    parts = []
    for k, lost in enumerate([[60, 61, 62], [60, 61], [70, 71, 72, 100, 101, 102], [50, 90, 130], []]):
        n = 24 * 8
        ts = T0 + pd.to_timedelta(np.arange(n) * 3600.0 + rng.uniform(-2, 2, n), unit="s")
        f = pd.DataFrame({"meter_id": f"H{k}", "ts": ts, "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})
        parts.append(f.drop(index=lost))
    frame = pd.concat(parts, ignore_index=True)
    dets = registry.build_all(["packet_loss"])
    profile(prepare(frame), dets, EngineConfig(profile_days=2.0, workers=1))
    whole = core.run(frame, dets).alerts
    by = sorted((a.meter_id, a.evidence["kind"]) for a in _loss(whole))
    assert by == [("H0", "data_gap"), ("H2", "data_gap"), ("H2", "data_gap")]
    calm = _compare(frame, dets, 6 * 3600.0, 5, want=whole)
    assert calm.calm_fed > 0
