"""No stale verdict from cad49's stretch-cadence memo (rev49).

``stretch_cadence`` keeps the windows' verdict in a frame's scratch space for its times
(``frame.times_cache``), keyed by the addresses of the arrays of meter codes and gaps it read. An
address says which array it is only while that array lives: freed, its memory goes to the next
array of that size, and a key made of addresses alone would serve the new array the old one's
verdict. The entry keeps the arrays it was keyed on alive (so no other array can take their
memory while the memo lives) and its key says the arrays' layout too (an array is its address, its
length, its strides and its type: a view at the same address and length read every other element
is other values). Judged in a loop in one process (many arrays, one memo; many frames freed and
made: meter chunks in ``detect``'s workers, a stitcher's pieces), the scores and alerts are the ones
judging without the memo gives, and the memo dies with its frame."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import ENGINE, HEALTHY
from tests.detect.test_cadence_change import T0, _home, _reconfigured, _three_phase
from wattwatch.detect import cadence, core, registry
from wattwatch.detect.engine import EngineConfig, detect, profile
from wattwatch.detect.frame import prepare, times_cache
from wattwatch.detect.stitch import Stitcher
from wattwatch.sim import SimConfig, simulate

NAMES = ["loose_ct", "harmonic_noise", "neutral_tamper", "packet_loss", "firmware_drift"]


def _no_memo(monkeypatch) -> None:
    """Every stretch_cadence call works its verdict out afresh (as before cad49)."""
    orig = cadence._run_cadence_kept
    monkeypatch.setattr(cadence, "_run_cadence_kept",
                        lambda seg, dt, cad_m, cad, n_m, n, share, memo: orig(seg, dt, cad_m, cad, n_m, n, share, None))


def _checked(monkeypatch) -> list:
    """Every verdict the memo serves compared with the one worked out afresh on the same
    arguments: the calls where they differ (a stale hit), kept in the list returned."""
    orig = cadence._run_cadence_kept
    stale: list = []

    def checked(seg, dt, cad_m, cad, n_m, n, share, memo):
        got = orig(seg, dt, cad_m, cad, n_m, n, share, memo)
        fresh = orig(seg, dt, cad_m, cad, n_m, n, share, None)
        same = (got is None) == (fresh is None) and (got is None or all(
            np.array_equal(a, b, equal_nan=True) for a, b in zip(got, fresh)))
        if not same:
            stale.append((len(dt), fresh is None, got is None))
        return got

    monkeypatch.setattr(cadence, "_run_cadence_kept", checked)
    return stale


def _one_meter_pair(rng, changed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two meters of 600 readings learned at a minute; the first read every 5 minutes from a
    random reading on when ``changed``."""
    seg = np.repeat(np.array([0, 1], np.int32), 600)
    dt = np.full(1200, 60.0)
    if changed:
        dt[int(rng.integers(100, 500)):600] = 300.0
    dt[[0, 600]] = np.nan
    return seg, dt


def test_one_memo_over_many_freed_arrays_serves_each_its_own_verdict():
    """Arrays made and dropped in a loop, one memo: each call's cadence is the one without memo
    (a memo keyed by addresses alone, its arrays let go, hands a freed array's verdict to the
    next array the allocator puts at its address)."""
    rng = np.random.default_rng(3)
    memo: dict = {}
    cad_m = np.array([60.0, 60.0])
    for i in range(200):
        seg, dt = _one_meter_pair(rng, changed=bool(i % 2))
        got, lost = cadence.stretch_cadence(seg, dt, cad_m, memo=memo)
        want, want_lost = cadence.stretch_cadence(seg, dt, cad_m)
        assert np.array_equal(got, want, equal_nan=True), i
        assert np.array_equal(lost, want_lost, equal_nan=True), i
        del seg, dt, got, lost, want, want_lost


def test_a_view_at_the_same_address_and_length_reading_other_elements_is_not_served():
    """``buf[:n]`` and ``buf[::2]`` start at one address and hold n elements each, but not the
    same ones: a steady minute, and a minute then 5 minutes."""
    n = 600
    buf = np.full(2 * n, 60.0)
    buf[n:] = 300.0
    buf[0] = np.nan
    seg_buf = np.zeros(2 * n, np.int32)
    memo: dict = {}
    cad_m = np.array([60.0])
    steady, _ = cadence.stretch_cadence(seg_buf[:n], buf[:n], cad_m, memo=memo)
    assert (steady[1:] == 60.0).all()
    got, _ = cadence.stretch_cadence(seg_buf[::2], buf[::2], cad_m, memo=memo)
    want, _ = cadence.stretch_cadence(seg_buf[::2], buf[::2], cad_m)
    assert (want[-100:] == 300.0).all()
    assert np.array_equal(got, want, equal_nan=True)


@pytest.fixture(scope="module")
def fleet() -> pd.DataFrame:
    """Meters reconfigured from 1 to 5 minutes (a home, a three-phase meter with a partial earth
    return) and simulated 5-minute meters with faults, jitter and loss (other cadences' windows,
    blanked frames)."""
    home = _reconfigured(_home("1min", 7), "1min", "5min", 4)
    three, _ = _three_phase("1min", 5)
    three = _reconfigured(three[pd.to_datetime(three["ts"], utc=True) < T0 + pd.Timedelta(days=7)], "1min", "5min", 4)
    sim = simulate(SimConfig(meters=6, days=7, seed=11, fault_share=0.8, commercial_share=0.5, profile_days=3.0))["frame"]
    sim = sim.assign(ts=pd.to_datetime(sim["ts"], utc=True))
    return pd.concat([home, three.assign(meter_id="T"), sim], ignore_index=True)


