"""The carried closed hours of baseline_macd (issue 16): a stream keeps, per meter, the hourly
means and lowest readings its averages, week window, floor and recalibrated limits read (up to
1,032 hours back) instead of the raw readings they came from, so its tail of raw readings is bounded
by the other detectors' reach (and its blockers'), not by six weeks of one-minute readings.

A fleet (1, 15 and 60 minutes) profiled on a month (its limits recalibrate: the longest reach) and streamed
a day at a time for more than the old reach (48 days of history) must give every reading the
score, and every alert the id, span, score, message and evidence, that the whole history judged
at once gives; its tail must stay a few days long and its carry of hours at the reach; and a
checkpoint (the tail's readings and the hours, through Parquet) must go on as the stitcher that
kept them."""

from __future__ import annotations

import copy
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wattwatch.detect import core, registry
from wattwatch.detect.cadence import gaps_per_side
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import meter_names, prepare
from wattwatch.detect.rules._common import STALE_RUN_N
from wattwatch.detect.stitch import Stitcher

from tests.detect.test_core import _alert_mismatches, _epoch, _score_mismatches, _sim

# baseline_macd with the rules that blank its consumption (outages, noise, sensor, frozen, neutral).
DETECTORS = ["supply_outage", "harmonic_noise", "sensor_fault", "frozen_readings", "neutral_tamper", "baseline_macd"]
PROFILE_DAYS = 30.0   # history_days >= recal_min_profile_days (28): the recalibrated limits' reach


