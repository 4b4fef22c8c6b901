"""Known scores in the stitched carry (issue 16): a detector scores, per piece, only its pending
readings and those its open alerts span (with its own reach before them), and takes the final
scores the tail keeps for the rest, instead of re-scoring the whole tail the longest reach keeps.

A live-like stream (the profiled days as one backfill, then many small pieces, each meter in
every piece) at 1, 5, 15 and 60 minutes must give every reading the score, and every alert the
id, span, score, message and evidence, that the whole history judged at once gives; and the
short-reach detectors must really have scored fewer rows than the frames held (else the path is
not taken and the comparison proves nothing about it)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import core, registry, stitch
from wattwatch.detect.engine import profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import KNOWN, Stitcher

from tests.detect.test_core import ENGINE, PROFILE_DAYS, _alert_mismatches, _epoch, _score_mismatches, _sim

# Short reach (outage, noise, frozen, loose CT, packets) beside day-reach rules (imbalance,
# neutral, sensor, firmware) and the consumption baseline: the tail is long, most detectors
# need little of it.
DETECTORS = [*registry.FALLBACK_DETECTORS, "baseline_macd"]
# Reach of a reading or two at every cadence (packet loss: a window of hours, short at fine cadences).
SHORT = ("supply_outage", "harmonic_noise", "frozen_readings")


def _count_rows(dets) -> dict[str, int]:
    """Rows each detector is asked to score (wraps ``scored`` on the instances)."""
    seen = {d.name: 0 for d in dets}
    for d in dets:
        f = d.scored

        def counted(df, _f=f, _n=d.name, **kw):
            seen[_n] += len(df)
            return _f(df, **kw)
        d.scored = counted
    return seen


@pytest.mark.parametrize("step,piece_h", [("1min", 1.0), ("5min", 2.0), ("15min", 6.0), ("60min", 12.0)])
def test_a_stream_of_small_pieces_with_known_scores_equals_the_whole_history(step, piece_h):
    days = PROFILE_DAYS + (1.0 if step in ("1min", "5min") else 3.0)
    frame = _sim(meters=5, days=days, step=step, seed=1717, fault_share=0.9, outage_share=0.5,
                 profile_days=PROFILE_DAYS)
    # At a meter's register resolution (0.1 V, 0.001 elsewhere), as meters report: the stream
    # engine's full stitcher then holds columns of few levels as codes.
    frame = frame.assign(**{c: frame[c].round(1 if c.startswith("v_") else 3)
                            for c in frame.columns if c not in ("meter_id", "ts") and frame[c].dtype == float})
    dets = registry.build_all(DETECTORS)
    profile(prepare(frame), dets, ENGINE)
    whole = core.run(frame, dets)
    assert whole.alerts, "the fleet should raise alerts"

    t = _epoch(frame["ts"])
    t0 = t.min() + PROFILE_DAYS * 86400
    edges = [-np.inf, *np.arange(t0, t.max(), piece_h * 3600.0), np.inf]
    st = Stitcher(dets, compact_readings=True)   # as the stream engine's full stitcher
    rows_in = 0
    seen = None
    steps = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        if k == 1:   # from the first live piece on: count what each detector scores
            seen = _count_rows(dets)
            rows_in = 0
        piece = frame[(t > lo) & (t <= hi)]
        rows_in += len(piece) + (len(st.tail) if st.tail is not None else 0)   # the frame judged
        steps.append(st.feed(piece))
        assert st.tail is None or any(str(c).startswith(KNOWN) for c in st.tail.columns)
    # The readings were held in compact columns (the voltages' few levels), read back exactly at
    # every piece.
    assert isinstance(st.tail["v_l1_v"].array, pd.Categorical), type(st.tail["v_l1_v"].array)
    steps.append(st.flush())
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, f"{step}:\n" + "\n".join(problems[:12])
    # The short-reach detectors scored well under the rows of the frames judged after the
    # backfill (the day-reach ones keep the tail long).
    for name in SHORT + (("packet_loss",) if step in ("1min", "5min") else ()):
        assert seen[name] < 0.5 * rows_in, f"{name} scored {seen[name]} rows of ~{rows_in}: known scores unused"


def test_the_checkpointed_carry_holds_no_known_scores_and_a_carry_without_them_is_scored_whole():
    """The known scores are a cache of the carry, not part of it: a stitcher given only the
    readings of another's tail (a checkpoint) goes on exactly as the one that kept them."""
    frame, t, cut, a, b = _two_fed("5min", 1718)
    carry = b.carry()
    assert not any(str(c).startswith((KNOWN, "_c:")) for c in carry.columns)
    b.tail = carry   # as loaded from a checkpoint
    _assert_go_on_alike(frame, t, cut, a, b)


