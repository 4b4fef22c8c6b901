"""neutral_tamper's one-reading alert at the cadence of its stretch (q67), reviewed (rev67): the reach
it relies on, the edges of a reconfiguration streamed a reading at a time (with a duplicated lone
reading), and the notice that says what follows a meter's new cadence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.test_neutral_single_edges import _fit, _reading_cuts, _reconfigured, _stream
from tests.detect.test_neutral_single_reading import T0
from wattwatch import api
from wattwatch.detect import core, registry
from wattwatch.detect.cadence import gaps_per_side, stretch_cadence
from wattwatch.detect.stitch import latest


def _layout(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One meter's times: a stretch at its learned cadence, one at another, perhaps the learned
    again, 3 % jitter and random loss up to 60 %; and the learned cadence."""
    learned = float(rng.choice([60.0, 300.0, 900.0, 3600.0]))
    other = float(rng.choice([60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0]))
    g = np.concatenate([np.full(rng.integers(5, 80), learned), np.full(rng.integers(5, 80), other),
                        np.full(rng.integers(0, 40), learned)])
    g = g * (1 + rng.uniform(-0.03, 0.03, len(g)))
    keep = rng.random(len(g) + 1) > rng.uniform(0, 0.6)
    keep[0] = True
    return np.concatenate([[0.0], np.cumsum(g)])[keep], learned


def _cadence_in(t: np.ndarray, learned: float, lo: int, hi: int) -> np.ndarray:
    w = t[lo:hi]
    return stretch_cadence(np.zeros(len(w), np.int64), np.concatenate([[np.nan], np.diff(w)]), np.array([learned]))[0]


def test_a_readings_stretch_cadence_needs_n_readings_before_and_n_minus_one_after():
    """What ``core.single_rows`` relies on (and its fallback tests): a reading's stretch cadence is
    the whole history's in any frame holding ``gaps_per_side`` (n) readings before it and n - 1
    after; with one reading fewer after, not always (so the reach that says "n either way" is
    what it takes). neutral_tamper, the detector with ``single_s`` by default, declares n both ways
    at every cadence (an unknown one too), so it follows the stretch everywhere."""
    rng = np.random.default_rng(67)
    tried = short = 0
    for _ in range(120):
        t, learned = _layout(rng)
        full = _cadence_in(t, learned, 0, len(t))
        n = int(gaps_per_side(np.array([learned]))[0])
        for j in range(len(t)):
            lo = max(0, j - n)
            got = _cadence_in(t, learned, lo, min(len(t), j + n))[j - lo]
            assert got == full[j], (learned, j, n, got, full[j])
            tried += 1
            if j + n - 1 < len(t):
                short += _cadence_in(t, learned, lo, j + n - 1)[j - lo] != full[j]
    assert tried > 5000 and short > 0
    d = registry.build_all(["neutral_tamper"])[0]
    cads = [60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 86400.0, np.nan]
    d.state_ = {f"m{k}": {"cadence_s": c, "phases": 1} for k, c in enumerate(cads)}
    r = d.reach(list(d.state_))
    n = gaps_per_side(np.array(cads))
    assert (np.asarray(r.back_n) >= n).all() and (np.asarray(r.ahead_n) >= n).all()


@pytest.fixture(scope="module")
def edges():
    """Lone neutral-gone readings at the very edges of a reconfiguration: h2f's last hourly reading
    (its gap before an hour: alerts) and its first and third 5-minute ones (the first joins the
    last hourly: a run of two; the third is a lone 5-minute reading: none); f2h's last 5-minute
    reading (none) and its first and third hourly ones (each alone), the first duplicated (the
    same stamp twice, as a source re-sending it)."""
    parts = [_reconfigured("h2f", "60min", "5min", 5.0, [(4.5, 1, 1.0), (5.0, 1, 1.0)],
                           [(5.0 + 1 / 288, 1, 1.0), (5.0 + 3 / 288, 1, 1.0)], seed=40),
             _reconfigured("f2h", "5min", "60min", 5.0, [(5.0 - 1 / 288, 1, 1.0)],
                           [(5.0 + 1 / 24, 1, 1.0), (5.0 + 3 / 24, 1, 1.0)], seed=41)]
    frame = pd.concat(parts, ignore_index=True)
    f = frame[frame.meter_id == "f2h"]
    first_hourly = f.index[np.argmin(np.abs(f["ts"] - (T0 + pd.Timedelta(days=5, hours=1))).to_numpy())]
    frame = pd.concat([frame, frame.loc[[first_hourly]]], ignore_index=True)
    dets = _fit(frame, ("neutral_tamper", "firmware_drift"))
    return frame, dets, core.run(frame, dets).alerts


def test_lone_readings_at_the_edges_of_a_reconfiguration(edges):
    frame, dets, alerts = edges
    at = lambda m: T0 + pd.Timedelta(days=5, minutes=m)  # noqa: E731
    got = sorted((a.meter_id, pd.Timestamp(a.start).round("5min"), pd.Timestamp(a.end).round("5min"))
                 for a in alerts if a.detector == "neutral_tamper")
    assert got == [("f2h", at(60), at(60)), ("f2h", at(180), at(180)),
                   ("h2f", at(-12 * 60), at(-12 * 60)), ("h2f", at(0), at(5))], got


def test_streamed_a_reading_at_a_time_across_the_edges(edges):
    """Batch == stitched == calm stream with a piece ending at every reading from 3 h before h2f's
    change to 3 h after, and 12 h either side of f2h's: no alert version the whole history lacks,
    the latest versions equal to it."""
    frame, dets, want = edges
    cuts = sorted(set(_reading_cuts(frame, "h2f", [5.0], 3.0) + _reading_cuts(frame, "f2h", [5.0], 12.0)))
    versions = _stream(frame, dets, cuts)
    assert {a.id for a in versions} <= {a.id for a in want}
    view = lambda a: (a.meter_id, a.detector, a.start, a.end, a.score, a.message, sorted(a.evidence.items()))  # noqa: E731
    assert {i: view(a) for i, a in latest(versions).items()} == {a.id: view(a) for a in want}


def test_the_cadence_notice_names_the_one_reading_alert_among_what_follows_the_new_cadence():
    """``detect``'s (and ``watch``'s) notice on a reconfigured meter says which judgements follow the
    new cadence and that the others stay at the learned one ("readings an alert needs"). Since q67
    neutral_tamper's one-reading alert follows the stretch: the notice named only its held
    departure (fails before rev67)."""
    frame = _reconfigured("h2f", "60min", "5min", 5.0, [], [], seed=40)
    res = api.detect(frame, detectors=["neutral_tamper"], config={"engine": {"profile_days": 3.0}})
    said = [n for n in res.notices if n.startswith("meter h2f:")]
    assert len(said) == 1 and "every 300 s" in said[0] and "learned at 3,600 s" in said[0], res.notices
    assert "neutral_tamper's held departure and one-reading alert follow the new cadence" in said[0]
