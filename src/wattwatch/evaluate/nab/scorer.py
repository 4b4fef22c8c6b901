"""The NAB scorer (Numenta Anomaly Benchmark v1.1 rules), vectorised over the whole corpus.

Rules, per data file of ``n`` rows with labelled anomaly windows:

* the first ``min(floor(0.15 n), 750)`` rows are probationary: never scored;
* a detection is a row whose anomaly score is >= the threshold;
* each row gets a *sweep score*. Inside window ``k`` (rows ``l..r``, width ``w = r - l + 1``) it is
  ``tp_weight * sigma(-(r - i + 1) / w) / sigma(-1)`` (1 at the window's first row, falling towards
  its end); outside any window it is ``fp_weight * sigma(|i - r_prev| / (w_prev - 1))`` relative
  to the previous window (a negative number, -fp_weight far from it or before any window),
  where ``sigma(x) = 2 / (1 + exp(5 x)) - 1`` (and -1 for x >= 3);
* a file's score at a threshold: every window counts ``-fn_weight`` unless detected, else the
  sweep score of its earliest detection (later detections in it add nothing); every detection
  outside windows adds its (negative) sweep score;
* the threshold is optimised once for the whole corpus (the best total over every distinct score
  value), per cost profile;
* normalised score: ``100 * (raw - null) / (perfect - null)`` with ``null`` the raw score of a
  detector that never fires (``-fn_weight`` per window) and ``perfect`` = windows * tp_weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PROBATION_SHARE = 0.15
PROBATION_MAX_ROWS = 0.15 * 5000


@dataclass(frozen=True)
class CostProfile:
    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float

    @classmethod
    def from_nab(cls, name: str, d: dict) -> "CostProfile":
        m = d["CostMatrix"]
        return cls(name, float(m["tpWeight"]), float(m["fpWeight"]), float(m["fnWeight"]))


STANDARD_PROFILES = (
    CostProfile("standard", 1.0, 0.11, 1.0),
    CostProfile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    CostProfile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)


def scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    """NAB's position weight: 0.9866 at -1 (window start), 0 at 0, -1 from 3 on."""
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore"):
        s = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x >= 3.0, -1.0, s)


MAX_TP = float(scaled_sigmoid(-1.0))


def probation_rows(n: int) -> int:
    return int(min(np.floor(PROBATION_SHARE * n), PROBATION_MAX_ROWS))


@dataclass
class FileLayout:
    """Per-row scoring context of one data file (independent of the detector and threshold)."""

    window: np.ndarray     # window number within the file, -1 outside windows
    in_window: np.ndarray  # position weight sigma(-(r - i + 1) / w) / sigma(-1), NaN outside
    past: np.ndarray       # position weight after the previous window (<= 0), NaN inside
    scorable: np.ndarray   # False for probationary rows
    n_windows: int         # windows with at least one scorable row


def layout(n: int, windows: list[tuple[int, int]]) -> FileLayout:
    """Scoring context for ``n`` rows and windows given as inclusive row ranges ``(l, r)``."""
    i = np.arange(n)
    window = np.full(n, -1)
    in_window = np.full(n, np.nan)
    past = np.full(n, np.nan)
    prev_r = np.full(n, -1)
    prev_w = np.full(n, np.nan)
    for k, (lo, hi) in enumerate(sorted(windows)):
        width = hi - lo + 1
        window[lo:hi + 1] = k
        in_window[lo:hi + 1] = scaled_sigmoid(-(hi - i[lo:hi + 1] + 1) / width) / MAX_TP
        prev_r[hi + 1:] = hi
        prev_w[hi + 1:] = width
    outside = window < 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(prev_r >= 0, np.abs(i - prev_r) / (prev_w - 1), 3.0)
    past[outside] = scaled_sigmoid(rel[outside])
    scorable = i >= probation_rows(n)
    n_windows = len(np.unique(window[scorable & (window >= 0)]))
    return FileLayout(window, in_window, past, scorable, n_windows)


@dataclass(frozen=True)
class ThresholdScore:
    threshold: float
    score: float
    tp: int
    fp: int
    fn: int
    tn: int


