"""What a detector declares it reads (``Detector.reads``) is all it reads: the channels it does not
declare can hold anything (here: random values on every reading, and an extra channel) and its
state, scores, notices and alerts stay the same. The Spark runner relies on it to ship only those
channels (``runners.spark.shipped_channels``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import registry
from wattwatch.detect.engine import DetectionResult, EngineConfig, judge, profile
from wattwatch.detect.frame import prepare, seg_bounds
from wattwatch.runners import spark as sparkrun
from wattwatch.runners.group import judge_group
from wattwatch.schema import CHANNEL_NAMES
from wattwatch.sim import SimConfig, simulate

EXTRA = "ups_battery_pct"  # a site's own numeric channel


@pytest.fixture(scope="module")
def frame():
    sim = simulate(SimConfig(meters=8, days=5, seed=11, fault_share=0.7, profile_days=2.0, outage_share=0.3))
    f = sim["frame"].copy()
    f[EXTRA] = np.random.default_rng(3).uniform(20, 100, len(f))
    return f


def _scrambled(frame: pd.DataFrame, keep: tuple[str, ...], seed: int) -> pd.DataFrame:
    """``frame`` with every channel not in ``keep`` replaced by random values on every reading."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for c in (*CHANNEL_NAMES, EXTRA):
        if c in out.columns and c not in keep:
            out[c] = rng.uniform(0.0, 0.99 if c == "pf" else 400.0, len(out))
    return out


def _run(frame: pd.DataFrame, name: str):
    """``name`` fitted on ``frame``'s first two days (as `wattwatch fit`: the learned stage trained on
    whatever they hold), then judging all of it."""
    d = registry.build(name)
    full, cfg = prepare(frame), EngineConfig(workers=1, profile_days=2.0)
    res = DetectionResult()
    res.notices += profile(full, [d], cfg, refit=True)
    judge(full, [d], cfg, res, keep_scores=True)
    return d, res


def test_every_registered_detector_declares_what_it_reads():
    for name in registry.names():
        d = registry.build(name)
        r = d.reads()
        assert r is not None, name
        assert set(d.channels()) <= set(r), name


NON_LEARNED = [n for n in registry.names() if n not in registry.LEARNED]


@pytest.mark.parametrize("name", [*NON_LEARNED, "pca_reconstruction"])
def test_channels_a_detector_does_not_read_do_not_change_it(frame, name):
    d_full, full = _run(frame, name)
    keep = d_full.reads()
    changed = [c for c in (*CHANNEL_NAMES, EXTRA) if c not in keep]
    d_scr, scr = _run(_scrambled(frame, keep, seed=len(name)), name)
    if name in registry.LEARNED:
        assert d_full.fleets_, "the learned stage must be trained to be tested"
    assert [a.to_json() for a in full.alerts] == [a.to_json() for a in scr.alerts], (name, changed)
    assert full.notices == scr.notices
    assert json.dumps(d_full.get_state(), sort_keys=True) == json.dumps(d_scr.get_state(), sort_keys=True)
    pd.testing.assert_frame_equal(full.scores, scr.scores, rtol=0, atol=0)


