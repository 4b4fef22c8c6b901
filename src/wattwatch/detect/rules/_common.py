"""Small shared pieces of the rules: nominal voltage, phase currents, voltage presence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect.frame import cache, seg_median
from wattwatch.schema import PHASE_CURRENT_COLUMNS, VOLTAGE_COLUMNS


def frame_cached(df: pd.DataFrame, key: str, fn):
    """``fn()`` computed once per prepared frame and shared by all detectors (phase arrays are
    needed by most rules); kept on the frame object itself (see :func:`frame.cache`)."""
    store = cache(df)
    if key not in store:
        store[key] = fn()
    return store[key]


def _columns(df: pd.DataFrame, cols) -> np.ndarray:
    # Column-major: reductions across the three phases (axis=1) run ~7x faster than row-major.
    out = np.empty((len(df), len(cols)), order="F")
    for k, c in enumerate(cols):
        out[:, k] = df[c].to_numpy(float)
    return out


def phases(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(voltages, currents) as (n, 3) arrays, NaN where a meter lacks a phase."""
    return frame_cached(df, "phases", lambda: (_columns(df, VOLTAGE_COLUMNS), _columns(df, PHASE_CURRENT_COLUMNS)))


def max_current(df: pd.DataFrame) -> np.ndarray:
    """Largest phase current per reading (NaN when the meter reports none)."""
    def compute():
        _, i = phases(df)
        out = np.fmax(np.fmax(i[:, 0], i[:, 1]), i[:, 2])
        return out
    return frame_cached(df, "imax", compute)


def max_voltage(df: pd.DataFrame) -> np.ndarray:
    """Highest phase voltage per reading (NaN when the meter reports none). Reads the voltages only."""
    def compute():
        got = cache(df).get("phases")
        v = got[0] if got is not None else _columns(df, VOLTAGE_COLUMNS)
        return np.fmax(np.fmax(v[:, 0], v[:, 1]), v[:, 2])
    return frame_cached(df, "vmax", compute)


# Voltage lost on every phase: the highest below this share of the meter's nominal voltage.
SUPPLY_LOST_FRACTION = 0.1
FALLBACK_NOMINAL_V = 230.0


def supply_lost(df: pd.DataFrame, nominal_v: np.ndarray, fraction: float = SUPPLY_LOST_FRACTION,
                fallback: bool = True) -> np.ndarray:
    """Per reading: voltage lost on every phase, the highest phase under ``fraction`` of its meter's
    nominal voltage (``nominal_v`` per segment code, NaN: ``FALLBACK_NOMINAL_V``, or with
    ``fallback`` False never lost); False where the meter reports no voltage. The supply outage's
    own test, shared by packet_loss (q64). A silence is taken for the outage's only after a reading
    judged against a nominal voltage learned (``fallback=False``): a meter with no reading above
    50 V (a voltage field filled with 0 while a load draws current, an odd scale) reads as supply
    lost throughout against the fallback, and would hide every silence from packet_loss (rev64)."""
    nom = np.where(np.isfinite(nominal_v), nominal_v, FALLBACK_NOMINAL_V) if fallback else nominal_v
    with np.errstate(invalid="ignore"):
        return max_voltage(df) < fraction * nom[df["_seg"].to_numpy()]


def after_supply_loss(df: pd.DataFrame, lost: np.ndarray, cadence_s: np.ndarray) -> np.ndarray:
    """Per reading: the first reading after a silence (a gap of more than 1.5 of its meter's
    cadences, ``cadence_s`` per segment code) that directly followed a reading with the supply lost
    (``lost``, per reading): a mains-powered meter cannot report without supply, so the silence is
    the outage's, not lost packets ("last gasp", then nothing until the supply is back; q64)."""
    seg, dt = df["_seg"].to_numpy(), df["_dt"].to_numpy()
    out = np.zeros(len(seg), bool)
    if len(seg) > 1:
        with np.errstate(invalid="ignore"):
            out[1:] = lost[:-1] & (seg[1:] == seg[:-1]) & (dt[1:] > 1.5 * cadence_s[seg[1:]])
    return out


