"""rev56: q56's data-gap rule (one gap of ``gap_lost`` readings in a row lasting ``gap_s``) with
the stitched pieces cut exactly at, inside and around the gap.

The rule scores a gap's two edges: the reading before it learns of the gap only when the reading
after it arrives, possibly pieces later. Hourly and 30-minute meters with such gaps (one at the
meter's first reading, one before its last, two a day apart, a gap that spans several pieces), fed
to a calm stitcher and to one judging every meter in pieces cut on the gap's edges, a second either
side of them and in its middle (a piece in which the meter has no reading at all), must give every
alert of the whole history judged at once; so must one restarted from its checkpoint at each cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.test_stitch_calm import _compare
from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare

T0 = pd.Timestamp("2025-01-06", tz="UTC")
DAYS = 6


def _meter(name: str, cad_s: float, lost_at_h: list[float], seed: int, jitter_s: float = 2.0) -> pd.DataFrame:
    """A meter every ``cad_s`` seconds for DAYS days, jittered, without the readings at the hours
    ``lost_at_h`` (each the first of three in a row)."""
    n = int(DAYS * 86400 / cad_s)
    k = np.arange(n)
    lost = np.zeros(n, bool)
    for h in lost_at_h:
        i = int(round(h * 3600 / cad_s))
        lost[i:i + 3] = True
    rng = np.random.default_rng(seed)
    ts = T0 + pd.to_timedelta(k * cad_s + rng.uniform(-jitter_s, jitter_s, n), unit="s")
    f = pd.DataFrame({"meter_id": name, "ts": ts, "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})
    return f[~lost]


# Gap hours (after T0); the profiling day is the first.
GAPS = {"H0": (3600.0, [40.0]), "H1": (3600.0, [52.0, 76.0]), "H2": (3600.0, [DAYS * 24 - 4.0]),
        "S0": (1800.0, [61.5]), "S1": (1800.0, [100.0, 124.0]), "E0": (3600.0, [1.0])}


def _frame():
    parts = [_meter(m, cad, hs, seed=i) for i, (m, (cad, hs)) in enumerate(GAPS.items())]
    parts.append(_meter("Q", 3600.0, [], seed=99))   # a calm meter
    frame = pd.concat(parts, ignore_index=True)
    dets = registry.build_all(["packet_loss"])
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    return frame, dets


def _edges(frame) -> list[float]:
    """Cut times (s since the epoch): each gap's two edge readings, a second either side of them,
    and the middle of the gap."""
    out = []
    for m, g in frame.groupby(frame["meter_id"].astype(str)):
        t = ((pd.to_datetime(g["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
        d = np.diff(t)
        for i in np.flatnonzero(d > 2.5 * GAPS.get(m, (3600.0,))[0]):
            a, b = t[i], t[i + 1]
            out += [a - 1, a, a + 1, (a + b) / 2, b - 1, b, b + 1]
    return sorted(out)


# Which cuts a parametrized piece test sends: all of them, or every 7th from three offsets.
PICKS = {"all": slice(None), "before": slice(0, None, 7), "after": slice(5, None, 7), "middle": slice(3, None, 7)}


def _cut(cuts):
    def pieces(frame, piece_s, seed):
        t = ((pd.to_datetime(frame["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
        edges = [-np.inf, t.min() + 86400.0] + [c for c in cuts if c > t.min() + 86400.0] + [np.inf]
        for lo, hi in zip(edges[:-1], edges[1:]):
            yield frame[(t > lo) & (t <= hi)]
    return pieces


@pytest.fixture(scope="module")
def fleet():
    frame, dets = _frame()
    return frame, dets, core.run(frame, dets).alerts


def test_the_gaps_alert_in_the_whole_history(fleet):
    frame, dets, whole = fleet
    got = sorted((a.meter_id, a.evidence["kind"], a.evidence.get("gap_readings")) for a in whole)
    assert got == sorted([(m, "data_gap", 3) for m, (_, hs) in GAPS.items() for _ in hs])


@pytest.mark.parametrize("which", ["all", "before", "after", "middle"])
def test_pieces_cut_at_inside_and_around_the_gap_give_the_whole_historys_alerts(fleet, which):
    frame, dets, whole = fleet
    cuts = _edges(frame)
    calm = _compare(frame, dets, 0.0, 0, pieces=_cut(cuts[PICKS[which]]), want=whole)
    assert calm.calm_fed > 0


def test_a_piece_that_sends_the_reading_before_the_gap_again_is_carried_as_judging_it(fleet):
    """Each piece after a cut starts with every meter's last reading of the piece before it again
    (a gateway re-sending the reading before a silence): the calm stitcher as one judging every
    meter at every piece. (Not the whole history's alerts: the stitcher is given the copies, which
    the stream's store merges first, ``tests/live/test_stream_gap_cuts.py``; given copies, the
    stitched windows count them as readings held, before q56 too; rev56.)"""
    frame, dets, whole = fleet
    base = _cut(_edges(frame))

    def again(frame, piece_s, seed):
        prev = None
        for p in base(frame, piece_s, seed):
            if prev is not None and len(prev):
                last = prev.groupby(prev["meter_id"].astype(str), sort=False).tail(1)
                p = pd.concat([last, p]).sort_values(["meter_id", "ts"], kind="stable")
            prev = p
            yield p
    _compare(frame, dets, 0.0, 0, pieces=again, whole=False)


def test_a_stitcher_restarted_at_each_cut_gives_the_whole_historys_alerts(fleet):
    """Restarted from its checkpoint before every piece after the first two: the whole history's
    alerts. (A restarted stitcher judges its carried meters afresh once and may send again a
    version of an alert it already sent, identical, when the meter's carried readings still reach
    it: hourly meters carry 40 h and more. So it did before q56 with gaps the share finds; rev56.)"""
    frame, dets, whole = fleet
    _restarted_at_each_cut_gives(frame, dets, _edges(frame), whole)


def _restarted_at_each_cut_gives(frame, dets, cuts, whole) -> None:
    """A stitcher fed ``frame`` in pieces cut at ``cuts`` (:func:`_cut`), restarted from its
    checkpoint before every piece after the first two, gives the alerts ``whole``."""
    from tests.detect.test_stitch_calm import _restart, _view
    from wattwatch.detect.stitch import Stitcher, latest, read_channels

    cols = read_channels(dets)
    st, got = Stitcher(dets, keep_scores=False, columns=cols), []
    for k, p in enumerate(_cut(cuts)(frame, 0.0, 0)):
        if k >= 2:
            st = _restart(st, dets, cols)
        got += st.feed(p).alerts
    got += st.flush().alerts
    assert {i: _view(x) for i, x in latest(got).items()} == {x.id: _view(x) for x in whole}
