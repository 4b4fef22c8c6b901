"""`bench stream`'s pacing (app/benchstream.paced): a producer thread offers the readings at the
stated rate in wall time; a reading's latency runs from its arrival stamp to the time the step that
took it wrote its results. A stub step with a known delay, timing only what it is handed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from wattwatch.app.benchstream import paced


def _stub(n: int, delay: float, per_reading: float = 0.0):
    got = np.full(n, np.nan)     # when the step was handed the reading
    wrote = np.full(n, np.nan)   # when the step said its results were written

    def step(lo: int, hi: int) -> float:
        got[lo:hi] = time.monotonic()
        time.sleep(delay + per_reading * (hi - lo))
        wrote[lo:hi] = t = time.monotonic()
        return t

    return step, got, wrote


def test_a_reading_latency_is_its_steps_write_minus_its_arrival_at_the_offered_rate():
    n, rate, delay, piece_s = 40, 40.0, 0.015, 0.01
    step, got, wrote = _stub(n, delay)
    res = paced(n, rate, step, piece_s=piece_s, max_backlog_s=None)
    lat = res["lat"]
    assert res["offered"] == n and not res["behind"] and np.isfinite(lat).all()
    arrival = res["t0"] + np.arange(n) / rate
    # exactly the write the step returned minus the arrival stamp (i / rate apart), not the
    # time the piece was handed over, nor one stamp for a whole piece
    assert np.allclose(lat, wrote - arrival, rtol=0, atol=1e-9)
    # no reading is handed over before it arrives, nor the step's write counted before it ends
    assert (got >= arrival).all()
    assert lat.min() >= delay
    # readings 25 ms apart, a 15 ms step: each waits for its 10 ms poll cycle's end, then the step
    # (the slack is for a loaded machine's thread wake-ups)
    assert np.median(lat) <= delay + piece_s + 0.2
    assert res["sizes"].sum() == n and (res["sizes"] >= 1).all()
    # 2,000/s: 20 readings a poll cycle, several cycles a step; each reading its own stamp
    n, rate = 400, 2000.0
    step, got, wrote = _stub(n, delay)
    res = paced(n, rate, step, piece_s=piece_s, max_backlog_s=None)
    arrival = res["t0"] + np.arange(n) / rate
    assert res["offered"] == n and (res["sizes"] > 1).any()
    assert np.allclose(res["lat"], wrote - arrival, rtol=0, atol=1e-9) and (got >= arrival).all()


def test_an_engine_that_cannot_keep_up_stops_the_offer_and_its_backlog_shows():
    # a step of a fixed 50 ms and 2 ms a reading judges 500 readings/s at most: offered 1,000/s it
    # falls behind (a fixed cost alone would not: each step takes all that waited)
    n, rate = 5000, 1000.0
    step, got, wrote = _stub(n, 0.05, 0.002)
    res = paced(n, rate, step, piece_s=0.01, max_backlog_s=0.4)
    off = res["offered"]
    assert res["behind"] and 0 < off < n
    assert np.isfinite(res["lat"][:off]).all() and np.isnan(res["lat"][off:]).all() and np.isnan(got[off:]).all()
    # the steps took everything that had waited: the backlog at their starts grows past one step
    assert max(b for _, b in res["backlog"]) >= 0.2 * rate
    assert res["lat"][:off].max() >= 0.4


def test_river_builds_its_models_before_its_clock_and_says_what_building_them_costs():
    # river's HalfSpaceTrees builds a model's trees at its first learn_one (~40 ms a meter): with
    # the profile given, that is done before the clock, as our state is learned before ours; a few
    # readings a meter then cost far less than building their models did
    pytest.importorskip("river")
    import pandas as pd

    from wattwatch.app.benchstream import river_baseline

    rng = np.random.default_rng(7)
    ts = pd.date_range("2025-01-01", periods=13, freq="5min", tz="UTC")
    frame = pd.DataFrame({"meter_id": np.tile([f"M{i}" for i in range(8)], 13), "ts": np.repeat(ts, 8),
                          "p_kw": rng.gamma(2.0, 1.5, 104), "v_l1_v": rng.normal(230.0, 2.0, 104)})
    prof, live = frame.iloc[:8], frame.iloc[8:]
    r = river_baseline(live, 10_000, 7, warm=prof)   # 12 readings a meter
    assert r["meters"] == r["built_before"] == 8 and r["readings"] == 96 and r["build_cpu_s"] > 0
    assert r["readings_per_s_building_models"] < r["readings_per_s"] / 4
