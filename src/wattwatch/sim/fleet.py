"""Labelled synthetic fleet: residential single-phase and commercial three-phase meters.

Physics first. Each meter has a true load (kW) from a daily/weekly shape with appliance bursts;
per phase the load, voltage and power factor give the true current; the meter then reports
*measured* currents (with CT error) and computes power from its own measurements, so the
reported values satisfy ``p = V·I·pf`` per phase. The energy register integrates the true power
times the meter's calibration gain. Temperature follows a first-order thermal lag driven by I².
The neutral carries the phase current minus earth leakage (single phase) or the phasor sum of the
three phase currents plus the triplen harmonics that add up in it (three phase).

Faults then change what the meter reports, each the way the physical fault would: a neutral bypass
takes the return current out of the neutral sensor, an open CT zeroes one current channel (and the
power the meter computes from it), under-registering firmware scales the register's increments,
and so on. A loose CT clamp is the one fault on the reported current alone: the meter's power
metrology does not run through that clamp, so the current jumps about while the power stays steady.
Normal events that a good detector must not flag are added too: supply outages,
register resets after firmware updates, one-reading motor-start inrush, earth leakage under 30 mA,
timestamp jitter, duplicated and out-of-order rows, single NaN channels.

Every random choice comes from one seed; the same arguments give the same files.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scipy.signal import lfilter

from wattwatch.codes import FAULT_CODES, NORMAL_EVENTS
from wattwatch.schema import CHANNEL_NAMES

THREE_PHASE_ONLY = {"phase_imbalance"}
SINGLE_PHASE_ONLY = {"neutral_bypass"}  # on a balanced 3-phase load a missing neutral is invisible
# Fault types placed by their own share (SimConfig.loose_ct_share) rather than in the round-robin
# of ``faults`` (adding one there would have moved every other fault to another meter); name them
# in ``faults`` to have them placed like the others too.
SEPARATE_FAULTS = ("loose_ct",)


FAULT_HOURS = {  # (min, max) hours of each fault type's window
    "neutral_bypass": (6, 48), "partial_earth_return": (12, 72), "phase_imbalance": (6, 72),
    "open_ct": (6, 96), "firmware_drift": (24, 120), "packet_loss": (6, 48), "thermal_drift": (12, 72),
    "harmonic_noise": (3, 24), "theft_under_registration": (48, 240), "level_shift": (48, 240),
    "frozen_register": (6, 48), "loose_ct": (6, 72),
}


@dataclass(frozen=True)
class SimKnobs:
    """The simulated world's own choices, which another simulator's author could make otherwise
    (``scripts/quality_sweep.py`` varies them one at a time). The defaults are the values the
    simulator has always used: a fleet without knobs (``SimConfig.knobs`` None) and a fleet with
    ``SimKnobs()`` are the same files, byte for byte. Ranges are (low, high) of a uniform draw, so
    that a changed range changes values but never the number of random draws."""

    fault_hours: tuple[tuple[str, float, float], ...] = ()  # (type, min h, max h): overrides FAULT_HOURS
    theft_keep: tuple[float, float] = (0.3, 0.6)  # share of the load the meter still sees
    level_shift_add: tuple[float, float] = (0.6, 1.5)  # added load, times the profiled mean
    imbalance_boost: tuple[float, float] = (0.22, 0.5)  # one phase's current raised by this share
    earth_fraction: tuple[float, float] = (0.25, 0.6)
    firmware_gain: tuple[float, float] = (0.6, 0.9)
    thermal_extra_c: tuple[float, float] = (8.0, 20.0)
    thermal_ramp_h: tuple[float, float] = (2.0, 6.0)
    harmonic_thd: tuple[float, float] = (35.0, 70.0)
    packet_loss_rate: tuple[float, float] = (0.12, 0.4)
    loose_depth: tuple[float, float] = (0.3, 0.7)
    loose_drop_rate: tuple[float, float] = (0.03, 0.15)
    normal_imbalance_max: float = 0.10  # a commercial meter's steady imbalance, drawn up to this ...
    high_imbalance_share: float = 0.5  # ... on this share of them (the others up to low_imbalance_max)
    low_imbalance_max: float = 0.04
    phase_wander: float = 0.025  # the phases' shares wander this much (two-hour correlation)
    ct_error: float = 0.002  # measured current's relative error, reading by reading
    v_noise: float = 0.002
    pf_noise: float = 0.01
    temp_noise_c: float = 0.15
    commercial_wander: float = 0.03  # real commercial shapes: the minutes' wander around the interpolated shape
    outage_max_h: float = 4.0
    tau_scale: float = 1.0  # the enclosure's thermal time constant, times this
    rise_scale: float = 1.0  # its temperature rise at rated current, times this
    ambient_swing_c: float = 3.0  # the ambient's daily swing (amplitude)
    ambient_wander_c: float = 0.5

    def hours(self, fault: str) -> tuple[float, float]:
        for k, lo, hi in self.fault_hours:
            if k == fault:
                return lo, hi
        return FAULT_HOURS[fault]


DEFAULT_KNOBS = SimKnobs()


@dataclass(frozen=True)
class SimConfig:
    """Parameters of a simulated fleet (all defaults are what ``wattwatch simulate`` uses)."""

    meters: int = 50
    days: float = 14.0
    seed: int = 0
    step: str = "5min"
    start: str = "2025-01-06T00:00:00Z"  # a Monday
    commercial_share: float = 0.3
    fault_share: float = 0.4
    faults: tuple[str, ...] = tuple(k for k in FAULT_CODES if k not in SEPARATE_FAULTS)
    outage_share: float = 0.15
    reset_share: float = 0.1
    motor_starts_per_day: float = 2.0
    jitter_s: float = 2.0
    duplicate_rate: float = 0.002
    nan_rate: float = 0.0005
    disorder_rate: float = 0.002
    background_loss: float = 0.002
    profile_days: float = 7.0  # faults start after this (at most half a short run), as detectors profile a week
    # The meter's world (load, currents, temperature, faults, energy register) evolves on a grid of at most
    # this many seconds; a meter reporting less often reports a snapshot of it every `step`.
    physics_step_s: float = 300.0
    # Drawn apart from the faults above (from their own random streams, on meters without one), so
    # that adding them left every other meter and fault as it was: a CT clamp that works loose
    # after profiling, and its look-alike, an erratic load (welder, arc furnace, variable-speed
    # drive) whose current and power jump together, present from the start. The look-alike is off
    # by default: erratic loads in the profiling period widen what the fleet-trained learned
    # detectors call normal (they then missed theft events they find without them).
    loose_ct_share: float = 0.04
    variable_load_share: float = 0.0
    # Where each meter's true load comes from: "synthetic" (a daily/weekly formula with appliance
    # bursts) or "real" (real household and commercial load shapes, :mod:`wattwatch.sim.shapes`,
    # read from ``real_dir``, else $WATTWATCH_REAL_DIR, else ../shared/data/real).
    shapes: str = "synthetic"
    real_dir: str | None = None
    # The world's own choices (fault magnitudes, noise, thermal behaviour...); None: the defaults
    # (``SimKnobs()``). Left out of ``meters.json`` when None, so that every earlier fleet's files
    # are what they were.
    knobs: SimKnobs | None = None

    @property
    def k(self) -> SimKnobs:
        return self.knobs if self.knobs is not None else DEFAULT_KNOBS

    def __post_init__(self):
        if self.shapes not in ("synthetic", "real"):
            raise ValueError(f"shapes must be 'synthetic' or 'real', got {self.shapes!r}")
        unknown = set(self.faults) - set(FAULT_CODES)
        if unknown:
            raise ValueError(f"unknown fault type(s) {sorted(unknown)}; known: {sorted(FAULT_CODES)}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2 ** 63):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.meters < 1 or self.days <= 0:
            raise ValueError("meters must be >= 1 and days > 0")
        if not all(0 <= x <= 1 for x in (self.fault_share, self.commercial_share, self.loose_ct_share,
                                          self.variable_load_share)):
            raise ValueError("shares must be within [0, 1]")
        if not self.physics_step_s > 0:
            raise ValueError("physics_step_s must be > 0")
        # Every cadence SPEC §2 calls normal: 1 s to 1 day (0, negative and sub-second steps divided
        # by zero or went negative; steps of hours once looped forever placing intermittent faults).
        try:
            step_s = pd.Timedelta(self.step).total_seconds()
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"step {self.step!r} is not a duration (e.g. 1s, 5min, 1h, 1D): {exc}") from None
        if not (1.0 <= step_s <= 86400.0):
            raise ValueError(f"step {self.step!r} must be between 1 s and 1 day")
        if not (isinstance(self.days, (int, float)) and math.isfinite(self.days)) or self.days * 86400 < step_s:
            raise ValueError(f"days ({self.days!r}) must span at least one step ({self.step})")
        try:
            t0 = pd.Timestamp(self.start)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"start {self.start!r} is not a time (ISO-8601, e.g. 2025-01-06T00:00:00Z): {exc}") from None
        if t0 is pd.NaT or not isinstance(t0, pd.Timestamp):
            raise ValueError(f"start {self.start!r} is not a time (ISO-8601, e.g. 2025-01-06T00:00:00Z)")
        t0 = t0.tz_localize("UTC") if t0.tz is None else t0.tz_convert("UTC")
        lo, hi = pd.Timestamp("1970-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC")
        if not (lo <= t0 and (hi - t0).total_seconds() >= self.days * 86400):
            raise ValueError(f"start {self.start!r} and {self.days:g} days must lie between {lo.year} and {hi.year}")

    @property
    def step_s(self) -> float:
        return pd.Timedelta(self.step).total_seconds()

    @property
    def substeps(self) -> int:
        """Steps of the simulated world per reading (1 when the cadence is the physics step or finer)."""
        return max(1, int(np.ceil(self.step_s / self.physics_step_s - 1e-9)))


@dataclass
class Meter:
    meter_id: str
    kind: str  # residential | commercial
    phases: int
    v_nom_v: float
    utc_offset_h: float
    peak_kw: float
    base_kw: float
    pf_mean: float
    cal_gain: float
    leakage_a: float
    thd_pct: float
    tau_min: float
    rise_c: float
    rated_a: float
    ambient_c: float
    e0_kwh: float
    faults: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)  # normal look-alikes: variable_load (see SimConfig)
    shape: dict = field(default_factory=dict)  # shapes="real": the real load shape's source, start day, scale


@dataclass
class Event:
    meter_id: str
    type: str
    start: str
    end: str
    code: str | None
    expect_alert: bool
    detail: dict = field(default_factory=dict)


def _iso(t: pd.Timestamp) -> str:
    return t.tz_convert("UTC").isoformat().replace("+00:00", "Z")


def _smooth_noise(rng: np.random.Generator, n: int, scale: float, corr_s: float, step_s: float) -> np.ndarray:
    """Slowly varying zero-mean noise with standard deviation ``scale`` and correlation time
    ``corr_s`` seconds, sampled every ``step_s`` seconds (an Ornstein-Uhlenbeck process read at the
    readings: AR(1) with ``a = exp(-step / corr)``). The correlation is a property of the load, not
    of the meter's cadence: written in steps, a 15-minute wander became a 3-hour one at hourly
    cadence."""
    a = np.exp(-step_s / max(corr_s, 1e-9))
    x = lfilter([np.sqrt(1 - a * a)], [1, -a], rng.standard_normal(n))
    return scale * x


def _make_meter(rng: np.random.Generator, i: int, cfg: SimConfig) -> Meter:
    commercial = rng.random() < cfg.commercial_share
    if commercial:
        peak = float(rng.uniform(15, 80))
        return Meter(f"M-{i:05d}", "commercial", 3, 230.0, float(rng.choice([0, 1, 2])), peak,
                     float(peak * rng.uniform(0.15, 0.3)), float(rng.uniform(0.86, 0.95)),
                     float(1 + rng.normal(0, 0.004)), float(rng.uniform(0.005, 0.025)), float(rng.uniform(6, 14)),
                     float(rng.uniform(40, 90)) * cfg.k.tau_scale, float(rng.uniform(12, 25)) * cfg.k.rise_scale,
                     float(peak * 1000 / 3 / 230 * 1.3),
                     float(rng.uniform(18, 26)), float(rng.uniform(1e3, 5e5)))
    peak = float(rng.uniform(2.5, 6))
    return Meter(f"M-{i:05d}", "residential", 1, 230.0, float(rng.choice([0, 1, 2])), peak,
                 float(rng.uniform(0.08, 0.3)), float(rng.uniform(0.9, 0.98)), float(1 + rng.normal(0, 0.004)),
                 float(rng.uniform(0.003, 0.025)), float(rng.uniform(5, 12)),
                 float(rng.uniform(20, 60)) * cfg.k.tau_scale, float(rng.uniform(8, 18)) * cfg.k.rise_scale, 40.0, float(rng.uniform(15, 24)), float(rng.uniform(100, 4e4)))


BURST_BIN_S = 300.0  # appliance bursts start and stop on this clock (5 min) ...
BURST_BINS = (1, 6)  # ... and last this many of its bins (5 to 30 min), whatever the cadence


def _bursts(rng: np.random.Generator, t_ns: np.ndarray, utc_offset_h: float) -> np.ndarray:
    """Appliance bursts (kettles, ovens, washing machines) as readings taken at ``t_ns`` see them.

    Bursts are a process in time: Poisson starts (6 a day, fewer at night) on a ``BURST_BIN_S``
    clock, each lasting ``BURST_BINS`` bins; a reading is a snapshot and sees the bursts running at
    its instant. (Drawn per reading, a kettle at hourly cadence boiled for 1-6 hours and the
    simulated household used several times the energy it uses at 5 minutes.)"""
    b = int(round(BURST_BIN_S * 1e9))
    rel = t_ns - t_ns[0]
    idx = rel // b
    n_f = int(idx[-1]) + 1 if len(idx) else 0
    h = ((t_ns[0] + np.arange(n_f, dtype=np.int64) * b) / 3.6e12 + utc_offset_h) % 24
    burst = np.zeros(n_f)
    starts = np.flatnonzero(rng.random(n_f) < 6.0 * BURST_BIN_S / 86400 * (0.3 + (h > 6) * (h < 23)))
    for s, d, kw in zip(starts, rng.integers(BURST_BINS[0], BURST_BINS[1] + 1, len(starts)),
                        rng.uniform(0.8, 2.5, len(starts))):
        burst[s:s + d] += kw
    return burst[idx]


def _child_seed(rng: np.random.Generator):
    """A seed for an independent stream derived from ``rng``'s seed, without drawing from ``rng``."""
    seq = getattr(rng.bit_generator, "seed_seq", None)
    return seq.spawn(1)[0] if seq is not None else 0


