"""Learned consumption detectors behind the common contract (``WARN_CONSUMPTION_ANOMALY``).

A learned detector has two kinds of state:

- per meter (``state_``, like every detector): the hour-of-week baseline its features are relative
  to, learned by ``fit`` from the meter's normal period, and the grid it is judged on;
- fleet-wide (``fleets_``), per grid step: the model and its calibration (scaler, model, tail
  calibrations), learned by ``train`` from the normal periods of many meters at once.

Every meter is judged on its own cadence: its readings are averaged on the finest grid of
``grid_steps_s`` that is not finer than they are (5, 15, 30 or 60 min), and each grid step has its
own fleet model, trained on meters of that step (a 15-minute mean is a different quantity from a
5-minute one). Meters reporting less often than hourly are not judged (a notice says so).

``fit`` learns the baselines; it also trains the fleet model of a grid step the detector has none
for (``train=None``, the default for a Python user; the core passes ``train=False`` and trains
fleet models once, beforehand, from every meter's profile). Scores are calibrated to
``log10(1/p) / log10(1/alpha)`` (p: exceedance probability under the training scores), so 1.0
means the same for every learned detector, every meter and every grid.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from wattwatch.detect.base import (PHASE_CHANNELS, BinCarry, Detector, DetectorConfig, Finding, PostRule, Reach, Scored,
                                   meter_of, rnd)
from wattwatch.detect.frame import meter_names, prepare
from wattwatch.detect.learned.features import Baseline, FeatureConfig, GridFeatures, covered_mean
from wattwatch.detect.learned.models import (DenseAEModel, IsolationForestModel, LOFModel, LSTMAEModel, Model,
                                             GaussianScaler, PCAModel, TailCalibrator, seeded_rows)

LEARNED_POST = PostRule(threshold=1.0, min_duration_s=3 * 3600.0, min_readings=12, merge_gap_s=12 * 3600.0,
                        max_bridge_s=3600.0)
GRID_STEPS_S = (300.0, 900.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class LearnedConfig(DetectorConfig):
    """``alpha``: exceedance probability under normal data that scores 1.0; ``grid_s``/``windows_min``:
    the finest grid and its feature windows (see :mod:`features`; at a coarser grid the windows
    keep their length in bins); ``max_train_rows``: rows (bins) sampled for training (seeded);
    ``persist_min``: trailing window over which per-bin evidence is averaged before the final
    calibration; ``seed``: every random choice (sample, model initialisation);
    ``min_fleet_meter_days``: the least normal data (meters x days of profile, per grid step) from
    which a fleet model is trained by ``detect`` itself — below it the detector is not run for those
    meters (a notice says so) unless a trained model is given: a tail at ``alpha`` cannot be
    calibrated on one meter's week; ``channel``: the series judged (active power by default; any
    canonical or extra channel, e.g. ``ups_load_pct``)."""

    alpha: float = 1e-4
    grid_s: float = 300.0
    windows_min: tuple[int, ...] = (5, 15, 60)
    max_train_rows: int = 50_000
    persist_min: int = 360
    seed: int = 0
    min_fleet_meter_days: float = 60.0
    channel: str = "p_kw"
    register_interval_s: float | None = 7200.0
    register_min_interval_s: float = 900.0
    max_cadence_s: float = 3600.0
    post: PostRule = LEARNED_POST

    def __post_init__(self):
        object.__setattr__(self, "windows_min", tuple(int(w) for w in self.windows_min))
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be within (0, 1), got {self.alpha}")
        if self.grid_s <= 0 or not self.windows_min or min(self.windows_min) * 60 < self.grid_s:
            raise ValueError("grid_s must be > 0 and every window at least one grid step")

    def features(self) -> FeatureConfig:
        return FeatureConfig(grid_s=self.grid_s, windows_min=self.windows_min, channel=self.channel,
                             register_interval_s=self.register_interval_s,
                             register_min_interval_s=self.register_min_interval_s)

    def at_grid(self, grid_s: float) -> "LearnedConfig":
        """The same detector on a coarser grid: windows keep their length in bins."""
        if grid_s == self.grid_s:
            return self
        f = grid_s / self.grid_s
        return dataclasses.replace(self, grid_s=float(grid_s), windows_min=tuple(int(round(w * f)) for w in self.windows_min))

    def grid_for(self, cadence_s: np.ndarray) -> np.ndarray:
        """Grid step per meter cadence: the finest step not finer than the readings (5 % slack
        for jitter); NaN where the readings are further apart than an hour."""
        steps = np.array(sorted({float(self.grid_s), *[g for g in GRID_STEPS_S if g > self.grid_s]}))
        c = np.asarray(cadence_s, float)
        c = np.where(np.isfinite(c) & (c <= self.max_cadence_s * 1.05), c, np.inf)
        idx = np.searchsorted(steps, c / 1.05, side="left")
        return np.where(idx < len(steps), steps[np.minimum(idx, len(steps) - 1)], np.nan)


class Fleet:
    """What a learned detector learned across meters at one grid step: feature scaler, model,
    calibration of per-bin scores and of their persistence. Methods work on :class:`GridFeatures`."""

    def __init__(self, config: LearnedConfig, model_factory):
        self.config = config
        self._factory = model_factory

    # ------------------------------------------------------------------------------ training

    def train(self, frame: pd.DataFrame) -> "Fleet":
        cfg = self.config
        base = Baseline(cfg.features()).fit(frame)
        gf = base.features(frame, leave_day_out=True)
        n = int(gf.valid.sum())
        if n < 50:
            raise ValueError(f"only {n} feature rows at a {cfg.grid_s:.0f} s grid to train on; give it more normal data")
        self.feature_names_ = cfg.features().names()
        raw = self._fit_model(gf)
        # Persistence calibration: on whole meters (a seeded sample), so the trailing mean sees
        # each meter's bins in order.
        rng = np.random.default_rng(cfg.seed + 1)
        order = rng.permutation(gf.valid.shape[0])
        per_meter = gf.valid.sum(axis=1)[order]
        keep = np.sort(order[: max(1, int(np.searchsorted(np.cumsum(per_meter), 4 * cfg.max_train_rows)) + 1)])
        # Every meter kept: its valid bins are the rows the model was calibrated on, in the same
        # order, so their raw scores are the ones ``_fit_model`` computed (not computed again).
        self._fit_persistence(gf.meters(keep), raw=raw if len(keep) == gf.valid.shape[0] else None)
        return self

    def _fit_persistence(self, sub: GridFeatures, Xs: np.ndarray | None = None, raw: Any = None) -> None:
        S = self._persistent(sub, Xs, raw)
        self.persist_cal_ = TailCalibrator().fit(S[sub.valid], S, self.dependence_bins())

    def dependence_bins(self) -> int:
        """How many bins apart two trailing-mean scores of a meter still share data: the
        persistence window over evidence whose features reach a day back (``ratio_24h``). The
        tail of the final calibration is known from as many independent runs as the training
        held, counted with this gap (a week of one meter holds a handful, a fleet hundreds)."""
        f = self.config.features()
        return f.steps(self.config.persist_min) + f.steps(24 * 60)

    def _fit_model(self, gf: GridFeatures, scaler: GaussianScaler | None = None) -> np.ndarray | None:
        """Fit the scaler, the model and its calibration on (a seeded sample of) the valid bins.
        Returns the raw scores of every valid bin in (meter, time) order when the sample is all
        of them and each is a feature row (what :meth:`evidence` scores), else None: a sequence
        model's training windows are cut before scaling, evidence's after (gaps read otherwise)."""
        cfg = self.config
        rows = self._inputs(gf)
        X = seeded_rows(rows, cfg.max_train_rows, cfg.seed)
        self.scaler_ = scaler or GaussianScaler().fit(X, cfg.seed)
        Xs = self.scaler_.transform(X)
        self.model_ = self._factory().fit(Xs, cfg.seed)
        raw = self.model_.raw(Xs)
        self.calibrator_ = TailCalibrator().fit(raw)
        return raw if X is rows and not self.model_.sequence else None

    # ------------------------------------------------------------------------------ state

    def state(self) -> dict:
        return {k: getattr(self, k) for k in ("feature_names_", "scaler_", "model_", "calibrator_", "persist_cal_")}

    KEYS = ("feature_names_", "scaler_", "model_", "calibrator_", "persist_cal_")

    def load(self, state: dict) -> "Fleet":
        """Adopt a stored state (only the attributes :meth:`state` gives, of the expected kinds)."""
        if set(state) != set(self.KEYS):
            raise ValueError(f"a fleet state holds {sorted(self.KEYS)}, not {sorted(state)}")
        if not (isinstance(state["scaler_"], GaussianScaler) and isinstance(state["model_"], Model)
                and isinstance(state["calibrator_"], TailCalibrator) and isinstance(state["persist_cal_"], TailCalibrator)
                and isinstance(state["feature_names_"], list)):
            raise ValueError("a fleet state of unexpected kinds (scaler, model, calibrations)")
        for k in self.KEYS:
            setattr(self, k, state[k])
        return self

    # ------------------------------------------------------------------------------ scoring

    def _inputs(self, gf: GridFeatures, scale: bool = False) -> np.ndarray:
        """Model inputs of the valid bins: feature rows, or for a sequence model each bin with the
        ``steps - 1`` bins before it. ``scale``: through the fitted scaler (sequences are built
        from the scaled grid, so each bin is scaled once, not once per sequence it is in)."""
        model = getattr(self, "model_", None) or self._factory()
        if not model.sequence:
            X = gf.rows()
            return self.scaler_.transform(X) if scale else X
        steps = model.steps
        V = gf.values
        if scale:
            V = np.where(gf.valid[:, :, None], self.scaler_.transform(np.nan_to_num(V)), 0.0).astype(np.float32)
        else:
            V = np.where(gf.valid[:, :, None], V, 0.0).astype(np.float32)  # gaps read as "on baseline"
        pad = np.concatenate([np.repeat(V[:, :1], steps - 1, axis=1), V], axis=1)
        win = np.lib.stride_tricks.sliding_window_view(pad, steps, axis=1)  # meters x bins x d x steps
        return np.ascontiguousarray(win[gf.valid].transpose(0, 2, 1))

    def evidence(self, gf: GridFeatures, Xs: np.ndarray | None = None, raw: np.ndarray | None = None) -> np.ndarray:
        """-log10 exceedance probability of each bin on its own (meters x bins, NaN: no data).
        ``Xs``: the scaled inputs of the valid bins, when already computed; ``raw``: the model's
        raw scores of them, when already computed (training: see :meth:`_fit_model`)."""
        out = np.full(gf.valid.shape, np.nan)
        if gf.valid.any():
            if raw is None:
                raw = self.model_.raw(self._inputs(gf, scale=True) if Xs is None else Xs)
            out[gf.valid] = self.calibrator_.log10_exceedance(raw)
        return out

    def _alternative_evidence(self, gf: GridFeatures, E: np.ndarray) -> np.ndarray:
        """Each bin's evidence, or less where a state the meter's profile showed explains it
        better: a quieter profiled day type (``gf.quiet``) or the busiest profiled day of the
        bin's own type (``gf.busy``); see :meth:`_quiet_evidence`."""
        E = self._quiet_evidence(gf, E, gf.quiet)
        return self._quiet_evidence(gf, E, gf.busy)

    def _quiet_evidence(self, gf: GridFeatures, E: np.ndarray, q: "GridFeatures | None" = None) -> np.ndarray:
        """Each bin's evidence, or less where the bin is usual for a quieter day type the meter
        showed in its profile (``gf.quiet``, see :meth:`Baseline._quiet_day`): a plant stopped on
        a weekday as on its profiled Sunday is a stop, not a fault. Only bins with some evidence
        (p < 0.1 on their own) are judged again, so the cost is a small share of scoring. Training
        has no such alternative (it judges each profiled day against the other days of its type):
        scores only go down, the calibration stays conservative."""
        if q is None or getattr(getattr(self, "model_", None), "sequence", False):  # sequences need every bin
            return E
        look = gf.valid & q.valid & (E > 1.0)
        if not look.any():
            return E
        alt = GridFeatures(values=q.values, valid=look, cell=np.zeros(0, np.int64), t0=q.t0, power=q.power,
                           expected=q.expected, col0=q.col0)
        Ea = self.evidence(alt)
        return np.where(look & np.isfinite(Ea), np.minimum(E, Ea), E)

    def _persistent(self, gf: GridFeatures, Xs: np.ndarray | None = None, raw: np.ndarray | None = None) -> np.ndarray:
        """Evidence averaged over the trailing ``persist_min``: a consumption fault is a run of
        unusual bins, each of which alone a burst or a quiet hour could explain. Each bin counts
        at most ``-log10(alpha)``, the evidence at which it alone is an anomaly: how far beyond
        that one bin stands says how far off it is, not how long the fault lasts, and uncapped one
        hour far off (a plant starting an hour early: 21 kW against its 3-7 kW) held a six-hour
        mean over the limit for the five on-profile hours after it."""
        E = self.evidence(gf, Xs, raw)
        E = np.minimum(self._alternative_evidence(gf, E), -np.log10(self.config.alpha))  # NaN stays NaN
        # Judged once half the window has evidence: after an unjudged weekend, Monday's first
        # bin alone does not stand for six hours.
        S = covered_mean(E, self.config.features().steps(self.config.persist_min), gf.col0)
        return np.where(gf.valid, S, np.nan)

    def grid_scores(self, gf: GridFeatures) -> tuple[np.ndarray, Any]:
        """Calibrated score per bin, and what :meth:`explain` may reuse of the computation."""
        bins = np.full(gf.valid.shape, np.nan)
        if gf.valid.any():
            S = self._persistent(gf)
            bins[gf.valid] = self.persist_cal_.log10_exceedance(S[gf.valid]) / -np.log10(self.config.alpha)
        return bins, None

    def _contributions(self, X: np.ndarray, cells: np.ndarray | None = None, aux: Any = None) -> np.ndarray:
        return self.model_.contributions(self.scaler_.transform(X))

    def explain(self, gf: GridFeatures, cells: np.ndarray, top: int = 3, aux: Any = None) -> list[dict]:
        """The features that drove the score over the bins ``cells`` (flat indices), biggest first:
        their mean value and share of the model's per-feature contributions."""
        flat_valid = gf.valid.ravel()
        cells = np.unique(cells[flat_valid[cells]])
        if not len(cells):
            return []
        sub = GridFeatures(values=gf.values.reshape(-1, 1, gf.values.shape[2])[cells].reshape(1, len(cells), -1),
                           valid=np.ones((1, len(cells)), bool), cell=np.zeros(0, np.int64), t0=gf.t0[:1],
                           power=gf.power.ravel()[cells][None], expected=gf.expected.ravel()[cells][None],
                           col0=np.zeros(1, np.int64))
        if getattr(self.model_, "sequence", False):  # sequences need each bin's history: rebuild them from the full grid
            X = self._inputs(gf)
            pos = np.searchsorted(np.flatnonzero(flat_valid), cells)
            X = X[pos]
        else:
            X = self._inputs(sub)
        contrib = self._contributions(X, cells, aux).mean(axis=0)
        share = contrib / contrib.sum() if contrib.sum() > 0 else contrib
        raw_mean = sub.values[0].mean(axis=0)
        order = np.argsort(-share)[:top]
        return [{"feature": self.feature_names_[j], "value": rnd(float(raw_mean[j])), "share": rnd(float(share[j]))}
                for j in order]


