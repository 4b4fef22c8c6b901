"""rev29: edges of the calm path (live25) a stitcher with calm meters must carry as judging every
meter does: a meter silent for longer than packet_loss's window and then back (the gap's loss
lands on the readings around it), jittered stamps, a cadence that changes from 1 to 15 minutes,
readings exactly at a tail's last time and late ones, a detector's state changed (re-learned)
while a meter is calm, and a restart from the carry in the middle of calm steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import core

from tests.detect.test_stitch_calm import _compare, _fleet, _pieces


def _edit(frame: pd.DataFrame, dets, case: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    meters = sorted(frame["meter_id"].astype(str).unique())
    m = frame["meter_id"].astype(str).to_numpy()
    t0 = frame["ts"].min()
    if case == "gap":   # two meters silent 14 h (longer than the 12-h window) from hour 30 / 40:
        # meters that raise no alert otherwise (calm up to the gap), neither of the two that
        # change their cadence
        quiet = [q for q in meters[2:] if q not in {a.meter_id for a in core.run(frame, dets).alerts}]
        drop = ((m == quiet[0]) & (frame["ts"] > t0 + pd.Timedelta(hours=30)) & (frame["ts"] < t0 + pd.Timedelta(hours=44))) \
            | ((m == quiet[1]) & (frame["ts"] > t0 + pd.Timedelta(hours=40)) & (frame["ts"] < t0 + pd.Timedelta(hours=54)))
        return frame[~drop].reset_index(drop=True)
    if case == "jitter":   # every stamp moved up to 20 % of a minute, order kept
        out = frame.copy()
        out["ts"] = out["ts"] + pd.to_timedelta(rng.uniform(-12, 12, len(out)).round(3), unit="s")
        return out.sort_values(["meter_id", "ts"], kind="stable").drop_duplicates(["meter_id", "ts"]).reset_index(drop=True)
    if case == "cadence":   # two quiet meters go from 1 to 15 minutes in the middle of the stream
        after = frame["ts"] > t0 + pd.Timedelta(hours=34)
        slow = np.isin(m, meters[:2]) & after.to_numpy() & (frame["ts"].dt.minute.to_numpy() % 15 != 0)
        return frame[~slow].reset_index(drop=True)
    raise ValueError(case)


def _dup(frame: pd.DataFrame, piece_s: float, seed: int):
    """The pieces, now and then each meter's last reading of a piece sent again with the next."""
    rng = np.random.default_rng(seed)
    prev = None
    for p in _pieces(frame, piece_s, seed):
        if prev is not None and len(prev) and rng.random() < 0.3:
            last = prev.groupby(prev["meter_id"].astype(str), sort=False).tail(1)
            p = pd.concat([last, p]).sort_values(["meter_id", "ts"], kind="stable")
        prev = p
        yield p


def test_calm_edges_as_judging():
    """The edges on one 1-minute fleet (tt16: each was a run of its own, ~370 pieces to two
    stitchers each; on distinct meters they do not hide one another): two meters going to 15
    minutes, two other meters silent 14 h, every stamp jittered, streamed to a calm stitcher and
    one judging every meter in :func:`_dup`'s pieces: now and then a piece starts with a meter's
    last reading again (at exactly its tail's last time), and that meter is judged (calm needs
    readings after its tail), as judging every meter does. (tt9: the duplicates were a run of
    their own on the same fleet, ~370 pieces to two stitchers, without the whole-history check
    this one ends with.)"""
    frame, dets = _fleet("1min", 3)
    for case in ("cadence", "gap", "jitter"):
        frame = _edit(frame, dets, case, 3)
    calm = _compare(frame, dets, 300.0, 3, pieces=_dup)
    assert calm.calm_fed > 0


def test_calm_restarted_from_checkpoints():
    """Restarted from the carry (as a checkpoint loads it) at several pieces in the middle of calm
    steps: judged afresh once, then calm again; the same alerts as never stopping."""
    frame, dets = _fleet("5min", 5)
    calm = _compare(frame, dets, 1800.0, 5, restart_at={3, 10, 11, 25, 40})
    assert calm.calm_fed > 0


