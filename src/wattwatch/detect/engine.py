"""Run detectors over a fleet: profile, fit, score, suppress, post-rule, describe.

Meters are processed in chunks (each detector is per meter, so chunking is exact and bounds
memory; the same split is what a Spark job distributes). Within a chunk:

1. each meter's profiling period (its first ``profile_days``, at most half its data, restarting
   at an operator's reset) is what every detector learns from;
2. the outage, harmonic, sensor-fault and frozen-readings rules run first, because they explain
   other symptoms: no current-based rule judges a reading without supply or with a distorted
   signal; no consumption rule judges a span where a CT is open (the "drop" is the dead CT), the
   data is frozen or the neutral is bypassed (the drop is the bypass, reported by its rule); neither firmware drift nor thermal drift judges frozen data;
3. every detector's scores then go through its post-rules into alerts, described by the detector.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert
from wattwatch.detect.base import Detector
from wattwatch.detect.frame import meter_names, prepare, profile_mask, seg_bounds
from wattwatch.detect.postrules import alert_groups, calibrated, span_mask
from wattwatch.detect.registry import build_all

FIRST = ("supply_outage", "harmonic_noise", "sensor_fault", "frozen_readings", "neutral_tamper")


@dataclass(frozen=True)
class EngineConfig:
    """``workers``: meter chunks scored at once, default one per core. ``parallel``: "process"
    (forked workers inherit the frame copy-on-write and send back only their alerts; threads
    where the platform cannot fork) or "thread" (numpy releases the GIL, but the rules' pandas
    and interpreter work does not: measured 20-25 % slower on 2 cores)."""

    profile_days: float = 7.0
    profile_max_share: float = 0.5
    chunk_rows: int = 500_000
    workers: int = 0
    parallel: str = "process"

    def __post_init__(self):
        if self.parallel not in ("process", "thread"):
            raise ValueError(f"[engine] parallel: expected 'process' or 'thread', got {self.parallel!r}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "EngineConfig":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"[engine]: unknown parameter(s) {sorted(unknown)}")
        return cls(**d)


@dataclass
class DetectionResult:
    alerts: list[Alert] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    readings: int = 0
    meters: int = 0
    seconds: float = 0.0

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds else float("nan")


def _iso(t: float) -> str:
    """Epoch seconds -> ISO-8601 UTC, to the millisecond (float seconds carry sub-µs noise)."""
    return pd.Timestamp(round(t * 1000), unit="ms", tz="UTC").isoformat(timespec="milliseconds").replace("+00:00", "Z")


def detect(frame: pd.DataFrame, detectors: list[Detector] | None = None, config: EngineConfig | None = None,
           resets: dict[tuple[str, str], pd.Timestamp] | None = None,
           on_progress: Callable[[int], None] | None = None) -> DetectionResult:
    """Alerts for every meter in ``frame`` (canonical telemetry, any order).

    Parameters
    ----------
    detectors : list of Detector, optional
        Default: every registered rule and baseline.
    resets : dict, optional
        ``(meter_id, detector) -> time``: an operator acknowledged or cleared an alert, so that
        detector re-learns the meter from this time on and judges nothing before it. The key
        ``(meter_id, "*")`` applies to every detector.
    """
    t0 = time.perf_counter()
    config = config or EngineConfig()
    detectors = detectors if detectors is not None else build_all()
    order = sorted(detectors, key=lambda d: (d.name not in FIRST, FIRST.index(d.name) if d.name in FIRST else 0))
    result = DetectionResult()
    if len(frame) == 0:
        return result
    full = prepare(frame)
    starts, ends = seg_bounds(full["_seg"].to_numpy())
    result.meters = len(starts)
    untrained = train_fleet_models(full, order, config, result.notices)
    order = [d for d in order if all(d is not u for u in untrained)]
    # Meter chunks of about chunk_rows readings: contiguous row ranges of the sorted frame.
    chunk_id = np.floor(ends / max(config.chunk_rows, 1)).astype(int)
    bounds = [(int(starts[chunk_id == c][0]), int(ends[chunk_id == c][-1])) for c in np.unique(chunk_id)]
    workers = min(len(bounds), config.workers or os.cpu_count() or 1)

    def one(ab: tuple[int, int]) -> tuple[DetectionResult, dict]:
        a, b = ab
        part = full if (a, b) == (0, len(full)) else prepare(full.iloc[a:b])
        # Fitted state is per chunk: each chunk gets its own detector objects.
        dets = order if workers == 1 else [d.clone() for d in order]
        res, skip = DetectionResult(), {}
        _run_chunk(part, dets, config, resets or {}, res, skip)
        res.readings = b - a
        return res, skip

    global _FORKED_JOB
    skipped: dict[str, set] = {}
    if workers == 1:
        outcomes = map(one, bounds)
    elif config.parallel == "process" and "fork" in mp.get_all_start_methods():
        _FORKED_JOB = one  # inherited by the forked workers (never pickled): they share the frame
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"))
        outcomes = pool.map(_forked_chunk, bounds)
    else:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wattwatch-detect")
        outcomes = pool.map(one, bounds)
    try:
        for res, skip in outcomes:
            result.alerts += res.alerts
            result.notices += res.notices
            result.readings += res.readings
            for k, v in skip.items():
                skipped.setdefault(k, set()).update(v)
            if on_progress:
                on_progress(res.readings)
    finally:
        if workers > 1:
            pool.shutdown()
            _FORKED_JOB = None
    for name, ms in skipped.items():
        result.notices.append(f"{name}: skipped {len(ms)} meter(s) that lack its channels "
                              f"(e.g. {', '.join(sorted(ms)[:3])})")
    result.alerts.sort(key=lambda a: (a.meter_id, a.start, a.code))
    result.seconds = time.perf_counter() - t0
    return result


_FORKED_JOB: Callable | None = None


def train_fleet_models(full: pd.DataFrame, detectors: list[Detector], config: EngineConfig,
                       notices: list[str], max_meters: int = 2000, seed: int = 0) -> list[Detector]:
    """Train, once, the fleet-wide model of each learned detector that has none (not loaded with
    ``--models``): on the profiling periods of up to ``max_meters`` meters (a seeded sample), so
    every meter chunk is judged by the same model whatever the chunking. Returns the detectors
    that could not be trained (too little normal data; a notice says why)."""
    todo = [d for d in detectors if getattr(d, "fleet_model", False) and not d.locked]
    if not todo:
        return []
    prof = profile_mask(full, config.profile_days, config.profile_max_share)
    n_seg = int(full["_seg"].iat[-1]) + 1
    if n_seg > max_meters:
        keep = np.zeros(n_seg, bool)
        keep[np.random.default_rng(seed).choice(n_seg, max_meters, replace=False)] = True
        prof &= keep[full["_seg"].to_numpy()]
    fit_frame = prepare(full[prof])
    seg, t = fit_frame["_seg"].to_numpy(), fit_frame["_t"].to_numpy()
    starts, ends = seg_bounds(seg)
    meter_days = float(np.sum(t[ends - 1] - t[starts])) / 86400.0 if len(starts) else 0.0
    dropped = []
    for d in todo:
        need = getattr(d.config, "min_fleet_meter_days", 0.0)
        if meter_days < need:
            # Too little normal data to calibrate a tail at alpha: the model would call the
            # profile's own ordinary hours rare. Not run, and said so.
            dropped.append(d)
            notices.append(f"{d.name}: not run — the profiling period holds {meter_days:.0f} meter-days "
                           f"of normal data and a fleet model needs at least {need:.0f}; train one on more "
                           "history with `wattwatch train` and pass `detect --models DIR`")
            continue
        d.train(fit_frame)
    return dropped


def _forked_chunk(ab: tuple[int, int]) -> tuple[DetectionResult, dict]:
    torch = sys.modules.get("torch")
    if torch is not None:
        # The parent's OpenMP pool does not survive fork: a child entering it waits forever.
        # One intra-op thread per worker runs inline (the workers are the parallelism).
        torch.set_num_threads(1)
    return _FORKED_JOB(ab)


def _run_chunk(df: pd.DataFrame, detectors: list[Detector], config: EngineConfig,
               resets: dict, result: DetectionResult, skipped: dict) -> None:
    seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
    names = meter_names(df)
    meter_resets: dict[str, pd.Timestamp] = {}
    for (m, det), at in resets.items():
        if det == "*":
            meter_resets[m] = max(meter_resets.get(m, at), at)
    outage = np.zeros(len(df), bool)
    noisy = np.zeros(len(df), bool)
    explained = np.zeros(len(df), bool)  # open CT or frozen data: consumption is not measured
    frozen = np.zeros(len(df), bool)
    cons_df = None
    fit_cache: dict = {}
    plain_profile = profile_mask(df, config.profile_days, config.profile_max_share)
    has_values = _has_values(df)
    for det in detectors:
        per_det = {m: at for (m, d), at in resets.items() if d == det.name}
        for m, at in meter_resets.items():
            per_det[m] = max(per_det.get(m, at), at)
        prof = profile_mask(df, config.profile_days, config.profile_max_share, per_det) if per_det else plain_profile
        lacking = np.zeros(len(names), bool)
        for col in det.requires:
            lacking |= ~has_values(col)
        if lacking.any():
            skipped.setdefault(det.name, set()).update(names[lacking])
        fit_rows = prof & ~lacking[seg]
        if not fit_rows.any():
            continue
        src = df
        key = fit_rows.tobytes().__hash__()
        if fit_cache.get("key") != key:
            fit_cache = {"key": key, "plain": prepare(df[fit_rows])}
        fit_frame = fit_cache["plain"]
        if det.consumption_based:
            # Consumption rules do not see readings without supply or whose consumption is
            # explained by an open CT or frozen data: blanking their input (not just their
            # scores) keeps averages from carrying the "drop" past the explained span.
            blank = outage | explained
            if cons_df is None:
                cons_df = _blanked(df, blank)
            if "cons" not in fit_cache:
                fit_cache["cons"] = _blanked(fit_frame, blank[fit_rows])
            src, fit_frame = cons_df, fit_cache["cons"]
        det.fit(fit_frame)
        s = det.score(src).to_numpy(copy=True)
        s[lacking[seg]] = np.nan
        if det.current_based:
            s[outage | noisy] = np.nan
        if det.consumption_based:
            s[outage | explained] = np.nan
        if det.name in ("thermal_drift", "firmware_drift"):
            s[frozen] = np.nan
        if per_det:
            ts_reset = np.array([pd.Timestamp(per_det[m]).timestamp() if m in per_det else -np.inf for m in names])
            before_reset = t < ts_reset[seg]
            s[before_reset] = np.nan
        groups = alert_groups(seg, t, s, det.config.post)
        if det.name == "supply_outage":
            outage = span_mask(seg, t, groups) & (s >= det.config.post.threshold)
        elif det.name == "harmonic_noise":
            noisy = s >= det.config.post.threshold  # per reading: a distorted reading is not evidence
        elif det.name == "sensor_fault":
            explained |= span_mask(seg, t, groups)
            if groups:  # a meter with an open CT: every dead-channel reading explains a "drop"
                alerted = np.zeros(int(seg.max()) + 1, bool)
                alerted[[seg[g[0]] for g in groups]] = True
                explained |= det.dead_channel(src) & alerted[seg]
        elif det.name == "frozen_readings":
            frozen = span_mask(seg, t, groups, pad_s=3600.0)
            explained |= frozen
        elif det.name == "neutral_tamper":
            # A neutral bypass is the reason the meter registers less: the consumption detectors'
            # "drop" over its span is the same fault, already reported with its cause.
            explained |= span_mask(seg, t, groups, pad_s=3600.0)
        for rows in groups:
            f = det.describe(src, rows, s)
            result.alerts.append(Alert(
                meter_id=str(names[seg[rows[0]]]), start=_iso(t[rows[0]]), end=_iso(t[rows[-1]]),
                code=det.code, severity=f.severity, score=round(calibrated(float(np.nanmax(s[rows]))), 4),
                detector=det.name, message=f.message, evidence=f.evidence, action=f.action))
        noisy_profile = getattr(det, "noisy_profile_", None)
        if noisy_profile:
            for m, r in sorted(noisy_profile.items()):
                result.notices.append(f"{m}: profiling period too noisy to trust (spread {r:.0%} of mean load); "
                                      "wiring audit advised (CT clamp seating, grounding)")


def _blanked(df: pd.DataFrame, blank: np.ndarray) -> pd.DataFrame:
    """``df`` (not copied) with power and energy set to NaN on the ``blank`` rows."""
    return pd.DataFrame({**{c: df[c] for c in df.columns},
                         "p_kw": np.where(blank, np.nan, df["p_kw"].to_numpy()),
                         "e_kwh": np.where(blank, np.nan, df["e_kwh"].to_numpy())}, copy=False)


def _has_values(df: pd.DataFrame) -> Callable[[str], np.ndarray]:
    """``has(col)``: per meter code, True when the meter has at least one value in ``col``
    (computed once per column and chunk)."""
    starts, _ = seg_bounds(df["_seg"].to_numpy())
    done: dict[str, np.ndarray] = {}

    def has(col: str) -> np.ndarray:
        if col not in done:
            finite = np.isfinite(df[col].to_numpy(float))
            done[col] = np.logical_or.reduceat(finite, starts) if len(starts) else np.zeros(0, bool)
        return done[col]
    return has
