"""Frozen readings: the meter keeps reporting exactly the same values on every channel.

Real measurements are never identical for an hour (a voltage at 0.1 V resolution moves every
reading), so a run of identical readings is a stuck register or data logger: the data is stale
and its consumption pattern is wrong (``WARN_CONSUMPTION_ANOMALY``, evidence ``frozen_readings``).

A value missing on either side of a pair says nothing either way: the channels present on both decide
(at least ``min_channels`` of them), so a lone NaN in a channel does not split a frozen run.

A supply outage repeats too (voltage, current and power 0, the register where it stopped): readings all
zero but for two channels are left to the outage rule, with one exception (issue 14, fz2). A meter whose
temperature moved between nearly all consecutive readings while profiled (``temp_moves``, learned;
``_common.temp_moving``: a learned cadence of 4 min or coarser, ``at_cadence``) keeps a moving temperature through a real
outage, so zeros repeating bit for bit *with the temperature* ``STALE_RUN_N`` times in a row are a logger
frozen on an outage's reading (fleet 1319 M-00112 sent the outage's last reading for 45 h while the load
ran on: the register had jumped by the hidden energy when data returned); those score 1 from the
``STALE_RUN_N``-th repeat on (``lookback_n``: that many readings back, nothing ahead), and the alert starts at
the first of those repeats (``Finding.start_t``, the rule's own window; ``anomalous_from`` says when it was known;
ot). A temperature
missing on one side of such a pair neither counts nor breaks the run (one such reading in the last
``STALE_RUN_N`` is let through). ``supply_outage`` leaves the repeats out of the outage (``outage.py``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import (Detector, DetectorConfig, Explains, Finding, PostRule, Reach, Scored, quiet, rnd,
                                   state_channels, state_nums)
from wattwatch.detect.frame import meter_names, seg_bounds
from wattwatch.detect.rules._common import (STALE_RUN_N, TEMP_MOVING_SHARE, stale_pairs, temp_moves, temp_moving,
                                            unchanged)
from wattwatch.schema import CHANNEL_NAMES


@dataclass(frozen=True)
class FrozenReadingsConfig(DetectorConfig):
    min_channels: int = 3
    # All-zero readings are judged only on meters whose temperature moved between at least this share
    # of consecutive profiled readings (``temp_moves``), and only with the temperature repeating too.
    temp_moving_share: float = TEMP_MOVING_SHARE
    post: PostRule = PostRule(min_duration_s=3600.0, min_readings=6, merge_gap_s=1800.0)


class FrozenReadings(Detector):
    name = "frozen_readings"
    code = "WARN_CONSUMPTION_ANOMALY"
    config_cls = FrozenReadingsConfig
    reads_also = CHANNEL_NAMES  # every canonical channel a meter has
    # The pair before (1); on a meter whose temperature moves, the repeats of an outage's reading
    # (STALE_RUN_N): the most, per meter in :meth:`reach`.
    lookback_n = STALE_RUN_N
    state_version = 2  # 2: + temp_moves (a version-1 state would leave a logger frozen on an outage to the outage)
    # Stale data: its consumption, temperature and register say nothing about the meter now; nor does
    # the level of a current it repeats (issue 14, fx: a logger frozen on a motor start's 387.7 A on L1
    # was 31.5 h of phase imbalance and neutral current). Reading by reading (a repeat is no
    # measurement), no horizon, and ``current_level`` only, not ``current``: a repeat's current
    # does not change, so it cannot make loose_ct's erratic current, and a blocker's reach would
    # take loose_ct out of the fast tier at hourly cadence (11 -> 16 h back).
    explains = (Explains(("consumption", "temperature", "register"), pad_s=3600.0),
                Explains(("current_level",), span="reading"))

    def _fit(self, df: pd.DataFrame) -> dict:
        starts, _ = seg_bounds(df["_seg"].to_numpy())
        has = {c: np.logical_or.reduceat(np.isfinite(df[c].to_numpy(float)), starts) for c in CHANNEL_NAMES}
        moves = temp_moves(df, len(starts))
        return {m: {"channels": [c for c in CHANNEL_NAMES if has[c][j]], "temp_moves": float(moves[j])}
                for j, m in enumerate(meter_names(df))}

    def reach(self, meters) -> Reach:
        """One reading back, ``STALE_RUN_N`` on a meter whose temperature moves (the repeats that
        tell a logger frozen on an outage's reading); nothing ahead."""
        r = super().reach(meters)
        st = getattr(self, "state_", {})
        moving = temp_moving(state_nums(st, meters, "temp_moves"), state_nums(st, meters, "cadence_s"),
                             self.config.temp_moving_share)
        return Reach(r.back_s, np.where(moving, STALE_RUN_N, 1).astype(np.int64), r.ahead_s, r.ahead_n)

    def _score(self, df: pd.DataFrame) -> np.ndarray:
        seg = df["_seg"].to_numpy()
        names = meter_names(df)
        out = np.full(len(df), np.nan)
        if len(df) < 2:
            return out
        # Channels a meter reported while it was learned (a channel it never had is not "the same").
        mine = state_channels(self.state_, names, CHANNEL_NAMES)
        cols = [c for c in CHANNEL_NAMES if mine[c].any()]
        if len(cols) < self.config.min_channels:
            return out
        n = len(df) - 1
        same = np.ones(n, bool)
        finite = np.zeros(n, np.int16)
        both = np.zeros(n, np.int16)
        zero = np.zeros(n, np.int16)
        for c in cols:  # column by column: no (n x channels) copy
            x = df[c].to_numpy(float)
            if not mine[c].all():
                x = np.where(mine[c][seg], x, np.nan)
            a, b = x[1:], x[:-1]
            fa, fb = np.isfinite(a), np.isfinite(b)
            # A value missing on either side says nothing either way (a lone NaN is no sign that the
            # logger moved): the channels present on both decide (_common.unchanged, the outage's test).
            same &= unchanged(x, fa, fb)
            finite += fa
            both += fa & fb
            zero += fa & (a == 0)
        enough = both >= self.config.min_channels
        # A supply outage (all zero) repeats too, but it is an outage, not a stuck meter ...
        zeros = zero >= finite - 2
        out[1:] = np.where(enough & ~zeros, same.astype(float), np.nan)
        # ... unless the meter's temperature moves and repeated with the zeros STALE_RUN_N times in a row.
        stale_rows = None
        if "temp_c" in cols and zeros.any():
            cad = self._param(df, "cadence_s")
            moving = temp_moving(self._param(df, "temp_moves"), cad, self.config.temp_moving_share)
            # The pair test supply_outage leaves a repeat unjudged by (_common.stale_pairs: one meter,
            # each pair at about the learned cadence, a moving temperature repeating or missing on one
            # side; a meter profiled at 15 min and read every minute later repeats a slowly cooling
            # temperature for minutes in a real outage, rfz2)
            go = zeros & same & enough
            pair, t_both = stale_pairs(df, cad, moving, go)
            go &= pair
            if go.any():
                k = STALE_RUN_N
                run = np.concatenate([[0], np.cumsum(go)])
                cnt = np.concatenate([[0], np.cumsum(go & t_both)])
                hi = np.arange(1, n + 1)
                lo = np.maximum(hi - k, 0)
                # (one reading without a temperature in the window leaves two of its pairs uncounted)
                stale = go & (hi >= k) & (run[hi] - run[lo] == k) & (cnt[hi] - cnt[lo] >= k - 2)
                out[1:][stale] = 1.0
                stale_rows = np.concatenate([[False], stale])
        out[1:][seg[1:] != seg[:-1]] = np.nan
        # (ctx: the readings judged as a freeze's STALE_RUN_N-th repeat or later, for describe's start)
        return Scored(out, stale_rows)

    @staticmethod
    def _start(df, rows, ctx) -> float | None:
        """Where an alert whose first reading is judged stale zeros began: at the first of the
        ``STALE_RUN_N`` repeats that reading closes (they all repeat the outage's reading; issue 14,
        ot: a frozen logger's readings are the frozen alert's from its first repeat, once it is known
        to be frozen). A function of the readings up to that first one (its own reach back): a
        stream's alert keeps its start, and the evidence says from which reading it was known
        (``anomalous_from``). None: the alert starts at its first reading (a freeze on any other reading
        is judged from its first repeat on)."""
        if ctx is None or not ctx[rows[0]]:
            return None
        return float(df["_t"].to_numpy()[rows[0] - (STALE_RUN_N - 1)])

    def describe_key(self, df, rows, scores, ctx=None) -> bytes | None:
        """What :meth:`describe` reads: the rows' times, power and energy register, and its start."""
        return hashlib.blake2b(b"".join([*(np.ascontiguousarray(df[c].to_numpy(float)[rows]).tobytes()
                                           for c in ("_t", "p_kw", "e_kwh")),
                                         repr(self._start(df, rows, ctx)).encode()]), digest_size=20).digest()

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        t = df["_t"].to_numpy()[rows]
        start = self._start(df, rows, ctx)
        hours = (t.max() - (t.min() if start is None else start)) / 3600
        p = df["p_kw"].to_numpy(float)[rows]
        e = df["e_kwh"].to_numpy(float)[rows]
        with quiet():
            p_med, e_med = float(np.nanmedian(p)), float(np.nanmedian(e))
        return Finding("warning", f"every channel repeats the same values for {hours:.1f} h (p = {p_med:.3f} kW, "
                                  f"register stuck at {e_med:.3f} kWh): frozen readings",
                       {"kind": "frozen_readings", "hours": rnd(hours, 2), "p_kw": rnd(p_med), "e_kwh": rnd(e_med)},
                       "power-cycle or replace the meter's communication module; its data is stale", start_t=start)
