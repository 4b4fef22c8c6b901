"""Seasonal consumption profile: each reading against the meter's own day-type x time-of-day
profile, scaled to the level it has been running at lately (``WARN_CONSUMPTION_ANOMALY``).

For meters read every 15 minutes to every few hours (building and household load; finer cadences
are judged by the rules, the hour-of-week baseline and the learned ensemble).

**Profile** (learned by ``fit`` on the whole normal period, however long: ``fit --normal-end`` or
``--days``). Slots of ``max(cadence, 15 min)`` through the day, per day type: weekdays (pooled),
Saturday, Sunday. Per (day type, slot): the median of the normal readings and their robust spread
(1.4826 x MAD). Medians and MAD keep the anomalies left inside the normal period (a zero day, a
spike) from moving the profile. A day type the normal period lacks falls back to the weekday
profile. A weekday that has run like the meter's own Saturday or Sunday since midnight (a public
holiday, a bridge day, a closure) is judged against that profile for as long as it keeps doing so;
its first reading the weekend profile does not fit makes it a weekday again for the rest of the day.
No holiday calendar is used (holidays differ by country, region and building). The state says how much history
the profile had (``history_days`` and days per day type) and the evidence repeats it.

**Level** (adapting with the seasons). A reading is compared with ``level x profile``, where the
level is the median, over the previous ``level_days`` calendar days, of each day's consumption
relative to its profile (clamped to ``level_min`` .. ``level_max``): a building that uses 30 %
more in summer moves its level within days, with no alert storm, while a single unusual day or a
zero run (at most half the window) does not move the median. The level never uses the reading's
own day, so what is judged cannot hide itself. A meter whose level has reached ``level_max`` has
left its profile (the normal period did not show it in use: a building not yet occupied while
profiled): the change alerted where it began, and until the meter is refitted its readings and
days are not judged against that profile (zeros and frozen runs still are); the onset alert's
action says to refit.

**Score** (calibrated per meter, so one threshold fits all meters). Load is taken on a log scale
(``log(max(x, 0) + eps)``, ``eps`` = ``eps_rel`` x the meter's 90th percentile), so deviations are
relative. The residual ``z = (y - profile - level - slot shift) / spread``; the slot spread is
floored at ``floor_rel`` and one reading resolution, and shrunk towards the meter's typical spread
as if ``min_days`` more days had shown it. Evidence, each over a per-meter limit:

1. *reading*: ``|z|`` over the meter's limit: where an exponential tail fitted over the 95th
   percentile of the normal period's ``|z|`` says a reading is rarer than once in ``tail_days``
   days (at least ``z_min``), raised by the same tail over the last ``recal_days`` days when that
   is livelier. Above the profile a reading must also exceed the normal period's 99.9th percentile
   at the current level (a household's busy hour is no fault); ``spike_top_k`` times that
   percentile is a spike whatever the spread (a jumped register read as an hour's energy). A one-hour drop or a spike is
   reported as a single-reading alert (evidence ``single_reading``). A point is off its neighbours
   too: a reading strictly between them (a ramp in time) or with both near it (``plateau_k``: a
   stretch run lower together, a bank holiday) is left to the 24-h evidence. *Point*: a reading
   standing off both its neighbours on one side (by the smaller of the two distances, log scale;
   it yields to a neighbour standing further off the other way that is ``iso_z`` spreads off its
   profile that way itself: the hour before a motor start's spike is no drop, while two spikes
   keep their point though the ordinary hour between them stands off both) further than the
   meter's readings stand off each other once in ``tail_days`` days of its normal period (and of
   its last ``recal_days`` days), at least ``iso_min``, and ``iso_z`` spreads off its
   profile on that side (above it, beyond the busiest readings as well on a meter whose hours stand
   off each other by more than ``iso_min`` while normal: a home) is scored by the geometric
   mean of the two: a steady building's one-hour glitch is found even where anomalies left in its
   normal period raised the reading limit; a home's appliance hour stands off its neighbours as
   its normal hours do;
2. *day*: the median ``z`` of the trailing 24 h against the same kind of limit (at least
   ``day_z_min``), and its shift (log units) beyond ``day_z_min`` times the robust spread of the
   meter's daily level over the previous ``recal_days`` days (a day off the way its days have been
   moving lately, not one more warm day of a season): an unusual day where no single hour is extreme;
3. *flat*: a non-zero value repeated exactly for more readings than the meter's second-longest
   such run in its normal period (the longest may be a frozen fill left in it), and for more than chance makes once in ``tail_days`` days given how often
   its readings repeat their predecessor while normal (at least ``flat_min_h`` hours and 3
   readings; at most ``flat_max_h`` hours needed), the chance taken per kind of day (a steady weekend
   repeats more than the working week): a frozen meter on a meter that reports power alone (``frozen_readings`` needs
   three channels). A value under ``flat_min_share`` of the meter's typical load is a standby counted
   in register steps (a solar home importing 20 Wh an hour at noon), never a frozen run; nor is a
   value the meter's energy register counted step by step (a steady load: a frozen logger holds its
   power while the register counts on). Values are compared to :data:`SNAP` (a float register's
   differences carry rounding noise);
4. *zero*: a (near) zero reading on a meter whose zeros are not part of its normal (it read zero
   in under ``zero_share`` of its normal readings, or its zeros there came in fewer runs than one
   per ``zero_run_days`` days: an outage or two left inside the normal period do not make zeros
   normal, a site switched off every night or weekend does) and that read zero in under
   ``zero_share`` of the last ``level_days`` days or there in a single run, and in fewer runs than
   one per week over the last ``zero_routine_days`` days (a home whose solar panels covered it all
   summer reading zero on a sunny November noon is no fault) (evidence ``zero_reading`` /
   ``zero_run``); the run is one alert.

A reading that caught a motor's starting current (:func:`~wattwatch.detect.rules._common.inrush`:
on some phase several times its neighbours' current, the power factor falling with it) is a snapshot
of a few seconds, not of its interval: it is not judged (``baseline_macd`` leaves it out of its
hours the same way). Seen: a school's two motor starts in a row, read at 15 minutes (a 3.5x and a
5.2x start, power factor 0.40-0.42 against 0.93 either side), read as "a single reading spiking to
118.9 where 42.72 was expected" (q22, docs/quality-log.md). It stays in what the meter's limits
are taken from (the profile, the normal period's tail and the last ``recal_days`` days' tail): a
site with motors starts them while normal too, and its limits were calibrated on readings that
catch some. Left out of those as well, the limits of the real-shape fleets' motor meters
tightened and raised single-reading alerts on ordinary hours (q22: one more false alert at 60
minutes, spans and scores moved on a dozen meters).

With fewer than ``min_history_days`` days of profile, a reading alerts only as the second of two
beyond the limit and the 24-h evidence waits (a notice says so). A normal period that is mostly
one repeated value teaches no profile (notice; zeros and flat runs still judged).
Score = max of the ratios: 1.0 is the limit; :func:`calibrated` maps it to 0.5 there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import (PHASE_CHANNELS, Detector, DetectorConfig, Finding, PostRule, Reach, Scored, meter_of,
                                   quiet, rnd)
from wattwatch.detect.frame import day_type, local_offset_s, meter_names, prepare, seg_bounds
from wattwatch.detect.rolling import grouped_rolling, time_index
from wattwatch.detect.rules._common import inrush

DAY = 86400.0
# A 24-h message quotes its share off the profile up to this (+1,000 %); beyond it, or on a profile
# whose mean is not above zero, the two means in the channel's units (a share of ~0 is no measure).
DAY_SHARE_MAX = 10.0
KINDS = {1: "single_reading", 2: "reading_run", 3: "unusual_day", 4: "flat_line", 5: "zero"}
# How far (in cadences) the neighbour on either side may be for a reading to count as lying on a
# ramp or in a stretch (``_on_ramp``, ``_plateau``): one lost reading between them and jitter. At
# 1.5, a lost reading next to one of a stretch run low together left that reading without a
# neighbour, so nothing said it was part of the stretch and it alerted as "a single reading
# dropping": a school's Easter Monday at two thirds of its load all morning, read every 15 minutes
# with its 07:30 reading lost, alerted at 07:15 (q8, seed 811). The reading two cadences away
# says as well as the next one whether it ran with the stretch; a dip or a spike still stands off
# it. ``_isolation`` (a point's evidence) keeps 1.5: it alerts, and asks for both neighbours.
NEAR_CAD = 2.5
# How far under its 1st percentile a stretch at a meter's base load may read (``low_ext``) at the
# most, as a share of that percentile: the base load's own scatter (the 1st percentile over the
# 10th) reaches a few tens of per cent (plants 0.89-0.93, homes 0.54-0.77); a 10th percentile more
# than twice the 1st is the meter's working load, not its base load's scatter (a plant at its base
# load one hour a night: 0.08, which let a drop to half the base load pass as part of a stretch;
# fleet meters at 0.005-0.03: any reading above zero; rfl).
LOW_EXT_MIN_SHARE = 0.5


@dataclass(frozen=True)
class SeasonalProfileConfig(DetectorConfig):
    """``min_cadence_s``/``max_cadence_s``: cadences judged (others get a notice); ``slot_s``: the
    finest profile slot; ``level_days``: days of the level's trailing median; ``floor_rel``: least
    spread as a share of the meter's typical load; ``z_min``/``day_z_min``: least limits of the
    reading and 24-h evidence; ``tail_days``: a reading at the limit is that rare in normal data;
    ``recal_days``: the trailing window whose tail may raise the limits; ``accept_k``: readings
    within this times the limit move the slot shape; ``min_days``: days per day type before
    Saturday and Sunday get profiles of their own (and the spread shrinkage); ``min_history_days``:
    profile days before single readings and days alert; ``zero_rel``/``zero_share``: what is a zero
    and how rare zeros must have been; ``zero_run_days``: zeros are a meter's normal only when its
    normal period had a zero run at least once per this many days; ``zero_routine_days``: zero runs
    averaging one a week over this many past days are a routine too; ``max_frozen_share``: a normal period repeating one value
    more than this teaches no profile; ``flat_min_h``/``flat_max_h``: a frozen run must last at
    least / never needs more than this long; ``flat_min_share``: values under this share of the
    meter's typical load are never a frozen run; ``holiday_z``: a weekday reading within this many
    spreads of the meter's Saturday or Sunday profile runs like that day (see "Profile");
    ``point_max``: up to this many readings in a row off the profile on one side are reported as a
    ``drop`` or a ``spike``, more as a ``reading_run``; ``spike_top_k``: a reading this many times the
    normal period's 99.9th percentile (at the current level) is a spike however wide the meter's spread;
    ``top_margin``/``peak_ratio``: on a home's meter (hours standing off each other beyond ``iso_min``,
    the normal period's 99.9th percentile more than ``peak_ratio`` times its 90th, both of the signed
    readings that caught no motor start) a reading above the
    profile is busier than the normal period's busiest only at ``top_margin`` times that percentile;
    ``plateau_k``: a reading whose two neighbours are both within this share of its own distance
    from the profile (log scale) is part of a stretch, not judged as a single reading (0: off; 0.6
    chosen on half of the BDG2 buildings, see README); ``iso_min``: the least isolation (log units:
    0.405 is 1.5x above or a third below both neighbours) and ``iso_z`` the least distance from the
    profile (in spreads) of a point anomaly judged by how far the meter's readings stand off each
    other (see "Score"); ``dst_guess``: on a meter without a zone, readings near 01:00-04:00 on the
    Sundays the common daylight-saving rules change the clocks (Europe, North America, Australia, New
    Zealand) are not judged as single readings: a local-time export's short or doubled hour is a
    clock artefact, not a fault (False for a logger on true UTC; a zone makes it exact); ``timezone``: the IANA zone of the meters'
    wall clock, in which the profile's slots and days are taken (default UTC: nothing is inferred)."""

    channel: str = "p_kw"
    min_cadence_s: float = 600.0
    max_cadence_s: float = 3 * 3600.0
    slot_s: float = 900.0
    level_days: int = 7
    level_min: float = 0.2
    level_max: float = 5.0
    floor_rel: float = 0.05
    eps_rel: float = 0.1
    z_min: float = 6.0
    day_z_min: float = 4.0
    tail_days: float = 60.0
    accept_k: float = 2.0
    min_days: int = 3
    min_history_days: float = 14.0
    recal_days: float = 28.0
    zero_rel: float = 0.02
    zero_share: float = 0.002
    zero_run_days: float = 14.0
    zero_routine_days: float = 91.0
    max_frozen_share: float = 0.5
    flat_min_h: float = 3.0
    flat_max_h: float = 24.0
    flat_min_share: float = 0.1
    holiday_z: float = 3.0
    point_max: int = 3
    spike_top_k: float = 10.0
    top_margin: float = 1.5
    peak_ratio: float = 2.0
    plateau_k: float = 0.6
    iso_min: float = 0.405
    dst_guess: bool = True
    iso_z: float = 3.0
    timezone: str = "UTC"
    post: PostRule = PostRule(min_duration_s=0.0, min_readings=1, merge_gap_s=6 * 3600.0, max_bridge_s=6 * 3600.0)

    def __post_init__(self):
        if not (0 < self.min_cadence_s <= self.max_cadence_s):
            raise ValueError("min_cadence_s must be > 0 and <= max_cadence_s")
        if not (0 < self.level_min <= 1 <= self.level_max):
            raise ValueError("level_min must be within (0, 1] and level_max >= 1")
        if self.level_days < 1 or self.tail_days <= 0 or self.z_min <= 0 or self.day_z_min <= 0:
            raise ValueError("level_days >= 1, tail_days, z_min and day_z_min > 0 required")
        if self.timezone and self.timezone.upper() != "UTC":
            from zoneinfo import ZoneInfo

            try:
                ZoneInfo(self.timezone)
            except Exception:  # noqa: BLE001 - any failure is an unknown zone to the user
                raise ValueError(f"timezone: unknown time zone {self.timezone!r} (an IANA name such as "
                                 "'Europe/London', or UTC)") from None
        if not self.spike_top_k > 1:
            raise ValueError("spike_top_k must be > 1")
        if not (self.top_margin >= 1 and self.peak_ratio > 1):
            raise ValueError("top_margin must be >= 1 and peak_ratio > 1")
        if not self.zero_routine_days >= 7:
            raise ValueError("zero_routine_days must be >= 7")
        if not self.zero_run_days > 0:
            raise ValueError("zero_run_days must be > 0")
        if self.point_max < 1:
            raise ValueError("point_max must be >= 1")
        if self.flat_max_h < self.flat_min_h:
            raise ValueError("flat_max_h must be >= flat_min_h")
        if not 0 <= self.flat_min_share < 1:
            raise ValueError("flat_min_share must be in [0, 1)")