def real_root(cfg: SimConfig) -> str:
    """The real-data folder a ``shapes="real"`` fleet reads (a clear error when there is none)."""
    from wattwatch.evaluate.real_data import candidates, find_data

    root = find_data(cfg.real_dir)
    if root is None or not Path(root).is_dir():
        looked = [str(cfg.real_dir)] if cfg.real_dir else [str(p) for p in candidates()]
        raise ValueError("real load shapes need the real-data extracts (shared/data/real); none found at "
                         + ", ".join(looked) + " (give --data DIR or set WATTWATCH_REAL_DIR)")
    return str(Path(root).resolve())


def _load_kw(rng: np.random.Generator, m: Meter, t_local_h: np.ndarray, dow: np.ndarray, step_s: float,
             t_ns: np.ndarray, cfg: SimConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """True active load and the share of it drawn by resistive bursts (which raise the pf), at the
    world's steps (``t_ns``: epoch ns; ``t_local_h``: local hours; ``step_s`` apart)."""
    n = len(t_local_h)
    if cfg is not None and cfg.shapes == "real":
        from wattwatch.sim.shapes import real_load_kw

        load, m.shape = real_load_kw(rng, m.kind, m.peak_kw, t_local_h, cfg.days, real_root(cfg))
        if m.kind == "commercial":  # hourly and 15-min shapes, interpolated: the minutes' wander
            wander = cfg.k.commercial_wander
            load = load * (1 + _smooth_noise(rng, n, wander, 1200.0, step_s))
        return np.clip(load, 0.03 if m.kind == "residential" else 0.1, None), np.zeros(n)
    h = t_local_h % 24
    weekend = dow >= 5
    day = np.floor(t_local_h / 24).astype(int)
    day_scale = np.exp(rng.normal(0, 0.08, day.max() + 1))[day]
    if m.kind == "residential":
        shift = np.where(weekend, 1.5, 0.0)
        morning = rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((h - 7.5 - shift) / 0.9) ** 2)
        evening = rng.uniform(0.8, 2.2) * np.exp(-0.5 * ((h - 19.5) / 1.8) ** 2)
        midday = np.where(weekend, rng.uniform(0.2, 0.6), 0.05) * np.exp(-0.5 * ((h - 13) / 2.5) ** 2)
        shape = m.base_kw + (morning + evening + midday) * day_scale
        burst = _bursts(rng, t_ns, m.utc_offset_h)
        load = shape * (1 + _smooth_noise(rng, n, 0.05, 900.0, step_s)) + burst
        return np.clip(load, 0.03, None), burst
    open_h = 1 / (1 + np.exp(-(h - 7.5) * 2.5)) * 1 / (1 + np.exp((h - 18.5) * 2.5))
    occupancy = np.where(dow == 5, 0.3, np.where(dow == 6, 0.05, 1.0)) * open_h
    # HVAC cycling on a thermostat: a 30-60 min cycle whose length wanders with load and weather
    # (±15 %, over hours). A perfectly periodic cycle is a clock no compressor keeps: read every
    # 15 or 60 minutes near a multiple of its period it aliased into a bias of the snapshots'
    # energy lasting days to weeks, which no real meter shows. (The wander has its own random
    # stream, so every other draw of the meter is what it was.)
    period = rng.uniform(1800, 3600)
    wander = _smooth_noise(np.random.default_rng(_child_seed(rng)), n, 0.15, 2 * 3600.0, step_s)
    phase = 2 * np.pi * np.concatenate([[0.0], np.cumsum(step_s / (period * np.exp(wander)))[:-1]])
    hvac = 0.06 * m.peak_kw * (np.sin(phase) > 0.3)
    load = m.base_kw + (m.peak_kw - m.base_kw) * occupancy * day_scale * 0.9 + hvac
    load = load * (1 + _smooth_noise(rng, n, 0.03, 1200.0, step_s))
    return np.clip(load, 0.1, None), np.zeros(n)