def test_judging_the_pruned_messages_equals_judging_the_full_frame(frame):
    """A group's message carries only the channels its run reads; judged in a task, it gives what
    the full frame gives."""
    full = prepare(frame)
    names = ["phase_imbalance", "packet_loss", "firmware_drift", "residual_likelihood"]
    dets = registry.build_all(names)
    profile(full, dets, EngineConfig(profile_days=2.0))
    keep = sparkrun.shipped_channels(dets)
    assert keep == {"v_l1_v", "v_l2_v", "v_l3_v", "i_l1_a", "i_l2_a", "i_l3_a", "pf", "p_kw", "e_kwh"}
    starts, ends = seg_bounds(full["_seg"].to_numpy())
    group = sparkrun.meter_groups(ends - starts, 2)
    for k, msg in sparkrun.group_messages(full, group, keep):
        part = sparkrun.read_message(msg)
        assert set(part.columns) == {"meter_id", "ts", *keep}  # temp_c, thd, q, s, i_n, the extra: not sent
        mine = full[np.isin(full["meter_id"].astype(str), part["meter_id"].astype(str).unique())]
        want, got = judge_group(mine, dets, keep_scores=True), judge_group(part, dets, keep_scores=True)
        assert [a.to_json() for a in want.alerts] == [a.to_json() for a in got.alerts]
        assert want.notices == got.notices and want.readings == got.readings
        pd.testing.assert_frame_equal(want.scores.assign(meter_id=want.scores["meter_id"].astype(str)),
                                      got.scores.assign(meter_id=got.scores["meter_id"].astype(str)),
                                      check_dtype=False, rtol=0, atol=0)
    # The default set reads every canonical channel (frozen_readings watches all a meter has), not
    # a site's extra channels; a detector that does not declare what it reads ships everything.
    assert sparkrun.shipped_channels(registry.build_all()) == set(CHANNEL_NAMES)

    class Undeclared(registry.detector_class("packet_loss")):
        reads_also = None

    assert sparkrun.shipped_channels([*dets, Undeclared()]) is None


def test_a_detector_judging_some_meters_gets_only_the_channels_it_reads(frame):
    """The core's subset for a detector that judges some meters only (phase_imbalance leaves out a
    meter without three phases) holds the channels it reads, the others NaN (one read-only array)
    or left out (an extra channel): the same scores and alerts as on every column."""
    from wattwatch.detect import core

    full = prepare(frame)
    d = registry.build("phase_imbalance")
    profile(full, [d], EngineConfig(profile_days=2.0))
    seg = full["_seg"].to_numpy()
    rows = (np.arange(seg.max() + 1) % 3 != 0)[seg]  # a subset of whole meters
    sub = core._rows_read(d, full, rows)
    unread = [c for c in CHANNEL_NAMES if c not in d.reads()]
    assert unread and all(np.isnan(sub[c].to_numpy()).all() for c in unread)
    assert EXTRA not in sub.columns and not sub[unread[0]].to_numpy().flags.writeable
    whole = prepare(full[rows])
    for c in d.reads():
        np.testing.assert_array_equal(sub[c].to_numpy(), whole[c].to_numpy())
    np.testing.assert_array_equal(sub["_seg"].to_numpy(), whole["_seg"].to_numpy())
    np.testing.assert_array_equal(sub["_dt"].to_numpy(), whole["_dt"].to_numpy())
    np.testing.assert_array_equal(d.scored(sub).values, d.scored(whole).values)
    assert np.isfinite(d.scored(sub).values).any()


@pytest.mark.parametrize("pick", ["every_third_out", "first_out", "last_only"])
def test_a_subset_is_built_as_prepare_builds_those_rows(frame, pick):
    """``core._rows_read`` builds the prepared subset directly (``frame.reassemble``, no frame for
    prepare to take apart first): the same frame as prepare gives of those rows, column for column
    (order, dtype, values bit for bit, the readings' positions ``_n`` last), the segment codes from 0
    and renumbered where meters dropped out, the gaps recomputed, a RangeIndex; the channels the
    detector does not read one read-only NaN array, the extra channel it does not read left out."""
    from wattwatch.detect import core

    full = prepare(frame)
    full = core._with_column(full, "_n", np.arange(len(full), dtype=np.int64) * 3 + 7)
    d = registry.build("loose_ct")
    profile(full, [d], EngineConfig(profile_days=2.0))
    seg = full["_seg"].to_numpy()
    k = np.arange(seg.max() + 1)
    keep = {"every_third_out": k % 3 != 0, "first_out": k > 0, "last_only": k == k[-1]}[pick]
    rows = keep[seg]
    sub = core._rows_read(d, full, rows)
    whole = prepare(full[rows])   # prepare of those rows: every channel
    unread = [c for c in CHANNEL_NAMES if c not in d.reads()]
    assert list(sub.columns) == [c for c in whole.columns if c != EXTRA] and list(sub.columns)[-1] == "_n"
    assert isinstance(sub.index, pd.RangeIndex) and sub.index.equals(whole.index)
    assert sub["_seg"].to_numpy()[0] == 0 and sub["_seg"].to_numpy()[-1] == int(keep.sum()) - 1
    for c in sub.columns:
        assert sub[c].dtype == whole[c].dtype, c
        if c in unread:
            assert np.isnan(sub[c].to_numpy()).all() and not sub[c].to_numpy().flags.writeable
        elif c == "meter_id":
            assert sub[c].cat.categories.equals(whole[c].cat.categories)
            np.testing.assert_array_equal(sub[c].array.codes, whole[c].array.codes)
        else:
            a, b = np.asarray(sub[c].to_numpy()), np.asarray(whole[c].to_numpy())
            np.testing.assert_array_equal(a.view(np.int64) if a.dtype == float else a,
                                          b.view(np.int64) if b.dtype == float else b, err_msg=c)
    np.testing.assert_array_equal(d.scored(sub).values, d.scored(whole).values)