def _two_fed(step: str, seed: int):
    """A simulated 3-meter frame, its times, two cut points, and two stitchers of the profiled
    detectors each fed the frame up to the first cut."""
    frame = _sim(meters=3, days=PROFILE_DAYS + 1, step=step, seed=seed, fault_share=0.9, outage_share=0.5,
                 profile_days=PROFILE_DAYS)
    dets = registry.build_all(DETECTORS)
    profile(prepare(frame), dets, ENGINE)
    t = _epoch(frame["ts"])
    cut = np.quantile(t, [0.8, 0.9])
    a, b = Stitcher(dets), Stitcher(dets)
    first = frame[t <= cut[0]]
    a.feed(first)
    b.feed(first)
    return frame, t, cut, a, b


def _assert_go_on_alike(frame, t, cut, a, b) -> None:
    """Stitchers ``a`` and ``b``, fed the rest of ``frame`` in two pieces and flushed, give the same
    alerts and scores at every step."""
    for lo, hi in ((cut[0], cut[1]), (cut[1], np.inf)):
        sa, sb = a.feed(frame[(t > lo) & (t <= hi)]), b.feed(frame[(t > lo) & (t <= hi)])
        assert sorted(x.to_json() for x in sa.alerts) == sorted(x.to_json() for x in sb.alerts)
        pd.testing.assert_frame_equal(sa.scores.reset_index(drop=True), sb.scores.reset_index(drop=True))
    assert sorted(x.to_json() for x in a.flush().alerts) == sorted(x.to_json() for x in b.flush().alerts)


def test_known_scores_are_read_by_detector_name_whatever_the_order_of_the_detectors():
    """A tail's known scores go on to a stitcher given the same detectors in another order (the
    order is only bound by what explains what): each detector takes its own scores, as by name."""
    frame = _sim(meters=3, days=PROFILE_DAYS + 1, step="5min", seed=1719, fault_share=0.9, outage_share=0.5,
                 profile_days=PROFILE_DAYS)
    dets = registry.build_all(DETECTORS)
    profile(prepare(frame), dets, ENGINE)
    whole = core.run(frame, dets)
    t = _epoch(frame["ts"])
    edges = [-np.inf, *np.quantile(t, [0.7, 0.75, 0.8, 0.85, 0.9, 0.95]), np.inf]
    a = Stitcher(dets)
    steps = [a.feed(frame[t <= edges[1]])]
    b = Stitcher(list(reversed(dets)))
    assert [d.name for d in b.detectors] != [d.name for d in a.detectors]
    b.tail, b.origin, b.n_before = a.tail.copy(), dict(a.origin), dict(a.n_before)
    b.since, b.emitted = copy.deepcopy(a.since), copy.deepcopy(a.emitted)
    b.open, b._said = copy.deepcopy(a.open), set(a._said)
    seen = _count_rows(dets)
    rows_in = 0
    for lo, hi in zip(edges[1:-1], edges[2:]):
        piece = frame[(t > lo) & (t <= hi)]
        rows_in += len(piece) + len(b.tail)
        steps.append(b.feed(piece))
    steps.append(b.flush())
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])
    assert all(seen[name] < 0.5 * rows_in for name in SHORT), "known scores unused: the test proves nothing"


def _frame(rows):
    return pd.DataFrame({"meter_id": [r[0] for r in rows],
                         "ts": pd.to_datetime([r[1] for r in rows], unit="s", utc=True).as_unit("us"),
                         "p_kw": [float(r[2]) for r in rows]})