class EnsembleFleet(Fleet):
    """Members trained on the same rows, each with its own calibration; combined by the union bound
    (or the mean of their evidence); see :class:`EnsembleConfig`."""

    def __init__(self, config: "EnsembleConfig", member_factories: list):
        super().__init__(config, lambda: None)
        self._members = member_factories

    def state(self) -> dict:
        return {"feature_names_": self.feature_names_, "members_": [m.state() for m in self.members_],
                "persist_cal_": None}

    def load(self, state: dict) -> "EnsembleFleet":
        if set(state) != {"feature_names_", "members_", "persist_cal_"} or not isinstance(state["members_"], list) \
                or len(state["members_"]) != len(self._members):
            raise ValueError(f"an ensemble state holds {len(self._members)} members, feature names and no calibration")
        self.feature_names_ = state["feature_names_"]
        self.members_ = [Fleet(self.config, f).load(s) for f, s in zip(self._members, state["members_"])]
        self.persist_cal_ = None
        self.model_ = None
        return self

    def _fit_model(self, gf: GridFeatures) -> list | None:
        self.members_ = [Fleet(self.config, f) for f in self._members]
        raws = []
        for m in self.members_:
            if m._factory().sequence:
                raise ValueError("sequence models cannot be ensemble members")
            m.feature_names_ = self.feature_names_
            # One scaler for all (the same rows and seed would fit the same one): scoring scales
            # each bin once, not once per member.
            raws.append(m._fit_model(gf, scaler=self.members_[0].scaler_ if m is not self.members_[0] else None))
        self.model_ = None
        return raws

    def _fit_persistence(self, sub: GridFeatures, Xs: np.ndarray | None = None, raw: Any = None) -> None:
        raws = raw if raw is not None else [None] * len(self.members_)
        if any(r is None for r in raws):
            Xs = self._scaled(sub) if Xs is None else Xs
        for m, r in zip(self.members_, raws):
            m._fit_persistence(sub, Xs, r)
        self.persist_cal_ = None  # each member's own calibration is the ensemble's

    def _scaled(self, gf: GridFeatures) -> np.ndarray | None:
        """The valid bins scaled once for every member (None if the members scale differently,
        as models saved by another configuration might)."""
        first = self.members_[0].scaler_
        if not gf.valid.any() or any(m.scaler_ is not first for m in self.members_):
            return None
        return first.transform(gf.rows())

    def per_member(self, gf: GridFeatures) -> np.ndarray:
        """Each member's final -log10 exceedance per bin (members x meters x bins)."""
        out = np.full((len(self.members_),) + gf.valid.shape, np.nan)
        if gf.valid.any():
            Xs = self._scaled(gf)
            for k, m in enumerate(self.members_):
                out[k][gf.valid] = m.persist_cal_.log10_exceedance(m._persistent(gf, Xs)[gf.valid])
        return out

    def grid_scores(self, gf: GridFeatures) -> tuple[np.ndarray, Any]:
        L = self.per_member(gf)
        if self.config.combine == "max":
            # Union bound: P(any of k members this far out) <= k x the smallest p.
            comb = np.max(L, axis=0) - np.log10(len(self.members_))
        else:
            comb = np.mean(L, axis=0)
        return comb / -np.log10(self.config.alpha), L

    def _inputs(self, gf: GridFeatures, scale: bool = False) -> np.ndarray:
        return gf.rows()  # the members scale for themselves

    def _contributions(self, X: np.ndarray, cells: np.ndarray | None = None, aux: Any = None) -> np.ndarray:
        """The contributions of the member most surprised over the alert's bins (from the
        evidence scoring already computed, ``aux``; else scored again on ``X``)."""
        if aux is not None and cells is not None:
            with np.errstate(all="ignore"):
                means = [np.nanmean(aux[k].ravel()[cells]) if len(cells) else -np.inf for k in range(len(self.members_))]
            means = [m if np.isfinite(m) else -np.inf for m in means]
        else:
            one = GridFeatures(values=X[None].astype(float), valid=np.ones((1, len(X)), bool), cell=np.zeros(0, np.int64),
                               t0=np.zeros(1), power=np.zeros((1, len(X))), expected=np.zeros((1, len(X))),
                               col0=np.zeros(1, np.int64))
            means = [np.nanmean(m.evidence(one)) for m in self.members_]
        top = self.members_[int(np.argmax(means))]
        return top._contributions(X)


