"""Local runner: fit what has no state, then judge a fleet in meter chunks on a process pool.

The judging is :func:`wattwatch.detect.core.run`, a pure function over a group of meters; this
module is its first runner (Spark and the stream engine are others):

1. **State.** A meter a detector has no state for is profiled once, on its own first
   ``profile_days`` (at most ``profile_max_share`` of its data, from an operator's reset when there
   is one): :func:`profile`. Fleet-wide models (learned detectors) are trained before that, once,
   on the profiling periods of up to ``max_meters`` meters per grid step, when they hold enough
   meter-days; otherwise a notice says so and those meters are not judged by them. Meters with
   state are never re-learned here.
2. **Judging.** Meters are processed in chunks of about ``chunk_rows`` readings (each detector is
   per meter, so chunking is exact and bounds memory). Chunks run in forked worker processes that
   inherit the frame and the fitted detectors copy-on-write and send back only their alerts.
"""

from __future__ import annotations

import hashlib

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wattwatch import sigterm
from wattwatch.alerts.model import Alert
from wattwatch.detect import core
from wattwatch.detect.base import Detector, quiet
from wattwatch.detect.frame import day_type, meter_names, prepare, profile_mask, seg_bounds
from wattwatch.detect.registry import ENGINE_NUMBERS, build_all
from wattwatch.errors import WattwatchError
from wattwatch.runners.group import Merge, judge_group
from wattwatch.tomlfile import number


@dataclass(frozen=True)
class EngineConfig:
    """``profile_days``/``profile_max_share``: how a meter without state is profiled.
    ``max_fleet_meters``: meters (a seeded sample) whose profiles train a fleet model.
    ``max_trace_days``: how far back a window run looks for the start of an alert still running
    at the window's start.
    ``continue_within_h``: a later consumption alert of another detector that begins within this
    many hours after an earlier one's end on the meter, saying the same change, continues it (one
    alert: :mod:`wattwatch.detect.continuation`); 0: each detector's alerts stand alone.
    ``workers``: meter chunks judged at once, default one per core. ``parallel``: "process"
    (forked workers inherit the frame copy-on-write and send back only their alerts; threads
    where the platform cannot fork) or "thread" (numpy releases the GIL, but the rules' pandas
    and interpreter work does not: measured 20-25 % slower on 2 cores)."""

    profile_days: float = 7.0
    profile_max_share: float = 0.5
    chunk_rows: int = 500_000
    workers: int = 0
    parallel: str = "process"
    max_fleet_meters: int = 2000
    max_trace_days: float = 60.0
    continue_within_h: float = 24.0

    def __post_init__(self):
        if self.parallel not in ("process", "thread"):
            raise ValueError(f"[engine] parallel: expected 'process' or 'thread', got {self.parallel!r}")
        for k, bounds in ENGINE_NUMBERS.items():   # checked naming the key; a whole number kept as an int
            if bounds is not None:
                v = number(f"[engine] {k}", getattr(self, k), **bounds)
                if bounds.get("whole"):
                    object.__setattr__(self, k, v)

    @classmethod
    def from_dict(cls, d: dict | None) -> "EngineConfig":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"[engine]: unknown parameter(s) {sorted(unknown)}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ValueError(f"[engine]: {exc}") from None


def continuation_of(config: "EngineConfig"):
    """The cross-detector continuation step's settings from the engine's (None: off)."""
    from wattwatch.detect.continuation import ContinuationConfig

    h = float(getattr(config, "continue_within_h", 0.0) or 0.0)
    return ContinuationConfig(within_s=h * 3600.0) if h > 0 else None


@dataclass
class DetectionResult:
    alerts: list[Alert] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    readings: int = 0
    meters: int = 0
    seconds: float = 0.0
    open_ids: set[str] = field(default_factory=set)
    scores: pd.DataFrame | None = None
    unclean: set[str] = field(default_factory=set)
    # detector -> meters it did not judge in this run (skipped: no state or lacking channels;
    # failed; or the whole core failed on the meter and a fallback set judged it)
    unjudged: dict[str, set[str]] = field(default_factory=dict)

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds else float("nan")