@pytest.mark.parametrize("late", [False, True])
@pytest.mark.parametrize("slices", [64, 0])
@pytest.mark.parametrize("skip_m2", [False, True])
def test_the_tail_and_a_piece_merge_as_sorting_them_would(late, slices, skip_m2, monkeypatch):
    """The stitcher merges its tail and a piece by meter without sorting the tail: the rows come
    out as a stable sort by meter then time gives (a late reading too; by slices or by a mask;
    with a meter's tail rows left out), known-score flags the piece lacks are False, other
    missing columns NaN."""
    from wattwatch.detect import stitch
    from wattwatch.detect.stitch import _by_meter, _merge

    monkeypatch.setattr(stitch, "RUNS_AS_SLICES", slices)

    a = _frame([("m2", 10, 1), ("m1", 0, 2), ("m1", 60, 3), ("m2", 70, 4), ("m4", 5, 5)])
    a[KNOWN + "x"] = [True, False, True, True, False]
    a["_c:x"] = [0.1, 0.2, 0.3, 0.4, 0.5]
    b = _frame([("m3", 100, 6), ("m1", 30 if late else 120, 7), ("m2", 130, 8), ("m2", 190, 9)])
    b["q_kvar"] = 1.0
    ta, tb = _by_meter(a), _by_meter(b)
    take = np.asarray(ta["meter_id"].cat.categories != "m2") if skip_m2 else None
    got = _merge(ta, tb, take)
    kept_a = ta[ta["meter_id"] != "m2"] if skip_m2 else ta
    want = pd.concat([kept_a.astype({"meter_id": str}), tb.astype({"meter_id": str})], ignore_index=True)
    want = want.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
    assert list(got["meter_id"].astype(str)) == list(want["meter_id"])
    assert list(got["meter_id"].cat.categories) == ["m1", "m2", "m3", "m4"]
    pd.testing.assert_series_equal(got["ts"], want["ts"])
    np.testing.assert_array_equal(got["p_kw"].to_numpy(), want["p_kw"].to_numpy())
    np.testing.assert_array_equal(got["_c:x"].to_numpy(), want["_c:x"].to_numpy())
    np.testing.assert_array_equal(got["q_kvar"].to_numpy(), want["q_kvar"].to_numpy())
    assert got[KNOWN + "x"].dtype == bool
    np.testing.assert_array_equal(got[KNOWN + "x"].to_numpy(), [v is True for v in want[KNOWN + "x"]])


def test_a_carry_in_any_row_order_goes_on_as_the_stitcher_that_kept_it():
    """A tail handed over with string meter ids in another row order (as a checkpoint may load
    it) is put in meter and time order first: the next pieces give what they give after the
    stitcher's own tail."""
    frame, t, cut, a, b = _two_fed("15min", 1720)
    shuffled = b.tail.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["meter_id"] = shuffled["meter_id"].astype(str)
    b.tail = shuffled
    _assert_go_on_alike(frame, t, cut, a, b)


def test_a_detector_idle_on_a_meter_keeps_none_of_its_readings_in_the_carry():
    """seasonal_profile gives 5-minute meters no score (idle): its reach of three months must not
    keep their whole history in the tail; the stream still equals the whole history judged."""
    frame = _sim(meters=3, days=PROFILE_DAYS + 1, step="5min", seed=1721, fault_share=0.9, outage_share=0.5,
                 profile_days=PROFILE_DAYS)
    dets = registry.build_all(["supply_outage", "seasonal_profile"])
    profile(prepare(frame), dets, ENGINE)
    seasonal = next(d for d in dets if d.name == "seasonal_profile")
    assert all(seasonal.idle(s) for s in seasonal.state_.values())
    whole = core.run(frame, dets)
    t = _epoch(frame["ts"])
    edges = [-np.inf, *np.arange(t.min() + PROFILE_DAYS * 86400, t.max(), 3600.0), np.inf]
    st = Stitcher(dets)
    steps = [st.feed(frame[(t > lo) & (t <= hi)]) for lo, hi in zip(edges[:-1], edges[1:])]
    assert len(st.tail) <= 3 * 3, f"the tail kept {len(st.tail)} of {len(frame)} readings"
    steps.append(st.flush())
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])