class GridCarry(BinCarry):
    """One meter's closed grid bins as a stream carries them (:class:`BinCarry` of the meter's grid
    step), in place of the raw readings they came from: per bin the channel's mean ``p``, the
    power factor ``pf`` and the reactive share ``qs`` (:meth:`Baseline._grid`). Every feature, the
    evidence and its trailing persistence of a bin are functions of these series over the bins
    before it (and the meter's state): a reading is exact when the raw readings cover its own bin
    and the carry the bins before it."""

    names = ("p", "pf", "qs")


class _Ctx(dict):
    """The scoring context (per grid step: rows, features, fleet, what ``explain`` reuses); ``bins``:
    per meter (first bin, grid step, {series: values}) when scored with a carry."""

    bins = None


class LearnedDetector(Detector):
    """Base of the learned detectors: per-meter baselines, fleet models per grid step, alerts."""

    code = "WARN_CONSUMPTION_ANOMALY"
    config_cls: ClassVar[type[DetectorConfig]] = LearnedConfig
    requires = ("p_kw",)
    reads_also = (*PHASE_CHANNELS, "p_kw", "e_kwh", "pf", "q_kvar", "s_kva")  # the grid features: binned power and register, power factor, reactive share
    judges = ("consumption",)
    blank_input = ("p_kw", "e_kwh")
    fleet_model: ClassVar[bool] = True  # the core trains one model on the whole fleet's profiles
    state_version = 3  # 3: + the busiest profiled day of each type (busy_kw, busy_spread_kw)
    carry_cls = GridCarry   # a stream carries its closed grid bins (scored(df, carry=...))

    def channels(self) -> tuple[str, ...]:
        return (self.config.channel,)

    # ----------------------------------------------------------------------------- to override

    def _model(self) -> Model:  # pragma: no cover - overridden
        raise NotImplementedError

    def _new_fleet(self, grid_s: float) -> Fleet:
        return Fleet(self.config.at_grid(grid_s), self._model)

    # ----------------------------------------------------------------------------- fleet models

    @property
    def fleets_(self) -> dict[float, Fleet]:
        return self.__dict__.setdefault("_fleets", {})

    @property
    def locked(self) -> bool:
        """Whether a fleet model has been trained (or loaded)."""
        return bool(self.fleets_)

    def grids(self, frame: pd.DataFrame) -> np.ndarray:
        """Grid step of each meter of a prepared frame from its cadence (NaN: not judged)."""
        from wattwatch.detect.base import meter_facts

        return self.config.grid_for(meter_facts(frame)["cadence_s"])

    def train(self, frame: pd.DataFrame) -> "LearnedDetector":
        """Learn the fleet model of every grid step present in ``frame`` (normal telemetry of many
        meters) and the baselines of its meters; returns self.

        Raises
        ------
        ValueError
            When no grid step holds enough feature rows to train on."""
        df = prepare(frame)
        self.fit(df, train=False)
        errors = []
        for g, sub in self._by_grid(df, self.grids(df)):
            try:
                self.fleets_[g] = self._new_fleet(g).train(sub)
            except ValueError as exc:
                errors.append(f"{self.name}: {exc}")
        if errors and not self.fleets_:
            raise ValueError("; ".join(errors))
        return self

    def model_state(self) -> dict:
        """The fleet-wide state, per grid step (what `wattwatch train` and the store keep)."""
        return {str(int(g)): f.state() for g, f in sorted(self.fleets_.items())}

    def set_model_state(self, state: dict) -> "LearnedDetector":
        """Adopt fleet models saved by :meth:`model_state` (``ValueError`` if they do not fit)."""
        grids = {float(g) for g in state}
        bad = grids - {float(x) for x in GRID_STEPS_S} - {float(self.config.grid_s)}
        if bad:
            raise ValueError(f"{self.name}: fleet models for grid steps {sorted(bad)} this detector does not use")
        self.__dict__["_fleets"] = {float(g): self._new_fleet(float(g)).load(s) for g, s in state.items()}
        return self

    def clone(self) -> "LearnedDetector":
        new = super().clone()
        new.__dict__["_fleets"] = dict(self.fleets_)  # fitted models are shared, never changed in place
        return new

    # ----------------------------------------------------------------------------- contract

    def fit(self, frame: pd.DataFrame, train: bool | None = None) -> "LearnedDetector":
        """Learn the baselines of the meters in ``frame``; ``train``: also train the fleet model
        of their grid steps (None: only of steps that have none yet; the core passes False)."""
        df = prepare(frame)
        super().fit(df)
        if train is False or len(df) == 0:
            return self
        grids = self.grids(df)
        todo = [g for g in np.unique(grids[np.isfinite(grids)]) if train or g not in self.fleets_]
        for g, sub in self._by_grid(df, grids):
            if g in todo:
                try:
                    self.fleets_[g] = self._new_fleet(g).train(sub)
                except ValueError as exc:
                    if train:  # asked for: say it loudly
                        raise
                    # Fitting the baselines worked; the fleet model needs more normal data. Not
                    # silent: meters of this grid score NaN ("cannot judge") and this says why.
                    warnings.warn(f"{self.name}: no fleet model for the {g:.0f} s grid: {exc}", stacklevel=2)
        return self

    def _by_grid(self, df: pd.DataFrame, grids: np.ndarray):
        seg = df["_seg"].to_numpy()
        for g in np.unique(grids[np.isfinite(grids)]):
            yield float(g), prepare(df[(grids == g)[seg]])

    def _fit(self, df: pd.DataFrame) -> dict:
        out: dict[str, dict] = {}
        grids = self.grids(df)
        for m in np.asarray(meter_names(df))[~np.isfinite(grids)]:
            out[str(m)] = {"grid_s": None}
        for g, sub in self._by_grid(df, grids):
            out.update(Baseline(self.config.at_grid(g).features()).fit(sub).meter_states())
        return out

    def _grid_of_meters(self, df: pd.DataFrame) -> np.ndarray:
        return self._param(df, "grid_s")

    def _grid_steps(self, meters) -> np.ndarray:
        g = np.array([float((self.state_.get(m) or {}).get("grid_s") or np.nan) for m in meters])
        return np.where(np.isfinite(g), g, self.config.grid_s)

    def carried_reach(self, meters) -> Reach:
        """The reach in raw readings when the meter's closed grid bins are carried
        (:class:`GridCarry`): a reading's own bin (from its start, less a register interval's
        spill); ahead as :meth:`reach`."""
        r = self.reach(meters)
        g = self._grid_steps(meters)
        back = g.copy()
        for gv in np.unique(g):
            back[g == gv] = gv + self.config.at_grid(gv).features().spill_s()
        return Reach(back, np.zeros(len(g), np.int64), r.ahead_s, r.ahead_n)

    def reach(self, meters) -> Reach:
        n = len(meters)
        g = self._grid_steps(meters)
        back = np.zeros(n)
        ahead = g.copy()
        for gv in np.unique(g):
            cfg = self.config.at_grid(gv).features()
            # Each trailing window of k bins is summed within blocks of k (two blocks back at most),
            # the persistence window over the features' windows: their reaches add up.
            k = [cfg.steps(w) for w in cfg.windows_min]
            features = max(2 * max(k), 2 * cfg.steps(24 * 60), 3 * k[0])
            steps = features + 2 * cfg.steps(self.config.persist_min) + 1
            # A bin's power can come from a register interval that starts or ends outside it.
            back[g == gv] = steps * gv + cfg.spill_s()
            ahead[g == gv] = gv + cfg.spill_s()
        return Reach(back, np.zeros(n, np.int64), ahead, np.zeros(n, np.int64))

    def cadence_note(self, cadence_s: float) -> str | None:
        if not np.isfinite(self.config.grid_for(np.array([cadence_s]))[0]):
            return (f"{self.name}: not judged at {cadence_s:.0f} s cadence (max_cadence_s = "
                    f"{self.config.max_cadence_s:.0f} s): its fleet model needs readings at least that often"
                    + (", and seasonal_profile judges consumption at coarser cadences"
                       if self.config.max_cadence_s < 3600 else ""))
        return None

    def _score(self, df: pd.DataFrame, carry: dict | None = None) -> Scored:
        out = np.full(len(df), np.nan)
        ctx = _Ctx()
        if carry is not None:   # a stream: the bins it may carry on (see GridCarry)
            ctx.bins = {}
        seg = df["_seg"].to_numpy()
        grids = self._grid_of_meters(df)
        for g in np.unique(grids[np.isfinite(grids)]):
            fleet = self.fleets_.get(float(g))
            if fleet is None:
                continue  # no model for this grid: not judged (the core said why)
            meters = grids == g
            rows = meters[seg]
            sub = df if rows.all() else prepare(df[rows])
            names = meter_names(sub)
            base = Baseline.from_states(fleet.config.features(), {str(m): self.state_[str(m)] for m in names})
            gf = base.features(sub, carry=carry)
            if carry is not None:
                ctx.bins.update({str(m): (float(gf.t0[k]), float(g), {n: v[k] for n, v in gf.series.items()})
                                 for k, m in enumerate(names)})
            bins, aux = fleet.grid_scores(gf)
            out[rows] = bins.ravel()[gf.cell]
            ctx[float(g)] = (np.flatnonzero(rows), gf, fleet, aux)
        return Scored(out, ctx)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        g = float((self.state_.get(meter_of(df, rows[0])) or {}).get("grid_s"))
        idx, gf, fleet, aux = ctx[g]
        local = np.searchsorted(idx, rows)
        cells = gf.cell[local]
        drivers = fleet.explain(gf, cells, aux=aux)
        c = np.unique(cells)
        hours = len(c) * g / 3600
        actual = float(np.nansum(gf.power.ravel()[c])) * g / 3600
        expected = float(np.nansum(gf.expected.ravel()[c])) * g / 3600
        rel = actual / expected - 1 if expected > 0 else float("nan")
        # (mf) A bin's score is the trailing mean of the evidence over persist_min: the alert's first
        # bins stand for the hours before them, which the span's own kWh leave out ("8.8 kWh vs 8.8
        # kWh expected, 0% below" on the UCI home, whose night before had drawn 4x its baseline).
        # The text also quotes the hours the score weighed: the persistence window before the span.
        nb = gf.valid.shape[1]
        row, first = divmod(int(c.min()), nb)
        k = fleet.config.features().steps(self.config.persist_min)
        lead = np.arange(row * nb + max(0, first - (k - 1)), row * nb + first)   # (rmf) k bins, the first one's own among them
        lead = lead[gf.valid.ravel()[lead]]
        lead_actual = float(np.nansum(gf.power.ravel()[lead])) * g / 3600
        lead_expected = float(np.nansum(gf.expected.ravel()[lead])) * g / 3600
        w_act, w_exp = actual + lead_actual, expected + lead_expected
        w_rel = w_act / w_exp - 1 if w_exp > 0 else float("nan")
        w_hours = hours + len(lead) * g / 3600
        peak = float(np.nanmax(scores[rows]))
        p_min = 10 ** (-peak * -np.log10(self.config.alpha))
        said = ", ".join(f"{d['feature']} {d['value']:+.2f}" for d in drivers if d["value"] is not None)

        def dev(r):
            return "as expected" if not abs(r) >= 0.005 else f"{abs(r):.0%} {'below' if r < 0 else 'above'}"

        weighed = (f"; with the {len(lead) * g / 3600:.1f} h before it that its score weighs: {w_act:.1f} kWh vs "
                   f"{w_exp:.1f} kWh expected over {w_hours:.1f} h, {dev(w_rel)}") if len(lead) else ""
        return Finding(
            "warning",
            f"{self.name}: consumption pattern abnormal over {hours:.1f} h ({actual:.1f} kWh vs {expected:.1f} kWh "
            f"expected, {dev(rel)}{weighed}); drivers: {said} (normal rows score this high with p = {p_min:.1e})",
            {"detector": self.name, "drivers": drivers, "actual_kwh": rnd(actual, 2), "expected_kwh": rnd(expected, 2),
             "deviation": rnd(rel, 3), "hours": rnd(hours, 2), "exceedance_p": float(f"{p_min:.3g}"), "grid_s": g,
             "weighed_kwh": rnd(w_act, 2), "weighed_expected_kwh": rnd(w_exp, 2), "weighed_deviation": rnd(w_rel, 3),
             "weighed_hours": rnd(w_hours, 2)},
            "compare with site activity: a lasting drop can be a bypass or tampering, a rise an unauthorised "
            "load, a flat line a stuck register")


