"""Invalid channel: a channel the meter reports goes missing for hours while its other channels
keep reporting — an energy register stuck at an impossible value (-5 kWh on every reading), a
temperature probe reading out of range, a current channel the logger stopped sending.

Ingest stores a value it cannot use (unreadable, infinite, outside the channel's physical range)
as missing and keeps the reading's other values (README, *Bad values*), so such a channel reaches
the detectors as a stretch of NaN in one column of readings that are otherwise there: no packet is
lost and no rule that reads the channel can judge it. This rule says it (``SENSOR_FAULT``,
evidence ``kind = "channel_invalid"``, the channel and how long).

A channel counts as the meter's when it was given in at least ``min_coverage`` of its profile's
readings: a channel a meter never reports (not in its export, a phase it does not have) or reports
only now and then (a register read once an hour on a 5-minute meter) is never missed. A stretch
must last ``post.min_duration_s`` (2 h) over ``post.min_readings`` readings, the channel missing in
consecutive readings: single missing values (a lost field in one packet) are not a fault. Runs merge
only across a reading or two (``merge_gap_s = 0``: 2.5 cadences), so holes scattered over an hour
(a flaky poll, lost fields on a 1-second meter) never chain into hours. The power factor, the
current THD and the reactive and apparent power are undefined or zero without load (meters leave
them blank then), so their absence is judged only while the meter shows load; without supply (its
voltages under ``no_supply_fraction`` of its profile's, an outage) no absence is judged. A reading
that gives no value at all cannot be judged (the meter, not one channel, is silent there).

The store keeps no trace of which values were dropped at ingest, so a value stuck implausible from
the meter's very first reading looks like a channel it never had (the rejects file says it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, Scored, quiet, rnd, state_channels
from wattwatch.detect.frame import meter_names, seg_bounds
from wattwatch.detect.rules._common import max_current, max_voltage
from wattwatch.schema import CHANNEL_NAMES

# Channels whose value does not exist (or is a trivial zero) without load (a power factor of no
# power, the distortion of no current, reactive and apparent power of nothing): a meter may
# rightly leave them blank then.
LOAD_DEFINED = ("pf", "thd_i_pct", "q_kvar", "s_kva")
VOLTAGES = ("v_l1_v", "v_l2_v", "v_l3_v")


@dataclass(frozen=True)
class ChannelInvalidConfig(DetectorConfig):
    min_coverage: float = 0.5      # share of its profile's readings a channel was given in
    load_kw: float = 0.01          # |p| (or s) above this, or a phase current above load_a: load
    load_a: float = 0.1
    no_supply_fraction: float = 0.1  # voltages under this share of the profile's: no supply
    # hold: unjudged readings (an outage, no load) between two stretches of the channel gone keep
    # them one alert; a reading that gives the channel ends it.
    post: PostRule = PostRule(min_duration_s=7200.0, min_readings=4, merge_gap_s=0.0, hold=0.5)


class ChannelInvalid(Detector):
    name = "channel_invalid"
    code = "SENSOR_FAULT"
    config_cls = ChannelInvalidConfig
    reads_also = CHANNEL_NAMES   # every canonical channel a meter has
    # A channel counts as missing at a reading when it is missing at the meter's reading before or
    # after too: independent lost fields of one packet (a different channel each time) never chain.
    lookback_n = 1
    lookahead_n = 1

    def _fit(self, df: pd.DataFrame) -> dict:
        starts, ends = seg_bounds(df["_seg"].to_numpy())
        n = np.maximum(ends - starts, 1)
        given = {c: np.add.reduceat(np.isfinite(df[c].to_numpy(float)).astype(np.int64), starts) / n
                 for c in CHANNEL_NAMES}
        cov = self.config.min_coverage
        with quiet():
            vmax = pd.Series(max_voltage(df)).groupby(df["_seg"].to_numpy()).median()
        vnom = vmax.reindex(np.arange(len(starts))).to_numpy(float) if len(starts) else np.zeros(0)
        return {m: {"channels": [c for c in CHANNEL_NAMES if given[c][j] >= cov],
                    "v_nominal": float(vnom[j]) if np.isfinite(vnom[j]) and vnom[j] > 0 else None}
                for j, m in enumerate(meter_names(df))}

    def _load(self, df: pd.DataFrame) -> np.ndarray:
        """Per reading: the meter shows load (power, apparent power or a phase current)."""
        cfg = self.config
        with quiet():
            p = np.abs(df["p_kw"].to_numpy(float))
            s = df["s_kva"].to_numpy(float)
            return (p > cfg.load_kw) | (s > cfg.load_kw) | (max_current(df) > cfg.load_a)

    def _no_supply(self, df: pd.DataFrame, names) -> np.ndarray:
        """Per reading: the meter gives a voltage and it is under ``no_supply_fraction`` of its
        profile's (median) voltage: an outage, where a meter on its reserve may blank channels."""
        vnom = np.array([(self.state_.get(m, {}) or {}).get("v_nominal") or np.nan for m in names], float)
        with quiet():
            return max_voltage(df) < self.config.no_supply_fraction * vnom[df["_seg"].to_numpy()]

    def _score(self, df: pd.DataFrame) -> Scored:
        seg = df["_seg"].to_numpy()
        names = meter_names(df)
        mine = state_channels(self.state_, names, CHANNEL_NAMES)
        missing = np.zeros(len(df), np.int64)   # bit k: channel CHANNEL_NAMES[k] is missing
        first = np.ones(len(df), bool)          # the meter's first reading of the frame
        first[1:] = seg[1:] != seg[:-1]
        last = np.ones(len(df), bool)
        last[:-1] = first[1:]
        unknown = np.zeros(len(df), bool)       # only load-defined channels missing, without load
        given = np.zeros(len(df), bool)
        load = None
        dark = self._no_supply(df, names)
        for k, c in enumerate(CHANNEL_NAMES):   # column by column: no (n x channels) copy
            fin = np.isfinite(df[c].to_numpy(float))
            given |= fin
            if not mine[c].any():
                continue
            gone = ~fin & mine[c][seg]
            if c in LOAD_DEFINED:
                load = self._load(df) if load is None else load
                unknown |= gone & ~load
                gone &= load
            unknown |= gone & dark
            gone &= ~dark
            before = np.zeros(len(df), bool)
            before[1:] = gone[:-1]
            after = np.zeros(len(df), bool)
            after[:-1] = gone[1:]
            gone &= (before & ~first) | (after & ~last)
            missing |= gone.astype(np.int64) << k
        score = np.where(missing > 0, 1.0, np.where(unknown, np.nan, 0.0))
        return Scored(np.where(given, score, np.nan), missing)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        bits = np.asarray(ctx)[rows]
        t = df["_t"].to_numpy()[rows]
        hours = float(t[-1] - t[0]) / 3600 if len(t) else 0.0
        span = np.arange(rows[0], rows[-1] + 1) if len(rows) else rows   # the span's readings (one meter)
        counts = {c: int(((bits >> k) & 1).sum()) for k, c in enumerate(CHANNEL_NAMES)}
        hit = [c for c, n in counts.items() if n]
        worst = max(hit, key=lambda c: counts[c]) if hit else CHANNEL_NAMES[0]
        # Every channel missing in at least half the readings the worst one is missing in.
        chans = [c for c in hit if counts[c] >= 0.5 * counts[worst]]
        # Said of the span: every reading between the first and the last anomalous one.
        gone = {c: int((~np.isfinite(df[c].to_numpy(float)[span])).sum()) for c in chans}
        others = sorted({c for k, c in enumerate(CHANNEL_NAMES) if c not in chans
                         and np.isfinite(df[c].to_numpy(float)[rows]).any()})
        ev = {"kind": "channel_invalid", "channel": worst, "channels": chans, "hours": rnd(hours, 2),
              "readings": int(len(span)), "readings_missing": gone,
              "reporting": others}
        what = ", ".join(chans)
        return Finding("warning", f"{what} given invalid or missing in {gone[worst]} of {len(span)} readings over "
                                  f"{hours:.1f} h while the meter's other channels report: a stuck or faulty "
                                  f"register or sensor (values out of range are stored missing)", ev,
                       "look at what the meter sends on this channel (ingest's rejects file names the dropped "
                       "values); check the sensor, the register or the export's mapping")
