"""Learned consumption detectors behind the common contract (``WARN_CONSUMPTION_ANOMALY``).

A learned detector has two kinds of state:

- per meter, the hour-of-week baseline its features are relative to (``baseline_``), re-learned
  from each meter's profiling period like every rule's state;
- fleet-wide, the model and its calibration (``scaler_``, ``model_``, ``calibrator_``), learned
  from the features of normal periods of many meters at once.

``fit`` learns both. ``train`` does the same and then *locks* the model: later ``fit`` calls (the
engine fits every detector on each meter chunk's profiling period) only re-learn the baselines,
so one model trained on the whole fleet, or loaded with ``detect --models``, judges every chunk.
Scores are calibrated to ``log10(1/p) / log10(1/alpha)`` (p: exceedance probability under the
training scores), so 1.0 means the same for every learned detector and every meter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, rnd
from wattwatch.detect.learned.features import Baseline, FeatureConfig, GridFeatures, covered_mean
from wattwatch.detect.learned.models import (DenseAEModel, IsolationForestModel, LOFModel, LSTMAEModel, Model,
                                             GaussianScaler, PCAModel, TailCalibrator, seeded_rows)

LEARNED_POST = PostRule(threshold=1.0, min_duration_s=3 * 3600.0, min_readings=12, merge_gap_s=12 * 3600.0,
                        max_bridge_s=3600.0)


@dataclass(frozen=True)
class LearnedConfig(DetectorConfig):
    """``alpha``: exceedance probability under normal data that scores 1.0; ``grid_s``/``windows_min``:
    see :mod:`features`; ``max_train_rows``: rows (bins) sampled for training (seeded);
    ``persist_min``: trailing window over which per-bin evidence is averaged before the final
    calibration; ``seed``: every random choice (sample, model initialisation);
    ``min_fleet_meter_days``: the least normal data (meters x days of profile) from which
    ``detect`` trains a fleet model itself — below it the detector is not run (a notice says so)
    unless a trained model is given with ``--models``: a tail at ``alpha`` cannot be calibrated
    on one meter's week."""

    alpha: float = 1e-4
    grid_s: float = 300.0
    windows_min: tuple[int, ...] = (5, 15, 60)
    max_train_rows: int = 50_000
    persist_min: int = 360
    seed: int = 0
    min_fleet_meter_days: float = 60.0
    post: PostRule = LEARNED_POST

    def __post_init__(self):
        object.__setattr__(self, "windows_min", tuple(int(w) for w in self.windows_min))
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be within (0, 1), got {self.alpha}")
        if self.grid_s <= 0 or not self.windows_min or min(self.windows_min) * 60 < self.grid_s:
            raise ValueError("grid_s must be > 0 and every window at least one grid step")

    def features(self) -> FeatureConfig:
        return FeatureConfig(grid_s=self.grid_s, windows_min=self.windows_min)