# ------------------------------------------------------------------------------ the detectors


@dataclass(frozen=True)
class IsolationForestConfig(LearnedConfig):
    n_estimators: int = 100
    contamination: float = 0.01


class IsolationForestDetector(LearnedDetector):
    name = "isolation_forest"
    config_cls = IsolationForestConfig

    def _model(self):
        return IsolationForestModel(self.config.n_estimators, self.config.contamination)


@dataclass(frozen=True)
class LOFConfig(LearnedConfig):
    n_neighbors: int = 20
    max_fit_rows: int = 10_000


class LOFDetector(LearnedDetector):
    name = "local_outlier_factor"
    config_cls = LOFConfig

    def _model(self):
        return LOFModel(self.config.n_neighbors, self.config.max_fit_rows)


class PCADetector(LearnedDetector):
    name = "pca_reconstruction"
    config_cls = LearnedConfig

    def _model(self):
        return PCAModel()


@dataclass(frozen=True)
class AutoencoderConfig(LearnedConfig):
    hidden: int = 32
    code_size: int = 4
    epochs: int = 12


class AutoencoderDetector(LearnedDetector):
    name = "autoencoder"
    config_cls = AutoencoderConfig

    def _model(self):
        return DenseAEModel(self.config.hidden, self.config.code_size, self.config.epochs)