def _parquet_round_trip(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` through the checkpoint's Parquet (runners/carrycodec.py, as StreamEngine writes and
    loads it), checked against plain Parquet's round trip, bit for bit (sm)."""
    from wattwatch.runners import carrycodec

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    plain = pq.read_table(io.BytesIO(buf.getvalue())).to_pandas()
    got = carrycodec.read(carrycodec.write(df))
    pd.testing.assert_frame_equal(got, plain, check_exact=True)
    return got


def _resumed(a: Stitcher, dets, bins: bool = True) -> Stitcher:
    """A stitcher as the stream engine loads it from a checkpoint of ``a`` (its tail and, with
    ``bins``, its closed hour bins through parquet; without, ``a`` must carry none: no
    baseline_macd)."""
    b = Stitcher(dets)
    tail = _parquet_round_trip(a.carry())
    tail["meter_id"] = tail["meter_id"].astype(str)
    b.tail = tail
    b.stale = set(tail["meter_id"].unique())
    b.origin, b.n_before = dict(a.origin), dict(a.n_before)
    b.since, b.emitted = copy.deepcopy(a.since), copy.deepcopy(a.emitted)
    b._said = set(a._said)
    if bins:
        b.load_hour_carry(_parquet_round_trip(a.hour_carry()))
    else:
        assert a.hour_carry() is None
    return b


@pytest.mark.parametrize("step", ["1min", "15min", "60min"])
def test_a_meter_streamed_past_the_old_reach_keeps_a_bounded_tail_and_equal_alerts(step):
    per_day = 86400 // pd.Timedelta(step).total_seconds()
    frame = _sim(meters=2, days=PROFILE_DAYS + 19, step=step, seed=1919, fault_share=1.0, outage_share=0.5,
                 profile_days=PROFILE_DAYS, faults=("theft_under_registration", "level_shift"))
    dets = registry.build_all(DETECTORS)
    profile(prepare(frame), dets, EngineConfig(profile_days=PROFILE_DAYS, profile_max_share=0.6, workers=1))
    macd = dets[-1]
    assert all(st["history_days"] >= macd.config.recal_min_profile_days for st in macd.state_.values())
    whole = core.run(frame, dets)
    assert any(a.detector == "baseline_macd" for a in whole.alerts), "the fleet should raise baseline alerts"

    t = _epoch(frame["ts"])
    edges = [-np.inf, *np.arange(t.min() + PROFILE_DAYS * 86400, t.max(), 86400.0), np.inf]
    assert (t.max() - t.min()) / 86400 > 48   # past the old reach of 1,152 h
    st = Stitcher(dets)
    steps, rows, hours = [], [], []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        if k == 10:
            st = _resumed(st, dets)
        steps.append(st.feed(frame[(t > lo) & (t <= hi)]))
        rows.append(st.tail.groupby("meter_id", observed=True).size().max())
        hours.append(max(len(c.m) for c in st.hours["baseline_macd"].values()))
    steps.append(st.flush())
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])
    # The hours carried reach their bound (1,055 h of the recalibrated limits' reach and the rest or away run, two more:
    # the spill of a register interval and the hour itself, before the earlier of the first hour
    # not closed and the clean point: more while an alert is open) and hold there. The raw tail is
    # the blockers' reach (neutral_tamper's and sensor_fault's day and their horizons: ~2.6 days at
    # 1 min, 3.6 at 60 min) once no alert is open, that plus the open alert's readings while one
    # grows (the post-rules form it from its start): not the meter's history (49 days). At 60
    # minutes the last alert, the theft's (it ends on the 19th; the floor of the last 24 h holds it
    # a day longer, as at 5 minutes), closes on 20 February and its readings leave the tail in the
    # step of the 22nd: the last two days hold the blockers' reach alone, and the readings either
    # side that say the cadence of a reading's stretch (neutral_tamper's held window follows it,
    # wattwatch.detect.cadence; cad43: 6 each way at 60 min, where the tail went from 90 to 98).
    assert 1000 < hours[-1] <= 1034 + 3 * 24 and max(hours) <= 1034 + 11 * 24, f"hours carried {hours}"
    said = 2 * int(gaps_per_side(pd.Timedelta(step).total_seconds()))
    assert max(rows[-2:]) < 4 * per_day + said, f"tail of {[int(r) for r in rows]} readings per meter"
    # Since fx, frozen_readings blocks the current rules (it explains `current_level`), so its reach is among
    # the blockers': STALE_RUN_N readings back on a meter whose temperature moves, at 4 min and coarser (fz2);
    # at 60 min the open theft's tail went from 311 to 316 readings, and the steady tail from 98 to 103.
    assert max(rows) < 13 * per_day + STALE_RUN_N, f"tail of {[int(r) for r in rows]} readings per meter"
    assert not any(c.origin for c in st.hours["baseline_macd"].values())


def test_carried_hours_on_a_grid_with_readings_off_it(monkeypatch):
    """A meter whose readings span more than the grid may allocate (a stray reading from a clock
    reset) is gridded over its latest hours, its earlier readings mapped to a last column that is
    always NaN (frame.grid_arrays). With carried hours the matrix is widened before those hours
    (``_with_hours``): the off-grid readings must still land on an all-NaN column (they read
    "cannot judge", as without a carry), and every other reading on its hour, whose mean and lowest
    reading are the whole frame's, from the carry or from the raw readings."""
    from wattwatch.detect import frame as frame_mod
    from wattwatch.detect.baseline.macd import HourCarry

    monkeypatch.setattr(frame_mod, "GRID_MAX_BINS", 100)   # hours: the stray reading and day 1 fall off
    f = _sim(meters=2, days=6, step="15min", seed=5, fault_share=0.0, profile_days=3)
    stray = f[f["meter_id"] == f["meter_id"].iat[0]].iloc[[0]].assign(ts=f["ts"].min() - pd.Timedelta(days=400))
    whole = prepare(pd.concat([stray, f], ignore_index=True))
    macd = registry.build("baseline_macd")
    m, cell, t_bin = macd._hourly(whole)
    n_seg, n_bins = m.shape
    hmin = macd._hour_min(whole, cell, n_seg, n_bins)
    seg, t = whole["_seg"].to_numpy(), whole["_t"].to_numpy()
    off = np.floor(t / 3600.0) * 3600.0 != t_bin.ravel()[cell]
    assert off.sum() > 1 and np.isnan(m.ravel()[cell[off]]).all(), "the grid should have readings off it"

    # The meters carry hours 40-70 of the grid; the raw readings kept start at hour 60 (the stray
    # one and the other off-grid readings are kept too), on a grid of 50 hours: the carry starts
    # before it, so the matrix is widened.
    names = [str(x) for x in meter_names(whole)]
    carry = {}
    for k, name in enumerate(names):
        a, b = 40, 70
        carry[name] = HourCarry(float(t_bin[k, a]), float(t_bin[k, b]), False, 3600.0,
                                {"m": m[k, a:b].copy(), "hmin": hmin[k, a:b].copy()})
    keep = off | (t >= t_bin[seg, 60])
    tail = prepare(whole[keep].drop(columns=["_seg", "_t", "_dt"]))
    monkeypatch.setattr(frame_mod, "GRID_MAX_BINS", 50)
    m2, cell2, t_bin2 = macd._hourly(tail, carry)
    hmin2 = macd._hour_min(tail, cell2, *m2.shape, t_bin2, carry)
    off2 = np.floor(tail["_t"].to_numpy() / 3600.0) * 3600.0 != t_bin2.ravel()[cell2]
    assert off2.sum() == off.sum() and m2.shape[1] > 51, "widened before the grid"
    assert np.isnan(m2.ravel()[cell2[off2]]).all()
    np.testing.assert_array_equal(hmin2.ravel()[cell2[off2]], hmin.ravel()[cell[off]])
    # Every hour from the carry's first on holds the whole frame's mean and lowest reading.
    for k, name in enumerate(names):
        h = carry[name].h0 + 3600.0 * np.arange(int((t_bin[k, -2] - carry[name].h0) / 3600.0))
        i_w = np.rint((h - t_bin[k, 0]) / 3600.0).astype(int)
        i_s = np.rint((h - t_bin2[k, 0]) / 3600.0).astype(int)
        np.testing.assert_array_equal(m2[k, i_s], m[k, i_w])
        np.testing.assert_array_equal(hmin2[k, i_s], hmin[k, i_w])
    # ... and the hours of the readings judged map to them.
    on = ~off2
    np.testing.assert_array_equal(t_bin2.ravel()[cell2[on]], np.floor(tail["_t"].to_numpy()[on] / 3600.0) * 3600.0)