class LearnedDetector(Detector):
    """Base of the learned detectors: features, training sample, scaling, calibration, alerts."""

    code = "WARN_CONSUMPTION_ANOMALY"
    config_cls: ClassVar[type[DetectorConfig]] = LearnedConfig
    requires = ("p_kw",)
    consumption_based = True
    fleet_model: ClassVar[bool] = True  # the engine trains one model on the whole fleet's profile

    # ----------------------------------------------------------------------------- to override

    def _model(self) -> Model:  # pragma: no cover - overridden
        raise NotImplementedError

    # ----------------------------------------------------------------------------- contract

    @property
    def locked(self) -> bool:
        return getattr(self, "locked_", False)

    def train(self, frame: pd.DataFrame) -> "LearnedDetector":
        """Fit on ``frame`` (normal telemetry) and lock the model: later ``fit`` calls re-learn
        only the per-meter baselines."""
        self.__dict__.pop("locked_", None)
        self.fit(frame)
        self.locked_ = True
        return self

    def clone(self) -> "LearnedDetector":
        new = type(self)(self.config)
        if self.locked:
            for k in self.model_state():
                setattr(new, k, getattr(self, k))
            new.locked_ = True
        return new

    def model_state(self) -> dict:
        """The fleet-wide fitted state (what ``wattwatch train`` saves)."""
        return {k: getattr(self, k) for k in ("feature_names_", "scaler_", "model_", "calibrator_", "persist_cal_")}

    def _fit(self, df: pd.DataFrame) -> None:
        cfg = self.config
        self.baseline_ = Baseline(cfg.features()).fit(df)
        if self.locked:
            return
        gf = self.baseline_.features(df, leave_day_out=True)
        n = int(gf.valid.sum())
        if n < 50:
            raise ValueError(f"{self.name}: only {n} feature rows to train on; give it more normal data")
        self.feature_names_ = cfg.features().names()
        self._fit_model(gf)
        # Persistence calibration: on whole meters (a seeded sample), so the trailing mean sees
        # each meter's bins in order.
        rng = np.random.default_rng(cfg.seed + 1)
        order = rng.permutation(gf.valid.shape[0])
        per_meter = gf.valid.sum(axis=1)[order]
        keep = np.sort(order[: max(1, int(np.searchsorted(np.cumsum(per_meter), 4 * cfg.max_train_rows)) + 1)])
        self._fit_persistence(gf.meters(keep))

    def _fit_persistence(self, sub: GridFeatures, Xs: np.ndarray | None = None) -> None:
        self.persist_cal_ = TailCalibrator().fit(self._persistent(sub, Xs)[sub.valid])

    def _fit_model(self, gf: GridFeatures, scaler: GaussianScaler | None = None) -> None:
        cfg = self.config
        X = seeded_rows(self._inputs(gf), cfg.max_train_rows, cfg.seed)
        self.scaler_ = scaler or GaussianScaler().fit(X, cfg.seed)
        Xs = self.scaler_.transform(X)
        self.model_ = self._model().fit(Xs, cfg.seed)
        self.calibrator_ = TailCalibrator().fit(self.model_.raw(Xs))

    def _inputs(self, gf: GridFeatures, scale: bool = False) -> np.ndarray:
        """Model inputs of the valid bins: feature rows, or for a sequence model each bin with the
        ``steps - 1`` bins before it. ``scale``: through the fitted scaler (sequences are built
        from the scaled grid, so each bin is scaled once, not once per sequence it is in)."""
        model = getattr(self, "model_", None) or self._model()
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

    def evidence(self, gf: GridFeatures, Xs: np.ndarray | None = None) -> np.ndarray:
        """-log10 exceedance probability of each bin on its own (meters x bins, NaN: no data).
        ``Xs``: the scaled inputs of the valid bins, when already computed."""
        out = np.full(gf.valid.shape, np.nan)
        if gf.valid.any():
            raw = self.model_.raw(self._inputs(gf, scale=True) if Xs is None else Xs)
            out[gf.valid] = self.calibrator_.log10_exceedance(raw)
        return out

    def _persistent(self, gf: GridFeatures, Xs: np.ndarray | None = None) -> np.ndarray:
        """Evidence averaged over the trailing ``persist_min``: a consumption fault is a run of
        unusual bins, each of which alone a burst or a quiet hour could explain."""
        E = self.evidence(gf, Xs)
        # Judged once half the window has evidence: after an unjudged weekend, Monday's first
        # bin alone does not stand for six hours.
        S = covered_mean(E, self.config.features().steps(self.config.persist_min))
        return np.where(gf.valid, S, np.nan)

    def _grid_scores(self, df: pd.DataFrame):
        return self._memo(df, "grid", lambda: self._grid_scores_(df))

    def _grid_scores_(self, df: pd.DataFrame):
        gf = self.baseline_.features(df)
        bins = np.full(gf.valid.shape, np.nan)
        if gf.valid.any():
            S = self._persistent(gf)
            bins[gf.valid] = self.persist_cal_.log10_exceedance(S[gf.valid]) / -np.log10(self.config.alpha)
        return gf, bins

    def _score(self, df: pd.DataFrame) -> np.ndarray:
        gf, bins = self._grid_scores(df)
        return bins.ravel()[gf.cell]

    def _contributions(self, X: np.ndarray) -> np.ndarray:
        return self.model_.contributions(self.scaler_.transform(X))

    def explain(self, gf: GridFeatures, cells: np.ndarray, top: int = 3) -> list[dict]:
        """The features that drove the score over the bins ``cells`` (flat indices), biggest first:
        their mean value and share of the model's per-feature contributions."""
        flat_valid = gf.valid.ravel()
        cells = np.unique(cells[flat_valid[cells]])
        if not len(cells):
            return []
        sub = GridFeatures(values=gf.values.reshape(-1, 1, gf.values.shape[2])[cells].reshape(1, len(cells), -1),
                           valid=np.ones((1, len(cells)), bool), cell=np.zeros(0, np.int64), t0=gf.t0[:1],
                           power=gf.power.ravel()[cells][None], expected=gf.expected.ravel()[cells][None])
        if getattr(self.model_, "sequence", False):  # sequences need each bin's history: rebuild them from the full grid
            X = self._inputs(gf)
            pos = np.searchsorted(np.flatnonzero(flat_valid), cells)
            X = X[pos]
        else:
            X = self._inputs(sub)
        contrib = self._contributions(X).mean(axis=0)
        share = contrib / contrib.sum() if contrib.sum() > 0 else contrib
        raw_mean = sub.values[0].mean(axis=0)
        order = np.argsort(-share)[:top]
        return [{"feature": self.feature_names_[j], "value": rnd(float(raw_mean[j])), "share": rnd(float(share[j]))}
                for j in order]

    def describe(self, df, rows, scores) -> Finding:
        gf, bins = self._grid_scores(df)
        cells = gf.cell[rows]
        drivers = self.explain(gf, cells)
        c = np.unique(cells)
        hours = len(c) * self.config.grid_s / 3600
        actual = float(np.nansum(gf.power.ravel()[c])) * self.config.grid_s / 3600
        expected = float(np.nansum(gf.expected.ravel()[c])) * self.config.grid_s / 3600
        rel = actual / expected - 1 if expected > 0 else float("nan")
        peak = float(np.nanmax(scores[rows]))
        p_min = 10 ** (-peak * -np.log10(self.config.alpha))
        said = ", ".join(f"{d['feature']} {d['value']:+.2f}" for d in drivers if d["value"] is not None)
        direction = "below" if rel < 0 else "above"
        return Finding(
            "warning",
            f"{self.name}: consumption pattern abnormal over {hours:.1f} h ({actual:.1f} kWh vs {expected:.1f} kWh "
            f"expected, {abs(rel):.0%} {direction}); drivers: {said} (normal rows score this high with p = {p_min:.1e})",
            {"detector": self.name, "drivers": drivers, "actual_kwh": rnd(actual, 2), "expected_kwh": rnd(expected, 2),
             "deviation": rnd(rel, 3), "hours": rnd(hours, 2), "exceedance_p": float(f"{p_min:.3g}")},
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


# ------------------------------------------------------------------------------ ensemble

MEMBERS = {"isolation_forest": IsolationForestDetector, "local_outlier_factor": LOFDetector,
           "pca_reconstruction": PCADetector, "autoencoder": AutoencoderDetector,
           "lstm_autoencoder": LSTMAutoencoderDetector}


@dataclass(frozen=True)
class EnsembleConfig(LearnedConfig):
    """``members``: learned detectors combined, each with its own calibrated score; ``combine``:
    "max" (default: the most surprised member, its exceedance probability multiplied by the number
    of members, the union bound, so 1.0 still means p = alpha) or "mean" of their -log10 p.
    Default members: the forest (best on bypass theft alone) and the autoencoder (best on level
    shifts). Averaging per-bin evidence and re-calibrating the average was tried and lost the
    forest's theft detections in the autoencoder's tail (0 of 24 thefts on one fleet)."""

    members: tuple[str, ...] = ("isolation_forest", "autoencoder")
    combine: str = "max"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "members", tuple(self.members))
        unknown = set(self.members) - set(MEMBERS)
        if unknown or not self.members:
            raise ValueError(f"ensemble members: unknown {sorted(unknown)}; known: {sorted(MEMBERS)}")
        if self.combine not in ("max", "mean"):
            raise ValueError(f"combine: expected 'max' or 'mean', got {self.combine!r}")


