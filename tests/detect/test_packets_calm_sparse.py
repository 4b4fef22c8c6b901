"""fast44 (issue 16): packet_loss's calm verdict (``PacketLoss.calm_meters``, the stream's fast
tier asks it at every step for every meter with nothing open) counts a meter's lost readings at
its gaps off the learned cadence only, and works out cadences over the readings only of meters
with enough such gaps to say another cadence. It must give exactly the verdict of the whole
computation it replaced: every reading's cadence and lost readings over the whole frame
(``_cadence_rows``), the lost readings near the asked span summed, a meter whose gaps say another
cadence anywhere never calm. Meters here: steady, jittered (by up to 45 % of the cadence), losing
0.2-50 % of their readings, silent for hours, reconfigured (1 -> 5, 5 -> 1, 15 -> 5 minutes, once
or back and forth), with exactly as many gaps at a new cadence as a run needs to say it (and one
fewer), without a learned cadence; asked about the whole frame and about random spans."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import core, registry
from wattwatch.detect.core import SegTimes
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitcher, read_channels
from wattwatch.detect.cadence import need as _need


def _whole(d, names, seg, starts, t, dt, lo, hi) -> np.ndarray:
    """The verdict as worked out before fast44: cadences and lost readings over every reading."""
    cad_m = np.array([float(d.state_.get(m, {}).get("cadence_s", np.nan)) for m in names], float)
    c_row, lost = d._cadence_rows(names, seg, dt, cad_m)
    lost = np.nan_to_num(lost)
    ends = np.append(starts[1:], len(t))
    with np.errstate(invalid="ignore"):
        other = np.logical_or.reduceat((c_row != cad_m[seg]) & np.isfinite(cad_m[seg]), starts)
    st = SegTimes(t, seg, starts, ends)
    half = d._window(cad_m) / 2
    half = np.where(np.isfinite(half), half, np.inf)
    with np.errstate(invalid="ignore"):
        # (pkt) a whole window back: a window reaches at most half its length past a reading
        i0 = st.search(st.ks, SegTimes.to_us(np.asarray(lo, float) - 2 * half - 1.0), "left")
        i1 = st.search(st.ks, SegTimes.to_us(np.asarray(hi, float) + half + 1.0), "right")
    i1 = np.minimum(i1 + 1, st.lens)
    c = np.concatenate([[0.0], np.cumsum(lost)])
    total = np.where(i1 > i0, c[starts + i1] - c[starts + np.minimum(i0, i1)], 0.0)
    # (q56) and no gap near it that lost gap_lost readings in a row (it may be a data gap alone)
    g = np.concatenate([[0], np.cumsum(lost >= d.config.gap_lost)])
    gapped = np.where(i1 > i0, g[starts + i1] - g[starts + np.minimum(i0, i1)] > 0, False)
    return (total / d.config.min_lost < d.config.post.threshold) & ~other & ~gapped


def _gaps(rng, kind: str, cad: float, n: int, need: int) -> tuple[np.ndarray, float]:
    """Gaps (s) of one meter and the cadence it was learned at."""
    if kind == "steady":
        return np.full(n, cad) + rng.uniform(-1, 1, n), cad
    if kind == "jitter":
        return cad * (1 + rng.uniform(-0.45, 0.45, n)), cad
    if kind == "lossy":
        p = rng.choice([0.002, 0.01, 0.05, 0.2, 0.5])
        return cad * rng.geometric(1 - p, n) + rng.uniform(-2, 2, n), cad
    if kind == "silent":
        g = np.full(n, cad)
        g[rng.integers(n // 4, 3 * n // 4)] = rng.uniform(3, 30) * 3600
        return g, cad
    if kind in ("reconfigured", "back_and_forth"):
        new = {60.0: 300.0, 300.0: 60.0, 900.0: 300.0}[cad]
        k = rng.integers(n // 3, 2 * n // 3)
        g = np.r_[np.full(k, cad), np.full(n - k, new)]
        if kind == "back_and_forth":
            g[k + rng.integers(need, 3 * need):] = cad
        lost = rng.random(n) < 0.02
        return g * np.where(lost, 2, 1), cad
    if kind in ("just_enough", "one_short"):   # a run of new-cadence gaps of exactly `need` (or one fewer)
        g = np.full(n, cad)
        k = need if kind == "just_enough" else need - 1
        at = rng.integers(0, n - k) if rng.random() < 0.5 else n - k
        g[at:at + k] = 5 * cad
        return g, cad
    if kind == "no_state":
        return np.full(n, cad) * rng.geometric(0.9, n), np.nan
    raise ValueError(kind)


KINDS = ["steady", "jitter", "lossy", "silent", "reconfigured", "back_and_forth", "just_enough", "one_short",
         "no_state"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_sparse_verdict_is_the_whole_computations(seed):
    d = registry.build_all(["packet_loss"])[0]
    rng = np.random.default_rng(seed)
    parts, state = [], {}
    for k in range(90):
        kind = KINDS[k % len(KINDS)]
        cad = float(rng.choice([60.0, 300.0, 900.0]))
        name = f"m{k:03d}-{kind}"
        need = int(_need(d.config.cadence_share, d._gaps(np.array([cad]))[0]))
        g, learned = _gaps(rng, kind, cad, int(rng.integers(60, 800)), need)
        t = 1.7e9 + rng.uniform(0, 3600) + np.cumsum(g)
        parts.append(pd.DataFrame({"meter_id": name, "ts": pd.to_datetime(np.round(t, 3), unit="s", utc=True)}))
        if np.isfinite(learned):
            state[name] = {"cadence_s": learned, "gap_low": float(rng.choice([0.98, 0.6, 0.1]))}
    d.state_ = state
    frame = prepare(pd.concat(parts, ignore_index=True))
    seg = frame["_seg"].to_numpy().astype(np.int64)
    t, dt = frame["_t"].to_numpy(), frame["_dt"].to_numpy()
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    ends = np.append(starts[1:], len(t))
    names = [str(m) for m in frame["meter_id"].cat.categories]
    spans = [(np.full(len(names), -np.inf), np.full(len(names), np.inf))]
    for _ in range(6):   # spans somewhere in (or around) each meter's readings
        a = t[starts] + rng.uniform(-0.1, 1.0, len(names)) * (t[ends - 1] - t[starts])
        spans.append((a, a + rng.uniform(0, 4, len(names)) * 3600.0))
    calm_any = set()
    for lo, hi in spans:
        got = d.calm_meters(names, seg, starts, t, dt, lo, hi)
        want = _whole(d, names, seg, starts, t, dt, lo, hi)
        bad = [names[k] for k in np.flatnonzero(got != want)]
        assert not bad, f"verdicts differ for {bad}"
        calm_any |= {names[k].split("-", 1)[1] for k in np.flatnonzero(got)}
    # Both ways of counting were taken and both verdicts given, on meters of several kinds.
    assert {"steady", "lossy", "one_short"} <= calm_any
    assert not got.all()


def _every_reading(frame: pd.DataFrame, piece_s: float, seed: int, fine=None, tick_s=None, each=()):
    """The profiling day as one piece, then one piece per reading time of the fleet (a meter's
    readings now and then held back to the next piece). With ``fine`` (time windows, (lo, hi)
    Timestamps): one piece per reading time inside them (with ``tick_s``, the fleet's cadence:
    one piece per tick of it inside them, each meter's readings of the tick, centred on the
    tick, together; one piece per reading time inside the windows ``each``), pieces of
    ``piece_s`` elsewhere."""
    ts = frame["ts"].drop_duplicates().sort_values()
    first = frame["ts"].min() + pd.Timedelta(days=1)
    rng = np.random.default_rng(seed)
    meters = sorted(frame["meter_id"].astype(str).unique())
    yield frame[frame["ts"] <= first]
    ts = ts[ts > first]
    # Per reading time, the piece it goes with: its own inside ``each`` (and inside ``fine``
    # without ``tick_s``; everywhere without ``fine``), its tick's inside ``fine``, else its
    # piece_s bucket.
    def within(windows):
        out = np.zeros(len(ts), bool)
        for lo, hi in windows or ():
            out |= ((ts >= lo) & (ts <= hi)).to_numpy()
        return out
    own, ticked = within(each), within(fine)
    if fine is None:
        own[:] = True
    if tick_s is None:
        own, ticked = own | ticked, np.zeros(len(ts), bool)
    sec = ((ts - first) / pd.Timedelta(seconds=1)).to_numpy()
    kind = np.where(own, 2, np.where(ticked, 1, 0))
    val = np.where(own, np.arange(len(ts)),
                   np.floor(sec / tick_s + 0.5) if tick_s else 0) if len(ts) else np.zeros(0)
    val = np.where(kind == 0, sec // piece_s, val).astype(np.int64)
    new = np.r_[True, (kind[1:] != kind[:-1]) | (val[1:] != val[:-1]) | (kind[1:] == 2)]
    piece_of = np.cumsum(new) - 1
    row_piece = np.full(len(frame), -1)
    after = (frame["ts"] > first).to_numpy()
    row_piece[after] = piece_of[np.searchsorted(ts.array.asi8, frame["ts"][after].array.as_unit(ts.array.unit).asi8)]
    order = np.argsort(row_piece, kind="stable")
    bounds = np.searchsorted(row_piece[order], np.arange(piece_of[-1] + 2) if len(ts) else [0])
    held = None
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        p = frame.iloc[order[lo:hi]]
        if held is not None:
            p = pd.concat([held, p]).sort_values(["meter_id", "ts"], kind="stable")
            held = None
        if rng.random() < 0.1:   # one meter's reading comes with the next piece
            m = rng.choice(meters)
            late = p["meter_id"].astype(str) == m
            held, p = p[late], p[~late]
        yield p
    if held is not None:
        yield held


def test_cut_at_every_reading_as_judging_and_as_detect(monkeypatch):
    """A fleet with packet-loss faults and a background loss at 5 minutes, three meters going to
    15 minutes in the middle, fed one reading time at a time (where something happens: see below;
    half-hour pieces between) with late readings and restarted
    from the carry now and then (as a checkpoint loads it, before and after the reconfiguration):
    the calm stitcher gives at every piece what judging every meter gives, and in the end the
    whole history's alerts. (rst1) A restarted stitcher gives its meters' open alerts again: an
    unchanged version re-given after a restart is not a new version (``_compare``)."""
    from tests.detect.test_stitch_calm import _compare, _fleet
    frame, dets = _fleet("5min", 5)
    m = frame["meter_id"].astype(str).to_numpy()
    meters = sorted(set(m))
    after = (frame["ts"] > frame["ts"].min() + pd.Timedelta(hours=34)).to_numpy()
    slow = np.isin(m, meters[:3]) & after & (frame["ts"].dt.minute.to_numpy() % 15 != 0)
    frame = frame[~slow].reset_index(drop=True)
    # Count the verdicts that worked out cadences over a meter's readings (a reconfigured one).
    cls = type(dets[0])
    asked, worked = {"in": False}, []
    verdict, rows = cls.calm_meters, cls._cadence_rows

    def calm_meters(self, *a, **k):
        asked["in"] = True
        try:
            return verdict(self, *a, **k)
        finally:
            asked["in"] = False

    def cadence_rows(self, names, *a, **k):
        if asked["in"]:
            worked.extend(names)
        return rows(self, names, *a, **k)
    monkeypatch.setattr(cls, "calm_meters", calm_meters)
    monkeypatch.setattr(cls, "_cadence_rows", cadence_rows)
    # One piece per reading time where something happens (tt5: it was so over all 36 hours, 3,207
    # pieces, most of them calm minutes like those around them): the first 3.5 hours after the
    # profiling day (the restarts before the change), 33 to 37 h (the change at 34 h, the
    # restarts after it), and half an hour either side of every piece of half an hour in which a
    # stitcher judging every meter opens or closes an alert (it gives what judging gives wherever
    # the cuts are, so the reading that opens or closes one is in that piece; the opening comes
    # hours after the alert's start, when its readings are final); half-hour pieces between, each
    # compared as every piece is. There the calm verdict is asked at the reading that tips a
    # score over the threshold, and at the first readings after an alert closes.
    # (tt16: one piece per 5-minute tick in those windows, every meter's reading of the tick
    # together, was 1,500 pieces of one reading each: the stamps are jittered, so a reading time
    # is one meter's reading. The core's reach, what is final and exact, the tail's cut and the
    # calm verdict are each a meter's own (core._reach_rows per segment), so each meter still
    # gets a cut between every two of its readings there, judged or found calm, its reading that
    # tips a score or follows a close in a piece of its own; a meter absent from a piece stays
    # in every piece holding a late reading and in the 15-minute meters' ticks. One piece per
    # reading time is kept for the half hours of the restarts: there most of the restarted
    # meters are absent from the next pieces, still stale at the restart after.)
    t0 = frame["ts"].min()
    hour = pd.Timedelta(hours=1)
    fine = [(t0 + 24 * hour, t0 + 27.5 * hour), (t0 + 33 * hour, t0 + 37 * hour)]
    each = [(t0 + 24 * hour, t0 + 24.5 * hour), (t0 + 35 * hour, t0 + 35.25 * hour)]
    probe = Stitcher(dets, keep_scores=False, columns=read_channels(dets), calm=False)
    said, was_open = set(), set()
    for k, p in enumerate(_every_reading(frame, 1800.0, 5, [])):
        step = probe.feed(p)
        if k and ({a.id for a in step.alerts} - said or was_open - step.open_ids):
            fine.append((p["ts"].min() - hour / 2, p["ts"].max() + hour / 2))
        said |= {a.id for a in step.alerts}
        was_open = step.open_ids
    assert len(fine) > 2 + 4   # the seven alerts opened (some in the same piece)
    want = core.run(frame, dets).alerts
    pieces = list(_every_reading(frame, 1800.0, 5, fine, 300.0, each))

    def first_after(h: float) -> int:
        return next(k for k, p in enumerate(pieces) if k and p["ts"].max() > t0 + h * hour)
    # Restarts before the three meters' change (in the first hours after the profiling day, no
    # alert open yet: two in a row at one reading each, then at two ticks) and after it (one
    # piece per reading time: the first after 35 h, with an alert open, and the next).
    after = first_after(35)
    ticks = [first_after(25.25), first_after(26.5)]
    assert all(pieces[k]["ts"].nunique() <= 2 for k in (40, 41, after, after + 1))
    assert all(pieces[k].groupby("meter_id", observed=True).size().max() <= 2 for k in ticks)
    assert 41 < ticks[0] and pieces[ticks[1]]["ts"].max() < t0 + 34 * hour
    again = []
    calm = _compare(frame, dets, 1800.0, 5, restart_at={40, 41, *ticks, after, after + 1},
                    pieces=lambda *_: iter(pieces), said_again=again, want=want)
    assert len(pieces) < 0.5 * frame["ts"].nunique()
    # The restart after the change found an open alert and gave it again unchanged (not a new version).
    assert again, "no open alert at a restart: the restart after the change tests nothing of it"
    # (rtt16) ... and the meter of such an alert had no reading in that restart piece: a restarted
    # stitcher judges its stale meters without readings of their own too (``feed``'s ``active``);
    # a restart at a tick piece (every meter's reading in it) would not show that, and no other
    # calm test restarts with an open alert whose meter is absent (rtt16: judging only the stale
    # meters in the piece passes them all, fails here).
    restarted = set().union(*(set(pieces[k]["meter_id"].astype(str)) for k in (after, after + 1)))
    assert {a.meter_id for a in want if a.id in again} - restarted, "every re-given alert's meter was in its piece"
    assert calm.calm_fed > 0
    assert set(worked) & set(meters[:3]), "no reconfigured meter was asked about"