@dataclass(frozen=True)
class LSTMAutoencoderConfig(LearnedConfig):
    steps: int = 12
    hidden: int = 16
    epochs: int = 8
    max_fit_rows: int = 20_000


class LSTMAutoencoderDetector(LearnedDetector):
    name = "lstm_autoencoder"
    config_cls = LSTMAutoencoderConfig

    def _model(self):
        c = self.config
        return LSTMAEModel(c.steps, c.hidden, c.epochs, max_fit_rows=c.max_fit_rows)

    def reach(self, meters) -> Reach:
        r = super().reach(meters)
        r.back_s = r.back_s + self.config.steps * r.ahead_s  # each bin's sequence of the steps before it
        return r


# ------------------------------------------------------------------------------ ensemble

MEMBERS = {"isolation_forest": IsolationForestDetector, "local_outlier_factor": LOFDetector,
           "pca_reconstruction": PCADetector, "autoencoder": AutoencoderDetector,
           "lstm_autoencoder": LSTMAutoencoderDetector}
_SHARED = frozenset(f.name for f in dataclasses.fields(LearnedConfig))


def _member_settings_class(det: type[LearnedDetector]) -> type:
    """The settings of a member's own model (the fields its detector's config adds to
    :class:`LearnedConfig`, with their defaults there), as a frozen dataclass: one source for both."""
    own = [(f.name, f.type, dataclasses.field(default=f.default)) for f in dataclasses.fields(det.config_cls)
           if f.name not in _SHARED]
    return dataclasses.make_dataclass(f"{det.__name__.removesuffix('Detector')}Settings", own, frozen=True)