# A logger frozen on an outage's reading (issue 14, fz2): an outage repeats its zeros and its register
# too, but on a meter whose temperature moved between nearly all consecutive readings while profiled (at
# least ``TEMP_MOVING_SHARE`` of them, ``temp_moves``) the temperature keeps moving through a real outage
# (it cools or warms with the enclosure); zeros repeated bit for bit *with the temperature* are stale
# data. Only where the meter's cadence is at least ``STALE_MIN_CADENCE_S``: a 0.01-degree sensor read
# every second or minute repeats for minutes in a real outage (the temperature changes by less than a
# step between readings), and the ``STALE_RUN_N`` repeats the frozen rule asks for would then be
# seconds, not the half hour at least that they span at 5 minutes and coarser.
TEMP_MOVING_SHARE = 0.9
TEMP_MOVES_MIN_PAIRS = 12   # fewest consecutive profiled pairs with a temperature the share is learned from
STALE_MIN_CADENCE_S = 240.0
STALE_RUN_N = 6   # repeats in a row (the temperature on both sides) from which frozen_readings judges zeros


def temp_moves(df: pd.DataFrame, n_seg: int) -> np.ndarray:
    """Per segment code: the share of consecutive readings (both with a temperature) whose ``temp_c``
    differs; NaN with fewer than ``TEMP_MOVES_MIN_PAIRS`` such pairs (or no temperature channel)."""
    out = np.full(n_seg, np.nan)
    if "temp_c" not in df.columns or len(df) < 2:
        return out
    seg = df["_seg"].to_numpy()
    x = df["temp_c"].to_numpy(float)
    a, b = x[1:], x[:-1]
    ok = np.isfinite(a) & np.isfinite(b) & (seg[1:] == seg[:-1])
    n = np.bincount(seg[1:][ok], minlength=n_seg)
    moved = np.bincount(seg[1:][ok & (a != b)], minlength=n_seg)
    return np.where(n >= TEMP_MOVES_MIN_PAIRS, moved / np.maximum(n, 1), np.nan)


