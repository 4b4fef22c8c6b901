"""The one detector contract shared by physics rules, baselines and learned models.

A detector is built from a frozen config dataclass, learns per-meter *state* with ``fit(frame)``
and returns ``score(frame)``: a float Series aligned with the frame's index, higher = worse. For
rules the score is the measured quantity over its limit, so 1.0 is the configured threshold; NaN
means "cannot judge this reading" (no load, no voltage, a channel the meter does not have), which
the post-rules neither count nor let break a run.

State (DESIGN §1.1). What ``fit`` learns about a meter is a plain JSON-able dict per meter
(``state_[meter_id]``): a profile, a calibration ratio, a thermal model, the meter's cadence. It is
versioned (``state_version``), kept in the store by :mod:`wattwatch.detect.state`, and reused by
every later run: scoring never re-learns. ``fit`` on a frame (re)learns exactly the meters in it.

Stitching (DESIGN §1.2). A detector declares how far back it must see (``lookback_s`` seconds and
``lookback_n`` readings) and how long after a reading its score may still change
(``lookahead_s`` / ``lookahead_n``; zero for a causal rule). The contract that the common suite
checks: a reading's score depends only on the readings within that reach (and the state), so
scoring any piece of a meter's readings that includes the reach around a reading gives that
reading the score the whole series gives it.

Relations (DESIGN §1.4). What a detector's findings explain is data: ``explains`` lists kinds of
evidence (``"current"``, ``"consumption"``, ...) that its alerts account for, and ``judges`` the
kinds a detector's own judgement rests on; the core blanks a detector wherever another explains
what it judges, and knows no detector by name.

Scores become alerts only in :mod:`wattwatch.detect.postrules` (threshold, persistence,
suppression, merging); ``describe`` turns the rows of one alert into its message and evidence,
from the context ``_score`` returned alongside the scores (no cache between the two calls).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from wattwatch.detect.frame import cache, meter_names, prepare, seg_bounds, seg_median
from wattwatch.schema import PHASE_CURRENT_COLUMNS, VOLTAGE_COLUMNS
from wattwatch.tomlfile import flag, number

STATE_KEYS = ("cadence_s", "first_t", "last_t", "readings")  # what every detector's state holds
# The phase voltages and currents: rules/_common.phases() reads the six together.
PHASE_CHANNELS: tuple[str, ...] = (*VOLTAGE_COLUMNS, *PHASE_CURRENT_COLUMNS)


class NotFittedError(RuntimeError):
    """``score`` was called before ``fit``, or for meters the detector has no state for."""


@dataclass(frozen=True)
class PostRule:
    """How a detector's scores become alerts.

    Durations are seconds; the core adapts them to each meter's cadence (see :meth:`at`), so a rule
    written for 5-minute readings judges hourly readings on the same physical terms.

    Parameters
    ----------
    threshold : float
        A reading is anomalous when its score is at least this.
    min_duration_s : float
        An alert must span at least this long (first to last anomalous reading), on the meter's
        cadence grid: a run whose readings are ``min_duration_s`` apart nominally passes whatever
        its stamps' clock jitter (up to a quarter cadence each), one reading shorter never (where
        the minimum is a whole number of cadences, or at least half a cadence past one; otherwise
        the shorter run is kept out by the minimum itself, as before): :meth:`at`'s ``min_span_s``.
    min_readings : int
        ... and hold at least this many anomalous readings; with 2 or more, a run of one
        anomalous reading is a blip and never alerts. At coarse cadences the count asked for is
        capped by what the duration needs (``ceil(min_duration_s / cadence) + 1``), never below 2
        when it was 2 or more.
    merge_gap_s : float
        Runs of one meter closer than this are one alert (at least 2.5 cadences), on the meter's
        cadence grid as the minimum duration: runs a whole number of cadences apart merge or not
        as on the exact grid whatever their stamps' jitter (:meth:`at`).
    merge_gap_n : float
        ... and at least this many cadences (0: seconds only). For a detector that sees what it
        judges only in stretches of readings (a rolling window of readings, say), so that its
        fragments are merged alike at 5-minute and at hourly cadence.
    max_bridge_s : float
        Readings that cannot be judged (NaN) do not break a run, but only for this long: two
        anomalous readings further apart are separate runs, whatever lies between (at least 2.5
        cadences, so one lost reading never splits a run); on the cadence grid as the merge gap.
    bridge_gaps : bool
        Two anomalous readings with no reading at all between them are one run however far apart
        (``max_bridge_s`` then limits only bridges over readings that could not be judged): for
        a detector whose finding is the absence of readings, a data gap of days is one event.
    hold : float
        Hysteresis (0: off). Two alerts of one meter are one when no reading between them that
        could be judged scored under ``hold`` x ``threshold`` nor was off the other way (the
        detector's :meth:`Detector.side`): the deviation never returned to normal, so a lasting
        change is one alert, kept open while it lasts however long the score dips under the
        threshold (or readings cannot be judged) in between. Not counted in
        :meth:`horizon_s`: a detector whose alerts explain other detectors' readings keeps it 0
        (refused otherwise).
    hold_gap_s : float
        The longest stretch without a judged reading a hold bridges (3 days: an outage, a fault
        that blanks the detector). A judged reading further than this from the meter's previous
        one ends the hold: whether the deviation returned meanwhile is unknown, so what follows
        is a new alert, and an alert is not held open past it for readings that may never come.
    single_s : float
        0 (off), or the evidence one reading alone can be: where the cadence of the stretch the
        reading is in (:func:`wattwatch.detect.cadence.stretch_cadence`, the meter's learned one
        unless it was reconfigured since) is at least this (the reading stands for that long; a
        detector using it declares that stretch's reach), a reading scoring at least ``single_score`` x
        ``threshold`` is an alert on its own, whatever ``min_readings`` and ``min_duration_s`` ask
        (the reading spans its cadence). The count of readings guards against one-reading glitches
        of a fine cadence; at a coarse one, two readings are hours of a fault that one reading
        already shows far over the limit (the neutral rule: a one-hour bypass read hourly).
    single_score : float
        ... the score such a reading must reach, as a multiple of ``threshold`` (at least 1).
    """

    threshold: float = 1.0
    min_duration_s: float = 900.0
    min_readings: int = 2
    merge_gap_s: float = 3600.0
    max_bridge_s: float = 1800.0
    merge_gap_n: float = 0.0
    bridge_gaps: bool = False
    hold: float = 0.0
    hold_gap_s: float = 3 * 86400.0
    single_s: float = 0.0
    single_score: float = 2.0

    def __post_init__(self):
        # a detector config's [*.post] values (base.py's from_dict): checked naming the key; a whole
        # min_readings given as 2.0 is kept as 2
        for f in ("min_duration_s", "merge_gap_s", "max_bridge_s", "merge_gap_n", "hold_gap_s", "single_s"):
            number(f"post.{f}", getattr(self, f), lo=0)
        flag("post.bridge_gaps", self.bridge_gaps)
        object.__setattr__(self, "min_readings", number("post.min_readings", self.min_readings, whole=True, lo=1))
        number("post.threshold", self.threshold)
        number("post.hold", self.hold, lo=0, hi=1, hi_in=False, note=" (0: off)")
        number("post.single_score", self.single_score, lo=1)

    def at(self, cadence_s: np.ndarray) -> dict[str, np.ndarray]:
        """Effective settings per meter for cadences ``cadence_s`` (seconds; NaN = unknown)."""
        c = np.where(np.isfinite(cadence_s) & (cadence_s > 0), cadence_s, 0.0)
        need = np.ceil(self.min_duration_s / np.where(c > 0, c, np.inf)) + 1
        floor = min(2, self.min_readings)
        readings = np.maximum(floor, np.minimum(self.min_readings, need)).astype(np.int64)
        # The span a run must reach, first to last stamp: ``min_duration_s``, less what a meter's
        # clock jitter takes off a run on its cadence grid. A run of n readings at cadence c spans
        # (n - 1) c nominally; its stamps' jitter moves that by seconds either way, so at exactly
        # the minimum it passed or failed by chance (hourly: a 4-reading 3-hour run spanning
        # 2 h 59 min 59.4 s). The bar is put halfway between the grid's last span under the
        # minimum and its first at or over it, never above the minimum: the same count of readings
        # passes on the grid; jitter under a quarter cadence per stamp never fails a run of that
        # count, nor passes one reading fewer unless the minimum is less than half a cadence past
        # a whole number of them (then the bar is the minimum itself, as before).
        # The merge gap and the bridge alike (h6): runs a whole number of cadences apart, exactly
        # the setting, merged (or bridged) or not by the stamps' jitter. Each is compared with the
        # midpoint between the grid's gaps either side of it: the same gaps merge (bridge) on the
        # grid as before, and none changes side for jitter under a quarter cadence per stamp.
        d = float(self.min_duration_s)
        merge = np.maximum(self.merge_gap_s, np.maximum(self.merge_gap_n, 2.5) * c)
        bridge = np.maximum(self.max_bridge_s, 2.5 * c)
        return {"min_duration_s": np.full(len(c), d),
                "min_span_s": np.maximum(0.0, np.minimum(d, _on_grid(np.full(len(c), d), c, "span"))),
                "min_readings": readings,
                "merge_gap_s": _on_grid(merge, c, "merge"),
                "max_bridge_s": _on_grid(bridge, c, "bridge"),
                "single": (self.single_s > 0) & (c >= self.single_s)}

    @property
    def strong(self) -> float | None:
        """The score one reading alone must reach to alert where its meter's cadence allows it
        (``single_s``), or None where no reading alerts alone."""
        return max(self.threshold, self.single_score * self.threshold) if self.single_s > 0 else None

    def horizon_s(self, cadence_s: np.ndarray) -> np.ndarray:
        """How far (either way) a reading's place in an alert span can depend on other readings:
        the bound the core uses when one detector's alerts blank another's readings."""
        e = self.at(cadence_s)
        gap = np.maximum(e["merge_gap_s"], e["max_bridge_s"])
        return e["min_duration_s"] + (e["min_readings"] + 1) * gap


# A setting within this share of a cadence of a whole number of cadences is taken as that number on
# the grid: a meter's learned cadence is the median of its jittered gaps (fleets at hourly cadence:
# 3599.90-3600.09 s), so 3 h over it is 3.00003 or 2.99997 cadences, which must count as three.
_GRID_TOL = 0.05
# ... or within this share of the setting itself (at most _GRID_TOL_MAX of a cadence): the learned
# cadence's relative error multiplies with the count (rh6: 1-min meters of 28 days, +-2 s jitter,
# learned 60 s +-2.3e-4, so 12 h is 720 +-0.17 cadences and 1 day 1440 +-0.33; with 0.05 alone a
# quarter of them merged runs exactly 12 h apart or split readings exactly a day apart, every time).
_GRID_REL = 5e-4
_GRID_TOL_MAX = 0.45


def _on_grid(x: np.ndarray, c: np.ndarray, kind: str) -> np.ndarray:
    """The bar a gap between two stamps is compared with, for a setting of ``x`` seconds on a grid
    of ``c`` (0: unknown cadence, ``x`` as it is): halfway between the grid's gaps either side of
    the setting's decision. ``"span"`` (a run spans at least ``x``) and ``"merge"`` (runs less than
    ``x`` apart merge): a gap of ``n`` cadences reaches ``x`` from ``n = ceil(x / c)`` on, the bar
    is ``(n - 1/2) c``; ``"bridge"`` (stamps more than ``x`` apart are split): from ``floor(x / c) + 1``
    on, the bar is ``(floor(x / c) + 1/2) c``. ``x / c`` within ``_GRID_TOL`` of a whole number, or
    within ``_GRID_REL`` of itself (at most ``_GRID_TOL_MAX``), counts as it (the learned cadence's own
    error), but never a setting over 0 as none."""
    x = np.asarray(x, float)
    known = c > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = x / np.where(known, c, 1.0)
        tol = np.clip(_GRID_REL * np.abs(r), _GRID_TOL, _GRID_TOL_MAX)
        if kind == "bridge":
            n = np.floor(r + tol) + 0.5
        else:  # a setting over 0 asks for at least one cadence however small it is
            n = np.where(r > 0, np.maximum(np.ceil(r - tol), 1.0), 0.0) - 0.5
        return np.where(known, np.maximum(n, 0.0) * c, x)


@dataclass(frozen=True)
class Explains:
    """Readings a detector's findings explain, so that detectors judging ``kinds`` leave them alone.

    ``span``: ``"span"``, the readings inside its alerts' spans (first to last anomalous reading),
    padded by ``pad_s`` either side; ``"hot"``, its anomalous readings inside its alerts;
    ``"reading"``, every anomalous reading (``score >= threshold``), alert or not. ``extra``: the
    name of a method ``(df, ctx) -> bool array`` giving further readings that it explains wherever
    they lie within ``within_s`` of one of its alerts (an open CT reads zero at night too, when
    there is no load to prove it); with ``span="reading"``, wherever they lie (readings it explains
    one by one, as its anomalous ones: a supply outage's repeated readings). ``pad_n`` and ``within_n``: the same in readings (cadences) of
    the meter, whichever is longer: a detector that needs a window of readings to see a fault sees
    its onset and end that many readings late or early, hours at hourly cadence."""

    kinds: tuple[str, ...]
    span: str = "span"
    pad_s: float = 0.0
    extra: str | None = None
    within_s: float = 0.0
    pad_n: float = 0.0
    within_n: float = 0.0

    @staticmethod
    def _scaled(s: float, n: float, cadence_s) -> np.ndarray:
        c = np.asarray(cadence_s, float)
        c = np.where(np.isfinite(c) & (c > 0), c, 0.0)
        return np.maximum(float(s), float(n) * c)

    def pad(self, cadence_s) -> np.ndarray:
        """Padding (seconds) per meter of cadences ``cadence_s``: ``max(pad_s, pad_n × cadence)``."""
        return self._scaled(self.pad_s, self.pad_n, cadence_s)

    def within(self, cadence_s) -> np.ndarray:
        """Reach of ``extra`` (seconds) per meter: ``max(within_s, within_n × cadence)``."""
        return self._scaled(self.within_s, self.within_n, cadence_s)


@dataclass(frozen=True)
class DetectorConfig:
    """Base of every detector config: the post-rule settings plus the detector's own fields."""

    post: PostRule = PostRule()
    # Fields that only shape the scores of a learned state, not what is learned: a state learned
    # with other values of them is the same state (no "learned with other settings" notice).
    scoring_only: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "DetectorConfig":
        """The config from a dict (TOML section, JSON manifest). ``ConfigError`` (a ``ValueError``)
        naming the key for an unknown key, a value of the wrong type, NaN or infinity, a negative
        number, or zero where a length, duration or count must be positive."""
        from wattwatch.errors import ConfigError

        if d is not None and not isinstance(d, (dict, DetectorConfig)):
            raise ConfigError(f"{cls.__name__}: expected a table of parameters, got {type(d).__name__}")
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown parameter(s) {sorted(map(str, unknown))}; known: {sorted(known)}")
        defaults = cls()
        post = d.pop("post", None)
        if isinstance(post, dict):
            base = {f.name: getattr(defaults.post, f.name) for f in dataclasses.fields(PostRule)}
            bad = set(post) - set(base)
            if bad:
                raise ConfigError(f"{cls.__name__}.post: unknown parameter(s) {sorted(map(str, bad))}")
            for k, v in post.items():
                _check_value(f"post.{k}", v, base[k], "", cls.__name__)
            try:
                d["post"] = PostRule(**{**base, **post})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{cls.__name__}: {exc}") from None
        elif isinstance(post, PostRule):
            d["post"] = post
        elif post is not None:
            raise ConfigError(f"{cls.__name__}: post must be a table of post-rule settings, got {type(post).__name__}")
        hints = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        for k, v in d.items():
            if k != "post":
                _check_value(k, v, getattr(defaults, k), hints.get(k, ""), cls.__name__)
        try:
            return cls(**d)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from None


# Parameters that are lengths, durations, sizes or counts of something that must exist: zero is
# as wrong as a negative value there (a zero window divides by zero or never ends).
_POSITIVE_SUFFIXES = ("_s", "_h", "_min", "_rows", "_taus", "_memory")
# Durations that may be 0 (packet_loss's ``lead_s``: 0 is its default, a window ending at the reading).
_ZERO_OK = {"lead_s"}
_POSITIVE = {"window", "memory", "history", "steps", "hidden", "code_size", "epochs", "n_estimators",
             "n_neighbors", "blocks_per_profile", "min_expected", "short", "long", "eps", "limit", "sigma_k"}


def _check_value(key: str, value, default, hint: str, owner: str) -> None:
    """``ConfigError`` naming ``owner.key`` unless ``value`` fits the parameter ``default`` stands for."""
    from wattwatch.errors import ConfigError

    def bad(what: str):
        raise ConfigError(f"{owner}: {key} must be {what}, got {value!r}")

    if value is None and "None" in hint:
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            bad("true or false")
        return
    if isinstance(default, str):
        if not isinstance(value, str) or not value:
            bad("a non-empty string")
        return
    if isinstance(default, (tuple, list)):
        if not isinstance(value, (tuple, list)) or not value:
            bad("a non-empty list")
        if default and all(isinstance(x, (int, float)) for x in default):
            for x in value:
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
                    bad("a list of finite numbers > 0")
        elif default and all(isinstance(x, str) for x in default):
            if not all(isinstance(x, str) and x for x in value):
                bad("a list of names")
        return
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            bad("a number")
        if isinstance(default, int) and not (isinstance(value, int) or float(value).is_integer()):
            bad("a whole number")
        if not math.isfinite(value):
            bad("a finite number (not NaN or infinity)")
        name = key.rsplit(".", 1)[-1]
        if key.startswith("post."):
            if name != "threshold" and value < 0:
                bad("a number >= 0")
            if name == "threshold" and value <= 0:
                bad("a number > 0 (scores are 1.0 at the detector's limit)")
            return
        if name not in _ZERO_OK and (name in _POSITIVE or name.endswith(_POSITIVE_SUFFIXES) or name.startswith("max_")):
            if value <= 0:
                bad("a number > 0")
        elif value < 0:
            bad("a number >= 0")


@dataclass
class Finding:
    """What a detector says about one alert span: severity, message, evidence, advice.

    ``start_t``: where the alert's evidence began (epoch s), when before its first anomalous
    reading: a score judged on a window that closes at that reading (two days' base-load floor,
    say) rests on readings before it, and the alert then starts there (None: at its first anomalous
    reading). It must be a function of what the detector reads up to that first reading (a stream
    forms an open alert again at every piece, and an alert's id holds its start)."""

    severity: str
    message: str
    evidence: dict
    action: str = ""
    start_t: float | None = None


@dataclass
class Reach:
    """Per meter: a reading's score may depend on the readings from ``back_s`` seconds and then
    ``back_n`` more readings before it, to ``ahead_s`` seconds and ``ahead_n`` readings after it."""

    back_s: np.ndarray
    back_n: np.ndarray
    ahead_s: np.ndarray
    ahead_n: np.ndarray


@dataclass
class Scored:
    """Scores of a prepared frame and what ``describe`` needs of the same computation."""

    values: np.ndarray
    ctx: Any = None


@dataclass
class BinCarry:
    """One meter's closed bins of a detector as a stream carries them (:mod:`wattwatch.detect.stitch`),
    in place of the raw readings they were computed from: per bin of ``step`` seconds from ``b0``
    (epoch s, a multiple of ``step``) to ``c1`` (exclusive), one value per bin of each series the
    detector reads (``series``, by name; NaN: none), each final (no reading added later can change
    it). ``origin``: ``b0`` is the meter's first bin. A detector that carries bins declares its
    subclass (``Detector.carry_cls``, which names the series); everything it reads beyond a
    reading's own bin must be a function of those series, so a reading is exact when the raw
    readings cover its own bin (``Detector.carried_reach``) and the carry the bins before it."""

    b0: float
    c1: float
    origin: bool
    step: float
    series: dict[str, np.ndarray]
    names: ClassVar[tuple[str, ...]] = ()   # the series (columns of a checkpoint)

    def __len__(self) -> int:
        return int(np.rint((self.c1 - self.b0) / self.step))

    def since(self, b: float) -> "BinCarry":
        """The bins from ``b`` (a bin start after ``b0``) on: no longer the meter's first."""
        a = int(np.rint((b - self.b0) / self.step))
        return type(self)(float(b), self.c1, False, self.step, {k: v[a:].copy() for k, v in self.series.items()})


def widen_bins(carries: list, mats: dict[str, np.ndarray], cell: np.ndarray, seg: np.ndarray, t0: np.ndarray,
               step: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Matrices of meters x bins (bin 0 of row k at ``t0[k]``, ``cell`` each reading's flat index,
    ``seg`` its row) widened to each meter's carried bins (``carries``: per row a :class:`BinCarry`
    of bin width ``step``, or None), which come first: the carried bins' values are taken from the
    carry for the matrices named like its series (the raw readings may no longer hold what made
    them: a register interval, a neighbour, the blanking around them); ``cell`` moves with the
    matrix. Returns (matrices, cell, t0). Without a carry: as they are."""
    first = next(iter(mats.values()))
    n_seg, n_bins = first.shape
    if not n_seg or all(c is None for c in carries):
        return mats, cell, t0
    b0 = np.array([c.b0 if c is not None else np.inf for c in carries])
    t0n = np.where(np.isfinite(b0), np.minimum(t0, b0), t0)
    shift = np.rint((t0 - t0n) / step).astype(np.int64)
    c_end = np.array([np.rint((c.c1 - t0n[k]) / step) if c is not None else 0 for k, c in enumerate(carries)],
                     np.int64)
    width = int(max((shift + n_bins).max(), c_end.max()))
    out = {}
    for name, m in mats.items():
        w = np.full((n_seg, width), np.nan)
        for k in range(n_seg):   # per meter (a few hundred): whole rows
            w[k, shift[k]:shift[k] + n_bins] = m[k]
        out[name] = fill_bins(carries, w, name, t0n, step)
    seg = np.asarray(seg).astype(np.int64)
    cell = cell - seg * n_bins + seg * width + shift[seg]
    return out, cell, t0n


def fill_bins(carries: list, mat: np.ndarray, name: str, t0: np.ndarray, step: float) -> np.ndarray:
    """``mat`` (meters x bins, bin 0 of row k at ``t0[k]``) with the carried values of series
    ``name`` in place (in place; returned)."""
    for k, c in enumerate(carries):
        if c is not None and name in c.series and len(c):
            a = int(np.rint((c.b0 - t0[k]) / step))
            v = c.series[name]
            mat[k, a:a + len(v)] = v
    return mat


class Detector:
    """Base class. Subclasses set the class attributes and implement ``_fit`` and ``_score``."""

    name: ClassVar[str] = ""
    code: ClassVar[str] = ""
    config_cls: ClassVar[type[DetectorConfig]] = DetectorConfig
    requires: ClassVar[tuple[str, ...]] = ()
    # Every other channel it reads when a frame has it (in fit, score, describe and what it
    # explains), beyond ``channels()``: see :meth:`reads`. None: not declared.
    reads_also: ClassVar[tuple[str, ...] | None] = None
    # Kinds of evidence this detector judges (blanked where another detector explains them) and
    # what its own findings explain.
    judges: ClassVar[tuple[str, ...]] = ()
    explains: ClassVar[tuple[Explains, ...]] = ()
    # Channels set to NaN (not just the scores) where the detector is blanked: a consumption
    # average must not carry an outage's "drop" past it.
    blank_input: ClassVar[tuple[str, ...]] = ()
    # Readings of reach that do not depend on the cadence (neighbours, intervals).
    lookback_n: ClassVar[int] = 0
    lookahead_n: ClassVar[int] = 0
    causal: ClassVar[bool] = False
    # On a meter whose older readings a store compacted into hours (``core.run``'s ``cut``), judge
    # the raw readings after the cut as the meter's first (its limits those of a shorter history)
    # instead of only once its whole reach is raw again: for a reach longer than a store keeps raw
    # readings by default (30 days), where waiting for it would mean never judging again.
    compacted_origin: ClassVar[bool] = False
    state_version: ClassVar[int] = 1

    def __init__(self, config: DetectorConfig | dict | None = None, **params: Any):
        if config is None or isinstance(config, dict):
            config = self.config_cls.from_dict({**(config or {}), **params})
        elif params:
            config = dataclasses.replace(config, **params)
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name}: config must be {self.config_cls.__name__}")
        self.config = config
        post = getattr(config, "post", None)
        if post is not None and post.hold > 0 and self.explains:
            # Its alerts blank other detectors' readings within horizon_s, which leaves the hold out.
            raise ValueError(f"{self.name}: post.hold must be 0 for a detector whose alerts explain others' readings")

    # ------------------------------------------------------------------------------ contract

    def fit(self, frame: pd.DataFrame) -> "Detector":
        """Learn the state of every meter in ``frame`` (its normal telemetry); returns self.

        Meters not in ``frame`` keep the state they had. Each meter's state also records its
        cadence and the span it was learned on."""
        df = prepare(frame)
        if len(df) == 0:
            self.__dict__.setdefault("state_", {})
            return self
        names = meter_names(df)
        facts = meter_facts(df)
        state = self.__dict__.setdefault("state_", {})
        # The meter's facts first: ``_fit`` may use them (``self._param(df, "cadence_s")``).
        for j, m in enumerate(names):
            state[str(m)] = _plain({k: facts[k][j] for k in STATE_KEYS})
        learned = self._fit(df) or {}
        starts, _ = seg_bounds(df["_seg"].to_numpy())
        has = {c: (np.logical_or.reduceat(np.isfinite(df[c].to_numpy(float)), starts) if c in df.columns
                   else np.zeros(len(starts), bool)) for c in self.channels()}
        for j, m in enumerate(names):
            entry = state[str(m)]
            entry.update(_plain(dict(learned.get(m, {}))))
            entry["lacks"] = [c for c in self.channels() if not has[c][j]]
            entry["state_version"] = self.state_version
        return self

    @property
    def fitted_meters_(self) -> set[str]:
        if "state_" not in self.__dict__:
            raise AttributeError("fitted_meters_")
        return set(self.state_)

    def get_state(self, meters=None) -> dict[str, dict]:
        """Per-meter state (JSON-able), for ``meters`` or all."""
        self._check_fitted()
        if meters is None:
            return {m: dict(v) for m, v in self.state_.items()}
        return {m: dict(self.state_[m]) for m in meters if m in self.state_}

    def set_state(self, states: dict[str, dict]) -> "Detector":
        """Adopt per-meter state (from :meth:`get_state` or the store); returns self."""
        st = self.__dict__.setdefault("state_", {})
        for m, v in states.items():
            st[str(m)] = dict(v)
        return self

    def score(self, frame: pd.DataFrame) -> pd.Series:
        """Anomaly score per reading, aligned with ``frame.index``; higher = worse, NaN = unknown.

        Raises
        ------
        NotFittedError
            Before ``fit``, or when ``frame`` holds meters that were never fitted (their scores
            would be meaningless; fit them, or let :func:`wattwatch.api.detect` profile them)."""
        self._check_fitted()
        df = prepare(frame)
        if len(df) == 0:
            return pd.Series(np.zeros(0), index=frame.index, dtype=float, name=self.name)
        self._check_meters(df)
        s = np.asarray(self.scored(df).values, dtype=float)
        if df is frame:
            return pd.Series(s, index=frame.index, name=self.name)
        # prepare() sorted a copy: map back to the caller's row order.
        order = _sort_order(frame)
        out = np.empty(len(s))
        out[order] = s
        return pd.Series(out, index=frame.index, name=self.name)

    def scored(self, df: pd.DataFrame, carry: dict | None = None) -> Scored:
        """Scores of a prepared frame with the context for ``describe`` (the core's entry).
        ``carry``: per meter its carried bins (a stream; ``carry_cls``), passed to ``_score``."""
        r = self._score(df) if carry is None else self._score(df, carry=carry)
        if isinstance(r, Scored):
            return r
        return Scored(np.asarray(r, dtype=float))

    def describe(self, df: pd.DataFrame, rows: np.ndarray, scores: np.ndarray, ctx: Any = None) -> Finding:
        """Severity, message and evidence for one alert (``rows`` index the prepared frame;
        ``ctx`` is what ``_score`` returned with the scores)."""
        peak = float(np.nanmax(scores[rows])) if len(rows) else float("nan")
        return Finding("critical" if peak >= 2 else "warning", f"{self.name} score {peak:.2f}", {"score": peak})

    def describe_key(self, df: pd.DataFrame, rows: np.ndarray, scores: np.ndarray, ctx: Any = None) -> bytes | None:
        """A digest of everything :meth:`describe` reads for ``rows`` besides this detector's own
        config (the readings and context around them, the learned values it reads): two calls
        with the same digest give the same finding. The core then forms an alert whose digest it
        has seen from memory (a live engine forms every open alert again at every step; most of
        them got no new readings). None (the default): no digest, described every time."""
        return None

    def side(self, df: pd.DataFrame, ctx: Any = None) -> np.ndarray | None:
        """Per reading of ``df``: which way it is off (+1 above, -1 below, or one code per way a
        detector can be off, e.g. a phase and its direction; NaN unknown), for the post-rules'
        ``hold`` (a change of side is a return to normal); None: no sides."""
        return None

    # --------------------------------------------------------------------------- reach

    def channels(self) -> tuple[str, ...]:
        """Channels a meter must have for this detector to judge it."""
        return self.requires

    def reads(self) -> tuple[str, ...] | None:
        """Every channel this detector may read: those it requires (:meth:`channels`) and those it
        uses when present (``reads_also``). A frame without the others gives it the same state,
        scores and alerts (``tests/detect/test_reads.py`` scrambles them to check), so a runner
        that ships readings elsewhere (Spark) ships only these. None when the detector does not
        declare them (a plugin, say): then every channel must be shipped."""
        if self.reads_also is None:
            return None
        return tuple(dict.fromkeys((*self.channels(), *self.reads_also)))

    # The closed bins a stream may carry for this detector in place of raw readings (a
    # :class:`BinCarry` subclass naming the series; None: none). Such a detector implements
    # ``carried_reach``, takes ``scored(df, carry=...)`` (per meter of the frame its carry; the
    # dict may lack meters, or be empty) and returns in the scoring context the bins it may carry
    # on (:meth:`closed_bins`); see baseline/macd.py and learned/detectors.py.
    carry_cls: ClassVar[type[BinCarry] | None] = None

    def carried_reach(self, meters) -> Reach:
        """Reach in raw readings when the stream carries the detector's closed bins: its own bin."""
        return self.reach(meters)

    def closed_bins(self, df: pd.DataFrame, ctx: Any) -> dict | None:
        """From a scoring with a carry: per meter of ``df``, (first bin's start, bin width, {series:
        values per bin}) over the frame and its carried bins, from which the stream carries on
        the bins that closed. Default: the context's ``bins`` attribute."""
        return getattr(ctx, "bins", None)

    def reach(self, meters) -> Reach:
        """Per meter (state needed): how far back and ahead a reading's score may depend on
        other readings, in seconds and in readings."""
        n = len(meters)
        cls = type(self)
        if cls.lookback_s is Detector.lookback_s and cls.lookahead_s is Detector.lookahead_s:
            # Neither reads the cadence (no reach in seconds): no look-up per meter (a stream asks
            # every detector of a group for its reach several times a step, 200 meters each).
            return Reach(np.zeros(n), np.full(n, self.lookback_n, np.int64),
                         np.zeros(n), np.full(n, self.lookahead_n, np.int64))
        cad = state_nums(self.state_, meters, "cadence_s")
        return Reach(np.asarray(self.lookback_s(cad), float), np.full(n, self.lookback_n, np.int64),
                     np.asarray(self.lookahead_s(cad), float), np.full(n, self.lookahead_n, np.int64))

    def lookback_s(self, cadence_s: np.ndarray) -> np.ndarray:
        """Seconds before a reading that its score may depend on, per meter cadence."""
        return np.zeros(len(cadence_s))

    def lookahead_s(self, cadence_s: np.ndarray) -> np.ndarray:
        """Seconds after a reading before its score is final, per meter cadence."""
        return np.zeros(len(cadence_s))

    def cadence_note(self, cadence_s: float) -> str | None:
        """Said once per run and cadence where this detector cannot judge as designed."""
        return None

    def state_note(self, meter: str, st: dict) -> str | None:
        """Said once per run about a meter's learned state (a profile too noisy to trust, say)."""
        return None

    def calm_meters(self, names, seg: np.ndarray, starts: np.ndarray, t: np.ndarray, dt: np.ndarray,
                    lo: np.ndarray, hi: np.ndarray, st=None) -> np.ndarray | None:
        """Per meter of a frame given by its times alone (``names`` per segment code; ``seg``, ``t``
        per reading, sorted by meter and time; ``starts`` each meter's first row; ``dt`` seconds
        since the meter's previous reading in the frame, NaN on its first): True where none of its
        readings from ``lo`` to ``hi`` (epoch s per meter, +-inf: every one) can score at or above
        the post-rules' threshold on this frame, whatever else it holds, and nothing would be said
        about the meter (no ``state_note``). A stream then need not judge such a meter to know it
        raises no alert (:meth:`~wattwatch.detect.stitch.Stitcher._calm`). ``st``: the frame's
        :class:`~wattwatch.detect.core.SegTimes` where the caller has it (None: made if needed).
        None: cannot say from the times (the default)."""
        return None

    def post_settings(self, names, cadence_s: np.ndarray) -> dict[str, np.ndarray]:
        """The post-rules' settings per meter of ``names`` at its cadence ``cadence_s``
        (:meth:`PostRule.at`); a detector may narrow them by what it learned of a meter (where one
        reading may alert alone, say)."""
        return self.config.post.at(cadence_s)

    def idle(self, st: dict) -> bool:
        """Whether this detector gives the meter whose state is ``st`` no score at all (NaN on
        every reading: a cadence it does not judge), so that the core need not compute it."""
        return False

    # -------------------------------------------------------------------------- for subclasses

    def _fit(self, df: pd.DataFrame) -> dict[str, dict] | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _score(self, df: pd.DataFrame) -> np.ndarray | Scored:  # pragma: no cover - overridden
        raise NotImplementedError

    def _param(self, df: pd.DataFrame, key: str, default: float = np.nan) -> np.ndarray:
        """A scalar the fit learned per meter, as an array over ``df``'s segment codes."""
        return state_nums(self.state_, meter_names(df), key, default)

    def _param_array(self, df: pd.DataFrame, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """An array the fit learned per meter, stacked over segment codes (NaN where missing)."""
        st = self.state_
        out = np.full((len(meter_names(df)),) + shape, np.nan)
        for j, m in enumerate(meter_names(df)):
            v = st.get(m, {}).get(key)
            if v is not None:
                out[j] = np.asarray(v, float).reshape(shape)
        return out

    def _check_fitted(self) -> None:
        if "state_" not in self.__dict__:
            raise NotFittedError(f"{self.name}: call fit() before score()")

    def _check_meters(self, df: pd.DataFrame) -> None:
        unknown = [m for m in meter_names(df) if str(m) not in self.state_]
        if unknown:
            raise NotFittedError(
                f"{self.name}: no state for meter(s) {', '.join(map(str, unknown[:5]))}"
                f"{' ...' if len(unknown) > 5 else ''} ({len(unknown)} of {len(meter_names(df))}); fit them first "
                "(detector.fit on their normal readings), or use wattwatch.api.detect, which profiles new meters")

    def clone(self) -> "Detector":
        """A detector with the same config and a copy of its state."""
        new = type(self)(self.config)
        if "state_" in self.__dict__:
            new.state_ = {m: dict(v) for m, v in self.state_.items()}
        return new

    def __getstate__(self) -> dict:
        """Its attributes but the core's memory of the alerts it formed (``core._alerts_memo``):
        a detector pickled to Spark's executors or to another process, or copied for a group of
        meters, does not carry up to ``core.ALERTS_MEMO`` alerts or share them with the original."""
        state = dict(self.__dict__)
        state.pop("_alerts_memo", None)
        return state

    def get_params(self) -> dict:
        return self.config.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


def meter_of(df: pd.DataFrame, row: int) -> str:
    """Meter id of one row of a prepared frame."""
    return str(meter_names(df)[df["_seg"].to_numpy()[row]])


def meter_facts(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per meter of a prepared frame: cadence (median positive gap, s), first and last time, count.

    Kept in the frame's cache while its ``_seg``, ``_t`` and ``_dt`` columns are the same arrays
    (every detector's fit asks for them on the same fitting frame); a fresh dict each call."""
    seg, t, dt = df["_seg"].to_numpy(), df["_t"].to_numpy(), df["_dt"].to_numpy()
    tag = tuple((a.__array_interface__["data"][0], len(a)) for a in (seg, t, dt))
    memo = cache(df)
    hit = memo.get("meter_facts")
    if hit is None or hit[0] != tag:
        starts, ends = seg_bounds(seg)
        n_seg = len(starts)
        facts = {"cadence_s": seg_median(dt, seg, n_seg, dt > 0), "first_t": t[starts], "last_t": t[ends - 1],
                 "readings": (ends - starts).astype(float)}
        for v in facts.values():
            v.setflags(write=False)
        # The arrays are kept with it: while they live, no other array can take their addresses.
        hit = memo["meter_facts"] = (tag, facts, seg, t, dt)
    return dict(hit[1])


def _sort_order(frame: pd.DataFrame) -> np.ndarray:
    return frame.reset_index(drop=True).sort_values(["meter_id", "ts"], kind="stable").index.to_numpy()


def state_nums(state: dict, meters, key: str, default: float = np.nan) -> np.ndarray:
    """``np.array([_num(state.get(m, {}).get(key), default) for m in meters], float)``: a number
    each meter's state holds under ``key``, per meter. In one conversion of the values where each is
    a plain number or None (every learned state; fast: the stream asks ~15 times a step for 200
    meters), else value by value as :func:`_num` reads them (a string, a list: ``default``)."""
    none: dict = {}
    get = state.get
    vals = [get(m, none).get(key) for m in meters]
    try:
        out = np.array([default if v is None else v for v in vals], float)
        if out.ndim == 1 and len(out) == len(vals):
            return out
    except (TypeError, ValueError):
        pass
    return np.array([_num(v, default) for v in vals], float)


def state_channels(state: dict, meters, channels) -> dict[str, np.ndarray]:
    """Per channel of ``channels``: per meter, whether its state lists it under ``channels``
    (``{c: np.array([c in (state.get(m, {}).get("channels") or ()) for m in meters], bool)}``),
    asked once per distinct list (a fleet has a few; fast: was a look-up per meter and channel)."""
    none: dict = {}
    get = state.get
    lists = [get(m, none).get("channels") or () for m in meters]
    at: dict = {}
    inv = np.empty(len(lists), np.int64)
    kinds: list = []
    for j, v in enumerate(lists):
        k = tuple(v) if isinstance(v, (list, tuple)) else None
        try:
            i = at.get(k) if k is not None else None
        except TypeError:   # (rfast) an unhashable item (a nested list): a list of its own, as asked before
            k = i = None
        if i is None:
            i = len(kinds)
            kinds.append(v)
            if k is not None:
                at[k] = i
        inv[j] = i
    return {c: np.array([c in v for v in kinds], bool)[inv] if kinds else np.zeros(0, bool) for c in channels}


def _num(v, default: float) -> float:
    if v is None:
        return default
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _plain(o):
    """JSON-able copy: numpy scalars/arrays to Python, NaN/inf kept as floats (the state codec
    writes them as null)."""
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    if isinstance(o, (np.floating, float)):
        return float(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    return o


def rnd(x: float, nd: int = 3) -> float | None:
    """Round for evidence (None for NaN so the JSON stays valid)."""
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


# quiet(): ``warnings.catch_warnings`` saves and restores the process's one filter list, so two
# threads in it at once (the live engine's fast tier and its slow tier's worker) restore each
# other's lists: a warning escapes a quiet block, or "ignore" stays for good. Instead one
# "ignore RuntimeWarning" filter is put first while any thread is in a quiet block (counted), and
# taken out when the last leaves; numpy's floating-point error state (np.errstate) is per thread.
_QUIET_LOCK = threading.Lock()
_QUIET_N = 0
_QUIET_ADDED = False
_QUIET_FILTER = ("ignore", None, RuntimeWarning, None, 0)


class _Quiet:
    __slots__ = ("_np",)

    def __enter__(self):
        global _QUIET_N, _QUIET_ADDED
        with _QUIET_LOCK:
            if _QUIET_N == 0:
                # First, as catch_warnings + simplefilter put it (ahead of any "error" filter), and
                # without moving one already there (the CLI ignores RuntimeWarning everywhere);
                # already first: left as it is.
                _QUIET_ADDED = not (warnings.filters and warnings.filters[0] == _QUIET_FILTER)
                if _QUIET_ADDED:
                    warnings.filters.insert(0, _QUIET_FILTER)
                    warnings._filters_mutated()
            _QUIET_N += 1
        self._np = np.errstate(all="ignore")
        self._np.__enter__()
        return self

    def __exit__(self, *a):
        global _QUIET_N, _QUIET_ADDED
        self._np.__exit__(*a)
        with _QUIET_LOCK:
            _QUIET_N -= 1
            if _QUIET_N == 0 and _QUIET_ADDED:
                _QUIET_ADDED = False
                try:
                    warnings.filters.remove(_QUIET_FILTER)
                except ValueError:   # someone reset the list meanwhile (catch_warnings in a test)
                    pass
                warnings._filters_mutated()
        return False


def quiet():
    """Context manager that silences numpy's warnings about empty or all-NaN slices and its
    floating-point warnings; safe in several threads at once (see ``_Quiet``)."""
    return _Quiet()