@pytest.mark.parametrize("shape", ["sorted", "shuffled", "prepared"])
def test_prepare_with_shared_nan_is_prepare_of_nan_channels(frame, shape):
    """A stitcher that keeps only its detectors' channels prepares its frame with the others as one
    shared read-only NaN array (``prepare(df, shared_nan=True)``, no frame of them built first): the
    same frame as ``prepare(nan_channels(df))`` column for column (values bit for bit, dtypes, which
    arrays are read-only, the missing channels one array), sorted or not, prepared already or not."""
    from wattwatch.detect.frame import nan_channels

    lacks = [c for c in CHANNEL_NAMES if c not in ("v_l1_v", "i_l1_a", "p_kw")]
    df = frame.drop(columns=[c for c in lacks if c in frame.columns])
    df = df.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
    if shape == "shuffled":
        df = df.sample(frac=1.0, random_state=5).reset_index(drop=True)
    elif shape == "prepared":
        df = prepare(df).drop(columns=lacks)
    got, want = prepare(df, shared_nan=True), prepare(nan_channels(df))
    assert list(got.columns) == list(want.columns) and got.index.equals(want.index)
    for c in got.columns:
        assert got[c].dtype == want[c].dtype, c
        if c == "meter_id":
            np.testing.assert_array_equal(got[c].array.codes, want[c].array.codes)
            continue
        a, b = np.asarray(got[c].to_numpy()), np.asarray(want[c].to_numpy())
        assert a.flags.writeable == b.flags.writeable, c
        np.testing.assert_array_equal(a.view(np.int64) if a.dtype == float else a,
                                      b.view(np.int64) if b.dtype == float else b, err_msg=c)
    if shape != "shuffled":   # in order: the lacking channels are one read-only array
        arrays = [got[c].to_numpy() for c in lacks]
        assert all(np.shares_memory(arrays[0], x) for x in arrays[1:])
        assert not any(x.flags.writeable for x in arrays)


def test_a_subset_of_a_frame_with_plain_meter_ids_gets_them_as_prepare_gives_them(frame):
    """A frame shaped as prepared (the helper columns, a RangeIndex: prepare takes it as it is) whose
    meter ids are pandas strings, not a Categorical: the subset ``_rows_read`` builds directly has
    them as prepare has them of those rows (a Categorical of object categories, not of the strings'
    extension dtype), as it does with every other column."""
    from wattwatch.detect import core

    full = prepare(frame)
    full = full.assign(meter_id=full["meter_id"].astype("string"))
    rows = (full["_seg"].to_numpy() % 2 == 1)
    sub, whole = core._rows_read(registry.build("loose_ct"), full, rows), prepare(full[rows])
    assert sub["meter_id"].dtype == whole["meter_id"].dtype
    assert sub["meter_id"].cat.categories.dtype == object
    np.testing.assert_array_equal(sub["meter_id"].array.codes, whole["meter_id"].array.codes)


def _bits(df: pd.DataFrame, c: str) -> np.ndarray:
    s = df[c]
    if isinstance(s.dtype, pd.CategoricalDtype):
        return np.asarray(s.array.codes)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.array.asi8
    a = s.to_numpy()
    return a.view(np.int64) if a.dtype == float else a