# (b1) The members that can be set under ``[learned_ensemble.<member>]``: those with settings of their
# own that may be members (the PCA has none; the LSTM, a sequence model, cannot be a member).
MEMBER_SETTINGS = {n: _member_settings_class(MEMBERS[n]) for n in ("isolation_forest", "local_outlier_factor",
                                                                  "autoencoder")}


def member_settings(kind: str, value, owner: str = "EnsembleConfig"):
    """``value`` (a table of ``kind``'s model settings, or the settings) as ``kind``'s settings;
    ``ConfigError`` naming ``owner.kind`` and the key for an unknown key (a shared one, such as
    ``seed``, is said to belong to the ensemble's own table) or a value of the wrong type or range."""
    from wattwatch.detect.base import _check_value
    from wattwatch.errors import ConfigError

    cls = MEMBER_SETTINGS[kind]
    if isinstance(value, cls):
        return value
    where = f"{owner}.{kind}"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table of {kind} settings, got {type(value).__name__} {value!r}")
    fields = dataclasses.fields(cls)
    unknown = set(value) - {f.name for f in fields}
    if unknown:
        shared = sorted(map(str, unknown & _SHARED))
        raise ConfigError(f"{where}: unknown parameter(s) {sorted(map(str, unknown))}; known: {[f.name for f in fields]}"
                          + (f" ({', '.join(shared)}: set on the ensemble itself, one value for every member)"
                             if shared else ""))
    defaults = cls()
    for f in fields:
        if f.name in value:
            _check_value(f.name, value[f.name], getattr(defaults, f.name), str(f.type), where)
    return cls(**value)