def test_frames_of_one_length_judged_in_a_loop_each_get_their_own_verdict(monkeypatch):
    """Frames of the same meter and the same number of readings, some read every minute
    throughout, some every 5 minutes from their middle, judged one after the other in one process
    (each freed before the next is made, whose arrays may take its memory): every detector's
    scores as without the memo."""
    home = _home("1min", 7)
    home = home.assign(ts=pd.to_datetime(home["ts"], utc=True))
    dets = [registry.build(n) for n in ("packet_loss", "firmware_drift")]
    profile(prepare(home[home["ts"] < T0 + pd.Timedelta(days=3)]), dets, ENGINE)
    later = home[home["ts"] >= T0 + pd.Timedelta(days=3)].reset_index(drop=True)
    n = 600

    def frame(k: int) -> pd.DataFrame:
        day = later.iloc[k * n // 2:]   # another start each time
        steady = day.iloc[:n]
        if k % 2 == 0:
            return steady.reset_index(drop=True)
        head = day.iloc[:n // 2]
        tail = day.iloc[n // 2::5].iloc[:n - n // 2]
        assert len(tail) == n - n // 2
        return pd.concat([head, tail], ignore_index=True)

    order = [*range(8), *range(7, -1, -1)]   # a steady frame after a changed one, and the other way

    def scores() -> list[np.ndarray]:
        return [j.scores.copy() for k in order for j in core.run(frame(k), dets).judged]

    with monkeypatch.context() as mp:
        stale = _checked(mp)
        with_memo = scores()
    assert not stale
    with monkeypatch.context() as mp:
        _no_memo(mp)
        without = scores()
    for k, (a, b) in enumerate(zip(with_memo, without)):
        assert np.array_equal(a, b, equal_nan=True), k


def _alerts(alerts) -> list[str]:
    return sorted(a.to_json() for a in alerts)


def _scores(res) -> pd.DataFrame:
    return res.scores.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("parallel", ["thread", "process"])
def test_meter_chunks_judged_in_workers_give_what_judging_without_memo_gives(fleet, monkeypatch, parallel):
    """``detect`` split into one chunk per meter or two (each a frame of its own, made and freed
    in the worker), two workers: alerts and scores as without the memo."""
    cfg = EngineConfig(profile_days=3.0, chunk_rows=3_000, workers=2, parallel=parallel)
    with monkeypatch.context() as mp:
        stale = _checked(mp)   # seen in this process only (the forked workers' own are not)
        with_memo = detect(fleet, [registry.build(n) for n in NAMES], cfg, keep_scores=True)
    assert not stale
    assert with_memo.alerts
    with monkeypatch.context() as mp:
        _no_memo(mp)
        without = detect(fleet, [registry.build(n) for n in NAMES], cfg, keep_scores=True)
    assert _alerts(with_memo.alerts) == _alerts(without.alerts)
    pd.testing.assert_frame_equal(_scores(with_memo), _scores(without))


def test_stitched_pieces_give_what_judging_without_memo_gives(fleet, monkeypatch):
    """A stitcher fed 6-hour pieces (a new frame judged, and the last one freed, at every piece):
    every step's alerts and scores as without the memo."""
    t = (pd.to_datetime(fleet["ts"], utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    edges = np.arange(t.min() + 3 * 86400.0, t.max() + 6 * 3600.0, 6 * 3600.0)

    def stitched():
        dets = [registry.build(n) for n in NAMES]
        profile(prepare(fleet[(t <= edges[0])]), dets, ENGINE)
        st = Stitcher(dets)
        steps = [st.feed(fleet[(t > lo) & (t <= hi)]) for lo, hi in zip(edges[:-1], edges[1:])]
        steps.append(st.flush())
        return steps

    with monkeypatch.context() as mp:
        stale = _checked(mp)
        with_memo = stitched()
    assert not stale
    with monkeypatch.context() as mp:
        _no_memo(mp)
        without = stitched()
    assert sum(len(s.alerts) for s in with_memo)
    for k, (a, b) in enumerate(zip(with_memo, without)):
        assert _alerts(a.alerts) == _alerts(b.alerts), k
        if a.scores is None or b.scores is None:
            assert a.scores is None and b.scores is None, k
        else:
            pd.testing.assert_frame_equal(a.scores.reset_index(drop=True), b.scores.reset_index(drop=True))


def test_the_memo_dies_with_its_frame(fleet):
    """Its entries (the verdict, the arrays keyed) live as long as the judged frame and its blanked
    copies, no longer (no module-wide cache)."""
    dets = [registry.build(n) for n in NAMES]
    profile(prepare(fleet), dets, ENGINE)
    res = core.run(fleet, dets)
    memo = times_cache(res.frame)
    kept = [a for entry in memo.values() for a in (*(entry[0] or ()), *entry[1:])]
    assert kept and any(entry[0] is not None for entry in memo.values())
    refs = [weakref.ref(a) for a in kept]
    del res, memo, kept
    gc.collect()
    assert all(r() is None for r in refs)