def at_cadence(df: pd.DataFrame, cadence_s: np.ndarray, i: np.ndarray | None = None) -> np.ndarray:
    """Per consecutive pair of readings: the second came at least half the meter's learned cadence
    (``cadence_s``, per segment code) after the first. A meter profiled at 15 minutes that later
    reports every minute (rfz2) repeats its 0.01-degree temperature for minutes in a real outage, as
    a 1-s meter does: the learned cadence alone does not keep such pairs out (a stamp's jitter, up
    to a quarter cadence each side, never halves a pair's interval). ``i``: only the pairs (i, i + 1)."""
    seg = df["_seg"].to_numpy()
    t = df["_t"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        if i is None:
            return np.diff(t) >= 0.5 * np.asarray(cadence_s, float)[seg[1:]]
        return t[i + 1] - t[i] >= 0.5 * np.asarray(cadence_s, float)[seg[i + 1]]


def temp_moving(moves: np.ndarray, cadence_s: np.ndarray, share: float = TEMP_MOVING_SHARE) -> np.ndarray:
    """Per segment code: the meter's repeated temperature tells a frozen logger from a real outage
    (``moves``, its learned ``temp_moves``, at least ``share``, at a cadence of at least
    ``STALE_MIN_CADENCE_S``)."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(moves, float) >= share) & (np.asarray(cadence_s, float) >= STALE_MIN_CADENCE_S)


def unchanged(x: np.ndarray, fa: np.ndarray | None = None, fb: np.ndarray | None = None) -> np.ndarray:
    """Per consecutive pair of values (n - 1): the second repeats the first bit for bit, or either is
    missing (a value missing on one side says nothing either way: it neither ends a repeat nor makes
    one). The channels' test of a repeat, shared by ``supply_outage`` and ``frozen_readings``.
    ``fa``, ``fb``: ``isfinite`` of ``x[1:]`` and ``x[:-1]`` where the caller has them (rot: taken
    again per channel, they were most of the frozen rule's extra millisecond on 322k readings)."""
    a, b = x[1:], x[:-1]
    if fa is None or fb is None:
        fa, fb = np.isfinite(a), np.isfinite(b)
    return (a == b) | ~(fa & fb)


def stale_pairs(df: pd.DataFrame, cadence_s: np.ndarray, moving: np.ndarray,
                want: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per consecutive pair of readings (n - 1), what a logger frozen on an outage's reading is told
    by, besides its channels repeating (:func:`unchanged`, the caller's channels): both of one meter,
    at least half its learned cadence apart (:func:`at_cadence`), on a meter whose temperature moves
    (``moving`` per segment code: :func:`temp_moving`), the temperature repeating bit for bit or
    missing on one side (not both: two readings without it tell nothing). Returns (that, the
    temperature present on both sides). One test for both rules (issue 14, ot): a reading
    ``supply_outage`` leaves unjudged as a repeat is one ``frozen_readings`` counts towards a freeze
    (on the channels both read), by construction. ``want``: the pairs the caller asks about (its own
    test, the supply lost or zeros on both; False elsewhere in both results): only those are
    looked at (rot: they are few, and the whole frame's pass was the refactor's extra CPU)."""
    n = max(len(df) - 1, 0)
    moving = np.asarray(moving, bool)
    ok, both = np.zeros(n, bool), np.zeros(n, bool)
    if "temp_c" not in df.columns or not n or not moving.any():
        return ok, both
    i = np.arange(n) if want is None else np.flatnonzero(want)
    if not len(i):
        return ok, both
    seg = df["_seg"].to_numpy()
    x = df["temp_c"].to_numpy(float)
    s, a, b = seg[i + 1], x[i + 1], x[i]
    fa, fb = np.isfinite(a), np.isfinite(b)
    ok[i] = (s == seg[i]) & moving[s] & at_cadence(df, cadence_s, i) & ((a == b) | (fa != fb))
    both[i] = fa & fb
    return ok, both


def n_phases(df: pd.DataFrame, n_seg: int) -> np.ndarray:
    """Phases each meter reports current on (1 for single-phase meters, 3 for three-phase)."""
    seg = df["_seg"].to_numpy()
    out = np.zeros(n_seg, int)
    for col in PHASE_CURRENT_COLUMNS:
        out += np.bincount(seg[np.isfinite(df[col].to_numpy())], minlength=n_seg) > 0
    return out


def nominal_voltage(df: pd.DataFrame, n_seg: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Per meter: median of its highest phase voltage while supplied (V > 50 V)."""
    vmax = max_voltage(df)
    ok = vmax > 50
    if mask is not None:
        ok &= mask
    return seg_median(vmax, df["_seg"].to_numpy(), n_seg, ok)


# An open CT (sensor_fault's test, shared with thermal_drift's heating): a channel under
# ``OPEN_CT_ZERO_A`` with its voltage above ``OPEN_CT_VOLTAGE_FRACTION`` of nominal while the load
# evidently flows (at least ``OPEN_CT_MIN_LOAD_A`` on the neutral of a single-phase meter, or on
# another phase of a three-phase one where this phase normally carries ``OPEN_CT_MIN_SHARE``).
OPEN_CT_ZERO_A = 0.05
OPEN_CT_MIN_LOAD_A = 0.5
OPEN_CT_MIN_SHARE = 0.05
OPEN_CT_VOLTAGE_FRACTION = 0.5


def phase_shares(df: pd.DataFrame, n_seg: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Per meter (n_seg, 3): each phase's median share of the phases' total current, over the
    readings with more than 1 A in all (and ``mask``); NaN for a phase the meter lacks."""
    seg = df["_seg"].to_numpy()
    _, i = phases(df)
    total = np.nansum(i, axis=1)
    ok = total > 1.0
    if mask is not None:
        ok &= mask
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([seg_median(i[:, k] / total, seg, n_seg, ok) for k in range(3)], axis=1)


def open_ct(df: pd.DataFrame, nominal_v: np.ndarray, share: np.ndarray, zero_a: float = OPEN_CT_ZERO_A,
            min_load_a: float = OPEN_CT_MIN_LOAD_A, min_share: float = OPEN_CT_MIN_SHARE,
            voltage_fraction: float = OPEN_CT_VOLTAGE_FRACTION) -> dict[str, np.ndarray]:
    """The open-CT test per reading, against each reading's nominal voltage (``nominal_v``, (n,))
    and its meter's normal phase shares (``share``, (n, 3)). Returns:

    - ``zero`` (n, 3): the channel reads under ``zero_a`` with its voltage present (load or not);
    - ``dead`` (n, 3): ``zero`` while the load evidently flows: on a single-phase meter (column 0)
      the neutral carries at least ``min_load_a``; on a three-phase one another phase does and
      this phase normally carries at least ``min_share`` of the current;
    - ``load`` (n,): the current the evidence rests on (the neutral, or the largest phase);
    - ``unknown`` (n,): no load in sight (or no voltage): a zero current proves nothing;
    - ``three`` (n,): the reading gives all three phase currents."""
    v, i = phases(df)
    i_n = df["i_n_a"].to_numpy(float) if "i_n_a" in df else np.full(len(df), np.nan)
    three = np.isfinite(i).all(axis=1)
    with np.errstate(invalid="ignore"):
        v_ok = v >= voltage_fraction * nominal_v[:, None]
        zero = (i < zero_a) & v_ok
        imax = max_current(df)
        dead = zero & three[:, None] & (imax[:, None] >= min_load_a) & (share >= min_share)
        dead[:, 0] |= zero[:, 0] & ~three & (i_n >= min_load_a)
        unknown = ~three & ~(i_n >= min_load_a) | three & (imax < min_load_a)
        unknown |= ~v_ok.any(axis=1)
    return {"zero": zero, "dead": dead, "load": np.where(three, imax, i_n), "unknown": unknown, "three": three}


INRUSH_RATIO = 2.5
INRUSH_MIN_A = 1.0
INRUSH_PF_DROP = 0.1


def inrush(df: pd.DataFrame, reach: int = 2) -> np.ndarray:
    """Readings that caught a motor's starting current.

    On some phase the current is at least ``INRUSH_RATIO`` times (and ``INRUSH_MIN_A`` above)
    what the readings either side show (per side the lower of its two nearest readings, so two
    starts in a row are both caught while a load that switches on and stays on is not), and,
    where the meter reports a power factor, the power factor drops with it (below the readings
    either side, per side the higher of its two nearest, for the same reason: the middle one of
    three starts in a row has two starts for nearest neighbours): a starting motor is
    inductive, while a kettle or an oven caught in one reading raises it. Such a snapshot stands
    for a few seconds, not for its interval; rules that weigh currents over time (the neutral
    balance, the heating) leave it out rather than read it as the interval's current.

    ``reach``: how many nearest readings per side are compared (the lower current, the higher
    power factor of them). With 2, a run of three starts keeps its first and last (each has a
    start among its two nearest on one side and the other start on the other); with 3 it is
    caught whole, while a load that switches on and stays is still not (its side of higher
    readings holds it). The heating takes 3: one missed start is a snapshot of 3-6x the current,
    I^2 9-36x, that the thermal lag would carry for hours."""

    def compute():
        seg = df["_seg"].to_numpy()
        _, i = phases(df)
        n = len(df)
        # Screen: a spike is at least INRUSH_RATIO times one of its four nearest readings
        # (compared on views, no copies; a neighbour on another meter only adds candidates, so
        # nothing is missed). Then the exact test on the few candidates.
        cand = np.zeros(n, bool)
        if n > reach:
            with np.errstate(invalid="ignore"):
                for k in range(i.shape[1]):
                    x = i[:, k]
                    h = x * (1 / INRUSH_RATIO)
                    for d in range(1, reach + 1):
                        cand[d:] |= h[d:] >= x[:-d]
                        cand[:-d] |= h[:-d] >= x[d:]
        idx = np.flatnonzero(cand)
        out = np.zeros(n, bool)
        if not len(idx):
            return out

        def near(x, step):
            j = np.clip(idx + step, 0, n - 1)
            return np.where((idx + step >= 0) & (idx + step < n) & (seg[j] == seg[idx]), x[j], np.nan)

        def side(pick, x, sign):
            # ``pick`` (np.fmin / np.fmax: NaN-ignoring) of the ``reach`` nearest readings on one side
            out = near(x, sign)
            for d in range(2, reach + 1):
                out = pick(out, near(x, sign * d))
            return out

        spike = np.zeros(len(idx), bool)
        with np.errstate(invalid="ignore"):
            for k in range(i.shape[1]):
                x = i[:, k]
                ref = np.fmax(side(np.fmin, x, -1), side(np.fmin, x, 1))
                spike |= (x[idx] >= INRUSH_RATIO * ref) & (x[idx] - ref >= INRUSH_MIN_A)
            if "pf" in df:
                pf = np.abs(df["pf"].to_numpy(float))
                ref_pf = np.fmax(side(np.fmax, pf, -1), side(np.fmax, pf, 1))
                spike &= ~(pf[idx] > ref_pf - INRUSH_PF_DROP)  # resistive; False where either is unknown
        out[idx[spike]] = True
        return out

    return frame_cached(df, "inrush" if reach == 2 else f"inrush{reach}", compute)


def interval_energy(df: pd.DataFrame, max_interval_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the energy register counted in the interval before each reading: (kWh, seconds,
    midpoint time), NaN where it cannot be told: a meter's first reading, a register that went
    down (a reset), a frozen register (it and the power unchanged: stale data, and the interval
    after it carries the catch-up), an interval longer than ``max_interval_s`` (a gap: its energy
    cannot be placed in time), or no register at all.

    At coarse cadences this is the consumption the readings can tell: a power reading is a
    snapshot (at hourly cadence one kettle caught in it stands for an hour of boiling), while the
    register's increment is the energy of the whole interval."""
    seg, t, dt = df["_seg"].to_numpy(), df["_t"].to_numpy(), df["_dt"].to_numpy()
    e = df["e_kwh"].to_numpy(float)
    p = df["p_kw"].to_numpy(float)
    de = np.full(len(df), np.nan)
    if len(df) > 1:
        de[1:] = e[1:] - e[:-1]
        de[1:][seg[1:] != seg[:-1]] = np.nan
    frozen = np.zeros(len(df), bool)
    if len(df) > 1:
        frozen[1:] = (de[1:] == 0) & (p[1:] == p[:-1]) & (p[1:] != 0)
        frozen[1:] |= frozen[:-1]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(de) | (de < 0) | frozen | ~np.isfinite(dt) | (dt <= 0) | (dt > max_interval_s)
    de[bad] = np.nan
    dur = np.where(bad, np.nan, dt)
    return de, dur, t - np.where(bad, 0.0, np.nan_to_num(dt)) / 2


def binned_power(df: pd.DataFrame, bin_s: float, max_interval_s: float | None,
                 drop_inrush: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean power (kW) per meter on a clock-aligned grid of ``bin_s`` (like
    :func:`wattwatch.detect.frame.grid`): what the energy register counted in the bin (intervals up
    to ``max_interval_s``, each placed by its midpoint, see :func:`interval_energy`), else the mean
    of the bin's power readings (leaving out readings that caught a motor start, when
    ``drop_inrush``). ``max_interval_s`` None: the power readings only. Returns (matrix, cell of
    each reading, t0)."""
    from wattwatch.detect.frame import grid

    p = df["p_kw"].to_numpy(float)
    if drop_inrush:
        p = np.where(inrush(df), np.nan, p)
    m, cell, t0 = grid(df, p, bin_s)
    n_seg, n_bins = m.shape
    if max_interval_s is None or not n_bins:
        return m, cell, t0
    de, dur, mid = interval_energy(df, max_interval_s)
    ok = np.isfinite(de)
    if ok.any():
        seg = df["_seg"].to_numpy()
        b = np.clip(np.floor((mid[ok] - t0[seg[ok]]) / bin_s), 0, n_bins - 1).astype(np.int64)
        flat = seg[ok].astype(np.int64) * n_bins + b
        E = np.bincount(flat, weights=de[ok], minlength=n_seg * n_bins)
        D = np.bincount(flat, weights=dur[ok], minlength=n_seg * n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            reg = np.where(D > 0, E / D * 3600.0, np.nan).reshape(n_seg, n_bins)
        m = np.where(np.isfinite(reg), reg, m)
    return m, cell, t0