@pytest.mark.parametrize("dtype", ["float64", "Float64", "Int64", "int64", "float32", "object", "string", "bool",
                                   "category", "double[pyarrow]"])
def test_prepare_takes_channels_as_to_numeric_does(dtype):
    """live25 takes a float64 channel as it is: every other dtype (pandas' nullable ones, objects
    holding text, Arrow's doubles) still becomes what ``pd.to_numeric(errors="coerce")`` gives."""
    from wattwatch.detect.frame import prepare
    from wattwatch.schema import CHANNEL_NAMES

    raw = {"float64": [1.5, np.nan, 3.0], "Float64": [1.5, None, 3.0], "Int64": [1, None, 3], "int64": [1, 2, 3],
           "float32": [1.5, np.nan, 3.0], "object": ["1.5", "x", None], "string": ["1", None, "a"],
           "bool": [True, False, True], "category": [1.0, 2.0, np.nan], "double[pyarrow]": [1.5, None, 3.0]}[dtype]
    col = pd.Series(raw, dtype=dtype)
    ch = CHANNEL_NAMES[0]
    frame = pd.DataFrame({"meter_id": ["m"] * 3, "ts": pd.date_range("2025-01-01", periods=3, freq="1min", tz="UTC"),
                          ch: col})
    got = prepare(frame)[ch].to_numpy()
    want = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    assert got.dtype == np.float64 and np.array_equal(got, want, equal_nan=True)


def test_copies_re_sent_give_the_whole_historys_alerts():
    """q64: a stitcher given copies of readings (callers other than the stream, whose store merges
    them first) gives the whole history's alerts, as batch ingest's de-duplication would: every
    piece starts with each meter's last reading of the piece before it again, and some readings
    come twice in one piece, the first copy with only a voltage of 0 (batch keeps the most
    complete copy: no outage). Hourly meters with gaps of 6 lost readings, the data-gap rule off
    (the share alone): before q64 the copies piled up in the tail as readings held and took the
    lost readings from the share's cap (0 of 7 alerts; rev56)."""
    from wattwatch.detect.engine import EngineConfig, profile
    from wattwatch.detect.frame import prepare
    from wattwatch.detect import registry

    t0 = pd.Timestamp("2025-01-06", tz="UTC")
    parts = []
    gaps = {"A": [40], "B": [52, 76], "C": [100], "D": [30, 70, 110], "Q": []}
    for i, (m, hs) in enumerate(gaps.items()):
        n = 6 * 24
        keep = np.ones(n, bool)
        for h in hs:
            keep[h:h + 6] = False
        ts = t0 + pd.to_timedelta(np.arange(n) * 3600.0 + np.random.default_rng(i).uniform(-2, 2, n), unit="s")
        parts.append(pd.DataFrame({"meter_id": m, "ts": ts, "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})[keep])
    frame = pd.concat(parts, ignore_index=True)
    dets = registry.build_all(["supply_outage", "packet_loss"], {"packet_loss": {"gap_lost": 0}})
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    want = core.run(frame, dets).alerts
    assert sum(a.code == "ALRM_PKT_LOSS_CRIT" for a in want) == 7 and all(a.code == "ALRM_PKT_LOSS_CRIT" for a in want)

    def copies(frame, piece_s, seed):
        rng = np.random.default_rng(seed)
        t = frame["ts"]
        edges = [t.min() - pd.Timedelta(seconds=1), t.min() + pd.Timedelta(days=1)]
        while edges[-1] < t.max():
            edges.append(edges[-1] + pd.Timedelta(hours=int(rng.integers(2, 9))))
        prev = None
        for lo, hi in zip(edges[:-1], edges[1:]):
            p = frame[(t > lo) & (t <= hi)]
            twice = p[rng.random(len(p)) < 0.1].assign(i_l1_a=np.nan, p_kw=np.nan, v_l1_v=0.0)
            p = pd.concat([twice, p])   # the poorer copy first
            if prev is not None and len(prev):
                p = pd.concat([prev.groupby(prev["meter_id"].astype(str), sort=False).tail(1), p])
            p = p.sort_values(["meter_id", "ts"], kind="stable")
            prev = p
            yield p

    _compare(frame, dets, 0.0, 5, pieces=copies, want=want)