def test_the_tail_holds_known_scores_only_where_a_later_piece_reads_them_and_compactly(monkeypatch):
    """A detector's known score is read by a later piece from its own clean or pending point on
    (its post-rules), and, only as its class (NaN, under or at the threshold), where the detectors
    it blanks read its findings; before that, nothing reads it. The tail holds it that way, each
    column in a compact exact form, and a live-like stream still equals the whole history.
    (The tail as a frame: held with room, ``stitch.ROOM``, the known scores are dense, the same
    values, test_stitch_room; ly.)"""
    monkeypatch.setattr(stitch, "ROOM", False)
    frame = _sim(meters=4, days=PROFILE_DAYS + 1, step="5min", seed=1722, fault_share=0.9, outage_share=0.5,
                 profile_days=PROFILE_DAYS)
    dets = registry.build_all(DETECTORS)
    profile(prepare(frame), dets, ENGINE)
    whole = core.run(frame, dets)
    t = _epoch(frame["ts"])
    edges = [-np.inf, *np.arange(t.min() + PROFILE_DAYS * 86400, t.max(), 3600.0), np.inf]
    st = Stitcher(dets)
    steps = [st.feed(frame[(t > lo) & (t <= hi)]) for lo, hi in zip(edges[:-1], edges[1:])]
    tail = st.tail
    kept = [c[len("_c:"):] for c in tail.columns if str(c).startswith("_c:")]
    assert {"supply_outage", "phase_imbalance", "packet_loss"} <= set(kept), kept
    blanks = {b.name for b in dets for d in dets
              if b is not d and {k for e in b.explains for k in e.kinds} & set(d.judges)}
    names = [str(m) for m in tail["meter_id"].cat.categories]
    mid, ts = tail["meter_id"].astype(str).to_numpy(), _epoch(tail["ts"])
    for name in kept:
        det = next(d for d in dets if d.name == name)
        v = tail[f"_c:{name}"].to_numpy(float)
        # Its own post-rules read from the earlier of its clean point and first pending reading.
        ref = np.array([min(st.since[name].get(m, -np.inf), st.emitted[name].get(m, -np.inf)) for m in names])
        before = ts < pd.Series(ref, index=names).reindex(mid).to_numpy()
        if name not in blanks:   # nothing else reads it: nothing held before that point
            assert before.any() and np.isnan(v[before]).all(), name
        else:   # the detectors it blanks read its class there
            thr = det.config.post.threshold
            cls = v[before & ~np.isnan(v)]
            assert np.isin(cls, [thr, np.nextafter(thr, -np.inf)]).all(), name
    dense = len(tail) * len(kept) * 9   # float64 scores and bool flags, as the tail held them before
    held = sum(tail[c].array.nbytes for c in tail.columns if str(c).startswith(("_c:", KNOWN)))
    assert held < 0.25 * dense, f"known scores hold {held} bytes of {dense} dense"
    steps.append(st.flush())
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])


@pytest.mark.parametrize("kind", ["levels", "signed_zero", "float32", "mostly_nan", "mostly_level", "mostly_class",
                                  "mostly_zero_signed", "continuous", "empty"])
def test_a_compact_known_score_column_gives_back_every_value_bit_for_bit(kind):
    """The tail's known-score columns are held in compact forms (codes, float32, sparse) only where
    these give every value back bit for bit (0.0 and -0.0 are not one code); a column of many distinct
    float64 values stays as it is."""
    from wattwatch.detect.stitch import _compact

    rng = np.random.default_rng(5)
    n = 5000
    v = {"levels": rng.choice([0.0, 1.0, 2.5, np.nan], n),
         "signed_zero": rng.choice([0.0, -0.0, 3.0], n),
         "float32": rng.normal(size=n).astype(np.float32).astype(float),
         "mostly_nan": np.where(rng.random(n) < 0.97, np.nan, rng.normal(size=n)),
         "mostly_level": np.where(rng.random(n) < 0.97, 0.0, rng.normal(size=n)),
         # scores held as their class: mostly the float just under the threshold (not a float32)
         "mostly_class": np.where(rng.random(n) < 0.97, np.nextafter(1.0, -np.inf),
                                  rng.normal(size=n).astype(np.float32).astype(float)),
         "mostly_zero_signed": np.where(rng.random(n) < 0.97, 0.0, rng.choice([-0.0, 2.0], n)),
         "continuous": rng.normal(size=n),
         "empty": np.zeros(0)}[kind]
    got = _compact(v)
    back = np.asarray(got, float)
    assert back.shape == v.shape
    assert np.array_equal(np.isnan(back), np.isnan(v))
    fin = ~np.isnan(v)
    assert np.array_equal(back[fin].view(np.int64), v[fin].view(np.int64))
    per_row = got.nbytes / max(n, 1) if kind != "empty" else 0.0
    assert per_row <= {"levels": 1, "signed_zero": 4, "float32": 4, "mostly_nan": 1, "mostly_level": 1,
                       "mostly_class": 1, "mostly_zero_signed": 4, "continuous": 8, "empty": 0}[kind] + 0.05, \
        (kind, type(got), per_row)