def _slots(cadence_s: np.ndarray, slot_s: float) -> np.ndarray:
    """Profile slot width per meter: the cadence (at least ``slot_s``), a whole divisor of a day.
    The cadence is taken 1 % short: a 15-minute meter whose clock jitters is measured at 900.07 s,
    and 95 slots of 909 s would drift through the quarter hours."""
    c = np.where(np.isfinite(cadence_s) & (cadence_s > 0), cadence_s, slot_s)
    per_day = np.maximum(1, np.floor(DAY / np.maximum(0.99 * c, slot_s) + 1e-6))
    return DAY / per_day


def _phase(t: np.ndarray, seg: np.ndarray, slot_w: np.ndarray) -> np.ndarray:
    """Per meter: where in its slot (seconds from the slot's start) its readings are stamped, the
    circular mean of ``t mod slot``, within (−slot/2, slot/2] (about 0 for a meter that reads on the
    quarter hour, whatever its clock's jitter either side of it)."""
    n_seg = len(slot_w)
    if not len(t):
        return np.zeros(n_seg)
    w = slot_w[seg]
    a = 2 * np.pi * (t % w) / w
    c = np.bincount(seg, weights=np.cos(a), minlength=n_seg)
    s = np.bincount(seg, weights=np.sin(a), minlength=n_seg)
    ang = np.where((c != 0) | (s != 0), np.arctan2(s, c), 0.0)
    return ang / (2 * np.pi) * slot_w  # arctan2: within (−π, π]