NORMAL_IMBALANCE = (0.0, 0.10)  # a commercial meter's steady imbalance (max deviation / mean) ...
HIGH_IMBALANCE_SHARE = 0.5  # ... drawn up to the top of the range for this share of meters, else up to 4 %


def _normal_split(rng: np.random.Generator, k: SimKnobs = DEFAULT_KNOBS) -> np.ndarray:
    """A three-phase meter's own normal split of the load over its phases, as factors around 1
    (mean 1): single-phase loads are never spread evenly, and on some sites one phase carries
    much more than the others for good (a kitchen, a lift, a server room on L1). With the
    natural wander the 99th percentile of a clean week's imbalance reaches ~15 % on the most
    asymmetric meters, as on real commercial sites. Drawn from its own stream (spawned from
    ``rng``'s seed), so every other draw of the meter is what it was."""
    g = np.random.default_rng(_child_seed(rng))
    high = g.random() < k.high_imbalance_share
    target = g.uniform(NORMAL_IMBALANCE[0], k.normal_imbalance_max if high else k.low_imbalance_max)
    d = g.standard_normal(3)
    d -= d.mean()
    d *= target / max(np.abs(d).max(), 1e-9)
    return 1 + d


def _window(rng: np.random.Generator, n: int, lo_steps: int, min_len: int, max_len: int) -> tuple[int, int]:
    """A span [s, e) starting at or after ``lo_steps`` that fits in ``n`` steps (shortened if needed)."""
    lo_steps = min(lo_steps, max(0, n - 2))
    max_len = max(1, min(max_len, n - lo_steps - 1))
    min_len = max(1, min(min_len, max_len))
    length = int(rng.integers(min_len, max_len + 1))
    s = int(rng.integers(lo_steps, max(lo_steps + 1, n - length)))
    return s, min(n, s + length)