def test_random_subsets_are_built_as_prepare_builds_the_frame_of_their_columns():
    """``frame.reassemble`` repeats what prepare does with a row subset of a prepared frame: on random
    small frames (meter ids as strings, Categoricals with unused unsorted categories or pandas strings,
    times in another zone or with NaT, int/float32/bool/string extras, ``_n`` or not, any rows and
    any channels read) ``_rows_read`` gives what prepare gives of the frame of those columns (main's
    construction), column for column: order, dtypes, categories, bits, which arrays are read-only."""
    from wattwatch.detect import core
    from wattwatch.detect.frame import AUX, extra_channels

    class Reads:
        def __init__(self, r):
            self.r = r

        def reads(self):
            return self.r

    rng = np.random.default_rng(16)
    pool = [*CHANNEL_NAMES, EXTRA, "f32", "flag", "note"]
    built = 0
    for case in range(40):
        n, ids = int(rng.integers(0, 40)), [f"m{k}" for k in rng.choice(50, int(rng.integers(1, 6)), replace=False)]
        mid = np.array(ids, object)[rng.integers(0, len(ids), n)]
        ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86400, n), unit="s")
        raw = pd.DataFrame({"meter_id": mid, "ts": ts.tz_convert("Europe/Rome") if case % 4 == 1 else ts})
        if case % 4 == 2:
            raw["meter_id"] = pd.Categorical(mid, categories=list(rng.permutation([*ids, "zz", "aa"])))
        if case % 5 == 3 and n:
            raw["ts"] = raw["ts"].where(rng.random(n) > 0.2)
        for c in CHANNEL_NAMES:
            if rng.random() < 0.4:
                raw[c] = np.where(rng.random(n) < 0.2, np.nan, rng.normal(230, 5, n))
        raw[EXTRA], raw["f32"] = rng.integers(0, 100, n), rng.normal(size=n).astype(np.float32)
        raw["flag"], raw["note"] = rng.random(n) < 0.5, "x"
        src = prepare(raw)
        if case % 2:
            src = core._with_column(src, "_n", np.arange(len(src), dtype=np.int64) * 3 + 7)
        if case % 4 == 3:   # shaped as prepared, meter ids not a Categorical
            src = src.assign(meter_id=src["meter_id"].astype("string"))
        seg = src["_seg"].to_numpy()
        for rows in (rng.random(int(seg.max()) + 1 if n else 0) < 0.5)[seg], rng.random(n) < 0.5:
            d = Reads(tuple(c for c in pool if rng.random() < 0.3))
            idx = np.flatnonzero(rows)
            nan = np.full(len(idx), np.nan)
            nan.setflags(write=False)
            cols = {"meter_id": src["meter_id"].array.take(idx), "ts": src["ts"].array.take(idx)}
            cols.update({c: src[c].to_numpy()[idx] if c in d.r else nan for c in CHANNEL_NAMES})
            cols.update({c: src[c].to_numpy()[idx] for c in extra_channels(src) if c in d.r})
            cols.update({c: src[c].to_numpy()[idx] for c in (*AUX, "_n") if c in src.columns})
            got, want = core._rows_read(d, src, rows), prepare(pd.DataFrame(cols, index=idx, copy=False))
            built += bool(len(idx)) and idx[-1] != len(idx) - 1
            assert list(got.columns) == list(want.columns) and got.index.equals(want.index), case
            assert type(got.index) is type(want.index), case
            for c in got.columns:
                assert got[c].dtype == want[c].dtype, (case, c)
                if isinstance(got[c].dtype, pd.CategoricalDtype):
                    assert got[c].cat.categories.equals(want[c].cat.categories), case
                    assert got[c].cat.categories.dtype == want[c].cat.categories.dtype, case
                np.testing.assert_array_equal(_bits(got, c), _bits(want, c), err_msg=f"{case} {c}")
                assert got[c].to_numpy().flags.writeable == want[c].to_numpy().flags.writeable, (case, c)
    assert built > 30   # most subsets went through reassemble, not prepare's frame as it is