def _log_load(x: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Load on a log scale: deviations are relative (a household's 3 kW oven hour and a
    building's 300 kW are alike), and a drop to zero lies ``log(typical / eps)`` below."""
    with quiet():
        return np.log(np.maximum(x, 0.0) + eps)


def _tail_limit(z: np.ndarray, seg: np.ndarray, n_seg: int, cad_s: np.ndarray, days: float) -> np.ndarray:
    """Per meter: the |z| exceeded once in ``days`` days of readings at its cadence, by an
    exponential tail over the 95th percentile (NaN-free; 0 where there is too little)."""
    v = pd.Series(np.abs(z))
    ok = np.isfinite(v.to_numpy())
    with quiet():
        u = v[ok].groupby(seg[ok]).quantile(0.95).reindex(range(n_seg)).to_numpy()
        over = v.to_numpy() - u[seg]
        sel = ok & (over > 0)
        beta = pd.Series(over[sel]).groupby(seg[sel]).mean().reindex(range(n_seg)).to_numpy()
        per_reading = np.where(np.isfinite(cad_s) & (cad_s > 0), cad_s, 3600.0) / (days * DAY)
        lim = u + beta * np.log(0.05 / per_reading)
    return np.nan_to_num(lim, nan=0.0)


def _dst_sundays(t: np.ndarray, lo_s: float, hi_s: float) -> np.ndarray:
    """Per time ``t`` (seconds, read as a wall clock): between ``lo_s`` and ``hi_s`` seconds into a
    Sunday on which one of the common daylight-saving rules changes the clocks: the last Sunday of
    March and of October (Europe, 01:00-03:00 local), the second Sunday of March and the first of
    November (North America, 02:00 and 01:00), the first Sunday of April and of October
    (Australia) and the last of September (New Zealand)."""
    ok = np.isfinite(t)
    day = np.floor(np.where(ok, t, 0.0) / DAY).astype(np.int64)
    sec = np.where(ok, t, 0.0) - day * DAY
    d = day.astype("datetime64[D]")
    month = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    sunday = (day + 3) % 7 == 6                       # 1970-01-01 was a Thursday
    rule = (((month == 3) | (month == 10)) & (dom >= 25)) | ((month == 3) & (dom >= 8) & (dom <= 14)) | \
        (((month == 11) | (month == 4) | (month == 10)) & (dom <= 7)) | ((month == 9) & (dom >= 24))
    return ok & sunday & rule & (sec >= lo_s) & (sec < hi_s)


def _isolation(y: np.ndarray, seg: np.ndarray, t: np.ndarray, cad: np.ndarray, z: np.ndarray | None = None,
               z_min: float = 0.0) -> np.ndarray:
    """Per reading (load on the log scale ``y``): how far it stands off both its neighbours on the
    same side, the smaller of its two distances, signed (+ above both, - below both); 0 where it
    lies between them or level with one; NaN where a neighbour (the meter's reading before or after
    it, within 1.5 cadences ``cad``, per reading) is missing. A one-reading spike or dip of a
    building's whole load stands off both; a busy hour of a home is one of a run, or its neighbours
    jump as far in the meter's normal data. ``z`` (per reading, in spreads off the profile): a
    reading yields only to a neighbour at least ``z_min`` off its profile on the side it stands off
    (see below); without it, to any neighbour."""
    n = len(y)
    out = np.full(n, np.nan)
    if n < 3:
        return out
    cad = np.nan_to_num(cad, nan=np.inf)
    with quiet():
        ok = (seg[1:-1] == seg[:-2]) & (t[1:-1] - t[:-2] <= 1.5 * cad[1:-1]) & \
             (seg[1:-1] == seg[2:]) & (t[2:] - t[1:-1] <= 1.5 * cad[1:-1])
        a, b = y[1:-1] - y[:-2], y[1:-1] - y[2:]
        j = np.where((a > 0) & (b > 0), np.minimum(a, b), np.where((a < 0) & (b < 0), np.maximum(a, b), 0.0))
    out[1:-1] = np.where(ok & np.isfinite(a) & np.isfinite(b), j, np.nan)
    # The reading next to a spike stands below both its neighbours too (on an evening ramp-down,
    # 15.9, 12.8, a motor start's 24.1, 13.0): a reading yields to a neighbour of the meter that
    # stands further off on the other side; the point is that neighbour. A neighbour on its
    # profile is no point: the ordinary hour between two spikes stands below both as far as they
    # stand above it, and the spikes do not yield to it (with ``z``).
    yields = np.zeros(n, bool)
    with quiet():
        can = np.ones(n, bool) if z is None else (np.sign(z) == np.sign(out)) & (np.abs(z) >= z_min)
        for k in (1, -1):                      # the previous reading, then the next
            nb = np.roll(out, k)
            same = np.roll(seg, k) == seg
            same[0 if k == 1 else -1] = False
            yields |= same & np.roll(can, k) & (np.sign(nb) == -np.sign(out)) & (np.abs(nb) > np.abs(out))
    return np.where(yields, 0.0, out)


def _day_cumsum(flag: np.ndarray, seg: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Per reading: how many ``flag`` readings its meter has had on its day so far, this one
    included (rows sorted by meter and time)."""
    n = len(flag)
    if not n:
        return np.zeros(0, np.int64)
    start = np.ones(n, bool)
    start[1:] = (seg[1:] != seg[:-1]) | (day[1:] != day[:-1])
    c = np.cumsum(flag.astype(np.int64))
    before = np.where(start, c - flag.astype(np.int64), 0)
    np.maximum.accumulate(np.where(start, np.arange(n), 0), out=(idx := np.zeros(n, np.int64)))
    return c - before[idx]


def _carry(onset: np.ndarray, member: np.ndarray, seg: np.ndarray, t: np.ndarray, max_s: float) -> np.ndarray:
    """``onset`` carried forward through each run of consecutive ``member`` readings of a meter,
    for at most ``max_s`` seconds after the run's first flagged reading."""
    n = len(onset)
    if not n:
        return onset
    brk = ~member
    brk[1:] |= seg[1:] != seg[:-1]
    brk[0] = True
    # index of the last flagged onset, reset at every break
    last = np.where(onset, np.arange(n), -1)
    rid = np.cumsum(brk)
    lastm = pd.Series(last).where(last >= 0).groupby(rid).ffill().to_numpy()
    ok = np.isfinite(lastm) & member
    start_t = t[np.where(ok, lastm, 0).astype(np.int64)]
    return ok & (t - start_t <= max_s)


#: Values closer than this (in the channel's unit: 1 mW on ``p_kw``) are one value. Power taken as
#: a float register's difference carries the register's rounding: OPSD's 1-Wh register steps
#: read 0.44699999999920 kWh, so equal hours compared unequal (a repeat share of 0.5 % instead of
#: 2.3 %, a "resolution" of 1e-15) and three equal night hours, ordinary at 1 Wh, read as a
#: frozen meter. Far under any meter's resolution, far over a float's rounding of registers to 1e9.
SNAP = 1e-6


def _snap(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to :data:`SNAP`: equal readings compare equal (frozen runs, repeat share,
    resolution) whatever float noise the source added."""
    with quiet():
        return np.round(np.asarray(x, float) / SNAP) * SNAP


def _flat_runs(x: np.ndarray, seg: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Per reading: how many readings in a row (this one included, at most ``cap`` per row) have
    carried exactly this non-zero value."""
    n = len(x)
    same = np.zeros(n, bool)
    if n > 1:
        with quiet():
            same[1:] = (x[1:] == x[:-1]) & (seg[1:] == seg[:-1]) & (x[1:] != 0) & np.isfinite(x[1:])
    # run length via the index of the last "break"
    idx = np.where(~same, np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    run = np.arange(n) - idx + 1
    run = np.where(np.isfinite(x) & (x != 0), run, 0)
    return np.minimum(run, cap)


def _day_grid(seg: np.ndarray, t: np.ndarray, n_seg: int) -> tuple[np.ndarray, int] | None:
    """Each reading's cell in a meters x calendar-days grid counted from each meter's first day:
    ``(flat index, days)``; None when there are no readings or the span is absurd (over 5e7 cells:
    no day-based adaptation rather than a huge matrix)."""
    if not len(t):
        return None
    day = np.floor(t / DAY).astype(np.int64)
    d0 = np.full(n_seg, np.iinfo(np.int64).max)
    np.minimum.at(d0, seg, day)
    rel = day - d0[seg]
    n_days = int(rel.max()) + 1
    if n_days * n_seg > 50_000_000:
        return None
    return seg * n_days + rel, n_days


#: Channels a reading that caught a motor start reads for a few seconds (not judged there, see the module notes).
SNAPSHOT_CHANNELS = ("p_kw", "q_kvar", "s_kva", *PHASE_CHANNELS[3:])


class SeasonalProfile(Detector):
    name = "seasonal_profile"
    code = "WARN_CONSUMPTION_ANOMALY"
    config_cls = SeasonalProfileConfig
    requires = ("p_kw",)
    # The register stands in for the power; the phases and the power factor tell a motor start.
    reads_also = ("p_kw", "e_kwh", *PHASE_CHANNELS, "pf")
    judges = ("consumption",)
    blank_input = ("p_kw",)
    state_version = 2  # 2: slots by nominal time (slot_phase_s)
    # Its reach (the levels of ~13 weeks of whole days and the recalibration tail) is longer than a
    # store keeps raw readings by default (30 days): after a compaction it judges the raw readings
    # as a meter's first, as it does a new meter's, rather than not at all (``Detector.compacted_origin``).
    compacted_origin = True

    def channels(self) -> tuple[str, ...]:
        return (self.config.channel,)

    # ------------------------------------------------------------------------------ reach

    def _flat_cap(self, st: dict) -> int:
        return int(st.get("flat_need") or 3) + 1

    def reach(self, meters) -> Reach:
        n = len(meters)
        back = np.full(n, max((4 * self.config.level_days + 3) * DAY + self.config.recal_days * DAY,
                              (self.config.zero_routine_days + 1) * DAY))
        back_n = np.array([self._flat_cap(self.state_.get(m) or {}) for m in meters], np.int64)
        # A reading on a ramp or in a stretch is told by the reading after it (``_on_ramp``,
        # ``_plateau``), a point by the two after it (``_isolation``: the next reading may stand
        # further off); one in a frozen run by the run's length ahead of it (at least 3).
        return Reach(back, back_n, np.zeros(n), np.maximum(2, back_n))

    def cadence_note(self, cadence_s: float) -> str | None:
        c = self.config
        if cadence_s < c.min_cadence_s * 0.95:
            return (f"{self.name}: not judged at {cadence_s:.0f} s cadence (judges {c.min_cadence_s:.0f} s to "
                    f"{c.max_cadence_s:.0f} s; finer readings are judged by baseline_macd and learned_ensemble)")
        if cadence_s > c.max_cadence_s * 1.05:
            return (f"{self.name}: not judged at {cadence_s:.0f} s cadence: a profile through the day needs "
                    f"readings at least every {c.max_cadence_s / 3600:.0f} h")
        return None

    def fit(self, frame: pd.DataFrame) -> "SeasonalProfile":
        super().fit(frame)
        # A meter judged on its energy register lacks no channel (the base marks it as lacking p_kw).
        for st in self.state_.values():
            if st.get("from_register") and st.get("lacks") == [self.config.channel]:
                st["lacks"] = []
        return self

    def idle(self, st: dict) -> bool:
        # Its scores are NaN wherever the fit did not judge the meter (a cadence outside
        # min/max_cadence_s, no profile): at 5-min readings that was all of its work, for nothing.
        return not st.get("judged")

    def state_note(self, meter: str, st: dict) -> str | None:
        if st.get("judged") and (st.get("frozen_share") or 0) > self.config.max_frozen_share:
            return (f"{self.name}: {meter}: {100 * st['frozen_share']:.0f} % of its normal period repeats one value "
                    "(a frozen logger): no profile learned, judged for zero readings and flat runs only; refit it "
                    "on a period of real readings (`wattwatch fit --normal-start/--normal-end`)")
        if st.get("judged") and (st.get("history_days") or 0) < self.config.min_history_days:
            return (f"{self.name}: {meter}: profile learned from {st.get('history_days', 0):.0f} day(s) only "
                    f"({st.get('days_by_type')} weekdays/Saturdays/Sundays): single readings and unusual days are "
                    f"judged from {self.config.min_history_days:.0f} days of normal on; fit on several weeks "
                    "(`wattwatch fit --days 56` or --normal-end)")
        return None

    # ------------------------------------------------------------------------------ pieces

    def _zones(self, df: pd.DataFrame) -> list[str]:
        return [str((self.state_.get(m) or {}).get("timezone") or "") for m in meter_names(df)]

    def _keys(self, df: pd.DataFrame, slot_w: np.ndarray, phase: np.ndarray, zones: list[str] | None = None):
        """(seg, t, day type, slot, local nominal time) per reading, slots and days on the meter's
        wall clock (``timezone``, kept in its state; UTC when none was given: a building's 08:00
        start is then one slot earlier in summer, and its days end at UTC midnight).
        A reading belongs to the slot of its nominal time:
        its time less the meter's phase (where in the slot its readings fall, :func:`_phase`),
        rounded to the nearest slot. A 15-minute meter whose clock stamps 13:14:59 one day and
        13:15:01 the next reads the same slot on both (floor put them in two: one slot of a day
        type then saw no reading while learned and borrowed the weekday's)."""
        t = df["_t"].to_numpy(float)
        seg = df["_seg"].to_numpy()
        w = slot_w[seg]
        tn = t - np.nan_to_num(phase)[seg] + w / 2
        zones = self._zones(df) if zones is None else zones
        for z in sorted(set(zones) - {"", "UTC"}):
            rows = np.flatnonzero(np.array([zz == z for zz in zones], bool)[seg])
            tn[rows] += local_offset_s(t[rows], z)
        slot = np.floor((tn % DAY) / w + 1e-9).astype(np.int64)
        return seg, t, day_type(tn).astype(np.int64), np.minimum(slot, 95), tn

    def _near_clock_change(self, df: pd.DataFrame, t: np.ndarray, seg: np.ndarray, slot_w: np.ndarray) -> np.ndarray:
        """Per reading: whether its meter's zone (``timezone``) changes its UTC offset within 1.5
        slot widths of it (never for a fixed-offset zone); on a meter without a zone (UTC), with
        ``dst_guess``, whether it is within 1.5 slot widths of 01:00-04:00 on a Sunday when one of
        the common daylight-saving rules changes the clocks (:func:`_dst_sundays`), its times read
        as a wall clock."""
        near = np.zeros(len(t), bool)
        zones = self._zones(df)
        for z in sorted(set(zones) - {"", "UTC"}):
            rows = np.flatnonzero(np.array([zz == z for zz in zones], bool)[seg])
            w = 1.5 * slot_w[seg[rows]]
            near[rows] = local_offset_s(t[rows] - w, z) != local_offset_s(t[rows] + w, z)
        if self.config.dst_guess and len(t):
            rows = np.flatnonzero(np.array([zz in ("", "UTC") for zz in zones], bool)[seg])
            if len(rows):
                w = 1.5 * np.nan_to_num(slot_w[seg[rows]], nan=3600.0)
                tt = t[rows]
                near[rows] = _dst_sundays(tt - w, 3600.0, 4 * 3600.0) | _dst_sundays(tt + w, 3600.0, 4 * 3600.0) | \
                    _dst_sundays(tt, 3600.0, 4 * 3600.0)
        return near

    def _level(self, r, seg, t, n_seg):
        """Per reading: the median over the previous ``level_days`` calendar days of each day's
        median residual ``r`` (log load minus log profile; 0 where there is none yet), clamped to
        ``log(level_min)`` .. ``log(level_max)``."""
        c = self.config
        grid = _day_grid(seg, t, n_seg)
        if grid is None:
            return np.zeros(len(t))
        flat, n_days = grid
        ok = np.isfinite(r)
        daily = np.full(n_seg * n_days, np.nan)
        if ok.any():
            g = pd.Series(r[ok]).groupby(flat[ok])
            med, cnt = g.median(), g.size()
            med = med[cnt >= 3]
            daily[med.index.to_numpy()] = med.to_numpy()
        days = pd.DataFrame(daily.reshape(n_seg, n_days).T)
        roll = days.rolling(c.level_days, min_periods=max(1, c.level_days // 2))
        lev = roll.median().shift(1).to_numpy().T.ravel()[flat]
        lev = np.where(np.isfinite(lev), lev, 0.0)
        # How much whole days have moved lately: the robust spread (10th to 90th percentile / 2.563)
        # of the daily level over the previous ``recal_days`` days (NaN until two weeks are seen).
        w = max(int(c.recal_days), 14)
        with quiet():
            r10 = days.rolling(w, min_periods=14).quantile(0.1).shift(1).to_numpy().T.ravel()[flat]
            r90 = days.rolling(w, min_periods=14).quantile(0.9).shift(1).to_numpy().T.ravel()[flat]
        day_sd = (r90 - r10) / 2.563
        return np.clip(lev, np.log(c.level_min), np.log(c.level_max)), day_sd

    def _rolling_limit(self, z, seg, t, cad):
        """Per reading: the |z| limit the previous ``recal_days`` days' tail gives (as
        :func:`_tail_limit`: exponential over the 95th percentile, its scale from the 95th and
        99th; NaN until a week is seen)."""
        c = self.config
        if not len(z) or c.recal_days <= 0:
            return np.full(len(z), np.nan)
        cad_ok = np.where(np.isfinite(cad) & (cad > 0), cad, 3600.0)
        need = np.maximum(20, 7 * DAY / cad_ok)  # per meter: a week of its readings
        g = grouped_rolling(np.abs(z), seg, time_index(t), pd.Timedelta(days=c.recal_days).value,
                            closed="left", min_periods=1)
        q95, q99 = g.quantile(0.95).to_numpy(), g.quantile(0.99).to_numpy()
        enough = g.count().to_numpy() >= need[seg]
        q95, q99 = np.where(enough, q95, np.nan), np.where(enough, q99, np.nan)
        beta = np.maximum(q99 - q95, 0) / np.log(5.0)
        per_reading = cad_ok[seg] / (c.tail_days * DAY)
        return q95 + beta * np.log(0.05 / per_reading)

    def _recent_share(self, hit, known, seg, t, n_seg, count: bool = False, days: int | None = None):
        """Per reading: the share of ``hit`` among the known readings of the previous
        ``level_days`` (or ``days``) calendar days (0 where there are none); with ``count``, how many."""
        grid = _day_grid(seg, t, n_seg)
        if grid is None:
            return np.zeros(len(t))
        flat, n_days = grid
        H = np.bincount(flat, weights=(hit & known).astype(float), minlength=n_seg * n_days).reshape(n_seg, n_days)
        N = np.bincount(flat, weights=known.astype(float), minlength=n_seg * n_days).reshape(n_seg, n_days)
        k = days or self.config.level_days
        h = pd.DataFrame(H.T).rolling(k, min_periods=1).sum().shift(1).to_numpy().T.ravel()[flat]
        if count:
            return np.nan_to_num(h)
        n = pd.DataFrame(N.T).rolling(k, min_periods=1).sum().shift(1).to_numpy().T.ravel()[flat]
        with quiet():
            return np.where(n > 0, h / n, 0.0)

    def _power(self, df: pd.DataFrame, reg: np.ndarray | None = None) -> np.ndarray:
        """The judged channel; on the meters marked ``reg`` (per meter: no power channel, an energy
        register), the mean kW of each interval from the register's step (``e_kwh`` difference over
        the time since the previous reading; NaN across a reset, a first reading or a gap of more
        than twice the meter's cadence)."""
        c = self.config
        x = df[c.channel].to_numpy(float) if c.channel in df.columns else np.full(len(df), np.nan)
        if reg is None or not np.any(reg) or "e_kwh" not in df.columns or not len(x):
            return _snap(x)
        seg = df["_seg"].to_numpy()
        e, dt = df["e_kwh"].to_numpy(float), df["_dt"].to_numpy(float)  # _dt: NaN at a meter's first row
        de = np.r_[np.nan, np.diff(e)]
        cad = np.nan_to_num(self._param(df, "cadence_s"), nan=3600.0)
        with quiet():
            p = np.where((de >= 0) & (dt > 0) & (dt <= 2 * cad[seg]), de / dt * 3600.0, np.nan)
        return _snap(np.where(np.asarray(reg, bool)[seg], p, x))

    def _residual(self, df: pd.DataFrame, prof: np.ndarray, spread: np.ndarray, slot_w: np.ndarray,
                  limit: np.ndarray, eps: np.ndarray, phase: np.ndarray, zones: list[str] | None = None,
                  reg: np.ndarray | None = None):
        x = self._power(df, reg)
        seg, t, dt, slot, tn = self._keys(df, slot_w, phase, zones)
        y = _log_load(x, eps[seg])
        base = prof[seg, dt, slot]
        sp = spread[seg, dt, slot]
        lev, day_sd = self._level(y - base, seg, t, len(prof))
        with quiet():
            z = (y - base - lev) / sp
        # The shape through the day moves with the seasons too (a heating system starting an hour
        # earlier): each slot's residual is taken relative to the median residual of the same slot
        # on the previous days of its class (weekdays: the last ``level_days`` days; weekends:
        # the last ``3 x level_days`` days, so as many samples), never the reading's own day.
        # Accepted-normal readings only: those within ``accept_k`` x the reading limit (a zero run
        # does not become the profile, and its end does not read as a new anomaly; a moderate new
        # habit, an hour that now runs 30 % lower every night, does, within days).
        accepted = np.where(np.abs(z) < self.config.accept_k * limit[seg], z, np.nan)
        shift = self._slot_median(accepted, seg, slot, t, dt > 0)
        z = z - shift
        with quiet():
            expected = np.exp(base + lev + np.where(shift != 0, shift * sp, 0.0)) - eps[seg]
        # A weekday that has run like one of the meter's own weekend days since midnight (a public
        # holiday, a bridge day, a school closed for the day: every reading so far within
        # ``holiday_z`` spreads of that profile) is judged against that day's profile while it
        # keeps doing so: a building closed as on a Sunday is not a consumption anomaly.
        # Its first reading that the weekend profile does not fit makes it a weekday again for the
        # rest of the day (a working day's one-hour drop to weekend load is still judged as one).
        if len(z):
            day = np.floor(tn / DAY).astype(np.int64)
            weekday = dt == 0
            for k in (1, 2):
                with quiet():
                    zk = (y - prof[seg, k, slot] - lev) / spread[seg, k, slot]
                    misfit = weekday & np.isfinite(zk) & ~(np.abs(zk) < self.config.holiday_z)
                    use = weekday & np.isfinite(zk) & (_day_cumsum(misfit, seg, day) == 0) & (np.abs(zk) < np.abs(z))
                if use.any():
                    z = np.where(use, zk, z)
                    with quiet():
                        expected = np.where(use, np.exp(prof[seg, k, slot] + lev) - eps[seg], expected)
                    sp = np.where(use, spread[seg, k, slot], sp)
        # (also the spread each reading was judged with, and the recent spread of whole days)
        return x, z, expected, np.exp(lev), seg, t, sp, day_sd, dt

    def _slot_median(self, z, seg, slot, t, weekend):
        c = self.config
        if not len(z):
            return np.zeros(0)
        out = np.zeros(len(z))
        ns = time_index(t)
        for cls, days in ((False, c.level_days), (True, 3 * c.level_days)):
            rows = np.flatnonzero(weekend == cls)
            if not len(rows):
                continue
            order = rows[np.lexsort((t[rows], slot[rows], seg[rows]))]
            key = seg[order] * 96 + slot[order]
            with quiet():
                r = grouped_rolling(z[order], key, ns[order], pd.Timedelta(days=days).value,
                                    closed="left", min_periods=3).median()
            out[order] = np.nan_to_num(r.to_numpy(), nan=0.0)
        return out

    def _day_mean(self, z: np.ndarray, seg: np.ndarray, t: np.ndarray, clip: np.ndarray) -> np.ndarray:
        """Median of the clipped residual over the trailing 24 h (this reading included; rows are
        sorted by meter and time, and grouped rolling keeps that order)."""
        zc = np.clip(z, -clip[seg], clip[seg])
        g = grouped_rolling(zc, seg, time_index(t), pd.Timedelta(seconds=86400).value, min_periods=1)
        out, cnt = g.median().to_numpy(), g.count().to_numpy()
        return np.where(cnt >= 3, out, np.nan)

    # ------------------------------------------------------------------------------ fit

    def _fit(self, df: pd.DataFrame) -> dict:
        c = self.config
        names = meter_names(df)
        n_seg = len(names)
        cad = self._param(df, "cadence_s")
        judged = (cad >= c.min_cadence_s * 0.95) & (cad <= c.max_cadence_s * 1.05)
        if not judged.all():
            # A meter at a cadence this detector does not judge (5-min readings, say) learns no
            # profile: it is idle() in the core, which never reads the profile, so its fit was all
            # waste (1.1-1.7 s of the 2.7 s fit of the 120-meter `bench fleet`). Its state says so.
            keep = judged[df["_seg"].to_numpy()]
            out = {m: {"judged": False, "slot_s": float(w), "timezone": c.timezone, "level_days": int(c.level_days)}
                   for m, w, j in zip(names, _slots(cad, c.slot_s), judged) if not j}
            if keep.any():
                out.update(self._fit(prepare(df[keep])))
            return out
        slot_w = _slots(cad, c.slot_s)
        # A meter with no power reading but an energy register (hourly AMI exports often carry the
        # register alone) is judged on the register's interval energy as mean kW.
        reg = np.zeros(n_seg, bool)
        if c.channel == "p_kw" and "e_kwh" in df.columns and len(df):
            s0, _ = seg_bounds(df["_seg"].to_numpy())
            has_p = np.logical_or.reduceat(np.isfinite(df[c.channel].to_numpy(float)), s0) if c.channel in df.columns \
                else np.zeros(n_seg, bool)
            has_e = np.logical_or.reduceat(np.isfinite(df["e_kwh"].to_numpy(float)), s0)
            reg = ~has_p & has_e
        x = self._power(df, reg)
        phase = _phase(df["_t"].to_numpy(float), df["_seg"].to_numpy(), slot_w)
        seg, t, dt, slot, tn = self._keys(df, slot_w, phase, [c.timezone] * n_seg)
        ok = np.isfinite(x)
        with quiet():
            typical = pd.Series(np.abs(x[ok])).groupby(seg[ok]).median().reindex(range(n_seg)).to_numpy()
            high = pd.Series(np.abs(x[ok])).groupby(seg[ok]).quantile(0.9).reindex(range(n_seg)).to_numpy()
            top = pd.Series(x[ok]).groupby(seg[ok]).quantile(0.999).reindex(range(n_seg)).to_numpy()
            # The home test's two percentiles (``peak_ratio``), of the signed readings (a home whose
            # panels export 2-3 kW at noon is busy at its evening load, not at that export) that
            # caught no motor start (a workshop's 3-6x starting-current snapshots are its 99.9th
            # percentile at 15 min: three of a 15-min fleet's 71 commercial meters read as homes).
            calm = ok & ~(inrush(df) & ~reg[seg]) if c.channel in SNAPSHOT_CHANNELS and len(df) else ok
            p90 = pd.Series(x[calm]).groupby(seg[calm]).quantile(0.9).reindex(range(n_seg)).to_numpy()
            top_calm = pd.Series(x[calm]).groupby(seg[calm]).quantile(0.999).reindex(range(n_seg)).to_numpy()
            # As low as the meter's own readings go while normal (their 1st percentile): a stretch
            # at that level is the meter at its own base load, never a glitch (``_plateau``).
            # Of the readings above zero: zeros are no base load (an outage or a dropout the
            # profiled week held: three hourly zeros of a home's 169 made its 1st percentile 0, and
            # its standby, 0.15-0.26 kW under ``eps``, was judged reading by reading again: "a
            # single reading dropping to 0.1857 where 4.289 was expected", 1117 M-00026 at 60 min;
            # lvs). A meter that read below zero while normal (it exports) has none, as before.
            pos = calm & (x > 0)
            g = pd.Series(x[pos]).groupby(seg[pos])
            low = g.quantile(0.01).reindex(range(n_seg)).to_numpy()
            low10 = g.quantile(0.1).reindex(range(n_seg)).to_numpy()
            exports = pd.Series(x[calm] < 0).groupby(seg[calm]).any().reindex(range(n_seg)).to_numpy()
            low = np.where(exports == True, np.nan, low)  # noqa: E712 (NaN where no reading)
            # The base load's own scatter: its 1st percentile is where the lowest 1 % of the meter's
            # readings begin, not a level its base load never goes under; ``_plateau`` takes a stretch
            # down to as far below the 1st percentile as the 1st lies below the 10th (fl), at most
            # to half of it (``LOW_EXT_MIN_SHARE``).
            low_ext = np.where(np.isfinite(low) & (low > 0) & np.isfinite(low10),
                               low * np.maximum(low / low10, LOW_EXT_MIN_SHARE), low)
        typical = np.where(np.isfinite(typical) & (typical > 0), typical, 1.0)
        # The log offset from the meter's busy load (90th percentile), not its median: a home
        # whose solar panels cover it at noon reads near zero then, and 0.5 kW over 0.01 kW is no
        # 50-fold anomaly.
        eps = c.eps_rel * np.where(np.isfinite(high) & (high > 0), high, typical)
        y = _log_load(x, eps[seg])
        starts, ends = seg_bounds(seg)
        days_by_type = np.zeros((n_seg, 3), np.int64)
        day = np.floor(tn / DAY).astype(np.int64)  # the meter's own calendar days
        res = np.zeros(n_seg)  # reading resolution: the smallest step between distinct values
        for k, (a, b) in enumerate(zip(starts, ends)):  # per meter, each step vectorised
            u = np.unique(x[a:b][np.isfinite(x[a:b])])
            if len(u) > 1:
                res[k] = float(np.min(np.diff(u)))
            dd = np.unique(day[a:b][ok[a:b]])
            days_by_type[k] = np.bincount(day_type(dd * DAY + 1).astype(np.int64), minlength=3)[:3]
        # Saturdays and Sundays pooled while either has fewer than ``min_days`` days.
        pooled_we = days_by_type[:, 1:].min(axis=1) < c.min_days
        d_eff = np.where((dt == 2) & pooled_we[seg], 1, dt)
        long = pd.DataFrame({"s": seg[ok], "d": d_eff[ok], "h": slot[ok], "x": y[ok]})
        keys = [long["s"], long["d"], long["h"]]
        g = long.groupby(["s", "d", "h"])["x"]
        med, cnt = g.median(), g.size()
        prof = np.full((n_seg, 3, 96), np.nan)
        spread = np.full((n_seg, 3, 96), np.nan)
        count = np.zeros((n_seg, 3, 96))
        if len(med):
            idx = med.index.to_frame().to_numpy()
            prof[idx[:, 0], idx[:, 1], idx[:, 2]] = med.to_numpy()
            count[idx[:, 0], idx[:, 1], idx[:, 2]] = cnt.reindex(med.index).to_numpy()
            dev = (long["x"] - med.reindex(pd.MultiIndex.from_frame(long[["s", "d", "h"]])).to_numpy()).abs()
            mad = dev.groupby(keys).median()
            spread[idx[:, 0], idx[:, 1], idx[:, 2]] = 1.4826 * mad.reindex(med.index).to_numpy()
        prof[:, 2] = np.where(pooled_we[:, None], prof[:, 1], prof[:, 2])
        spread[:, 2] = np.where(pooled_we[:, None], spread[:, 1], spread[:, 2])
        count[:, 2] = np.where(pooled_we[:, None], count[:, 1], count[:, 2])
        prof = np.where(np.isfinite(prof), prof, prof[:, :1, :])   # unseen day type -> weekday
        spread = np.where(np.isfinite(spread), spread, spread[:, :1, :])
        count = np.where(count > 0, count, count[:, :1, :])
        # A slot's spread from a few days is itself noisy (one Saturday has none): shrunk towards
        # the meter's typical slot spread as if ``min_days`` more days had shown that.
        with quiet():
            pooled = np.nanmedian(np.where(count >= 2, spread, np.nan).reshape(n_seg, -1), axis=1)
            pooled = np.where(np.isfinite(pooled), pooled, np.nanmedian(spread.reshape(n_seg, -1), axis=1))
            n0 = float(c.min_days)
            spread = np.sqrt((count * np.nan_to_num(spread) ** 2 + n0 * np.nan_to_num(pooled)[:, None, None] ** 2)
                             / np.maximum(count + n0, 1))
        # Least spread (log units): ``floor_rel`` of the load, and one resolution step at typical load.
        floor = np.maximum(c.floor_rel, np.log1p(res / typical))
        spread = np.maximum(np.nan_to_num(spread, nan=np.inf), floor[:, None, None])
        # Calibration on the normal period itself, judged as later readings will be.
        x_, z, _, _, _, _, _, _, _ = self._residual(df, prof, spread, slot_w, np.full(n_seg, c.z_min), eps, phase,
                                                 [c.timezone] * n_seg, reg)
        clip = np.full(n_seg, c.z_min)
        zd = self._day_mean(z, seg, t, clip)
        # The limits: where the normal period's tail says a reading (a 24-h mean) is rarer than
        # once in ``tail_days`` days, from an exponential fitted to the top 5 % of |z| (peaks over
        # threshold): heavy-tailed household load gets a high limit, a steady building a low one,
        # and every meter the same rate of false alarms. At least ``z_min`` / ``day_z_min``.
        lim_z = np.maximum(c.z_min, _tail_limit(z, seg, n_seg, cad_s=cad, days=c.tail_days))
        lim_d = np.maximum(c.day_z_min, _tail_limit(zd, seg, n_seg, cad_s=cad, days=c.tail_days))
        lim_z, lim_d = np.stack([lim_z, lim_z]), np.stack([lim_d, lim_d])
        # How far a reading stands off both its neighbours (log units) once in ``tail_days`` days of
        # the meter's normal data, by the same tail: a hospital's hours follow each other within a
        # few per cent, a home's jump by half with every kettle and oven.
        iso = _isolation(_log_load(x_, eps[seg]), seg, t, cad[seg], z, c.iso_z)
        lim_iso = np.maximum(c.iso_min, _tail_limit(iso, seg, n_seg, cad_s=cad, days=c.tail_days))
        # Zero readings: how often the meter read (near) zero while normal. A meter that never
        # did (a whole building) and now reads zero has lost its supply, its CT or its logger.
        with quiet():
            near0 = (np.abs(x) <= c.zero_rel * typical[seg]) & ok
            zshare = np.bincount(seg, weights=near0.astype(float), minlength=n_seg) / \
                np.maximum(np.bincount(seg, weights=ok.astype(float), minlength=n_seg), 1)
            # ... and in how many separate runs: a building switched off every night has dozens,
            # an outage left inside the normal period is one.
            z_on = near0.copy()
            if len(z_on) > 1:
                z_on[1:] &= ~(near0[:-1] & (seg[1:] == seg[:-1]))
            zruns = np.bincount(seg, weights=z_on.astype(float), minlength=n_seg)
        # Flat runs seen while normal: a frozen run must be longer than the longest of them.
        cad_ok = np.where(np.isfinite(cad) & (cad > 0), cad, 3600.0)
        lo_n = np.maximum(3, np.ceil(c.flat_min_h * 3600.0 / cad_ok)).astype(np.int64)
        hi_n = np.maximum(lo_n, np.ceil(c.flat_max_h * 3600.0 / cad_ok)).astype(np.int64)
        runs = _flat_runs(x, seg, np.full(len(x), 10**9)[seg] if len(x) else np.zeros(0))
        # The longest run that recurred (the second longest): a run seen once may be the frozen
        # logger left inside the normal period (a day of one constant fill), which must not teach
        # that frozen runs shorter than a day are normal; a meter that really holds a value for
        # hours does so more than once.
        longest = np.zeros(n_seg, np.int64)
        if len(runs):
            end = np.ones(len(runs), bool)
            end[:-1] = ~((runs[1:] == runs[:-1] + 1) & (seg[1:] == seg[:-1]))
            rs, rl = seg[end & (runs > 0)], runs[end & (runs > 0)]
            order = np.lexsort((-rl, rs))
            rs, rl = rs[order], rl[order]
            rank = np.arange(len(rs)) - np.searchsorted(rs, rs, side="left")
            second = rank == 1
            longest[rs[second]] = rl[second]
        # ... and rarer than once in ``tail_days`` days by chance: a meter whose readings repeat
        # their predecessor exactly in a share p of the normal period (a household's hourly energy
        # to 5 Wh, whose night base load repeats) makes a run of n by chance about
        # readings x p^(n-1) times; an eight-week normal period need not have shown the longest.
        with quiet():
            both = np.zeros(len(x), bool)
            rep = np.zeros(len(x), bool)
            if len(x) > 1:
                both[1:] = (seg[1:] == seg[:-1]) & ok[1:] & ok[:-1] & (x[1:] != 0) & (x[:-1] != 0)
                rep[1:] = both[1:] & (x[1:] == x[:-1])
            p_rep = np.bincount(seg, weights=rep.astype(float), minlength=n_seg) / \
                np.maximum(np.bincount(seg, weights=both.astype(float), minlength=n_seg), 1)
            per_tail = c.tail_days * DAY / cad_ok
            by_chance = 1 + np.ceil(np.log(0.05 / per_tail) / np.log(np.clip(p_rep, 1e-12, 0.999)))
            # ... and per kind of day: a steady weekend repeats its predecessor far more often than
            # the working week (BDG2 office at 0.5 kWh: 7 % of weekend hours, 1.2 % of weekday
            # ones), so four equal Sunday hours at its base load come by chance.
            cls = seg * 2 + (dt > 0)
            p_cls = (np.bincount(cls, weights=rep.astype(float), minlength=2 * n_seg)
                     / np.maximum(np.bincount(cls, weights=both.astype(float), minlength=2 * n_seg), 1)).reshape(n_seg, 2)
            chance_cls = 1 + np.ceil(np.log(0.05 / per_tail[:, None]) / np.log(np.clip(p_cls, 1e-12, 0.999)))
        by_chance = np.where(p_rep > 0, np.nan_to_num(by_chance, nan=0.0), 0).astype(np.int64)
        chance_cls = np.where(p_cls > 0, np.nan_to_num(chance_cls, nan=0.0), 0).astype(np.int64)
        # A normal period that is mostly one repeated value (a logger that was frozen while the
        # meter was being learned) teaches no profile: such a meter is judged for zeros and flat
        # runs only, and a notice says to refit it on real readings.
        in_flat = (runs >= 3) & ok if len(runs) else np.zeros(0, bool)
        frozen_share = np.bincount(seg, weights=in_flat.astype(float), minlength=n_seg) / \
            np.maximum(np.bincount(seg, weights=ok.astype(float), minlength=n_seg), 1)
        # Nor how long the meter's own readings repeat: its runs and repeat share are the frozen
        # logger's (a repeat share of 1 made the need a whole day, and the half-day fills of a
        # BDG2 meter learned on a frozen spring passed). It needs the least run, ``flat_min_h``.
        flat_need = np.where(frozen_share > c.max_frozen_share, lo_n,
                             np.clip(np.maximum(longest + 1, by_chance), lo_n, hi_n))
        # Per kind of day (weekdays, weekends): never less than that, more where that kind of day
        # repeats more by chance; ``flat_need`` is the larger (the runs are counted to it + 1).
        need_days = np.where((frozen_share > c.max_frozen_share)[:, None], flat_need[:, None],
                             np.clip(np.maximum(flat_need[:, None], chance_cls), lo_n[:, None], hi_n[:, None]))
        flat_need = need_days.max(axis=1)
        out = {}
        for k, m in enumerate(names):
            hist = float(len(np.unique(day[starts[k]:ends[k]][ok[starts[k]:ends[k]]])))
            out[m] = {"judged": bool(judged[k] and np.isfinite(prof[k]).any()), "slot_s": float(slot_w[k]),
                      "slot_phase_s": float(phase[k]), "timezone": c.timezone,
                      "profile": prof[k], "spread": np.where(np.isfinite(spread[k]), spread[k], np.nan),
                      "typical": float(typical[k]), "top": float(top[k]), "p90": float(p90[k]), "top_calm": float(top_calm[k]), "low": float(low[k]), "low_ext": float(low_ext[k]), "eps": float(eps[k]), "zero_share": float(zshare[k]),
                      "zero_runs": int(zruns[k]),
                      "frozen_share": float(frozen_share[k]), "resolution": float(res[k]),
                      "from_register": bool(reg[k]),
                      "limit_z": float(lim_z[0, k]), "limit_z_low": float(lim_z[1, k]),
                      "limit_day": float(lim_d[0, k]), "limit_day_low": float(lim_d[1, k]), "flat_need": int(flat_need[k]),
                      "limit_iso": float(lim_iso[k]),
                      "flat_need_days": need_days[k].astype(int).tolist(),
                      "history_days": hist, "repeat_share": float(p_rep[k]), "days_by_type": days_by_type[k].tolist(),
                      "weekend_pooled": bool(pooled_we[k]),
                      "level_days": int(c.level_days)}
        return out

    # ------------------------------------------------------------------------------ score

    def _parts(self, df: pd.DataFrame):
        c = self.config
        n_seg = len(meter_names(df))
        judged = self._param(df, "judged", 0.0) > 0
        prof = self._param_array(df, "profile", (3, 96))
        spread = self._param_array(df, "spread", (3, 96))
        spread = np.where(np.isfinite(spread), spread, np.inf)
        slot_w = self._param(df, "slot_s", c.slot_s)
        lim_z, lim_d = self._param(df, "limit_z", c.z_min), self._param(df, "limit_day", c.day_z_min)
        low_z, low_d = self._param(df, "limit_z_low", c.z_min), self._param(df, "limit_day_low", c.day_z_min)
        flat_need = np.nan_to_num(self._param(df, "flat_need", 3.0), nan=3.0)
        eps = np.nan_to_num(self._param(df, "eps", 0.1), nan=0.1)
        phase = np.nan_to_num(self._param(df, "slot_phase_s", 0.0))
        reg = np.nan_to_num(self._param(df, "from_register", 0.0)) > 0
        x, z, expected, lev, seg, t, sp, day_sd, dt = self._residual(df, prof, spread, slot_w, np.minimum(lim_z, low_z), eps,
                                                                 phase, reg=reg)
        zd = self._day_mean(z, seg, t, np.minimum(lim_z, low_z))
        # A frozen run is reported whole: each of its readings carries the run's full length (to
        # ``flat_need`` + 1), counted back and ahead, so the alert starts where the value froze
        # rather than at the reading that made the run long enough (a one-reading alert when the
        # run was just that long).
        cap = (flat_need + 1).astype(np.int64)[seg]
        back_run = _flat_runs(x, seg, cap)
        ahead_run = _flat_runs(x[::-1], seg[::-1], cap[::-1])[::-1]
        runs = np.where(back_run > 0, np.minimum(back_run + ahead_run - 1, cap), 0)
        # The limit follows the tail of the last ``recal_days`` days too (never below the fitted
        # one): a season in which the meter is livelier than while it was learned raises it.
        roll = self._rolling_limit(z, seg, t, self._param(df, "cadence_s"))
        # Above the profile, a reading alerts only beyond the busiest readings of the normal
        # period (its 99.9th percentile, at the current level): a household's 4 kW hour is a
        # kettle and an oven, a building's reading twice its busiest hour is a glitch.
        top = np.nan_to_num(self._param(df, "top", np.nan), nan=-np.inf)
        cad_m, lim_iso = self._param(df, "cadence_s"), self._param(df, "limit_iso", np.nan)
        # A home's busiest hours are coincidences of appliances (oven, wash, heat pump), far beyond
        # even its busy hours: its normal period's 99.9th percentile is more than ``peak_ratio``
        # times its 90th (OPSD's homes 2.2-5.5; BDG2's buildings, PV systems and the steel plant
        # 1.0-1.5, their busiest a routine level) and its hours stand off each other beyond
        # ``iso_min``. Eight weeks do not pin such a tail down: the percentile is about the home's
        # second busiest hour of one season, and a winter Sunday's cooking and washing passes it by
        # 10-40 % (OPSD: eight "spikes" in a few years, each a rejected label candidate). There a
        # reading is busier than the normal period's busiest only at ``top_margin`` times it; other
        # meters keep the percentile itself (a 10-kWh-step hotel's night hour at 2.5x is a spike).
        # (A state stored before ``limit_iso``: NaN, neither smooth nor lively, no margin as before.)
        # The 90th percentile is the normal period's own, stored (``p90``, of the signed readings):
        # taken back from the log offset as ``eps / eps_rel`` it followed the detect-time
        # ``eps_rel`` (a state used with other settings) and, being of |readings|, read a home
        # whose panels export 2-3 kW at noon as a building. A state stored before ``p90``: so.
        # Both without the readings that caught a motor start (not judged either, see below).
        smooth = lim_iso <= c.iso_min * (1 + 1e-9)
        high = self._param(df, "p90", np.nan)
        stored = np.isfinite(high)
        high = np.where(stored, np.maximum(high, 0.0), eps / c.eps_rel)
        peak = np.where(stored, self._param(df, "top_calm", np.nan), top)
        with quiet():
            peaky = (lim_iso > c.iso_min * (1 + 1e-9)) & (top > 0) & (peak > c.peak_ratio * high)
        busy = top[seg] * np.where(peaky, c.top_margin, 1.0)[seg] * np.maximum(lev, 1.0)
        with quiet():
            s_up = z / np.fmax(lim_z[seg], roll)
            s_up = np.where(x > busy, s_up, np.minimum(s_up, 0.9))
            # ... and one ``spike_top_k`` times that busiest reading is a spike whatever the meter's
            # spread: more than its service connection can deliver (a household's busiest hour is
            # a few kW on a 15-25 kW connection), a glitch or a jumped register read as power.
            over = x / (c.spike_top_k * top[seg] * np.maximum(lev, 1.0))
            s_up = np.where((top[seg] > 0) & (over >= 1), np.fmax(s_up, over), s_up)
            s_read = np.where(z >= 0, s_up, -z / np.fmax(low_z[seg], roll))
            # A reading that stands off both its neighbours on one side further than the meter's
            # normal data ever jumps (``limit_iso``: once in ``tail_days`` days) and is off its
            # profile on that side by ``iso_z`` spreads at least is a point anomaly, scored by both
            # evidences together (the geometric mean of the isolation over its limit and ``|z|``
            # over ``z_min``), a limit a lively normal period raised aside (a school's term start
            # in its normal weeks hides no glitch in July): a hospital's one hour at 2.5 times the
            # hours around it, a school's hour at 40 % (a logger or transfer glitch). A home's busy
            # hour stands off its neighbours as far as its normal hours do, and a run of busy hours
            # is not off both neighbours. ``iso_min``: never less than half again or a third less
            # than both neighbours (a school's one hour at three quarters of the hours around it is
            # left to the other evidence).
            iso = _isolation(_log_load(x, eps[seg]), seg, t, cad_m[seg], z, c.iso_z)
            s_iso = np.abs(iso) / lim_iso[seg]
            point = (np.sign(iso) == np.sign(z)) & (s_iso >= 1) & (np.abs(z) >= c.iso_z)
            # Above the profile still beyond the busiest readings of the normal period: a home's
            # isolated hour of washing or cooking is its routine, however far it stands off.
            # A meter whose hours never stand off each other by more than ``iso_min`` in its normal
            # period (a building's load, many devices together) has no such routine: there a
            # spike under its busiest hours (a night hour at 1.6x) is judged as any other point.
            point &= (z < 0) | smooth[seg] | (x > busy)
            # ... and further than its readings have jumped over the last ``recal_days`` days (a
            # school's summer nights cycling hour by hour where its spring nights were steady);
            # that tail is taken on the meters with a candidate only (per meter: the same values).
            if point.any():
                rows = np.isin(seg, np.unique(seg[point]))
                roll_iso = np.full(len(x), np.nan)
                roll_iso[rows] = self._rolling_limit(iso[rows], seg[rows], t[rows], cad_m)
                s_iso = np.where(point, np.abs(iso) / np.fmax(lim_iso[seg], roll_iso), s_iso)
                point &= s_iso >= 1
            s_read = np.where(point, np.fmax(s_read, np.sqrt(s_iso * np.abs(z) / c.z_min)), s_read)
            roll_d = self._rolling_limit(zd, seg, t, self._param(df, "cadence_s"))
            s_day = np.where(zd >= 0, zd / np.fmax(lim_d[seg], roll_d), -zd / np.fmax(low_d[seg], roll_d))
            # A whole day off its profile must also be off the way the meter's days have been
            # moving lately: the trailing 24 h's shift (log units) against ``day_z_min`` times the
            # recent spread of its daily level. A school whose days swing 30 % with the weather
            # through a season is not having an unusual day at +40 %; a meter that has run steady
            # for weeks and now doubles for a day is (the spread is NaN until two weeks are seen).
            shift_d = self._day_mean(np.where(np.isfinite(z), z * sp, np.nan), seg, t, np.full(len(lim_z), np.inf))
            s_lvl = np.abs(shift_d) / (c.day_z_min * day_sd)
            s_day = np.where(np.isfinite(s_lvl) & (day_sd > 0), np.minimum(s_day, s_lvl), s_day)
        # A profile from fewer than ``min_history_days`` days cannot calibrate the tail of one
        # reading or of a day: there a reading must be the second of two beyond the limit, and the
        # 24-h evidence waits for more history (a notice says so).
        short = np.nan_to_num(self._param(df, "history_days", 0.0)) < c.min_history_days
        if short.any():
            prev = np.full(len(s_read), np.nan)
            if len(s_read) > 1:
                prev[1:] = np.where(seg[1:] == seg[:-1], s_read[:-1], np.nan)
            with quiet():
                same_side = (np.sign(z) == np.sign(np.r_[np.nan, z[:-1]])) & np.isfinite(prev)
                both = np.where(same_side, np.minimum(s_read, prev), 0.0)
            s_read = np.where(short[seg], np.nan_to_num(both), s_read)
            s_day = np.where(short[seg], 0.0, s_day)
        # A meter whose last ``level_days`` days ran at ``level_max`` times its profile or more
        # (the level's median, at its clamp) has left the profile: the normal period did not show
        # the meter in use (a building not yet occupied while profiled: BDG2 Rat_education_Veronica
        # read 0.5 kW for its first 12 days, then 245 kW; profiled on its first week, each busy hour
        # after was "245 vs 0.78 expected", 147 alerts over five months). The change was reported
        # where it began (before the level's median reached the clamp; ``baseline_macd`` holds it
        # as one alert); after that its readings and days are not judged against that profile
        # (scored under the limit; zeros and frozen runs still are) until the meter is refitted.
        # Only upwards: downwards the level's clamp (``level_min``) leaves no storm (an office at
        # 0.05 x its profile for six weeks alerted twice, at the drop), and a meter at a fifth of
        # its profile for days is what an under-registering meter or a bypass looks like. Only the
        # readings and days above the clamped level are let go: one below it is below even five
        # times its profile (a meter that has grown 8x since it was profiled and now loses 60 %,
        # a phase or a bypass, is still judged, as before the rule).
        left = lev >= c.level_max * (1 - 1e-9)
        if left.any():
            s_read = np.where(left & (z >= 0), np.fmin(s_read, 0.9), s_read)
            s_day = np.where(left & (zd >= 0), np.fmin(s_day, 0.9), s_day)
        # the run a frozen value needs on the reading's kind of day (weekday, weekend; a state
        # stored before ``flat_need_days``: ``flat_need`` on every day)
        need_days = self._param_array(df, "flat_need_days", (2,))
        need = np.where(dt > 0, need_days[seg, 1], need_days[seg, 0])
        need = np.where(np.isfinite(need) & (need > 0), np.minimum(need, flat_need[seg]), flat_need[seg])
        # ... one need per run, the largest of the kinds of day it touches, so that a run is still
        # reported whole (a value frozen from Sunday 22:00 into Monday alerted from Monday 00:00).
        # Only on runs shorter than the cap (held whole within the reach); a capped run scores at
        # least cap / need > 1 on every kind of day anyway.
        part = (runs > 0) & (runs < cap)
        if part.any():
            brk = np.ones(len(x), bool)
            brk[1:] = ~((x[1:] == x[:-1]) & (seg[1:] == seg[:-1]))
            most = pd.Series(need).groupby(np.cumsum(brk)).transform("max").to_numpy()
            need = np.where(part, most, need)
        s_flat = runs / need
        # A value that an energy register counted step by step is a steady load: a frozen logger
        # holds its last power reading while the register goes on counting what is really used,
        # and a frozen register counts nothing (zero steps, judged as zeros). OPSD's homes (power
        # = the 1-Wh register's hourly step) held 0.375 kWh for three night hours, five "frozen
        # meter" alerts a year on one home.
        s_flat = np.where(self._counted(df, x), 0.0, s_flat)
        # A value under ``flat_min_share`` of the meter's typical load, repeated, is a standby
        # drawn in register steps, not a frozen reading: a home whose solar panels cover it at
        # noon imports 10-50 Wh an hour and its register counts them in whole steps, 0.02 kWh
        # for hours (OPSD residential6: 14 "frozen meter" alerts on such runs, every one a
        # rejected label candidate). A frozen meter holds a working value; zeros are judged as zeros.
        typ = np.nan_to_num(self._param(df, "typical", 0.0))
        with quiet():
            s_flat = np.where(np.abs(x) <= c.flat_min_share * typ[seg], 0.0, s_flat)
        degenerate = np.nan_to_num(self._param(df, "frozen_share", 0.0)) > c.max_frozen_share
        s_read = np.where(degenerate[seg], 0.0, s_read)
        # The readings next to a daylight-saving change of the meter's zone (within 1.5 readings
        # of it): a logger on local time skips or repeats an hour there, so its reading is short
        # or double. Not judged as a single reading (zeros, flat runs and days still are).
        s_read = np.where(self._near_clock_change(df, t, seg, slot_w), np.minimum(s_read, 0.9), s_read)
        # A reading strictly between its two neighbours (the readings just before and after it)
        # lies on a ramp: a building starting up or winding down an hour or two earlier or later
        # than its profile (BDG2: an evening ramp-down starting 2 h early read as a one-hour drop;
        # at 15 min, a morning ramp a quarter hour late). A point anomaly is off its neighbours too,
        # so its extreme reading is never between them: a dip of one or more readings, a spike, a
        # step (the first reading after it equals the next) still alert. Not judged as a single
        # reading (whole days, zeros and flat runs still are).
        s_read = np.where(self._on_ramp(x, seg, t, self._param(df, "cadence_s")[seg]), np.minimum(s_read, 0.9), s_read)
        # A reading that both its neighbours stay near (each within ``plateau_k`` of its own
        # distance from the profile, on the log scale) is part of a stretch run off the profile
        # together, not a point: an office at two thirds of its load all through a bank holiday,
        # a hospital's quiet Sunday, an evening an hour lower throughout (BDG2). A dip or a spike
        # is off its neighbours as well, and a run of a few low readings is off its neighbours at
        # either end. Not judged as a single reading (the stretch is judged by the 24-h evidence;
        # zeros and flat runs still are).
        # (A state stored before ``low_ext`` was kept: its ``low``, as before.)
        low, low_ext = self._param(df, "low", np.nan), self._param(df, "low_ext", np.nan)
        low = np.where(np.isfinite(low_ext), low_ext, low)
        s_read = np.where(self._plateau(x, expected, eps, seg, t, self._param(df, "cadence_s")[seg], low),
                          np.minimum(s_read, 0.9), s_read)
        s_day = np.where(degenerate[seg], 0.0, s_day)
        typical = np.nan_to_num(self._param(df, "typical", np.nan), nan=np.inf)
        zshare = np.nan_to_num(self._param(df, "zero_share", 1.0), nan=1.0)
        # Zeros are this meter's normal when it read zero often enough while normal and in runs
        # that recur (a state stored before ``zero_runs`` was kept: by the share alone).
        zruns = np.nan_to_num(self._param(df, "zero_runs", np.inf), nan=np.inf)
        hist = np.nan_to_num(self._param(df, "history_days", 0.0))
        zero_normal = (zshare >= c.zero_share) & (zruns >= np.maximum(1.0, hist / c.zero_run_days))
        with quiet():
            zero = np.abs(x) <= c.zero_rel * typical[seg]
            # ... nor in the last ``level_days`` days (a meter whose solar panels now cover it at
            # noon, a site closed for the summer: a new normal, reported once where it begins).
            recent = self._recent_share(zero, np.isfinite(x), seg, t, n_seg)
            # ... in runs that recur: zeros on two separate occasions in those days are a new
            # routine; a single earlier run (an outage three days ago) is not, and a new run after
            # the meter came back is a new fault.
            z_on = zero & np.isfinite(x)
            if len(z_on) > 1:
                z_on[1:] &= ~(zero[:-1] & (seg[1:] == seg[:-1]))
            recent_runs = self._recent_share(z_on, np.ones(len(x), bool), seg, t, n_seg, count=True)
            # ... nor a routine of the last ``zero_routine_days`` days: zero runs averaging one a
            # week over that time (a home whose solar panels covered it through the summer
            # reads zero on a sunny November noon; a building's monthly zero hour stays news).
            routine = self._recent_share(z_on, np.ones(len(x), bool), seg, t, n_seg, count=True,
                                         days=int(c.zero_routine_days)) >= c.zero_routine_days / 7
            onset = zero & ~zero_normal[seg] & ~((recent >= c.zero_share) & (recent_runs >= 2)) & ~routine
            # A zero run that began as such stays one for up to ``level_days`` days (a dead meter
            # is one alert, not one per day its own zeros make "recent").
            s_zero = np.where(_carry(onset, zero, seg, t, c.level_days * DAY), 2.0, 0.0)
        with quiet():
            score = np.fmax(np.fmax(np.fmax(s_read, s_day), np.where(s_flat >= 1, s_flat, 0.0)), s_zero)
            # On a meter that never read zero while normal, zero readings are judged as zeros only:
            # a long dead spell is reported where it begins, not again wherever its distance from
            # the adapting profile crosses the limit.
            score = np.where(zero & ~zero_normal[seg], s_zero, score)
        kind = np.select([s_zero > 0, s_flat >= np.maximum(s_read, 1), s_read >= np.maximum(s_day, 1), s_day >= 1],
                         [5, 4, 1, 3], 0).astype(np.int8)
        score = np.where(np.isfinite(x) & judged[seg], score, np.nan)
        if c.channel in SNAPSHOT_CHANNELS and len(score):
            # A reading that caught a motor start: a few seconds of starting current, not its
            # interval's consumption; not judged (see the module notes).
            score = np.where(inrush(df) & ~reg[seg], np.nan, score)
        return score, dict(x=x, z=z, zd=zd, expected=expected, level=lev, runs=runs, kind=kind, n_seg=n_seg)

    @staticmethod
    def _counted(df: pd.DataFrame, x: np.ndarray) -> np.ndarray:
        """Per reading: the meter's energy register (``e_kwh``) rose since its previous reading by
        the reading's energy over that interval (within 0.1 %; :data:`SNAP` for float noise)."""
        if "e_kwh" not in df.columns or not len(x):
            return np.zeros(len(x), bool)
        seg = df["_seg"].to_numpy()
        e, dt = df["e_kwh"].to_numpy(float), df["_dt"].to_numpy(float)
        de = np.full(len(e), np.nan)
        de[1:] = np.where(seg[1:] == seg[:-1], e[1:] - e[:-1], np.nan)
        with quiet():
            step = de * 3600.0 / dt
            return (de > 0) & (np.abs(step - x) <= np.maximum(10 * SNAP, 1e-3 * np.abs(x)))

    @staticmethod
    def _on_ramp(x: np.ndarray, seg: np.ndarray, t: np.ndarray, cad: np.ndarray) -> np.ndarray:
        """Per reading: strictly between the meter's readings just before and just after it (each
        within :data:`NEAR_CAD` cadences ``cad`` of it, per reading: one lost reading between).

        A neighbour beyond 1.5 cadences (a lost reading between) stands for the ramp where the
        lost reading was: the straight line from it to the other neighbour, one cadence nearer.
        The reading two cadences back is further down the ramp than the lost one was, so a
        reading that dropped part way (07:45 at 50 kW on a 47.5 -> 65 -> 82.5 -> 100 kW ramp,
        07:30 lost) lay between it and the next and passed for the ramp: a real one-reading drop
        no longer reported (rq8). Between the line's point (65) and 100 it is a drop again; a
        ramp early or late still lies there (853 M-00115: 29.98 between 23.7 and 42.2 kW)."""
        n = len(x)
        out = np.zeros(n, bool)
        if n < 3:
            return out
        cad = np.nan_to_num(cad, nan=np.inf)
        with quiet():
            ca, ta, tb, tc = cad[1:-1], t[:-2], t[1:-1], t[2:]
            prev_ok = (seg[1:-1] == seg[:-2]) & (tb - ta <= NEAR_CAD * ca)
            next_ok = (seg[1:-1] == seg[2:]) & (tc - tb <= NEAR_CAD * ca)
            a, b, c = x[:-2], x[1:-1], x[2:]
            w = np.clip(ca / (tc - ta), 0.0, 1.0)  # one cadence, as a share of the span a..c
            a = np.where(tb - ta > 1.5 * ca, a + w * (c - a), a)
            c = np.where(tc - tb > 1.5 * ca, c + w * (x[:-2] - c), c)
            between = ((a < b) & (b < c)) | ((a > b) & (b > c))
        out[1:-1] = prev_ok & next_ok & between
        return out

    def _plateau(self, x: np.ndarray, expected: np.ndarray, eps: np.ndarray, seg: np.ndarray, t: np.ndarray,
                 cad: np.ndarray, low: np.ndarray | None = None) -> np.ndarray:
        """Per reading: both its neighbours (each within :data:`NEAR_CAD` cadences ``cad``) within ``plateau_k``
        times its own distance from ``expected`` of it, on the log scale (``eps``: per meter), the
        reading above ``eps`` (or at least the meter's own normal low ``low``, per meter, where that is
        above zero) and below ``expected``."""
        n = len(x)
        out = np.zeros(n, bool)
        if n < 3 or self.config.plateau_k <= 0:
            return out
        cad = np.nan_to_num(cad, nan=np.inf)
        e = eps[seg]
        y, ye = _log_load(x, e), _log_load(expected, e)
        with quiet():
            near = self.config.plateau_k * np.abs(y - ye)
            prev_ok = (seg[1:-1] == seg[:-2]) & (t[1:-1] - t[:-2] <= NEAR_CAD * cad[1:-1])
            next_ok = (seg[1:-1] == seg[2:]) & (t[2:] - t[1:-1] <= NEAR_CAD * cad[1:-1])
            close = (np.abs(y[1:-1] - y[:-2]) < near[1:-1]) & (np.abs(y[1:-1] - y[2:]) < near[1:-1])
            # Under ``eps`` the log scale flattens (every reading near zero is "near" the next):
            # hours at a fortieth of the load are a drop however alike they are (a school's night
            # at 10 kW for three hours where it never read under 19 kW while normal) ...
            # ... unless the meter reads that low while normal (at least its 1st percentile, above
            # zero): a steel plant whose production stops reads its own night load (1 kW, a
            # twentieth of its 90th percentile) for hours when it stops early on a holiday or
            # stays off on a Sunday. That is a stretch at its base load, not a point: each of its
            # readings judged alone, whichever slot had the narrowest spread alerted as "a single
            # reading dropping" (15-min fleets 1213 M-00104, 1217 M-00062; f7). "That low" reaches
            # below the 1st percentile by the base load's own scatter (``low`` here is the fit's
            # ``low_ext``, low x low / 10th percentile, at least half of low): a plant off all
            # Saturday reads its base load 24 times, and some of them fall under the 1st percentile
            # of its profiled week (0.6755 kW against 0.709 amid 0.70 and 0.74: "a single reading
            # dropping to 0.6755 where 7.07 was expected", 60-min fleet 1451 M-00097; fl).
            lo = np.full(n, np.nan) if low is None else low[seg]   # per reading
            floor = np.where(np.isfinite(lo) & (lo > 0), np.minimum(e, lo), e)
            close &= x[1:-1] >= floor[1:-1]
            # Below the profile only: the stretches are quiet ones (a holiday, a quiet Sunday, a
            # lower evening). A whole day far above the profile (a region at +80 % for a day) has
            # no such reading and was left to the day evidence, which missed it.
            close &= y[1:-1] < ye[1:-1]
        out[1:-1] = prev_ok & next_ok & close
        return out

    def _point(self, ctx, hot) -> bool:
        """The readings over the limit span at most ``point_max`` readings in a row, are all
        reading-evidence, and every reading of the span is on one side of the profile: a short drop
        or spike rather than a run (the middle of a three-hour dip sits with its low neighbours
        and is not over the limit itself, see ``_plateau``)."""
        if not len(hot) or not (ctx["kind"][hot] == 1).all():
            return False
        n = int(hot[-1] - hot[0] + 1)
        if n > self.config.point_max:
            return False
        z = ctx["z"][hot[0]:hot[-1] + 1]
        return bool((z > 0).all() or (z < 0).all())

    def _score(self, df: pd.DataFrame) -> Scored:
        s, ctx = self._parts(df)
        return Scored(s, ctx)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        x, exp, kind = ctx["x"], ctx["expected"], ctx["kind"]
        st = self.state_.get(meter_of(df, rows[0])) or {}
        k = rows[int(np.nanargmax(scores[rows]))]
        kinds = kind[rows]
        hot = rows[np.asarray(scores[rows] >= self.config.post.threshold)]
        t = df["_t"].to_numpy()
        hours = float(t[rows[-1]] - t[rows[0]]) / 3600
        single = len(hot) == 1
        if (kinds == 5).any():
            nz = int((kinds == 5).sum())
            ev_kind = "zero_reading" if nz == 1 else "zero_run"
            what = (f"{nz} reading(s) at zero ({hours:.1f} h) on a meter that read zero in "
                    f"{100 * (st.get('zero_share') or 0):.2g} % of its normal readings (expected {exp[k]:.4g})")
            action = "check supply, CT and logger: a whole-meter zero where load never stops is lost data or lost supply"
        elif (kinds == 4).any():
            what, ev_kind = f"the same value {x[k]:.4g} repeated for {int(ctx['runs'][k])}+ readings: frozen meter", "flat_line"
            action = "check the meter's data logger or communication module; its data is stale"
        elif (single and kind[k] == 1) or self._point(ctx, hot):
            # A point anomaly: one reading (or a few in a row, all on one side) far off the slot's
            # profile, reported as what it is.
            up = bool(ctx["z"][k] > 0)
            ev_kind = "spike" if up else "drop"
            what = (f"{'a single reading' if single else f'{int(hot[-1] - hot[0] + 1)} readings in a row'} "
                    f"{'spiking to' if up else 'dropping to'} {x[k]:.4g} where {exp[k]:.4g} was expected")
            action = ("check the reading: a spike far above the busiest hours is a meter or logger glitch" if up else
                      "check the reading: a short drop where load is expected is a logger, supply or CT gap")
        elif (kinds == 3).any() and not (kinds == 1).any():
            ev_kind = "unusual_day"
            x_mean, e_mean = float(np.nanmean(x[rows])), float(np.nanmean(exp[rows]))
            # (xd) A share of a profile near zero (a net meter whose import and export about
            # cancel: "+42,499,999,900 % off profile", rf8) says nothing: said in the channel's
            # units where the profile's mean is not above zero or the share would pass DAY_SHARE_MAX.
            rel = x_mean / e_mean - 1 if e_mean > 0 else float("inf")
            if abs(rel) <= DAY_SHARE_MAX:
                what = f"the last 24 h ran {rel:+.0%} off profile"
            else:
                unit = " kW" if self.config.channel == "p_kw" or st.get("from_register") else ""
                what = (f"the last 24 h ran at {x_mean:.3g}{unit} on average where its profile expects "
                        f"{e_mean:.3g}{unit} (a profile near zero: no share of it is said)")
            action = "compare with site activity (a holiday, a shutdown, equipment left on)"
        else:
            ev_kind = "reading_run"
            what = f"{len(hot)} readings off profile over {hours:.1f} h (worst {x[k]:.4g} vs {exp[k]:.4g} expected)"
            action = "compare with site activity; zero readings where load is expected are a supply or meter gap"
        if ev_kind in ("reading_run", "unusual_day") and x[k] > self.config.level_max * exp[k] > 0:
            # (a meter that keeps running there has left its profile, see :meth:`_parts`: say so once)
            action += (f"; a meter that keeps running over {self.config.level_max:g} x its profile is not judged "
                       "on it after its level reaches that: if this is its normal now (a building brought into "
                       "use after its normal period), refit it (`wattwatch fit --normal-end`)")
        with quiet():
            sev = "warning"
        chan = "p_kw from e_kwh" if st.get("from_register") else self.config.channel
        return Finding(sev, f"{chan}: {what} (profile from {st.get('history_days', 0):.0f} days)",
                       {"kind": ev_kind, "single_reading": bool(single), "value": rnd(x[k]), "expected": rnd(exp[k]),
                        "level": rnd(ctx["level"][k]), "z": rnd(ctx["z"][k], 2), "readings": int(len(hot)),
                        "hours": rnd(hours, 2), "history_days": st.get("history_days"),
                        "timezone": st.get("timezone") if st.get("timezone") not in (None, "", "UTC") else "UTC (none given)",
                        "source": "e_kwh register (mean kW per interval)" if st.get("from_register") else self.config.channel,
                        "days_by_type": st.get("days_by_type"), "limit_z": rnd(st.get("limit_z"), 2)},
                       action)