def _loose_clamp(rng: np.random.Generator, i_meas: np.ndarray, s: int, e: int,
                 kn: SimKnobs = DEFAULT_KNOBS) -> tuple[np.ndarray, dict]:
    """A CT clamp not fully closed on one phase over steps [s, e): the reported current is
    attenuated by an amount that changes from reading to reading (up to ``depth``), and now and
    then (``drop_rate``) nearly lost. Returns the reported currents and the event's detail."""
    k = int(rng.integers(0, i_meas.shape[0]))
    depth = float(rng.uniform(*kn.loose_depth))
    drop_rate = float(rng.uniform(*kn.loose_drop_rate))
    g = 1 - depth * rng.random(e - s)
    drops = rng.random(e - s) < drop_rate
    g[drops] = rng.uniform(0.0, 0.1, int(drops.sum()))
    out = i_meas.copy()
    out[k, s:e] *= g
    return out, {"channel": f"i_l{k + 1}_a", "phase": f"L{k + 1}", "depth": round(depth, 3),
                 "drop_rate": round(drop_rate, 3)}


def _variable_load(rng: np.random.Generator, m: Meter, p_phase: np.ndarray, t_local_h: np.ndarray,
                   dow: np.ndarray, step_s: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """An erratic load, current and power jumping together: a welder on a home's phase, an arc
    furnace or a variable-speed drive on all three phases of a commercial site, running in 1-3
    spells a day of 30 min to 3 h (weekdays on commercial sites) from the first day. Returns the
    phases' true power with it and the spells [a, b) in steps."""
    n = p_phase.shape[1]
    steps_h = 3600.0 / step_s
    days = int(np.floor(t_local_h[-1] / 24) - np.floor(t_local_h[0] / 24)) + 1
    day0 = np.floor(t_local_h[0] / 24)
    kw = float(rng.uniform(1.0, 2.5)) if m.phases == 1 else float(rng.uniform(0.1, 0.25) * m.peak_kw)
    on = np.zeros(n, bool)
    spells = []
    for d in range(days):  # a loop over days, not readings
        count = int(rng.integers(1, 4))
        starts_h = rng.uniform(7, 17, count)
        lengths_h = rng.uniform(0.5, 3, count)
        for a_h, l_h in zip(starts_h, lengths_h):
            a = int(np.searchsorted(t_local_h, (day0 + d) * 24 + a_h))
            b = min(n, a + max(1, int(l_h * steps_h)))
            if a >= n or (m.phases == 3 and dow[a] >= 5):
                continue
            on[a:b] = True
            spells.append((a, b))
    level = kw * (0.2 + 0.8 * rng.random(n)) * on
    out = p_phase.copy()
    out += level / p_phase.shape[0]
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spells):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return out, merged