@dataclass
class Curve:
    """Corpus score at each candidate threshold (``inf`` = never fire, then every distinct
    anomaly score, falling). Counts are scorable rows, as NAB reports them."""

    threshold: np.ndarray
    score: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_in: int
    n_out: int

    def at(self, k: int) -> ThresholdScore:
        return ThresholdScore(float(self.threshold[k]), float(self.score[k]), int(self.tp[k]), int(self.fp[k]),
                              self.n_in - int(self.tp[k]), self.n_out - int(self.fp[k]))

    @property
    def best(self) -> ThresholdScore:
        """Highest score; among equal scores the highest threshold (fewest detections)."""
        top = np.flatnonzero(np.isclose(self.score, self.score.max(), rtol=0, atol=1e-9))
        return self.at(int(top[np.argmax(self.threshold[top])]))


def _corpus_arrays(files: list[tuple[np.ndarray, FileLayout]]):
    scores, wins, tp_w, fp_w = [], [], [], []
    offset = 0
    n_windows = 0
    for s, lay in files:
        s = np.asarray(s, dtype=float)
        if len(s) != len(lay.window):
            raise ValueError(f"{len(s)} scores for a file of {len(lay.window)} rows")
        keep = lay.scorable
        w = lay.window[keep]
        scores.append(np.nan_to_num(s[keep], nan=0.0))
        wins.append(np.where(w >= 0, w + offset, -1))
        tp_w.append(lay.in_window[keep])
        fp_w.append(lay.past[keep])
        offset += int(lay.window.max()) + 1 if len(lay.window) else 0
        n_windows += lay.n_windows
    cat = (lambda xs, dt=float: np.concatenate(xs) if xs else np.zeros(0, dt))
    return cat(scores), cat(wins, int), cat(tp_w), cat(fp_w), n_windows


def threshold_curve(files: list[tuple[np.ndarray, FileLayout]], profile: CostProfile) -> Curve:
    """Corpus score at every distinct anomaly-score threshold, plus "never fire".

    ``files``: (anomaly scores, layout) per data file. NaN scores count as 0."""
    a, win, tpw, fpw, n_windows = _corpus_arrays(files)
    base = -profile.fn_weight * n_windows
    n_in = int((win >= 0).sum())
    order = np.argsort(-a, kind="stable")
    a, win, tpw, fpw = a[order], win[order], tpw[order], fpw[order]
    inside = win >= 0
    sweep = np.where(inside, profile.tp_weight * tpw, profile.fp_weight * fpw)
    # A window's contribution is its best (earliest) detection so far, -fn_weight before any:
    # running maximum per window in order of falling anomaly score.
    group = np.where(inside, win, -1)
    best = pd.Series(np.where(inside, sweep, -np.inf)).groupby(group).cummax().to_numpy()
    prev = pd.Series(best).groupby(group).shift(1, fill_value=-np.inf).to_numpy()
    delta = np.where(inside, np.maximum(best, -profile.fn_weight) - np.maximum(prev, -profile.fn_weight), sweep)
    total = base + np.cumsum(delta)
    # A threshold includes every row with that score: read the totals at the end of each tie.
    ends = np.flatnonzero(np.append(a[1:] != a[:-1], True)) if len(a) else np.zeros(0, int)
    return Curve(threshold=np.concatenate([[np.inf], a[ends]]), score=np.concatenate([[base], total[ends]]),
                 tp=np.concatenate([[0], np.cumsum(inside)[ends]]), fp=np.concatenate([[0], np.cumsum(~inside)[ends]]),
                 n_in=n_in, n_out=len(a) - n_in)


def score_file(scores: np.ndarray, lay: FileLayout, profile: CostProfile, threshold: float) -> float:
    """Raw NAB score of one file at a fixed threshold."""
    s = np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0)
    hit = lay.scorable & (s >= threshold)
    inside = lay.window >= 0
    fp = float(profile.fp_weight * lay.past[hit & ~inside].sum())
    total = fp
    for k in np.unique(lay.window[lay.scorable & inside]):
        rows = np.flatnonzero(hit & (lay.window == k))
        total += profile.tp_weight * lay.in_window[rows[0]] if len(rows) else -profile.fn_weight
    return total


def normalised(raw: float, n_windows: int, profile: CostProfile) -> float:
    """100 for a perfect detector, 0 for one that never fires."""
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else float("nan")
