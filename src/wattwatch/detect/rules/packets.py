"""Packet loss: more than 5 % of the expected readings missing in a window (default 6 h).

The cadence is inferred per meter (median gap), so 1-minute and 15-minute meters are judged on
their own terms, and per stretch where a meter was reconfigured after its state was learned (see
below); timestamp jitter does not matter (a gap of g cadences is round(g) - 1 lost
readings, and a window never counts more lost than it expects beyond the readings it holds, so
stamps jittering by a large part of the cadence are not loss) and duplicates are merged before
detection. The window ends at the reading (``lead_s``, below); nothing before the meter's first
reading is lost, and the window still expects its whole length there (rpkt: truncated to its first
20 readings, 4 lost in a meter's first minutes were an alert the same loss later is not), so the
start of the data is neither loss nor a window too short to judge. The alert's message says where
the loss began (``loss_since``: the first gap in the window behind its first reading).

Ending at the reading (pkt, issue 16): a reading's share is the window behind it, so its score is
final as soon as the gaps that say its cadence are in (below: 24 min at 1 minute, 2 h at 5 and 15
minutes, 6 h at hourly), and a live watcher writes the alert as soon as the readings behind it are
evidence. With the window centred (before pkt) a reading waited for the half window ahead of it
and for lost readings up to ``window_s`` ahead (the first written alert 7.5 h after the loss began
at 1 minute, 9.3 h at 5, 13-16.5 h at 15, 50 h at hourly; live-log lat1). What it costs: an alert
opens at the first reading whose window behind it is evidence, not at the first lost reading (at
40 % loss ~50 min later at 1 minute, ~1 h at 5, ~3 h at 15; light loss later still, as its evidence
takes), and the window behind a reading reads a whole window back (the stream's tail). ``lead_s``
lets a window reach that far past its reading (at most half of it; a large value: centred, as
before pkt). A reading is in the loss where it borders a gap or lies between lost readings,
``window_s`` before it and ``min(window_s, lead_s)`` after it (with ``lead_s`` 0: the gap after it
alone); a pause in the loss up to ``merge_gap_s`` (12 h: the 6 h either side the centred rule read)
does not split the alert. No ``min_duration_s``: the evidence is ``min_lost`` readings lost, more
than the limit's share of a window; where the window that first says it ends at a single lost
reading (five lost an hour apart at 5 minutes, SPEC's "more than 5 %"), its two edges are the alert
(10 minutes, the window's share in its message), which later losses extend.

A share is only evidence when it counts enough readings: 5 % of a 6-hour window of hourly
readings is one reading, and one or two random losses (a meter loses a reading every few days)
are not a failing link. The window is therefore at least long enough that the limit stands for
``min_lost`` readings (``min_lost / limit`` expected readings: 80 with the defaults, i.e. 6.7 h at
5 minutes, 20 h at 15 minutes, 80 h at hourly cadence), and a window alerts only when it has lost
at least ``min_lost`` readings and more than the limit's share of the expected ones, counted whole
(4 of 80 is 5 %, not more, whatever the jitter). With a background loss of 0.2 % per reading, four
losses among 80 readings happen by chance about once in 45,000 windows — a few times a month in a
fleet of a hundred 5-minute meters, each reading centring a window — five about once in 1.5 million.

The window says whether readings are being lost; where, is said by the losses themselves: a
reading is in the loss when it borders a gap, or lies between lost readings no further than
``window_s`` either side, and more than one reading was lost that near it (a lone lost reading
near a loss is not part of it), so an alert spans the lossy stretch, not half a window (40 hours
at hourly cadence) either side of it. A gap has two readings at its edges: two are enough for an
alert (``min_readings``), the duration being the gap's; a gap of up to a day does not split the
stretch (``max_bridge_s``: there are no readings in it to say otherwise), nor does a pause in the
loss shorter than ``merge_gap_s`` (12 h).

``min_lost`` guards against scattered single losses; a meter silent for hours is not one. A single
gap that lost ``gap_lost`` (3) readings in a row and lasts ``gap_s`` (2 h) or more in whole
cadences (to within 15 % of one: the learned cadence is a median of jittered gaps, 1,799.98 s at 30
minutes as often as 1,800.02; rev56), from the reading before it to the one after, is a data gap
whatever share of the window it is (its two edges alert, scored lost / ``gap_lost``). At hourly cadence that is four hours
without a reading (3 lost: 3.75 % of the 80-h window and under ``min_lost``, unreported before
q56), at 30 minutes two; at 1 to 15 minutes a 2-h silence already loses more than the window
allows (8 of 80 readings at 15 minutes). The plain labels call a gap no reading for max(4
cadences, 1 h) (``scripts/label_real.py``); the hour is not taken here because a clock that jumps
to daylight time makes a gap of an hour and a cadence where nothing is lost (PVDAQ system 50 each
March: 4 "lost" readings at 15 minutes, rejected by the labellers), and 2 h is more than any clock
change. Two readings lost in a row at hourly cadence are not a data gap: a healthy real hospital
meter (BDG2 Mouse_health_Modesto) shows such three-hour holes twice in two years (q56).

At hourly cadence the 80-h window also dilutes a loss that is plain in the readings: two pairs of
lost hours six hours apart are 4 h of data gone from half a day, yet 4 of the window's 80 readings,
5 % exactly (seeds 181, 233, 239 at 60 minutes, q66). So the share is also taken over a short window,
``min_expected`` readings long and at least ``window_s`` (20 h at hourly cadence, 10 h at 30 minutes),
and ``min_lost`` readings lost in it, more than the limit's share of it, are a loss whatever the long
window says, on stretches where ``min_lost`` readings are ``gap_s`` of data or more (30 minutes and
coarser; whole cadences to within ``GAP_TOL``): an hourly reading is an hour's evidence. By chance
(the fleet's background loss of 0.2 % a reading) four of twenty readings are lost about once in 13
million windows, rarer than the five of eighty the long window alerts on; a real hourly extract
(BDG2, ten buildings, two years) loses no four readings within a day outside its labelled gaps
(q56's count). At 1 to 15 minutes four readings are minutes of data, and ``gap_s`` of them in the
short window are already more than the limit of the long one, which holds it: the share decides
there as before. The readings in the loss within half a short window of one whose window holds such
a loss score at least the threshold; where that loss is scattered (no data gap in the window), every
reading from its first gap to its last does (each of the ``min_lost`` lost readings is its evidence,
so the alert spans them all: at 2 h cadence four single losses 10 h apart were otherwise alerts on
the readings between them with none missing, rev66). The short window is no longer than half the
long one (and the loss it spans one reading beyond it at most), so a reading's score still
depends on readings within the reach, and :meth:`PacketLoss.calm_meters`' bound holds.

A long data gap (a logger that stops for a day or for months) is the same finding: the reading
before the gap borders it as the reading after does, however long it is, and two readings with
nothing between them are never split by the bridge (``PostRule.bridge_gaps``), so the alert spans
the gap, from the last reading before it to the first after; where one gap makes up most of the
span the evidence says so (``kind = "data_gap"``, ``gap_start``, ``gap_end``, ``gap_hours``).

A meter that loses its supply cannot report: its last reading shows the voltage gone and then
nothing comes until the supply is back. Such a silence is the supply outage's (its alert spans it,
``silent_after_supply_loss_h``), not lost packets: the gap after a reading that shows the voltage
lost on every phase (the outage's own test, :func:`~wattwatch.detect.rules._common.supply_lost`,
at ``supply_lost_fraction`` of the nominal voltage learned with the state; 0: off) loses no
reading here, whatever reading ends it, when it is the silence the outage's span covers (longer than
1.5 learned cadences, :func:`~wattwatch.detect.rules._common.after_supply_loss`); a shorter one is lost packets. A meter heard with supply and then silent lost packets
(q64). Only a nominal voltage learned counts: a meter with no reading above 50 V in its normal
period (a voltage field filled with 0 under a load, an odd scale) or a state stored before q64
has none, and its gaps are judged as before (rev64).

A meter reconfigured after its state was learned (AMI meters go from 1 to 5 or 15 minutes, from 5
or 15 to 1 or 5, from 60 to 15) is judged at the cadence its gaps show, not the learned one: at the
learned 1 minute a meter now reporting every 5 read as 80 % of its readings lost for as long as it
reported, and at the learned 5 minutes one now reporting every minute had a 3-hour gap unseen. The
``cadence_gaps`` gaps (24; fewer where they would span more than ``cadence_span_s``, 2 h, at the
learned cadence: 8 at 15 minutes, 6 at hourly) that end at a reading, and those that begin at it,
each say a cadence: where
at least ``cadence_share`` of them lie within 15 % of their median and that median is not the
learned cadence's (outside 0.75-1.5 of it), the stretch runs at the median; else at the learned
cadence. Random loss cannot make such a cluster: a reading lost with probability p leaves gaps of k
cadences with probability (1 - p) p^(k - 1), at most 1/4 for any k >= 2 whatever p (and at most 1/4
for any two neighbouring k >= 4, which the 15 % may join), so a meter losing even 80 % of its
readings is judged at its own cadence, while a reconfiguration puts nearly every gap at the new
value. Where the gaps centred on a reading (both sides together) say a new cadence, its gap is
counted at it (one side alone can miss a cluster the new stretch's own loss thins); else a gap
whose two sides say different cadences (the reconfiguration itself) is counted at the one that
loses fewer readings: readings the meter was not asked for are not lost. The window
and the readings it expects follow the reading's cadence, the window no longer than the reach the
learned cadence declares (``lookback_s``: 6 h either side from 1 to 5 minutes, so a 1-minute meter
now at 15 minutes is judged over 12 h, 48 readings, not 20 h). A meter that keeps its cadence is
judged exactly as before; what is not followed: a new stretch whose stamps jitter by more than
15 % (judged at the learned cadence, as before), a meter that loses exactly every other reading for
hours (read as a meter at twice its cadence). The cadence of a stretch is
:func:`wattwatch.detect.cadence.stretch_cadence`, which firmware_drift and neutral_tamper follow too (cad43).
The reach in readings is those gaps either side, so scores near the newest reading are final that
many readings later (24 min at 1 minute, 2 h at 5 and 15 minutes, 6 h at hourly cadence). The
short window (30 minutes and coarser) stays centred: a reading waits for it (20 h at hourly, 10 h
at 30 minutes). Back, a reading reads its whole window: at 15 minutes 20 h, beyond the stream's
fast tier (12 h), so packet_loss is judged there every hour of data (the slow tier), at 1 and 5
minutes every step."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, Scored, _num, quiet, rnd, state_nums
from wattwatch.detect.cadence import (CADENCE_GAPS, CADENCE_SHARE, CADENCE_SPAN_S, gaps_per_side, lost_at, need,
                                      off_cadence, stretch_cadence)
from wattwatch.detect.frame import (cache, meter_names, seg_bounds, seg_quantile, times_cache, window_count,
                                    window_sum)
from wattwatch.detect.rules._common import SUPPLY_LOST_FRACTION, after_supply_loss, nominal_voltage, supply_lost
from wattwatch.schema import VOLTAGE_COLUMNS


# A long gap's length in whole cadences is compared with ``gap_s`` to within this share of a cadence.
GAP_TOL = 0.15


@dataclass(frozen=True)
class PacketLossConfig(DetectorConfig):
    """``limit``: share of expected readings lost that alerts; ``window_s``: the window the share is
    taken over (longer at coarse cadence, see the module docstring); ``min_expected`` and
    ``min_lost``: readings a window must expect / have lost to count (and the short window's
    readings and the readings lost in it that are a loss whatever the long window's share, where
    ``min_lost`` readings are ``gap_s`` of data: module docstring); ``gap_lost`` and ``gap_s``: a
    single gap that lost at least ``gap_lost`` readings in a row and lasts at least ``gap_s`` is a
    data gap whatever the window's share (0: off; module docstring); ``data_gap_share``: an alert
    whose longest single gap is at least this share of its span (and lost ``gap_lost`` readings
    in a row or more) is reported as a data gap
    (evidence ``kind = "data_gap"``), else as packet loss (``kind = "packet_loss"``); ``cadence_gaps``
    (at most, and no more than span ``cadence_span_s`` at the learned cadence, at least 6) and
    ``cadence_share``: how many gaps either side of a reading say the cadence its stretch runs at,
    and what share of them must agree on one other than the learned (module docstring);
    ``supply_lost_fraction``: the gap after a reading whose voltage is under this share of the
    nominal on every phase is the supply outage's silence and loses nothing (0: off; module
    docstring); ``lead_s``: how far past a reading its windows reach (at most half of each; 0: they
    end at the reading, so a live alert is written as soon as the readings behind it are evidence;
    a large value: centred windows, the rule before pkt; module docstring)."""

    limit: float = 0.05
    window_s: float = 6 * 3600.0
    min_expected: int = 20
    min_lost: int = 4
    gap_lost: int = 3
    gap_s: float = 7200.0
    # The fit learns the cadence and its jitter only; a state stored before ``gap_lost`` is the same state.
    supply_lost_fraction: float = SUPPLY_LOST_FRACTION
    scoring_only: ClassVar[tuple[str, ...]] = ("gap_lost", "gap_s", "supply_lost_fraction")
    data_gap_share: float = 0.5
    cadence_gaps: int = CADENCE_GAPS
    cadence_span_s: float = CADENCE_SPAN_S
    cadence_share: float = CADENCE_SHARE
    lead_s: float = 0.0
    post: PostRule = PostRule(min_duration_s=0.0, min_readings=2, merge_gap_s=12 * 3600.0, max_bridge_s=86400.0,
                              bridge_gaps=True)


class PacketLoss(Detector):
    name = "packet_loss"
    code = "ALRM_PKT_LOSS_CRIT"
    config_cls = PacketLossConfig
    reads_also = VOLTAGE_COLUMNS  # times, and the voltages: a silence after the supply was lost is not loss

    lookback_n = 1   # a reading's loss is the gap before it; more to say its cadence (see reach)
    lookahead_n = 1  # ... and a reading borders the gap after it, however long

    def _gaps(self, cadence_s: np.ndarray) -> np.ndarray:
        """Gaps per side that say a reading's cadence, per meter: ``cadence_gaps``, fewer where
        they would span more than ``cadence_span_s`` at the learned cadence (at least
        ``MIN_GAPS``): 24 at 1 and 5 minutes, 8 at 15 minutes (7 just above), 6 at hourly."""
        return gaps_per_side(cadence_s, self.config.cadence_gaps, self.config.cadence_span_s)

    def reach(self, meters):
        # A reading's loss is counted at the cadence the gaps either side of it say: that many
        # readings beyond the window either way.
        r = super().reach(meters)
        cad = state_nums(self.state_, meters, "cadence_s")
        n = np.maximum(self._gaps(cad), 1)
        return type(r)(r.back_s, np.maximum(r.back_n, n), r.ahead_s, np.maximum(r.ahead_n, n))

    def _window(self, cadence_s: np.ndarray) -> np.ndarray:
        """Window per meter: the configured span, long enough to expect ``min_expected`` readings
        and for the limit to stand for ``min_lost`` of them."""
        c = self.config
        with quiet():
            least = max(c.min_expected, c.min_lost / c.limit if c.limit > 0 else 0.0)
            return np.fmax(c.window_s, least * cadence_s)

    def _lead(self, w: np.ndarray) -> np.ndarray:
        """How far past a reading a window of length ``w`` reaches: ``lead_s``, at most half of it."""
        with quiet():
            return np.fmin(np.asarray(w, float) / 2, self.config.lead_s)

    def lookback_s(self, cadence_s):
        # The share's window behind a reading (all of it when it ends at the reading), and where a
        # reading is in the loss (lost readings window_s before it).
        w = self._window(cadence_s)
        return np.fmax(w - self._lead(w), self.config.window_s)

    def lookahead_s(self, cadence_s):
        # The share's window past a reading (lead_s at most), where a reading is in the loss (lost
        # readings min(window_s, lead_s) after it; centred windows, lead_s large: half the window,
        # or window_s, as before pkt); and where the short window can hold min_expected readings at
        # a cadence where min_lost of them are gap_s of data (_dense, centred: a reading in the loss
        # within half a short window of a dense one, whose window reaches half a window further):
        # the learned cadence's short window (30 minutes and coarser; at 1 to 15 minutes it cannot).
        c = self.config
        w = self._window(cadence_s)
        w2 = self._dense_window(cadence_s)
        with quiet():
            own = np.fmin(np.fmax(w / 2, c.window_s), 2 * c.lead_s)
            can = (c.min_lost > 0) & (w2 * (c.min_lost + GAP_TOL) >= (c.min_expected - 0.5) * c.gap_s)
        return np.where(can, np.fmax(own, w2), own)

    def _dense_window(self, cadence_s: np.ndarray) -> np.ndarray:
        """The short window at a learned cadence (:meth:`_short_window`, no longer than half the
        share window), which no reading's short window of the meter exceeds (:meth:`_dense`)."""
        return np.fmin(self._short_window(cadence_s), self._window(cadence_s) / 2)

    def _fit(self, df: pd.DataFrame) -> dict:
        """Besides the meter's cadence (kept with every state): how much shorter than the cadence its
        shortest gap is (``gap_low``, the least gap / cadence above 0.05). Losses never shorten a
        gap, jitter does, and as much as it shortens some it lengthens others: a gap is a loss only
        beyond ``2 - gap_low`` cadences (1.5 for a steady clock), so stamps jittering by +-0.45 of
        the cadence (gaps of 0.1-1.9) are not read as lost readings one by one."""
        seg = df["_seg"].to_numpy()
        with quiet():
            ratio = df["_dt"].to_numpy(float) / self._param(df, "cadence_s")[seg]
        names = meter_names(df)
        # The shortest gap, not counting re-sent copies a few per cent of the cadence after a reading.
        with quiet():
            low = seg_quantile(ratio, seg, len(names), 0.0, ratio > 0.05)
        out = {m: {"gap_low": rnd(float(v), 4)} for m, v in zip(names, low) if np.isfinite(v)}
        # The nominal voltage a supply loss is measured against (as supply_outage learns it); a
        # state without it (learned before q64, or a meter with no reading above 50 V): no silence
        # is taken for an outage's, every gap is judged as before q64 (rev64).
        for m, v in zip(names, nominal_voltage(df, len(names))):
            if np.isfinite(v):
                out.setdefault(m, {})["nominal_v"] = float(v)
        return out

    def _silent_after_supply_loss(self, df: pd.DataFrame, lost: np.ndarray) -> np.ndarray:
        """``lost`` (per reading, the readings lost in the gap before it) with no reading lost in a
        gap that follows a reading with the supply lost (the outage's silence; module docstring).
        Which gap that is, the outage's own test says (:func:`after_supply_loss`: longer than 1.5
        learned cadences), so a silence is either the outage's or lost packets, never neither (a
        meter learned hourly and now read every 5 minutes: a 45-minute silence after a dead reading
        is lost packets, the outage's span not reaching over it)."""
        f = self.config.supply_lost_fraction
        if f <= 0 or len(lost) < 2:
            return lost
        dead = supply_lost(df, self._param(df, "nominal_v"), f, fallback=False)   # (rev64: a learned nominal only)
        after = after_supply_loss(df, dead, self._param(df, "cadence_s"))
        return np.where(after & (lost > 0), 0.0, lost) if after.any() else lost

    def _thr(self, names) -> np.ndarray:
        """Per meter: the gap, in learned cadences, from which readings are lost (1.5 for a steady
        clock; its own jitter, ``gap_low``, see :meth:`_fit`)."""
        st = self.state_
        low = np.array([_num(st.get(m, {}).get("gap_low"), np.nan) for m in names], float)
        return np.where(np.isfinite(low), np.clip(2.05 - low, 1.5, 1.95), 1.5)

    def _cadence_rows(self, names, seg: np.ndarray, dt: np.ndarray, cad_m: np.ndarray,
                      memo: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per reading: the cadence its stretch runs at (the learned one unless its gaps say
        another, :func:`wattwatch.detect.cadence.stretch_cadence`) and the readings lost in the gap
        before it at that cadence: round(gap / cadence) - 1, for a gap longer than the meter's
        jitter allows (1.5 cadences for a steady clock; at the learned cadence its own jitter, see
        _fit); NaN where the gap is (a meter's first reading). ``memo``: the frame's scratch space,
        whose windows' verdict the other detectors that follow the cadence share (cad49)."""
        return stretch_cadence(seg, dt, cad_m, self._gaps(cad_m), self.config.cadence_share, self._thr(names),
                               memo=memo)

    def _row_window(self, c_row: np.ndarray, cad: np.ndarray) -> np.ndarray:
        """Window per reading: its cadence's (:meth:`_window`), no longer than the reach the learned
        cadence ``cad`` declares either side (:meth:`lookback_s`)."""
        with quiet():
            back = self.lookback_s(cad)
            return np.fmin(self._window(c_row), back + np.fmin(back, self.config.lead_s))

    def calm_meters(self, names, seg: np.ndarray, starts: np.ndarray, t: np.ndarray, dt: np.ndarray,
                    lo: np.ndarray, hi: np.ndarray, st=None) -> np.ndarray:
        """Per meter of a frame: too few readings lost near its readings from ``lo`` to ``hi`` for
        any of their scores to reach the threshold. A reading's score is at most the lost readings
        in its window (half of it either side) and in the gap after it, over ``min_lost``: where the
        meter has lost fewer than ``min_lost`` x the threshold from half a window before ``lo`` to
        half a window after ``hi`` and in the gap after that, none of them can alert, whatever the
        share (a meter's first reading's gap is not counted: the frame does not hold it). A reading
        that borders a gap of ``gap_lost`` readings or more in a row may also score that gap
        (:meth:`_long_gaps`): a meter with such a gap there is never calm, however long the gap
        (q56). A meter whose gaps in the frame say another cadence anywhere is never calm (judged:
        its windows and counts follow that cadence).

        Its cost follows the gaps that are not at the learned cadence, not the frame's readings: a
        meter with fewer such gaps (:func:`~wattwatch.detect.cadence.off_cadence`) than a run of its
        gaps must hold to say another cadence (:func:`~wattwatch.detect.cadence.need`) is at the
        learned cadence throughout (no run of it says another, whatever the other meters' runs say;
        :meth:`_cadence_rows`), and loses readings only at
        those gaps (a lost reading is a gap of 1.5 cadences or more, outside the band around the
        learned cadence): its lost readings are counted there alone. The other meters (a
        reconfigured one, or one losing many readings) are worked out over their readings. The lost
        readings within a span are summed over the readings that lost any (few), not over every
        reading (the same sums: a zero adds nothing); ``st``: the frame's
        :class:`~wattwatch.detect.core.SegTimes` when the caller has it (a stream's step over a
        200-meter packet_loss tail: ~150,000 readings, 7.9 -> ~2 ms; lat65)."""
        from wattwatch.detect.core import SegTimes

        if self.config.min_lost <= 0 or not len(names):
            return np.zeros(len(names), bool)
        cad_m = state_nums(self.state_, names, "cadence_s")
        cad = cad_m[seg]
        at = np.flatnonzero(off_cadence(dt, cad))   # gaps off the learned cadence (few: a lost reading, jitter)
        n_off = np.bincount(seg[at], minlength=len(names))
        few = n_off < need(self.config.cadence_share, self._gaps(cad_m))
        lost = np.zeros(len(t))
        sub = at[few[seg[at]]]
        lost[sub] = np.nan_to_num(lost_at(dt[sub], cad[sub], self._thr(names)[seg[sub]]))
        ends = np.append(starts[1:], len(t))
        other = np.zeros(len(names), bool)
        ks = np.flatnonzero(~few)
        if len(ks) and len(t):   # per reading: its cadence and lost readings, over these meters' readings only
            lens = ends[ks] - starts[ks]
            rows = np.concatenate([np.arange(starts[k], ends[k]) for k in ks])  # a loop over such meters
            seg_k = np.repeat(np.arange(len(ks)), lens)
            names_k = [names[k] for k in ks]
            c_row, lost_k = self._cadence_rows(names_k, seg_k, dt[rows], cad_m[ks])
            lost[rows] = np.nan_to_num(lost_k)
            s_k = np.cumsum(lens) - lens
            with quiet():
                other[ks] = np.logical_or.reduceat((c_row != cad_m[ks][seg_k]) & np.isfinite(cad_m[ks][seg_k]), s_k)
        if st is None:
            st = SegTimes(t, seg, starts, ends)
        half = self._window(cad_m) / 2
        half = np.where(np.isfinite(half), half, np.inf)
        # A window reaches at most half its length past a reading (lead_s) and the rest before it,
        # a short one (_dense) no further either way: a whole window back, half ahead. A second
        # either side to spare: counting more lost readings is never wrong here.
        with quiet():
            i0 = st.search(st.ks, SegTimes.to_us(np.asarray(lo, float) - 2 * half - 1.0), "left")
            i1 = st.search(st.ks, SegTimes.to_us(np.asarray(hi, float) + half + 1.0), "right")
        i1 = np.minimum(i1 + 1, st.lens)   # and the gap after the last of them
        a, b = starts + np.minimum(i0, i1), starts + i1   # each meter's span [a, b) of rows
        nz = np.flatnonzero(lost)   # the readings that lost any: the sums over a span are theirs
        c = np.concatenate([[0.0], np.cumsum(lost[nz])])
        ja, jb = np.searchsorted(nz, a, "left"), np.searchsorted(nz, b, "left")
        total = np.where(i1 > i0, c[jb] - c[ja], 0.0)
        calm = (total / self.config.min_lost < self.config.post.threshold) & ~other
        if self.config.gap_lost > 0:
            # A gap that lost gap_lost readings in a row may be a data gap on its own (_long_gaps;
            # its duration is not looked at here: judging a meter more is never wrong).
            big = nz[lost[nz] >= self.config.gap_lost]
            n_big = np.searchsorted(big, b, "left") - np.searchsorted(big, a, "left")
            calm &= ~np.where(i1 > i0, n_big > 0, False)
        return calm

    def _counted(self, df: pd.DataFrame, lost: np.ndarray, cad: np.ndarray, w_m: np.ndarray, w: np.ndarray,
                 other: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                 centred: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Per reading: the readings lost in its window (``w`` long, reaching :meth:`_lead` past the
        reading, half of it where ``centred``: ``[t + lead - w, t + lead]``) and
        the readings that window expects (``cad`` the reading's stretch's cadence, ``w_m`` the
        window per meter, ``w`` per reading: its cadence's; ``other``: per meter, its gaps say
        another cadence somewhere, and its windows follow each reading's)."""
        seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
        # Each meter's window, or each reading's where its gaps say another cadence somewhere.
        w_row = np.where(other[seg], w, w_m[seg]) if len(t) else np.zeros(0)
        with quiet():
            lead = w / 2 if centred else self._lead(w)   # (the expected readings follow the reading's own window)
            lead_row = w_row / 2 if centred else self._lead(w_row)
        # Truncated at the meter's first and last reading here: the start and end of the data are
        # not loss. (Within the window of the piece's ends, i.e. inside its reach.)
        first, last = t[starts][seg], t[ends - 1][seg]
        # (rpkt) A window that ends at its reading is truncated at the meter's first reading by
        # at most w - 2 lead (centred: at the first reading, as before pkt; lead 0: not at all,
        # nothing is lost before the first reading but the window expects its whole length). A
        # trailing window truncated there held as few as min_expected readings: 4 seconds lost
        # in a 1-s logger's first minute, a 1-minute meter's 4 lost in its first half hour, or
        # a jittered 1-s logger losing nothing were alerts that the same readings later in the
        # data are not.
        with quiet():
            floor = first - np.fmax(w - 2 * lead, 0.0)
            expected = (np.minimum(t + lead, last) - np.maximum(t + lead - w, floor)) / cad
        in_window = np.zeros(len(t))
        held = np.zeros(len(t))
        v = np.where(np.isfinite(lost), lost, 0.0)
        fin = np.isfinite(w_row)
        for a, b in zip(starts, ends):  # a loop over meters, each step vectorised
            if not fin[a:b].any():
                continue
            x = t[a:b]
            ww, ll = np.where(fin[a:b], w_row[a:b], 0.0), np.where(fin[a:b], lead_row[a:b], 0.0)
            lo = np.searchsorted(x, x + ll - ww, side="left")
            hi = np.searchsorted(x, x + ll, side="right")
            c = np.concatenate([[0.0], np.cumsum(v[a:b])])
            in_window[a:b], held[a:b] = c[hi] - c[lo], (hi - lo).astype(float)
        in_window = np.where(np.isfinite(w), in_window, np.nan)
        # Counted, not only measured from gaps: a window cannot have lost more readings than it
        # expects beyond those it holds (+1 for the fence post). Gaps alone overcount when the
        # stamps jitter by a large part of the cadence (a 1-s logger stamping +-0.4 s opens 1.8-s
        # gaps, each read as a lost reading, while every reading is there).
        with quiet():
            in_window = np.minimum(in_window, np.clip(np.round(expected) + 1 - held, 0, None))
        # A reading borders the gap after it however long: a gap reaching past the window's end
        # is counted at its first edge too (the window there does not reach the reading that
        # carries it), so a data gap of hours or months has both its edges in the loss.
        lost_next = np.zeros(len(t))
        t_next = np.full(len(t), -np.inf)
        lost0 = np.nan_to_num(lost)  # (a meter's first reading: no gap before it)
        if len(t) > 1:
            same = seg[1:] == seg[:-1]
            lost_next[:-1] = np.where(same, lost0[1:], 0.0)
            t_next[:-1] = np.where(same, t[1:], -np.inf)
        with quiet():
            in_window = in_window + np.where(t_next > t + lead, lost_next, 0.0)
        return in_window, expected

    def _score(self, df: pd.DataFrame) -> Scored:
        seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
        names = meter_names(df)
        cad_m = self._param(df, "cadence_s")
        cad, lost = self._cadence_rows(names, seg, df["_dt"].to_numpy(), cad_m, times_cache(df))   # per reading
        lost = self._silent_after_supply_loss(df, lost)
        starts, ends = seg_bounds(seg)
        with quiet():
            other = np.logical_or.reduceat((cad != cad_m[seg]) & np.isfinite(cad_m[seg]), starts) \
                if len(t) else np.zeros(0, bool)
        w_m = self._window(cad_m)
        w = self._row_window(cad, cad_m[seg])
        in_window, expected = self._counted(df, lost, cad, w_m, w, other, starts, ends)
        lost0 = np.nan_to_num(lost)  # (a meter's first reading: no gap before it)
        with quiet():
            frac = np.clip(in_window / expected, 0, 1)
        frac = np.where(expected >= self.config.min_expected, frac, np.nan)
        score = frac / self.config.limit
        # SPEC: *more than* the limit. Lost readings are whole, expected ones are not (jitter): 4 lost
        # of 80 expected is 5 % exactly however the cadence jitters, and is not a loss above 5 %.
        with quiet():
            at_most = in_window <= self.config.limit * np.round(expected) + 1e-9
        score = np.where(at_most & np.isfinite(score), np.minimum(score, np.nextafter(1.0, 0.0)), score)
        # In the loss: at a gap's edge, or between lost readings at most window_s before and
        # min(window_s, lead_s) after it. Elsewhere the window's share still counts the loss, but
        # the reading is not in it.
        gap = lost0 >= 1
        edge = gap.copy()
        edge[:-1] |= gap[1:] & (seg[1:] == seg[:-1])
        half = np.full(len(w_m), self.config.window_s)
        before, after = _around(lost0, t, seg, half, np.fmin(half, self.config.lead_s))
        inside = (edge | ((before >= 1) & (after >= 1))) & (before + after >= 2)
        score = np.where(inside | ~np.isfinite(score), score, np.minimum(score, 0.0))
        if self.config.min_lost > 0:
            # Fewer than min_lost readings lost is not evidence, whatever share of a short
            # (truncated) window they are.
            score = np.minimum(score, in_window / self.config.min_lost)  # NaN stays NaN
        # But one gap of gap_lost readings in a row lasting gap_s or more is a data gap whatever
        # the window's share: both its edges are in it (module docstring).
        score = np.fmax(score, self._long_gaps(lost0, cad, seg))
        # And a loss dense enough that the short window says it alone (module docstring).
        dense, frac2, w2 = self._dense(df, lost, cad, cad_m, other, starts, ends, inside)
        score = np.fmax(score, dense)
        return Scored(score, (frac, lost, cad, w, frac2, w2))

    def _short_window(self, cadence_s: np.ndarray) -> np.ndarray:
        """The shortest window a share is taken over: the configured span, long enough to expect
        ``min_expected`` readings (6 h from 1 to 18 minutes, 20 h at hourly cadence)."""
        with quiet():
            return np.fmax(self.config.window_s, self.config.min_expected * np.asarray(cadence_s, float))

    def _dense(self, df: pd.DataFrame, lost: np.ndarray, cad: np.ndarray, cad_m: np.ndarray, other: np.ndarray,
               starts: np.ndarray, ends: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per reading in the loss (``inside``; and every reading from the first gap to the last of a
        dense window that holds no data gap, below) on a stretch where ``min_lost`` readings are ``gap_s``
        of data or more (whole cadences, to within ``GAP_TOL``: 30 minutes and coarser): the readings
        lost in its short window (:meth:`_short_window`, no longer than half the learned cadence's
        share window, so within the reach and the calm verdict's span) over ``min_lost``, where they
        are ``min_lost`` or more and more than the limit's share of it; a reading in the loss within
        such a window of another scores at least the threshold (the loss spans the window, not only
        the readings it is centred on); NaN elsewhere. Also the window's share where it is dense
        (NaN elsewhere) and its length per reading."""
        c = self.config
        seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
        none = np.full(len(seg), np.nan)
        if c.min_lost <= 0 or not len(seg):
            return none, none, np.zeros(len(seg))
        w2_m = self._dense_window(cad_m)
        # (pkt) no longer than the learned cadence's: within the reach it declares (lookahead_s).
        w2 = np.fmin(self._short_window(cad), w2_m[seg])
        with quiet():
            domain = (c.min_lost + GAP_TOL) * cad >= c.gap_s
        if not (domain & inside).any():   # no reading in a loss to score
            return none, none, w2
        n2, e2 = self._counted(df, lost, cad, w2_m, w2, other, starts, ends, centred=True)
        with quiet():
            ok = domain & (np.round(e2) >= c.min_expected) & (n2 >= c.min_lost) & (n2 > c.limit * np.round(e2) + 1e-9)
        score = np.where(ok & inside, n2 / c.min_lost, np.nan)
        with quiet():
            share = np.clip(n2 / np.where(e2 > 0, e2, np.nan), 0, 1)
        if not ok.any():
            return score, np.where(ok & inside, share, np.nan), w2
        # Readings in the loss within half a short window of a dense one's centre are in it (the
        # centre itself need not be). And where the window's loss is scattered (no gap of gap_lost
        # readings in a row, which is a data gap on its own, q56), the loss runs from its first gap's
        # first edge to its last gap's last edge: a lone gap's edges and the readings between are in
        # it too, each lost reading being of the min_lost the rule asks (rev66: at 2 h cadence four
        # single losses 10 h apart were three 2-h alerts between them, "0 of 2 expected readings
        # missing"; at hourly a lone loss the window counted was an alert of its own, "1 of 3", or
        # left out, "3 of 19"). One reading before the window at most: within the reach and
        # calm_meters' span.
        lost0 = np.nan_to_num(lost)
        covered = np.zeros(len(seg), bool)
        spread = np.zeros(len(seg), bool)
        for k in np.unique(seg[ok]):   # a loop over meters with a dense window, each step vectorised
            a, b = starts[k], ends[k]
            x, at = t[a:b], np.flatnonzero(ok[a:b])
            lo = np.searchsorted(x, x[at] - w2[a:b][at] / 2, side="left")
            hi = np.searchsorted(x, x[at] + w2[a:b][at] / 2, side="right")
            d = np.zeros(b - a + 1, np.int64)
            np.add.at(d, lo, 1)
            np.add.at(d, hi, -1)
            covered[a:b] = np.cumsum(d[:-1]) > 0
            car = np.flatnonzero(lost0[a:b] >= 1)   # readings that end a gap (never the meter's first)
            big = np.concatenate([[0], np.cumsum(lost0[a:b] >= c.gap_lost)]) if c.gap_lost > 0 else np.zeros(b - a + 1)
            i, j = np.searchsorted(car, lo, side="left"), np.searchsorted(car, hi, side="left") - 1
            has = (i <= j) & (big[hi] == big[lo])
            d[:] = 0
            np.add.at(d, car[i[has]] - 1, 1)
            np.add.at(d, car[j[has]] + 1, -1)
            spread[a:b] = np.cumsum(d[:-1]) > 0
        hit = ((covered & inside) | spread) & domain
        with quiet():
            score = np.where(hit, np.fmax(score, c.post.threshold), score)
        return score, np.where(hit, share, np.nan), w2

    def _long_gaps(self, lost0: np.ndarray, cad: np.ndarray, seg: np.ndarray) -> np.ndarray:
        """Per reading: the lost readings of a long gap it borders (the gap before it or after it
        that lost ``gap_lost`` readings or more in a row and lasts ``gap_s`` or more, in whole
        cadences) over ``gap_lost``; NaN where it borders none."""
        c = self.config
        out = np.full(len(lost0), np.nan)
        if c.gap_lost <= 0 or not len(lost0):
            return out
        # Whole cadences to within the 15 % band a gap of one cadence is read in: the cadence is the
        # median of jittered gaps, a hair either side of the clock's (a 30-minute meter's 1,799.98 s
        # made its four cadences 0.1 s short of 2 h and its gap unreported; rev56).
        with quiet():
            g = np.where((lost0 >= c.gap_lost) & ((lost0 + 1 + GAP_TOL) * cad >= c.gap_s), lost0 / c.gap_lost, np.nan)
        nxt = np.full(len(g), np.nan)
        nxt[:-1] = np.where(seg[1:] == seg[:-1], g[1:], np.nan)   # the gap after a reading, on its meter
        return np.fmax(g, nxt)

    @staticmethod
    def _loss_window(t: np.ndarray, seg: np.ndarray, r0: int, w_all: np.ndarray) -> int:
        """The first row of the window behind the alert's first reading ``r0`` where a gap may end
        (after the meter's first row in the frame): where :meth:`describe` looks for the gap the
        loss began with. What it reads lies from the row before this to the alert's last row."""
        m0 = int(np.searchsorted(seg, seg[r0], side="left"))   # the meter's first row (a prepared frame: by meter)
        w0 = float(w_all[r0]) if np.isfinite(w_all[r0]) else 0.0
        return m0 + 1 + int(np.searchsorted(t[m0 + 1:r0 + 1], t[r0] - w0, side="left"))   # a gap ends after the first

    def describe_key(self, df, rows, scores, ctx=None) -> bytes | None:
        """Everything :meth:`describe` reads (its config aside): the times, lost readings and
        window measures from the row before :meth:`_loss_window` to the alert's last row, and the
        rows' places there (it does not read the scores)."""
        t = df["_t"].to_numpy()
        a = self._loss_window(t, df["_seg"].to_numpy(), int(rows[0]), ctx[3]) - 1
        e = int(rows[-1]) + 1
        parts = [np.asarray(rows, np.int64) - a, t[a:e]]
        parts += [np.asarray(x[a:e], float) for x in ctx]
        return hashlib.blake2b(b"".join(np.ascontiguousarray(x).tobytes() for x in parts), digest_size=20).digest()

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        frac, lost_all, cad_all, w_all, frac2, w2_all = ctx
        t = df["_t"].to_numpy()
        # The cadence of the stretch (one cadence but where an alert spans a reconfiguration).
        cad = float(np.median(cad_all[rows]))
        # One meter's rows are contiguous and sorted: the span is a row range.
        # nansum: a meter's first reading has no gap before it (NaN).
        lost = float(np.nansum(lost_all[rows[0]:rows[-1] + 1]))
        expected = (t[rows[-1]] - t[rows[0]]) / cad + 1
        lost = min(lost, max(0.0, round(expected) - (rows[-1] - rows[0] + 1)))   # counted, as in _score
        share = lost / expected if expected > 0 else float("nan")
        # (pkt) no window of the span may say a share (a data gap within min_expected readings of
        # the meter's first, its windows behind truncated): the span's own share then
        worst = float(np.nanmax(frac[rows])) if np.isfinite(frac[rows]).any() else share
        w = float(np.median(w_all[rows]))
        with quiet():
            short = float(np.nanmax(frac2[rows])) if np.isfinite(frac2[rows]).any() else float("nan")
        if worst <= self.config.limit < short:   # only the short window says the loss (_dense): its share, its length
            worst, w = short, float(np.median(w2_all[rows][np.isfinite(frac2[rows])]))
        # The longest gap inside the span: from the reading before it to the one after.
        span_lost = np.nan_to_num(lost_all[rows[0] + 1:rows[-1] + 1])
        g = int(np.argmax(span_lost)) + rows[0] + 1 if len(span_lost) else rows[0]
        gap_s = float(t[g] - t[g - 1]) if g > rows[0] else 0.0
        span_s = float(t[rows[-1]] - t[rows[0]])
        ev = {"kind": "packet_loss", "missing_readings": int(lost), "expected_readings": int(round(expected)),
              "missing_share": rnd(share, 4), "worst_window_share": rnd(worst, 4), "cadence_s": rnd(cad, 1)}
        # (rpkt) Where the loss began: the alert opens where the window behind a reading is evidence,
        # up to a window after the first lost reading; the first gap in the window behind the
        # alert's first reading (within the reach: the stream keeps it before an open alert) and
        # the readings lost there before the alert's start.
        r0 = int(rows[0])
        lo = self._loss_window(t, df["_seg"].to_numpy(), r0, w_all)
        gaps = np.flatnonzero(np.nan_to_num(lost_all[lo:r0 + 1]) >= 1)
        since = ""
        if len(gaps):
            j = lo + int(gaps[0])
            before = int(np.nansum(lost_all[j:r0]))
            iso = lambda x: pd.Timestamp(round(x * 1000), unit="ms", tz="UTC").isoformat().replace("+00:00", "Z")
            ev.update(loss_since=iso(t[j - 1]), lost_before_start=before)
            if before > 0:
                since = f"; the loss began after {ev['loss_since']}: {before} more lost before the alert's start"
        # A data gap lost gap_lost readings in a row at least (two lost hours in a row are not one, q56;
        # an alert the short window found around such a pair says packet loss, q66).
        in_gap = float(span_lost[g - rows[0] - 1]) if g > rows[0] else 0.0
        if gap_s > 0 and span_s > 0 and gap_s >= self.config.data_gap_share * span_s \
                and in_gap >= self.config.gap_lost:
            iso = lambda x: pd.Timestamp(round(x * 1000), unit="ms", tz="UTC").isoformat().replace("+00:00", "Z")
            ev.update(kind="data_gap", gap_start=iso(t[g - 1]), gap_end=iso(t[g]), gap_hours=rnd(gap_s / 3600, 2),
                      gap_readings=int(span_lost[g - rows[0] - 1]))
            return Finding("critical", f"no readings for {gap_s / 3600:.1f} h ({ev['gap_readings']} expected readings "
                                       f"missing, cadence {cad:.0f} s): a data gap from {ev['gap_start']} to "
                                       f"{ev['gap_end']}", ev,
                           "check the meter's logger and communication path; backfill the gap from the meter's "
                           "own memory if it keeps one")
        return Finding("critical", f"{lost:.0f} of {expected:.0f} expected readings missing ({share:.0%}; worst "
                                   f"{w / 3600:g} h window {worst:.0%}, cadence {cad:.0f} s){since}", ev,
                       "check the meter's communication path (gateway, signal, Ethernet errors)")


def _around(x: np.ndarray, t: np.ndarray, seg: np.ndarray, half_s: np.ndarray,
            ahead_s: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row: sum of ``x`` over its meter's rows in ``[t - half, t]`` and in ``(t, t + ahead]``
    (``half_s``, ``ahead_s`` per segment code; ``ahead_s`` None: ``half_s``), the latter always with
    the next row (the loss of the gap right after a reading borders it, however long the gap)."""
    ahead_s = half_s if ahead_s is None else ahead_s
    before = np.zeros(len(x))
    after = np.zeros(len(x))
    starts, ends = seg_bounds(seg)
    # A meter that lost nothing has 0 either side of every reading: its windows are not searched.
    lossy = np.logical_or.reduceat(x != 0, starts) if len(x) else np.zeros(0, bool)
    for k, (a, b) in enumerate(zip(starts, ends)):  # a loop over meters, each step vectorised
        h, g = half_s[k], ahead_s[k]
        if not np.isfinite(h) or not lossy[k]:
            continue
        tm = t[a:b]
        c = np.concatenate([[0.0], np.cumsum(x[a:b])])
        i = np.arange(b - a)
        lo = np.searchsorted(tm, tm - h, side="left")
        hi = np.maximum(np.searchsorted(tm, tm + g, side="right"), np.minimum(i + 2, b - a))
        before[a:b] = c[i + 1] - c[lo]
        after[a:b] = c[hi] - c[i + 1]
    return before, after