# ------------------------------------------------------------------------------------ state


def profile(full: pd.DataFrame, detectors: list[Detector], config: EngineConfig,
            resets: dict[tuple[str, str], pd.Timestamp] | None = None, seed: int = 0,
            windowed: bool = False, refit: bool = False,
            on_stage: Callable[[str, float | None], None] | None = None) -> list[str]:
    """Fit, on a prepared frame, the state of every (meter, detector) that has none (or whose
    operator reset is newer than its state): on the meter's first ``profile_days`` (from the
    reset). Fleet models of learned detectors are trained first where missing. Returns notices.

    ``windowed``: ``full`` holds each meter's profiling period and nothing else (a store query of
    it). ``refit``: fit every meter of ``full`` and retrain fleet models (``wattwatch fit``).
    ``on_stage(description, total)``: told what is being learned, a detector (and a fleet model)
    at a time, as the work starts (for a progress display)."""
    notices: list[str] = []
    if len(full) == 0:
        return notices
    names = [str(m) for m in meter_names(full)]
    seg = full["_seg"].to_numpy()
    resets = resets or {}
    frames: dict[bytes, pd.DataFrame] = {}  # one fit frame per distinct row set, shared by detectors
    plain_mask = None  # the profiling rows without a reset (one pass over the frame, not one per detector)
    used = np.zeros(len(full), bool)  # the rows some detector learned a meter on

    def rows(mask: np.ndarray) -> pd.DataFrame:
        if mask.all():
            return full
        key = hashlib.sha1(np.packbits(mask).tobytes()).digest()
        if key not in frames:
            frames[key] = prepare(full[mask])
        return frames[key]

    for i, d in enumerate(detectors):
        st = d.__dict__.setdefault("state_", {})
        per: dict[str, pd.Timestamp] = {}
        for (m, name), at in resets.items():
            if name in ("*", d.name) and m in names:
                per[m] = max(per.get(m, at), at)
        todo = np.array([refit or m not in st or _reset_pending(st.get(m), per.get(m)) for m in names])
        if getattr(d, "fleet_model", False):
            if refit:
                d.fleets_.clear()
            notices += _train_fleet(d, full, config, per, seed, windowed, explicit=refit, on_stage=on_stage)
        if not todo.any():
            continue
        if on_stage:
            on_stage(f"learning {d.name} on {int(todo.sum()):,} meter(s) ({i + 1}/{len(detectors)} detectors)", None)
        if windowed:
            prof = np.ones(len(full), bool)
        elif per:
            prof = profile_mask(full, config.profile_days, config.profile_max_share, per)
        else:  # the same for every detector without an operator reset: computed once
            if plain_mask is None:
                plain_mask = profile_mask(full, config.profile_days, config.profile_max_share, None)
            prof = plain_mask
        prof = prof & todo[seg]
        if not prof.any():
            continue
        used |= prof
        fit_frame = rows(prof)
        if getattr(d, "fleet_model", False):
            d.fit(fit_frame, train=False)
        else:
            d.fit(fit_frame)
        for m in per:
            if m in st and todo[names.index(m)]:
                st[m]["judge_from"] = pd.Timestamp(per[m]).timestamp()
    return notices + thin_profile_notices(full, used, detectors) + \
        (stopped_week_notices(rows(used)) if used.any() else [])


# Said per meter up to this many; beyond, one notice counts the rest.
THIN_PROFILE_SAID = 5