def simulate_meter(rng: np.random.Generator, m: Meter, ts: pd.DatetimeIndex, cfg: SimConfig
                   ) -> tuple[pd.DataFrame, list[Event]]:
    """One meter's reported telemetry and its labelled events (before jitter/duplication).

    The meter's world evolves on a grid of ``cfg.physics_step_s`` (5 min) or the cadence when that
    is finer; the meter reports every ``substeps``-th instant of it (readings are snapshots), and
    its energy register integrates every step of it. At coarse cadences this is what a real meter
    does: an hourly meter's register counts the energy of the whole hour, not one snapshot's power
    times an hour (which put an hour of a motor's starting current into the register), and a motor
    start, an outage or a fault episode is seen by the readings that fall in it, if any. Events are
    labelled by the first and last reading that shows them; a normal event that no reading shows
    (a 20-minute outage between two hourly readings) is not labelled, a fault no reading shows is
    labelled with its true span (it covers no reading: invisible at that cadence)."""
    r = cfg.substeps
    ts_r = ts  # the readings
    if r > 1:
        ts = pd.date_range(ts_r[0], periods=len(ts_r) * r, freq=pd.Timedelta(seconds=cfg.step_s / r))
    n = len(ts)
    step_s = cfg.step_s / r
    steps_h = 3600.0 / step_s

    def seen(a: int, b: int) -> tuple[str, str] | None:
        """(start, end) labels of world steps [a, b): the first and last reading in them (None: none)."""
        ca, cb = -(-a // r), -(-b // r)
        return (_iso(ts_r[ca]), _iso(ts_r[cb - 1])) if cb > ca else None

    t_ns = ts.as_unit("ns").asi8
    t_local_h = t_ns / 3.6e12 + m.utc_offset_h
    dow = ((np.floor(t_local_h / 24) + 3) % 7).astype(int)  # 1970-01-01 was a Thursday (dow 3)
    load, burst = _load_kw(rng, m, t_local_h, dow, step_s, t_ns, cfg)
    events: list[Event] = []
    # Faults start after the profiling period (at most half a short run, as detectors profile).
    lo = max(1, min(int(cfg.profile_days * 24 * steps_h), n // 2))
    ph = m.phases

    kn = cfg.k
    fault = m.faults[0] if m.faults else None
    fw: dict[str, tuple[int, int]] = {}
    if fault:
        lengths = kn.hours(fault)  # (min, max) hours
        s, e = _window(rng, n, lo, int(lengths[0] * steps_h), int(lengths[1] * steps_h))
        fw[fault] = (s, e)

    # Consumption-pattern faults change the true load itself.
    if "theft_under_registration" in fw:
        s, e = fw["theft_under_registration"]
        frac = rng.uniform(*kn.theft_keep)
        load[s:e] *= frac  # a tap before the meter: it sees (and bills) only part of the load
    if "level_shift" in fw:
        s, e = fw["level_shift"]
        load[s:e] += rng.uniform(*kn.level_shift_add) * load[:lo].mean()

    # Voltage per phase: slow wander, noise, small drop with load.
    v = np.empty((ph, n))
    for k in range(ph):
        v[k] = m.v_nom_v * (1 + _smooth_noise(rng, n, 0.012, 3 * 3600.0, step_s) + rng.normal(0, kn.v_noise, n)
                            - 0.01 * load / m.peak_kw)
    # Phase shares: natural wander a few percent around the meter's own normal split.
    if ph == 3:
        w = np.stack([_smooth_noise(rng, n, kn.phase_wander, 2 * 3600.0, step_s) for _ in range(3)])
        shares = (1 + w - w.mean(axis=0)) / 3 * _normal_split(rng, kn)[:, None]
        shares /= shares.sum(axis=0)
    else:
        shares = np.ones((1, n))
    if "phase_imbalance" in fw:
        s, e = fw["phase_imbalance"]
        k = int(rng.integers(0, 3))
        boost = rng.uniform(*kn.imbalance_boost)
        # A load added on one phase: its current rises by ``boost``, the others' stay (the
        # total rises with it).
        shares[k, s:e] *= 1 + boost
        fw_detail = {"phase": f"L{k + 1}", "boost": round(float(boost), 3)}
    pf = np.clip(m.pf_mean + (1 - m.pf_mean) * np.divide(burst, load, out=np.zeros(n), where=load > 0)
                 + rng.normal(0, kn.pf_noise, (ph, n)), 0.6, 0.999)

    p_phase = load * shares  # kW, true
    # Own random stream for what was added later (loose clamp, erratic load): the draws above and
    # below are unchanged.
    xr = np.random.default_rng(_child_seed(rng)) if (m.extras or "loose_ct" in fw) else None
    if "variable_load" in m.extras:
        p_phase, spells = _variable_load(xr, m, p_phase, t_local_h, dow, step_s)
        for a, b in spells:
            label = seen(a, b) if a >= lo else None
            if label:
                events.append(Event(m.meter_id, "variable_load", *label, NORMAL_EVENTS["variable_load"], False,
                                    {"phases": "L1" if ph == 1 else "L1-L3"}))
    i_true = p_phase * 1000 / (v * pf)
    # A reading is a snapshot; a seconds-long inrush does not heat the enclosure.
    i_heat = i_true.copy()
    pf_run = pf.copy()  # the power factor once a starting motor runs
    # Motor starts: one-reading inrush (3-6x current at low pf), voltage dips a little.
    n_starts = rng.poisson(cfg.motor_starts_per_day * cfg.days)
    starts = rng.integers(lo // 2, n, n_starts) if n_starts else np.array([], int)
    for s in starts:
        factor = rng.uniform(3, 6)
        phases = range(ph) if (ph == 1 or rng.random() < 0.6) else [int(rng.integers(0, ph))]
        for k in phases:
            i_true[k, s] *= factor
            pf[k, s] = min(pf[k, s], 0.35 + 0.1 * rng.random())
            v[k, s] *= 1 - rng.uniform(0.01, 0.04)
        if s % r == 0:  # caught by a reading
            events.append(Event(m.meter_id, "motor_start", _iso(ts[s]), _iso(ts[s]), None, False,
                                {"factor": round(float(factor), 2)}))

    # Measured currents (CT class 0.5 error) and what the meter computes from them.
    i_meas = i_true * (1 + rng.normal(0, kn.ct_error, (ph, n)))
    thd = np.clip(m.thd_pct * (1 + 0.6 * (1 - load / m.peak_kw)) + rng.normal(0, 0.5, n), 1, None)
    if "harmonic_noise" in fw:
        s, e = fw["harmonic_noise"]
        thd[s:e] = rng.uniform(*kn.harmonic_thd) + rng.normal(0, 3, e - s)
        i_meas[:, s:e] *= 1 + rng.normal(0, 0.08, (ph, e - s))

    # Neutral current.
    leak = m.leakage_a * (1 + 0.2 * rng.standard_normal(n))
    if ph == 1:
        i_n = np.clip(i_true[0] - leak, 0, None)
    else:
        angles = np.deg2rad(np.array([0.0, -120.0, 120.0]))[:, None] - np.arccos(pf)
        phasor = (i_true * np.exp(1j * angles)).sum(axis=0)
        triplen = 3 * (thd / 100 * 0.6) * i_true.mean(axis=0)  # 3rd harmonic adds in the neutral
        i_n = np.sqrt(np.abs(phasor) ** 2 + triplen ** 2)
    detail: dict = {}
    if "partial_earth_return" in fw:
        s, e = fw["partial_earth_return"]
        f = rng.uniform(*kn.earth_fraction)
        if ph == 1:
            i_n[s:e] = i_true[0, s:e] * (1 - f)
        else:
            k = int(rng.integers(0, 3))
            scale = np.ones((3, 1))
            scale[k] = 1 - f
            phasor = (i_true[:, s:e] * scale * np.exp(1j * angles[:, s:e])).sum(axis=0)
            # The earth path carries a fraction f of phase k's return current past the sensor.
            i_n[s:e] = np.sqrt(np.abs(phasor) ** 2 + triplen[s:e] ** 2)
            detail["phase"] = f"L{k + 1}"
        detail["earth_fraction"] = round(float(f), 3)
    if "neutral_bypass" in fw:
        s, e = fw["neutral_bypass"]
        intermittent = rng.random() < 0.4
        mask = np.zeros(n, bool)
        if intermittent:
            pos = s
            episodes = []
            while pos < e:
                on = int(rng.integers(int(1 * steps_h), int(4 * steps_h) + 1))
                if min(e, pos + on) - pos >= steps_h:  # an episode cut short by the window is dropped
                    episodes.append((pos, min(e, pos + on)))
                pos += on + int(rng.integers(int(2 * steps_h), int(8 * steps_h) + 1))
            if not episodes:
                episodes.append((s, min(n, s + int(steps_h))))
            for a, b in episodes:
                mask[a:b] = True
            fw.pop("neutral_bypass")
            for a, b in episodes:
                start, end = seen(a, b) or (_iso(ts[a]), _iso(ts[b - 1]))
                events.append(Event(m.meter_id, "neutral_bypass", start, end,
                                    FAULT_CODES["neutral_bypass"], True, {"intermittent": True}))
        else:
            mask[s:e] = True
        i_n[mask] = np.abs(rng.normal(0, 0.01, mask.sum()))
    i_n = i_n * (1 + rng.normal(0, kn.ct_error, n))

    if "open_ct" in fw:
        s, e = fw["open_ct"]
        k = int(rng.integers(0, ph))
        i_meas[k, s:e] = np.abs(rng.normal(0, 0.005, e - s))
        detail["channel"] = f"i_l{k + 1}_a"

    # Supply outages: no voltage, no current anywhere, for 10 min to 4 h.
    outage = np.zeros(n, bool)
    if rng.random() < cfg.outage_share:
        for _ in range(int(rng.integers(1, 3))):
            s, e = _window(rng, n, lo // 3, max(2, int(steps_h / 6)), int(kn.outage_max_h * steps_h))
            outage[s:e] = True
            label = seen(s, e)
            if label:
                events.append(Event(m.meter_id, "supply_outage", *label, NORMAL_EVENTS["supply_outage"], False))
    v[:, outage] = 0.0
    i_meas[:, outage] = 0.0
    i_true[:, outage] = 0.0
    i_n[outage] = 0.0
    thd[outage] = 0.0

    # Power as the meter computes it from its own V and I.
    p_meas = (v * i_meas * pf / 1000).sum(axis=0)
    s_meas = (v * i_meas / 1000).sum(axis=0)
    q_meas = np.sqrt(np.clip(s_meas ** 2 - p_meas ** 2, 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        pf_tot = np.where(s_meas > 0, p_meas / s_meas, np.nan)
    if "loose_ct" in fw:
        # The meter's power metrology is not on the loose clamp: only the reported current is.
        i_meas, lc_detail = _loose_clamp(xr, i_meas, *fw["loose_ct"], kn)
        detail.update(lc_detail)

    # Energy register: integrates the power the metrology sees times the calibration gain (every
    # step of the world, whether the meter reports it or not). A motor's starting current lasts
    # seconds: the step it starts in carries the running motor's power, not the inrush's (taken
    # for the whole step, 24 starts a day added a tenth to a home's energy).
    p_energy = p_meas.copy()
    if len(starts):
        at = np.unique(starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            running = (v[:, at] * i_heat[:, at] * pf_run[:, at]).sum(axis=0)
            inr = (v[:, at] * i_true[:, at] * pf[:, at]).sum(axis=0)
            p_energy[at] = np.where(inr > 0, p_meas[at] * running / inr, p_meas[at])
    inc = p_energy * m.cal_gain * step_s / 3600
    if "firmware_drift" in fw:
        s, e = fw["firmware_drift"]
        g = rng.uniform(*kn.firmware_gain)
        inc[s:e] *= g
        detail["register_gain"] = round(float(g), 3)
    e_kwh = m.e0_kwh + np.cumsum(inc)
    if rng.random() < cfg.reset_share:
        at = int(rng.integers(lo // 2, n - 1))
        e_kwh[at:] -= e_kwh[at - 1] if at > 0 else 0
        e_kwh[at:] = np.clip(e_kwh[at:], 0, None)
        label = seen(at, n)  # the first reading after the reset shows it
        if label:
            events.append(Event(m.meter_id, "register_reset", label[0], label[0], None, False))

    # Temperature: first-order lag towards ambient + rise * (I / I_rated)^2.
    amb = (m.ambient_c + kn.ambient_swing_c * np.sin(2 * np.pi * (t_local_h % 24 - 9) / 24)
           + _smooth_noise(rng, n, kn.ambient_wander_c, 4 * 3600.0, step_s))
    i_heat[:, outage] = 0.0
    heat = m.rise_c * (i_heat.max(axis=0) / m.rated_a) ** 2
    a = np.exp(-step_s / 60 / m.tau_min)
    drive = amb + heat
    temp = lfilter([1 - a], [1, -a], drive, zi=[a * drive[0]])[0]
    if "thermal_drift" in fw:
        s, e = fw["thermal_drift"]
        extra = rng.uniform(*kn.thermal_extra_c)
        ramp = np.minimum(1, np.arange(e - s) / (rng.uniform(*kn.thermal_ramp_h) * steps_h))
        temp[s:e] += extra * ramp
        detail["extra_c"] = round(float(extra), 2)
    temp = temp + rng.normal(0, kn.temp_noise_c, n)

    cols = {
        "v_l1_v": np.round(v[0], 1), "i_l1_a": np.round(i_meas[0], 3),
        "v_l2_v": np.round(v[1], 1) if ph == 3 else None, "i_l2_a": np.round(i_meas[1], 3) if ph == 3 else None,
        "v_l3_v": np.round(v[2], 1) if ph == 3 else None, "i_l3_a": np.round(i_meas[2], 3) if ph == 3 else None,
        "i_n_a": np.round(i_n, 3), "p_kw": np.round(p_meas, 4), "q_kvar": np.round(q_meas, 4),
        "s_kva": np.round(s_meas, 4), "pf": np.round(pf_tot, 4), "e_kwh": np.round(e_kwh, 3),
        "temp_c": np.round(temp, 2), "thd_i_pct": np.round(thd, 2),
    }
    frame = pd.DataFrame({"meter_id": m.meter_id, "ts": ts})
    for c in CHANNEL_NAMES:
        frame[c] = cols[c] if cols[c] is not None else np.nan
    if r > 1:  # what the meter reports: a snapshot every r steps
        frame = frame.iloc[::r].reset_index(drop=True)

    def readings(a: int, b: int) -> tuple[int, int]:
        """Reading indices [ca, cb) of world steps [a, b)."""
        return -(-a // r), -(-b // r)

    # What the meter's data path does to its reports: a stuck logger, lost packets.
    if "frozen_register" in fw:
        s, e = readings(*fw["frozen_register"])
        if e > s:
            frame.iloc[s:e, 2:] = frame.iloc[s - 1, 2:].to_numpy()
    keep = rng.random(len(frame)) >= cfg.background_loss
    if "packet_loss" in fw and np.subtract(*readings(*fw["packet_loss"])[::-1]) > 0:
        s, e = readings(*fw["packet_loss"])
        rate = rng.uniform(*kn.packet_loss_rate)
        # Bursty loss: drop runs of readings, not isolated ones.
        # (Runs of about three readings: a link that is down loses the readings it would carry.)
        lost = (_smooth_noise(rng, e - s, 1.0, 3.0, 1.0)
                > np.quantile(_smooth_noise(rng, 4096, 1.0, 3.0, 1.0), 1 - rate))
        keep[s:e] &= ~lost
        detail["loss_rate"] = round(float(1 - keep[s:e].mean()), 3)
        # The longest run of readings lost in a row inside the span: one long enough is a data gap
        # the detector finds whatever the share (the evaluator's visibility, q64).
        runs = np.diff(np.flatnonzero(np.r_[True, keep[s:e], True])) - 1
        detail["lost_in_a_row"] = int(runs.max()) if len(runs) else 0
    frame = frame[keep]

    for name, (s, e) in fw.items():
        if name == "phase_imbalance":
            detail.update(fw_detail)
        start, end = seen(s, e) or (_iso(ts[s]), _iso(ts[e - 1]))
        events.append(Event(m.meter_id, name, start, end, FAULT_CODES[name], True, detail))
    return frame, events


def _assign_extras(rng: np.random.Generator, meters: list[Meter], cfg: SimConfig) -> None:
    """Give ``loose_ct_share`` and ``variable_load_share`` of the fleet's meters, among those
    without a fault, a loose CT clamp (a fault: ``Meter.faults``) or an erratic load (a normal
    look-alike: ``Meter.extras``), chosen from a stream of their own."""
    free = [i for i, m in enumerate(meters) if not m.faults]
    order = [free[int(j)] for j in rng.permutation(len(free))]
    n_lc = int(round(cfg.loose_ct_share * len(meters)))
    n_vl = int(round(cfg.variable_load_share * len(meters)))
    for i in order[:n_lc]:
        meters[i].faults.append("loose_ct")
    for i in order[n_lc:n_lc + n_vl]:
        meters[i].extras.append("variable_load")


def _messy(rng: np.random.Generator, frame: pd.DataFrame, cfg: SimConfig) -> pd.DataFrame:
    """Timestamp jitter, duplicated rows (exact and jittered), NaN channels, local disorder."""
    n = len(frame)
    # A clock's jitter is a small part of the cadence: +-2 s on a 1-s meter reordered its readings and
    # opened 3-s gaps that no real 1-s logger has (the packet-loss rule read 27 % of them as lost).
    # Both jitters are bounded by a fifth of the step (unchanged from 10 s up).
    jitter_s = min(cfg.jitter_s, 0.2 * cfg.step_s)
    if jitter_s > 0:
        frame["ts"] = frame["ts"] + pd.to_timedelta(np.round(rng.uniform(-jitter_s, jitter_s, n), 3), unit="s")
    if cfg.nan_rate > 0:
        channels = frame.columns[2:]
        holes = rng.random((n, len(channels))) < cfg.nan_rate
        values = frame[channels].to_numpy()
        values[holes] = np.nan
        frame[channels] = values
    if cfg.duplicate_rate > 0:
        dup = frame[rng.random(n) < cfg.duplicate_rate].copy()
        jittered = rng.random(len(dup)) < 0.5
        late = rng.uniform(0.5, 4, jittered.sum()) * min(1.0, 0.2 * cfg.step_s / 2.0)
        dup.loc[jittered, "ts"] += pd.to_timedelta(late.round(3), unit="s")
        frame = pd.concat([frame, dup])
        frame = frame.sort_values(["meter_id", "ts"], kind="stable")
    order = np.arange(len(frame))
    if cfg.disorder_rate > 0:
        swap = np.flatnonzero(rng.random(len(frame) - 1) < cfg.disorder_rate)
        order[swap], order[swap + 1] = order[swap + 1], order[swap]
    return frame.iloc[order].reset_index(drop=True)


def simulate(cfg: SimConfig, out: str | Path | None = None, formats: tuple[str, ...] = ("parquet", "csv"),
             chunk_meters: int = 100, on_progress=None) -> dict:
    """Simulate a fleet; write telemetry, ``events.json`` and ``meters.json`` under ``out``.

    Returns
    -------
    dict
        ``{"frame": DataFrame | None, "events": [...], "meters": [...], "files": {...}, "rows": N}``.
        The frame is returned only when ``out`` is None (in-memory use in tests).
    """
    rng = np.random.default_rng(cfg.seed)
    ts = pd.date_range(pd.Timestamp(cfg.start), periods=int(round(cfg.days * 86400 / cfg.step_s)),
                       freq=pd.Timedelta(seconds=cfg.step_s))
    meters = [_make_meter(rng, i + 1, cfg) for i in range(cfg.meters)]
    # Faults go to a chosen share of meters, cycling through the types so each appears.
    n_faulty = int(round(cfg.fault_share * cfg.meters))
    faulty = rng.permutation(cfg.meters)[:n_faulty]
    kinds = list(cfg.faults)

    def fits(kind: str, m: Meter) -> bool:
        return not (kind in THREE_PHASE_ONLY and m.phases == 1) and not (kind in SINGLE_PHASE_ONLY and m.phases == 3)

    # Round-robin over fault types, each taking the next faulty meter it fits, so that every type
    # appears once there are enough meters of the right kind.
    pool = [int(i) for i in faulty]
    j = idle = 0
    while pool and kinds and idle < len(kinds):
        kind = kinds[j % len(kinds)]
        j += 1
        idx = next((i for i in pool if fits(kind, meters[i])), None)
        if idx is None:
            idle += 1
            continue
        idle = 0
        pool.remove(idx)
        meters[idx].faults.append(kind)

    out_dir = Path(out) if out is not None else None
    writers: dict = {}
    files: dict[str, str] = {}
    frames, events = [], []
    rows = 0
    seeds = rng.spawn(cfg.meters)
    _assign_extras(np.random.default_rng(rng.spawn(1)[0]), meters, cfg)
    for c0 in range(0, cfg.meters, chunk_meters):
        parts = []
        for i in range(c0, min(cfg.meters, c0 + chunk_meters)):
            frame, ev = simulate_meter(seeds[i], meters[i], ts, cfg)
            parts.append(frame)
            events.extend(ev)
        chunk = _messy(np.random.default_rng([cfg.seed, c0]), pd.concat(parts, ignore_index=True), cfg)
        rows += len(chunk)
        if out_dir is None:
            frames.append(chunk)
        else:
            _write_chunk(chunk, out_dir, formats, writers, files)
        if on_progress:
            on_progress(min(cfg.meters, c0 + chunk_meters))
    for w in writers.values():
        w.close()
    event_dicts = [asdict(e) for e in sorted(events, key=lambda e: (e.meter_id, e.start, e.type))]
    meter_dicts = [asdict(m) for m in meters]
    if out_dir is not None:
        (out_dir / "events.json").write_text(json.dumps(event_dicts, indent=1))
        (out_dir / "meters.json").write_text(json.dumps({"config": _config_dict(cfg), "meters": meter_dicts}, indent=1))
        files["events"] = str(out_dir / "events.json")
        files["meters"] = str(out_dir / "meters.json")
    return {"frame": pd.concat(frames, ignore_index=True) if frames else None, "events": event_dicts,
            "meters": meter_dicts, "files": files, "rows": rows}


def _config_dict(cfg: SimConfig) -> dict:
    """``cfg`` as written to ``meters.json``: without ``knobs`` when they are the defaults (None)."""
    d = asdict(cfg)
    if cfg.knobs is None:
        d.pop("knobs")
    return d


def _write_chunk(chunk: pd.DataFrame, out_dir: Path, formats, writers: dict, files: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(chunk, preserve_index=False)
    table = table.cast(pa.schema([pa.field("meter_id", pa.string()), pa.field("ts", pa.timestamp("ms", tz="UTC"))]
                                 + [pa.field(c, pa.float64()) for c in CHANNEL_NAMES]))
    if "parquet" in formats:
        if "parquet" not in writers:
            files["parquet"] = str(out_dir / "telemetry.parquet")
            writers["parquet"] = pq.ParquetWriter(files["parquet"], table.schema, compression="zstd")
        writers["parquet"].write_table(table, row_group_size=1 << 20)
    if "csv" in formats:
        if "csv" not in writers:
            files["csv"] = str(out_dir / "telemetry.csv")
            writers["csv"] = pacsv.CSVWriter(files["csv"], table.schema)
        writers["csv"].write_table(table)
