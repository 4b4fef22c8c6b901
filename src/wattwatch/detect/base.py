"""The one detector contract shared by physics rules, baselines and learned models.

A detector is built from a frozen config dataclass, learns per-meter state with ``fit(frame)``
(fitted attributes end in ``_``) and returns ``score(frame)``: a float Series aligned with the
frame's index, higher = worse. For rules the score is the measured quantity over its limit, so
1.0 is the configured threshold; NaN means "cannot judge this reading" (no load, no voltage, a
channel the meter does not have), which the post-rules neither count nor let break a run.

Scores become alerts only in :mod:`wattwatch.detect.postrules` (threshold, persistence,
suppression, merging); ``describe`` turns the rows of one alert into its message and evidence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from wattwatch.detect.frame import meter_names, prepare


class NotFittedError(RuntimeError):
    """``score`` was called before ``fit``."""


@dataclass(frozen=True)
class PostRule:
    """How a detector's scores become alerts.

    Parameters
    ----------
    threshold : float
        A reading is anomalous when its score is at least this.
    min_duration_s : float
        An alert must span at least this long (first to last anomalous reading).
    min_readings : int
        ... and hold at least this many anomalous readings (one-reading blips never alert).
    merge_gap_s : float
        Runs of one meter closer than this are one alert.
    max_bridge_s : float
        Readings that cannot be judged (NaN) do not break a run, but only for this long: two
        anomalous readings further apart are separate runs, whatever lies between.
    """

    threshold: float = 1.0
    min_duration_s: float = 900.0
    min_readings: int = 2
    merge_gap_s: float = 3600.0
    max_bridge_s: float = 1800.0


@dataclass(frozen=True)
class DetectorConfig:
    """Base of every detector config: the post-rule settings plus the detector's own fields."""

    post: PostRule = PostRule()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "DetectorConfig":
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        post = d.pop("post", None)
        if isinstance(post, dict):
            base = {f.name: getattr(cls().post, f.name) for f in dataclasses.fields(PostRule)}
            bad = set(post) - set(base)
            if bad:
                raise ValueError(f"{cls.__name__}.post: unknown parameter(s) {sorted(bad)}")
            d["post"] = PostRule(**{**base, **post})
        elif isinstance(post, PostRule):
            d["post"] = post
        return cls(**d)


@dataclass
class Finding:
    """What a detector says about one alert span: severity, message, evidence, advice."""

    severity: str
    message: str
    evidence: dict
    action: str = ""


class Detector:
    """Base class. Subclasses set the class attributes and implement ``_fit`` and ``_score``."""

    name: ClassVar[str] = ""
    code: ClassVar[str] = ""
    config_cls: ClassVar[type[DetectorConfig]] = DetectorConfig
    requires: ClassVar[tuple[str, ...]] = ()
    # Scores built from current readings are meaningless during a supply outage or while the
    # signal is too distorted to trust; the engine blanks them there.
    current_based: ClassVar[bool] = False
    consumption_based: ClassVar[bool] = False

    def __init__(self, config: DetectorConfig | dict | None = None, **params: Any):
        if config is None or isinstance(config, dict):
            config = self.config_cls.from_dict({**(config or {}), **params})
        elif params:
            config = dataclasses.replace(config, **params)
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name}: config must be {self.config_cls.__name__}")
        self.config = config

    # ------------------------------------------------------------------------------ contract

    def fit(self, frame: pd.DataFrame) -> "Detector":
        """Learn per-meter state from (normal) telemetry; returns self."""
        df = prepare(frame)
        self.__dict__.pop("_memo_store", None)
        self._fit(df)
        self.__dict__.pop("_memo_store", None)
        self.fitted_meters_ = set(meter_names(df))
        return self

    def score(self, frame: pd.DataFrame) -> pd.Series:
        """Anomaly score per reading, aligned with ``frame.index``; higher = worse, NaN = unknown."""
        if not hasattr(self, "fitted_meters_"):
            raise NotFittedError(f"{self.name}: call fit() before score()")
        df = prepare(frame)
        if len(df) == 0:
            return pd.Series(np.zeros(0), index=frame.index, dtype=float, name=self.name)
        s = np.asarray(self._score(df), dtype=float)
        if df is frame:
            return pd.Series(s, index=frame.index, name=self.name)
        # prepare() sorted a copy: map back to the caller's row order.
        order = frame.reset_index(drop=True).sort_values(["meter_id", "ts"], kind="stable").index.to_numpy()
        out = np.empty(len(s))
        out[order] = s
        return pd.Series(out, index=frame.index, name=self.name)

    def describe(self, df: pd.DataFrame, rows: np.ndarray, scores: np.ndarray) -> Finding:
        """Severity, message and evidence for one alert (``rows`` index the prepared frame)."""
        peak = float(np.nanmax(scores[rows])) if len(rows) else float("nan")
        return Finding("critical" if peak >= 2 else "warning", f"{self.name} score {peak:.2f}", {"score": peak})

    # -------------------------------------------------------------------------- for subclasses

    def _fit(self, df: pd.DataFrame) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _score(self, df: pd.DataFrame) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def _per_meter(fitted: dict, names: np.ndarray, default: float = np.nan) -> np.ndarray:
        """Values a fit learned per meter (``{meter_id: value}``) as an array over ``names``
        (each segment code's meter), ``default`` for meters the fit did not see."""
        return np.array([fitted.get(m, default) for m in names], float)

    def _memo(self, df: pd.DataFrame, key: str, fn):
        """Compute ``fn()`` once per frame: ``describe`` of every alert reuses what ``_score``
        computed over the whole chunk instead of recomputing it."""
        tag = (id(df), len(df))
        memo = self.__dict__.setdefault("_memo_store", {})
        if memo.get("_tag") != tag:
            memo.clear()
            memo["_tag"] = tag
        if key not in memo:
            memo[key] = fn()
        return memo[key]

    def clone(self) -> "Detector":
        """A fresh, unfitted detector with the same config (each meter chunk fits its own)."""
        return type(self)(self.config)

    def get_params(self) -> dict:
        return self.config.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"




def rnd(x: float, nd: int = 3) -> float | None:
    """Round for evidence (None for NaN so the JSON stays valid)."""
    return None if x is None or not np.isfinite(x) else round(float(x), nd)