def thin_profile_notices(full: pd.DataFrame, rows: np.ndarray, detectors: list[Detector]) -> list[str]:
    """Notices for the meters whose profiling period (``rows`` of the prepared ``full``) held fewer
    clock bins than ``firmware_drift`` needs to learn anything (its ``min_hours``, default 18; bins of
    an hour, or of the meter's cadence when coarser, as it bins them): a daily meter profiled on its
    first 3 days learns on 3 readings, which nothing else says. Names the meter, the bins and
    readings it held, the period, and what to do."""
    from wattwatch.detect.rules.firmware import FirmwareDrift

    if not rows.any():
        return []
    run = next((d for d in detectors if isinstance(d, FirmwareDrift)), None)
    fw = run or FirmwareDrift()
    need = int(fw.config.min_hours)
    # Named only when it runs: without it the bar is the same, but nothing is "needed by" it.
    needs = f"fewer than the {need} firmware_drift needs (min_hours)" if run is not None else f"fewer than {need}"
    names = meter_names(full)
    seg = full["_seg"].to_numpy()[rows]
    t = full["_t"].to_numpy(float)[rows]
    n_seg = len(names)
    cad = np.full(n_seg, np.nan)
    for j, m in enumerate(names):   # per meter (its learned cadence), not per reading
        for d in detectors:
            c = (getattr(d, "state_", {}).get(str(m)) or {}).get("cadence_s")
            if c is not None:
                cad[j] = float(c)
                break
    width = fw._bin(cad)
    cell = np.floor(t / width[seg])
    order = np.lexsort((cell, seg))
    s_o, c_o = seg[order], cell[order]
    new = np.ones(len(order), bool)
    new[1:] = (s_o[1:] != s_o[:-1]) | (c_o[1:] != c_o[:-1])
    bins = np.bincount(s_o[new], minlength=n_seg)
    readings = np.bincount(seg, minlength=n_seg)
    thin = np.flatnonzero((readings > 0) & (bins < need))
    if not len(thin):
        return []
    lo = np.full(n_seg, np.inf)
    hi = np.full(n_seg, -np.inf)
    np.minimum.at(lo, seg, t)
    np.maximum.at(hi, seg, t)

    def when(x: float) -> str:
        return pd.Timestamp(x, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")

    def bin_name(w: float) -> str:
        return "hourly" if w == 3600 else "daily" if w == 86400 else f"{w / 3600:g}-hour"

    todo = ("declare a longer normal period (fit --normal-start/--normal-end) or profile more days "
            "(fit --days, [engine] profile_days)")
    return _said_per_meter(
        thin, names,
        lambda j: (f"meter {names[j]}: its profiling period ({when(lo[j])} .. {when(hi[j])}) held {int(bins[j])} "
                   f"{bin_name(float(width[j]))} bin(s) of readings ({int(readings[j])} reading(s)), {needs} "
                   f"and too few for a profile to rest on: its learned state rests on "
                   f"that little; {todo}"),
        lambda n, some: f"{n} more meter(s) held fewer than {need} bins in their profiling period (e.g. {some}); {todo}")


def _said_per_meter(which: np.ndarray, names: np.ndarray, line, rest_line) -> list[str]:
    """One notice per meter for the first THIN_PROFILE_SAID of ``which`` (``line(j)``), then one
    counting the rest (``rest_line(count, first five names)``)."""
    out = [line(j) for j in which[:THIN_PROFILE_SAID]]
    if len(which) > THIN_PROFILE_SAID:
        rest = which[THIN_PROFILE_SAID:]
        out.append(rest_line(len(rest), ", ".join(str(names[j]) for j in rest[:5])))
    return out


# A normal period whose working days were mostly stopped (pn, issue 14): a weekday counts as
# stopped when its mean power is under STOPPED_DAY_SHARE of the meter's best weekday's and at most
# STOPPED_FLOOR times the meter's floor (the 10th percentile of its hourly means over the period,
# which must be above 0): the day at standby, not a PV site's overcast or sunny day (its floor, the
# nights' 0 or the noons' export, is at or under 0). Its least working weekday must run
# STOPPED_CLEAR times its most stopped one.
STOPPED_DAY_SHARE = 0.35
STOPPED_FLOOR = 2.0
STOPPED_CLEAR = 2.0


def stopped_week_notices(df: pd.DataFrame) -> list[str]:
    """Notices for the meters whose normal period (the prepared ``df``: the rows they were
    profiled on) cannot give a working-day profile: its weekdays (the profile's day type, UTC days
    as the profiles take them) split into two clear levels, at least two of them and at least as
    many as the working ones stopped at standby (a plant's holiday week: sw's held-out sweep, seed
    1663, Chuseok stopped three of five weekdays and ``baseline_macd`` learned the stopped level as
    the weekday, so a later theft scored 0.09, unsaid). Days with at least 12 hours read, hourly
    means (energy register where there is one); meters read coarser than two-hourly are not judged.
    Names the meter, the days and the two levels, and what to do. Changes no score."""
    from wattwatch.detect.rules._common import binned_power

    if len(df) == 0:
        return []
    m, _, t0 = binned_power(df, 3600.0, 2 * 3600.0)
    n_seg, n_bins = m.shape
    if not n_bins:
        return []
    s, b = np.nonzero(np.isfinite(m))
    at = t0[s] + 3600.0 * b
    day0 = np.floor(t0 / 86400.0).astype(np.int64)
    day = np.floor(at / 86400.0).astype(np.int64) - day0[s]
    n_days = int(day.max()) + 1 if len(day) else 0
    if not n_days:
        return []
    flat = s.astype(np.int64) * n_days + day
    v = m[s, b]
    cnt = np.bincount(flat, minlength=n_seg * n_days).reshape(n_seg, n_days)
    mean = (np.bincount(flat, weights=v, minlength=n_seg * n_days).reshape(n_seg, n_days)
            / np.maximum(cnt, 1))
    start = (day0[:, None] + np.arange(n_days)[None, :]) * 86400.0
    ok = (cnt >= 12) & (day_type(start + 1.0) == 0)
    with np.errstate(invalid="ignore"), quiet():
        floor = np.nanpercentile(m, 10, axis=1)
        ref = np.where(ok, mean, -np.inf).max(axis=1)
        stopped = ok & (floor[:, None] > 0) & (mean < STOPPED_DAY_SHARE * ref[:, None]) & \
            (mean <= STOPPED_FLOOR * floor[:, None])
        working = ok & ~stopped
        n_lo, n_hi = stopped.sum(axis=1), working.sum(axis=1)
        lo = np.full(n_seg, np.nan)
        hi = np.full(n_seg, np.nan)
        some = (n_lo > 0) & (n_hi > 0)
        if some.any():
            lo[some] = np.nanmedian(np.where(stopped, mean, np.nan)[some], axis=1)
            hi[some] = np.nanmedian(np.where(working, mean, np.nan)[some], axis=1)
        # Two clear levels: the least working day at least STOPPED_CLEAR times the most stopped one
        # (a home's days spread on a continuum, its quietest under twice its floor and the next
        # just above, are one level).
        gap = np.where(working, mean, np.inf).min(axis=1) >= STOPPED_CLEAR * np.where(stopped, mean, -np.inf).max(axis=1)
        bad = np.flatnonzero(some & (ref > 0) & (n_lo >= 2) & (n_lo >= n_hi) & gap)
    if not len(bad):
        return []
    names = meter_names(df)

    def days(j: int, mask: np.ndarray) -> str:
        return ", ".join(pd.Timestamp(x, unit="s").strftime("%a %d %b") for x in start[j][mask[j]])

    todo = ("a weekday profile learned on these days sits at the stopped level or between the two, so a "
            "later drop on working days may go unseen; declare a normal period of ordinary working days (fit --normal-start/--normal-end) "
            "or profile more days (fit --days, [engine] profile_days)")
    return _said_per_meter(
        bad, names,
        lambda j: (f"meter {names[j]}: its normal period's weekdays ran at two levels: {int(n_lo[j])} stopped "
                   f"({days(j, stopped)}: {lo[j]:.3g} kW) against {int(n_hi[j])} working ({days(j, working)}: "
                   f"{hi[j]:.3g} kW, day means); {todo}"),
        lambda n, some: (f"{n} more meter(s) had as many weekdays stopped as working in their normal period "
                         f"(e.g. {some}); {todo}"))


def _reset_pending(state: dict | None, at: pd.Timestamp | None) -> bool:
    if at is None or state is None:
        return at is not None
    return float(state.get("judge_from") or -np.inf) < pd.Timestamp(at).timestamp()


def _train_fleet(d, full: pd.DataFrame, config: EngineConfig, resets: dict, seed: int,
                 windowed: bool = False, explicit: bool = False, on_stage=None) -> list[str]:
    """Train ``d``'s fleet model for every grid step its unfitted meters need and it lacks.
    ``explicit``: a user declared the data normal and asked for a fit: train on whatever it holds
    (the detector's own minimum of feature rows still applies), not only on ``min_fleet_meter_days``."""
    names = meter_names(full)
    seg = full["_seg"].to_numpy()
    grids = d.grids(full)
    st = d.state_
    known = np.array([float((st.get(str(m)) or {}).get("grid_s") or np.nan) for m in names])
    grids = np.where(np.isfinite(known), known, grids)
    notices = []
    for g in np.unique(grids[np.isfinite(grids)]):
        if float(g) in d.fleets_:
            continue
        meters = np.flatnonzero(grids == g)
        if len(meters) > config.max_fleet_meters:
            meters = np.sort(np.random.default_rng(seed).choice(meters, config.max_fleet_meters, replace=False))
        keep = np.zeros(len(names), bool)
        keep[meters] = True
        prof = (np.ones(len(full), bool) if windowed else
                profile_mask(full, config.profile_days, config.profile_max_share, resets or None)) & keep[seg]
        fit_frame = prepare(full[prof])
        fs, ft = fit_frame["_seg"].to_numpy(), fit_frame["_t"].to_numpy()
        a, b = seg_bounds(fs)
        meter_days = float(np.sum(ft[b - 1] - ft[a])) / 86400.0 if len(a) else 0.0
        need = 0.0 if explicit else float(getattr(d.config, "min_fleet_meter_days", 0.0))
        n_meters = int((grids == g).sum())
        if meter_days < need:
            # Too little normal data to calibrate a tail at alpha: the model would call the
            # profile's own ordinary hours rare. Not run for these meters, and said so.
            notices.append(f"{d.name}: not run on {n_meters} meter(s) at the {g:.0f} s grid — their profiling "
                           f"periods hold {meter_days:.0f} meter-days of normal data and a fleet model needs at least "
                           f"{need:.0f}; train one on more history (`wattwatch fit` on a longer normal period, or "
                           "`wattwatch train` and `detect --models DIR`)")
            continue
        if on_stage:
            on_stage(f"training {d.name} on {len(meters):,} meter(s), {meter_days:,.0f} meter-days at the {g:.0f} s grid", None)
        try:
            d.fleets_[float(g)] = d._new_fleet(float(g)).train(fit_frame)
        except ValueError as exc:
            notices.append(f"{d.name}: not run on {n_meters} meter(s) at the {g:.0f} s grid: {exc}")
    return notices


# ------------------------------------------------------------------------------------ judging


def detect(frame: pd.DataFrame, detectors: list[Detector] | None = None, config: EngineConfig | None = None,
           resets: dict[tuple[str, str], pd.Timestamp] | None = None,
           on_progress: Callable[[int], None] | None = None, keep_scores: bool = False,
           on_stage: Callable[[str, float | None], None] | None = None) -> DetectionResult:
    """Alerts for every meter in ``frame`` (canonical telemetry, any order), judged whole.

    Parameters
    ----------
    detectors : list of Detector, optional
        Default: the default set. Their state is used; meters without state are profiled here.
    resets : dict, optional
        ``(meter_id, detector) -> time``: an operator acknowledged or cleared an alert, so that
        detector re-learns the meter from this time on and judges nothing before it. The key
        ``(meter_id, "*")`` applies to every detector.
    keep_scores : bool
        Also return every detector's per-reading scores (``result.scores``).
    """
    t0 = time.perf_counter()
    config = config or EngineConfig()
    detectors = detectors if detectors is not None else build_all()
    result = DetectionResult()
    if len(frame) == 0:
        return result
    full = prepare(frame)
    result.notices += profile(full, detectors, config, resets, on_stage=on_stage)
    judge(full, detectors, config, result, on_progress, keep_scores, on_stage=on_stage)
    result.seconds = time.perf_counter() - t0
    return result


def judge(full: pd.DataFrame, detectors: list[Detector], config: EngineConfig, result: DetectionResult,
          on_progress: Callable[[int], None] | None = None, keep_scores: bool = False,
          window: dict | None = None, on_stage: Callable[[str, float | None], None] | None = None) -> None:
    """Run the core on ``full`` (prepared, every meter fitted) in chunks; adds to ``result``.
    ``window``: keyword arguments for :func:`core.run` per meter (origin, flush, since,
    positions), for runs over part of a meter's history. ``on_stage(description, total)`` is
    told the stage once (total = readings), ``on_progress(n)`` the readings of each chunk done."""
    starts, ends = seg_bounds(full["_seg"].to_numpy())
    if on_stage:
        on_stage(f"judging {len(starts):,} meter(s) with {len(detectors)} detector(s)", float(len(full)))
    result.meters += len(starts)
    dets = core.order(detectors)
    chunk_id = np.floor(ends / max(config.chunk_rows, 1)).astype(int)
    bounds = [(int(starts[chunk_id == c][0]), int(ends[chunk_id == c][-1])) for c in np.unique(chunk_id)]
    workers = min(len(bounds), config.workers or os.cpu_count() or 1)

    def one(ab: tuple[int, int]):
        a, b = ab
        part = full if (a, b) == (0, len(full)) else prepare(full.iloc[a:b])
        return judge_group(part, dets, window, keep_scores)

    merge = Merge(result, keep_scores, continuation_of(config))
    pool = None
    # (b3) SIGTERM (a service's or container's stop, ``kill PID``) ended the process at once and
    # left the forked workers running for ever; it now stops them as a Ctrl-C does. The command
    # line already handles it (and says what the store kept); for a library caller that left
    # SIGTERM at its default, the process still ends by it, once the workers are reaped (as_interrupt
    # does that wherever in the block the signal lands, the shutdown in `finally` too: rb3).
    with sigterm.as_interrupt(only_if_default=True):
        try:
            # (rst3) the pool is made and given its chunks inside the try: a Ctrl-C while the
            # workers are forked or the chunks handed out stops them too (they ignore SIGINT)
            if workers == 1:
                outcomes = map(one, bounds)
            elif config.parallel == "process" and "fork" in mp.get_all_start_methods():
                pool = _Forked(workers, one)
                outcomes = pool.map(bounds)
            else:
                pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wattwatch-detect")
                outcomes = pool.map(one, bounds)
            for o in outcomes:
                merge.add(o)
                if on_progress:
                    on_progress(o.readings)
        except BaseException:
            if pool is not None:
                _stop(pool)
            raise
        finally:
            if pool is not None:
                pool.shutdown()
    merge.finish()


def _quiet_worker() -> None:
    """A forked worker ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and a
    worker waiting for its next chunk printed a KeyboardInterrupt traceback (st3); the parent,
    which gets the signal too, stops the workers (:func:`_stop`). SIGTERM ends it at once (its
    default; the parent's handler is inherited by fork): that is how the parent stops it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sigterm.reset_in_child()


def _end_with_parent(parent: int) -> None:
    """(b3) Linux: the kernel ends this worker when its parent dies by a signal nothing can handle
    (SIGKILL: the OOM killer, a stop's time-out), mid-chunk too (without it the worker judged on,
    then found its pipe closed). Elsewhere, or without prctl, only the closed pipe ends it."""
    import signal

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)   # PR_SET_PDEATHSIG
    except (ImportError, OSError, AttributeError):   # (rb3) a Python built without ctypes too: b3's
        return                                       # worker died at its start, every detect failed
    if os.getppid() != parent:   # the parent died before prctl
        os._exit(1)


def _torch_inline() -> None:
    """In a forked worker, before each chunk: torch (when imported) on one intra-op thread."""
    torch = sys.modules.get("torch")
    if torch is not None:
        # The parent's OpenMP pool does not survive fork: a child entering it waits forever.
        # One intra-op thread per worker runs inline (the workers are the parallelism).
        torch.set_num_threads(1)


def _stop(pool) -> None:
    """Stop workers whose run failed or was interrupted: chunks not started are not started, and
    forked workers are ended at once and reaped (before (st3), ``shutdown()`` judged every
    remaining chunk before a Ctrl-C took effect). A thread pool's running chunks finish."""
    if isinstance(pool, _Forked):
        pool.terminate()
    else:
        pool.shutdown(wait=False, cancel_futures=True)


class WorkerDied(WattwatchError, RuntimeError):
    """A forked worker ended without a result (killed: out of memory, a signal of its own)."""


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (the ``__cause__`` of the one re-raised)."""

    def __str__(self) -> str:
        return "\n" + self.args[0]


class _Forked:
    """Forked worker processes judging chunks, with the handles to them kept here (b3: the pool it
    replaces, concurrent.futures' ProcessPoolExecutor, gives no public way to end its workers, and
    ``_stop`` read its private ``_processes``). Each worker inherits ``job`` (and the frame it
    closes over) copy-on-write, never pickled, and has a pipe of its own: it is given one chunk's
    bounds at a time and sends back the outcome (or the exception, with its traceback). A worker
    that dies is seen by its sentinel, not waited on for ever."""

    def __init__(self, n: int, job: Callable):
        ctx = mp.get_context("fork")
        self.procs, self.pipes = [], []
        try:
            for _ in range(n):
                ours, theirs = ctx.Pipe()
                self.pipes.append(ours)
                # (rb3) the worker closes every parent end it inherits, its own pipe's too (b3 left
                # that one open in the worker, so its pipe never ended: without PR_SET_PDEATHSIG,
                # an idle worker of a SIGKILLed parent waited for ever)
                p = ctx.Process(target=_worker, args=(theirs, job, list(self.pipes), os.getpid()),
                                name="wattwatch-detect")
                # (rb3) kept before it starts: a Ctrl-C or SIGTERM just after the fork ends it too
                # (one between the fork and start()'s return: its pipe closes, it ends on EOF)
                self.procs.append(p)
                try:
                    p.start()
                finally:
                    theirs.close()
        except BaseException:
            self.terminate()
            raise

    def map(self, items: list):
        """The outcomes of ``job`` over ``items``, in their order (a worker's exception is raised here)."""
        from multiprocessing.connection import wait

        items, done, given, nxt = list(items), {}, 0, 0
        busy: dict[int, int] = {}   # worker -> the item it judges
        for w in range(len(self.procs)):
            if given < len(items):
                self._give(w, items[given])
                busy[w], given = given, given + 1
        while nxt < len(items):
            while nxt in done:
                yield done.pop(nxt)
                nxt += 1
            if nxt >= len(items):
                break
            by_handle = {}
            for w in busy:
                by_handle[self.pipes[w]] = w
                by_handle[self.procs[w].sentinel] = w
            for h in wait(list(by_handle)):
                w = by_handle[h]
                if w not in busy:
                    continue   # its pipe and its sentinel both ready
                pipe = self.pipes[w]
                try:
                    if not pipe.poll():
                        raise EOFError
                    ok, value, tb = pipe.recv()   # (a pipe at its end polls as readable)
                except (EOFError, OSError):   # (rb3) OSError: ECONNRESET, one dead with a chunk unread
                    raise self._died(w) from None
                if not ok:
                    value.__cause__ = _RemoteTraceback(tb)
                    raise value
                done[busy.pop(w)] = value
                if given < len(items):
                    self._give(w, items[given])
                    busy[w], given = given, given + 1

    def _give(self, w: int, item) -> None:
        try:
            self.pipes[w].send(item)
        except OSError:   # (rb3) EPIPE/ECONNRESET: it died after its last result (b3: raised as such)
            raise self._died(w) from None

    def _died(self, w: int) -> WorkerDied:
        p = self.procs[w]
        p.join(1)
        why = (": killed; out of memory? fewer [engine] workers or a smaller chunk_rows use less"
               if p.exitcode is not None and p.exitcode < 0 else "")
        return WorkerDied(f"a detect worker process (pid {p.pid}) ended without its result (exit code {p.exitcode}{why})")

    def terminate(self) -> None:
        """End every worker now (SIGTERM, then SIGKILL for one still there after 5 s) and reap it."""
        procs = [p for p in self.procs if p.pid is not None]   # (rb3) not one never started
        for p in procs:
            if p.exitcode is None:
                p.terminate()
        self._reap(procs, then=lambda p: p.kill())

    def shutdown(self) -> None:
        """Workers done: each is told to stop (or was ended by :meth:`terminate`), then reaped."""
        for p, pipe in zip(self.procs, self.pipes):
            if p.exitcode is None and not pipe.closed:
                try:
                    pipe.send(None)
                except OSError:
                    pass   # it died: join reaps it
        self._reap(self.procs, then=lambda p: p.terminate())

    def _reap(self, procs: list, then: Callable) -> None:
        """Join each of ``procs`` (5 s each); ``then`` one still running (terminate or kill) and
        join it; close the parent's pipe ends."""
        for p in procs:
            p.join(5)
            if p.exitcode is None:
                then(p)
                p.join()
        for pipe in self.pipes:
            pipe.close()


def _worker(pipe, job: Callable, others: list, parent: int) -> None:
    """A forked worker's loop: bounds in, ``(True, outcome, None)`` or ``(False, exception,
    traceback)`` out, until it is sent None (or its parent's end of the pipe closes: ``others``,
    the parent's ends of its own pipe and of the workers forked before it, which fork copied, are
    closed here, so that each worker's pipe ends with the parent)."""
    import traceback

    _quiet_worker()
    _end_with_parent(parent)
    for c in others:
        c.close()
    while True:
        try:
            ab = pipe.recv()
        except EOFError:
            return
        if ab is None:
            return
        try:
            _torch_inline()
            msg = (True, job(ab), None)
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
            msg = (False, _portable(exc), traceback.format_exc())
        try:
            pipe.send(msg)
        except OSError:
            return   # the parent is gone
        except Exception as exc:  # noqa: BLE001 - an outcome or exception that does not pickle
            pipe.send((False, RuntimeError(f"a detect worker's result could not be sent back: {exc!r}"),
                       msg[2] or traceback.format_exc()))


def _portable(exc: BaseException) -> BaseException:
    """``exc``, or a RuntimeError naming it if it would not survive the pipe: an exception whose
    ``__init__`` takes other arguments than its ``args`` pickles but does not unpickle, which raised
    a TypeError about its ``__init__`` in the parent instead of the worker's error (rb3)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - anything that does not round-trip
        return RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