class EnsembleDetector(LearnedDetector):
    """Combines the calibrated scores of its members, trained on the same rows (see
    :class:`EnsembleConfig`). The explanation is that of the member most surprised over the alert."""

    name = "learned_ensemble"
    config_cls = EnsembleConfig

    def _model(self):
        return None

    def model_state(self) -> dict:
        return {"feature_names_": self.feature_names_, "members_": self.members_, "model_": None,
                "persist_cal_": self.persist_cal_}

    def _fit_model(self, gf: GridFeatures) -> None:
        base = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(LearnedConfig)}
        self.members_ = [MEMBERS[n](base) for n in self.config.members]
        for m in self.members_:
            if m._model().sequence:
                raise ValueError(f"{self.name}: sequence models ({m.name}) cannot be ensemble members")
            m.feature_names_ = self.feature_names_
            # One scaler for all (the same rows and seed would fit the same one): scoring scales
            # each bin once, not once per member.
            m._fit_model(gf, scaler=self.members_[0].scaler_ if m is not self.members_[0] else None)
        self.model_ = None

    def _fit_persistence(self, sub: GridFeatures, Xs: np.ndarray | None = None) -> None:
        Xs = self._scaled(sub) if Xs is None else Xs
        for m in self.members_:
            m._fit_persistence(sub, Xs)
        self.persist_cal_ = None  # each member's own calibration is the ensemble's

    def _scaled(self, gf: GridFeatures) -> np.ndarray | None:
        """The valid bins scaled once for every member (None if the members scale differently,
        as models saved by another configuration might)."""
        first = self.members_[0].scaler_
        if not gf.valid.any() or any(m.scaler_ is not first for m in self.members_):
            return None
        return first.transform(gf.rows())

    def _per_member(self, gf: GridFeatures) -> np.ndarray:
        """Each member's final -log10 exceedance per bin (members x meters x bins)."""
        out = np.full((len(self.members_),) + gf.valid.shape, np.nan)
        if gf.valid.any():
            Xs = self._scaled(gf)
            for k, m in enumerate(self.members_):
                out[k][gf.valid] = m.persist_cal_.log10_exceedance(m._persistent(gf, Xs)[gf.valid])
        return out

    def _grid_scores_(self, df: pd.DataFrame):
        gf = self.baseline_.features(df)
        L = self._per_member(gf)
        if self.config.combine == "max":
            # Union bound: P(any of k members this far out) <= k x the smallest p.
            comb = np.max(L, axis=0) - np.log10(len(self.members_))
        else:
            comb = np.mean(L, axis=0)
        return gf, comb / -np.log10(self.config.alpha)

    def _inputs(self, gf: GridFeatures, scale: bool = False) -> np.ndarray:
        return gf.rows()  # the members scale for themselves

    def _contributions(self, X: np.ndarray) -> np.ndarray:
        one = GridFeatures(values=X[None].astype(float), valid=np.ones((1, len(X)), bool), cell=np.zeros(0, np.int64),
                           t0=np.zeros(1), power=np.zeros((1, len(X))), expected=np.zeros((1, len(X))))
        top = self.members_[int(np.argmax([np.nanmean(m.evidence(one)) for m in self.members_]))]
        return top._contributions(X)