@pytest.mark.parametrize("slices", [64, 0])
def test_random_tails_and_pieces_merge_as_sorting_them_would(slices, monkeypatch):
    """As above on random frames (1-150 meters, some only in the tail or only in the piece, tail
    meters left out, late readings, a column one side lacks): the runs of rows, by slices or by a
    mask, give what a stable sort of both by meter then time gives."""
    from wattwatch.detect import stitch
    from wattwatch.detect.stitch import _by_meter, _merge

    monkeypatch.setattr(stitch, "RUNS_AS_SLICES", slices)
    rng = np.random.default_rng(16)
    for _ in range(150):
        meters = [f"m{i:03d}" for i in range(int(rng.choice([1, 3, 40, 150])))]

        def frame(per, t0):
            rows = [(m, t0 + t, rng.normal()) for m in meters if rng.random() < 0.7
                    for t in np.sort(rng.choice(3600, int(rng.integers(0, per + 1)), replace=False))]
            return _frame(rows)

        late = rng.random() < 0.3
        a, b = frame(int(rng.choice([1, 5, 30])), 0), frame(int(rng.choice([1, 3])), 0 if late else 4000)
        if not len(a) or not len(b):
            continue
        a["_c:x"] = rng.normal(size=len(a))
        b["q_kvar"] = rng.normal(size=len(b))
        ta, tb = _by_meter(a), _by_meter(b)
        cats = ta["meter_id"].cat.categories
        take = None if rng.random() < 0.4 else rng.random(len(cats)) < 0.7
        got = _merge(ta, tb, take)
        kept_a = ta if take is None else ta[np.isin(ta["meter_id"].astype(str), cats[take])]
        want = pd.concat([kept_a.astype({"meter_id": str}), tb.astype({"meter_id": str})], ignore_index=True)
        want = want.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
        assert list(got["meter_id"].astype(str)) == list(want["meter_id"])
        assert list(got["meter_id"].cat.categories) == sorted(set(want["meter_id"]))
        pd.testing.assert_series_equal(got["ts"], want["ts"])
        for c in ("p_kw", "_c:x", "q_kvar"):
            np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy())


@pytest.mark.parametrize("slices", [64, 0])
@pytest.mark.parametrize("case", ["tail_left_out", "both_empty", "rowless_meter_taken"])
def test_a_merge_with_no_rows_left_gives_an_empty_frame(case, slices, monkeypatch):
    """A merge whose result has no rows (every tail meter left out and an empty piece; both
    empty; a tail whose only meter taken is a category without rows, as a cut tail keeps one,
    and an empty piece) gives an empty frame with both sides' columns, not an error."""
    from wattwatch.detect import stitch
    from wattwatch.detect.stitch import _by_meter, _merge, _rows

    monkeypatch.setattr(stitch, "RUNS_AS_SLICES", slices)
    a = _by_meter(_frame([("m1", 0, 1.0), ("m1", 60, 2.0), ("m2", 30, 3.0)]))
    a["_k:x"] = np.array([True, False, True])
    empty = _by_meter(_frame([]))
    take = None
    if case == "tail_left_out":
        take = np.zeros(2, bool)
    elif case == "both_empty":
        a = _rows(a, np.zeros(len(a), bool))
    else:   # m2's rows cut, its category kept (a tail as _cut_tail leaves it); m2 taken, m1 not
        a = _rows(a, (a["meter_id"] == "m1").to_numpy())
        take = np.array([False, True])
    got = _merge(a, empty, take)
    assert len(got) == 0
    assert list(got.columns) == ["meter_id", "ts", "p_kw", "_k:x"]
    assert list(got["meter_id"].cat.categories) == []
    assert got["_k:x"].dtype == bool and got["p_kw"].dtype == float


def test_a_stale_meter_forgotten_then_an_empty_piece_judges_nothing():
    """A meter marked to be judged again (``stale``, as a restored carry is) whose carry is then
    forgotten keeps its category in the tail without rows; an empty piece then merges no rows
    and judges nothing (no error), and the other meter keeps its tail."""
    frame = _sim(meters=2, days=PROFILE_DAYS + 0.25, step="15min", seed=11, profile_days=PROFILE_DAYS)
    t0 = frame["ts"].min() + pd.Timedelta(days=PROFILE_DAYS)
    dets = registry.build_all(["frozen_readings"])
    profile(prepare(frame[frame["ts"] < t0]), dets, ENGINE)
    st = Stitcher(dets, keep_scores=False)
    live = frame[frame["ts"] >= t0]
    st.feed(live[live["ts"] < t0 + pd.Timedelta(hours=2)])
    m1, m2 = sorted(live["meter_id"].unique())
    kept = st.tail.copy()
    st.stale = {m2}
    st.forget([m2])
    assert m2 in st.tail["meter_id"].cat.categories and not (st.tail["meter_id"] == m2).any()
    assert st.stale == set()   # forgetting a meter drops its mark too
    step = st.feed(live.iloc[:0])
    assert step.alerts == []
    from wattwatch.detect.stitch import dense_columns

    def rows_of_m1(t):
        return dense_columns(t[t["meter_id"] == m1].reset_index(drop=True)).astype({"meter_id": str})

    pd.testing.assert_frame_equal(rows_of_m1(st.tail), rows_of_m1(kept))