@dataclass(frozen=True)
class EnsembleConfig(LearnedConfig):
    """``members``: learned detectors combined, each with its own calibrated score; ``combine``:
    "max" (default: the most surprised member, its exceedance probability multiplied by the number
    of members, the union bound, so 1.0 still means p = alpha) or "mean" of their -log10 p.
    Default members: the forest (best on bypass theft alone) and the autoencoder (best on level
    shifts). Averaging per-bin evidence and re-calibrating the average was tried and lost the
    forest's theft detections in the autoencoder's tail (0 of 24 thefts on one fleet).

    Every member is trained with the ensemble's own settings (``seed``, ``max_train_rows``,
    ``alpha``, grid and windows ...: one value for all) and its model's settings from the table
    of its name (b1): ``isolation_forest`` (``n_estimators``, ``contamination``),
    ``local_outlier_factor`` (``n_neighbors``, ``max_fit_rows``), ``autoencoder`` (``hidden``,
    ``code_size``, ``epochs``), with the defaults of the detector of that name; in TOML
    ``[learned_ensemble.autoencoder]`` / ``epochs = 4``. A table for a kind that is not a member
    is refused (it would change nothing)."""

    members: tuple[str, ...] = ("isolation_forest", "autoencoder")
    combine: str = "max"
    # Judged up to 10-minute cadence by default: at 15 minutes and coarser its fleet model, trained
    # on a week of profile, reads the next season as an anomaly (512 of 568 alerts on two years of
    # real hourly buildings); seasonal_profile judges consumption there.
    max_cadence_s: float = 600.0
    isolation_forest: Any = MEMBER_SETTINGS["isolation_forest"]()
    local_outlier_factor: Any = MEMBER_SETTINGS["local_outlier_factor"]()
    autoencoder: Any = MEMBER_SETTINGS["autoencoder"]()
    # A member's model settings change the fleet model, not a meter's baseline (its learned state).
    scoring_only: ClassVar[tuple[str, ...]] = tuple(MEMBER_SETTINGS)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "members", tuple(self.members))
        unknown = set(self.members) - set(MEMBERS)
        if unknown or not self.members:
            raise ValueError(f"ensemble members: unknown {sorted(unknown)}; known: {sorted(MEMBERS)}")
        if self.combine not in ("max", "mean"):
            raise ValueError(f"combine: expected 'max' or 'mean', got {self.combine!r}")
        for kind, cls in MEMBER_SETTINGS.items():
            value = member_settings(kind, getattr(self, kind))
            object.__setattr__(self, kind, value)
            if kind not in self.members and value != cls():
                raise ValueError(f"{kind}: settings given for a model that is not a member (members: "
                                 f"{', '.join(self.members)}); add it to members or remove [learned_ensemble.{kind}]")

    @classmethod
    def from_dict(cls, d: dict | None) -> "EnsembleConfig":
        """As every config's, with each member's table checked (``EnsembleConfig.autoencoder: ...``);
        a member's setting given on the ensemble itself is refused saying which table it goes in."""
        from wattwatch.errors import ConfigError

        if isinstance(d, dict):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(map(str, set(d) - known))
            homes = {k: [n for n, c in MEMBER_SETTINGS.items() if k in {f.name for f in dataclasses.fields(c)}]
                     for k in unknown}
            if any(homes.values()):
                raise ConfigError(f"{cls.__name__}: unknown parameter(s) {unknown}; known: {sorted(known)} ("
                                  + "; ".join(f"{k} is a member's setting: set it under "
                                              + " or ".join(f"[learned_ensemble.{n}]" for n in v)
                                              for k, v in homes.items() if v) + ")")
            d = {k: member_settings(k, v, cls.__name__) if k in MEMBER_SETTINGS else v for k, v in d.items()}
        return super().from_dict(d)

    def to_dict(self) -> dict:
        """As every config, but a member's table only when it is not all defaults: the settings of
        an ensemble configured as before b1 (a store's fleet-model key, a folder's manifest) are
        the same dict, so what was trained with them is still found."""
        d = super().to_dict()
        for kind, cls in MEMBER_SETTINGS.items():
            if getattr(self, kind) == cls():
                d.pop(kind, None)
        return d

    def member_params(self, kind: str) -> dict:
        """What member ``kind`` is built with: the ensemble's shared settings and its model's."""
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(LearnedConfig)}
        own = getattr(self, kind, None)
        return {**base, **(dataclasses.asdict(own) if own is not None else {})}


class EnsembleDetector(LearnedDetector):
    """Combines the calibrated scores of its members, trained on the same rows (see
    :class:`EnsembleConfig`). The explanation is that of the member most surprised over the alert."""

    name = "learned_ensemble"
    config_cls = EnsembleConfig

    def _model(self):
        return None

    def _new_fleet(self, grid_s: float) -> Fleet:
        cfg = self.config.at_grid(grid_s)
        factories = []
        for n in self.config.members:
            member = MEMBERS[n](cfg.member_params(n))   # (b1) before: the shared settings only, each model at its defaults
            if member._model().sequence:
                raise ValueError(f"{self.name}: sequence models ({n}) cannot be ensemble members")
            factories.append(member._model)
        return EnsembleFleet(cfg, factories)


__all__ = ["LearnedDetector", "LearnedConfig", "Fleet", "EnsembleFleet", "MEMBERS", "MEMBER_SETTINGS", "GRID_STEPS_S",
           "Any"]
