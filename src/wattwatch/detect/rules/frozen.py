"""Frozen readings: the meter keeps reporting exactly the same values on every channel.

Real measurements are never identical for an hour (a voltage at 0.1 V resolution moves every
reading), so a run of identical readings is a stuck register or data logger: the data is stale
and its consumption pattern is wrong (``WARN_CONSUMPTION_ANOMALY``, evidence ``frozen_readings``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Explains, Finding, PostRule, quiet, rnd, state_channels
from wattwatch.detect.frame import meter_names, seg_bounds
from wattwatch.schema import CHANNEL_NAMES


@dataclass(frozen=True)
class FrozenReadingsConfig(DetectorConfig):
    min_channels: int = 3
    post: PostRule = PostRule(min_duration_s=3600.0, min_readings=6, merge_gap_s=1800.0)


class FrozenReadings(Detector):
    name = "frozen_readings"
    code = "WARN_CONSUMPTION_ANOMALY"
    config_cls = FrozenReadingsConfig
    reads_also = CHANNEL_NAMES  # every canonical channel a meter has
    lookback_n = 1
    # Stale data: its consumption, temperature and register say nothing about the meter now.
    explains = (Explains(("consumption", "temperature", "register"), pad_s=3600.0),)

    def _fit(self, df: pd.DataFrame) -> dict:
        starts, _ = seg_bounds(df["_seg"].to_numpy())
        has = {c: np.logical_or.reduceat(np.isfinite(df[c].to_numpy(float)), starts) for c in CHANNEL_NAMES}
        return {m: {"channels": [c for c in CHANNEL_NAMES if has[c][j]]} for j, m in enumerate(meter_names(df))}

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
        zero = np.zeros(n, np.int16)
        for c in cols:  # column by column: no (n x channels) copy
            x = df[c].to_numpy(float)
            if not mine[c].all():
                x = np.where(mine[c][seg], x, np.nan)
            a, b = x[1:], x[:-1]
            fa = np.isfinite(a)
            same &= (a == b) | (~fa & np.isnan(b))
            finite += fa
            zero += fa & (a == 0)
        enough = finite >= self.config.min_channels
        # A supply outage (all zero) repeats too, but it is an outage, not a stuck meter.
        zeros = zero >= finite - 2
        out[1:] = np.where(enough & ~zeros, same.astype(float), np.nan)
        out[1:][seg[1:] != seg[:-1]] = np.nan
        return out

    def describe_key(self, df, rows, scores, ctx=None) -> bytes | None:
        """What :meth:`describe` reads: the rows' times, power and energy register."""
        return hashlib.blake2b(b"".join(np.ascontiguousarray(df[c].to_numpy(float)[rows]).tobytes()
                                        for c in ("_t", "p_kw", "e_kwh")), digest_size=20).digest()

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        t = df["_t"].to_numpy()[rows]
        hours = (t.max() - t.min()) / 3600
        p = df["p_kw"].to_numpy(float)[rows]
        e = df["e_kwh"].to_numpy(float)[rows]
        with quiet():
            p_med, e_med = float(np.nanmedian(p)), float(np.nanmedian(e))
        return Finding("warning", f"every channel repeats the same values for {hours:.1f} h (p = {p_med:.3f} kW, "
                                  f"register stuck at {e_med:.3f} kWh): frozen readings",
                       {"kind": "frozen_readings", "hours": rnd(hours, 2), "p_kw": rnd(p_med), "e_kwh": rnd(e_med)},
                       "power-cycle or replace the meter's communication module; its data is stale")
