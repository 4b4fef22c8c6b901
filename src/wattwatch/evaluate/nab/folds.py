"""NAB with parameters chosen without looking at the scored files: two folds.

Split (fixed, documented): within each NAB category (the folder under ``data/``), the files sorted
by name alternate: 1st, 3rd, 5th ... to fold A, 2nd, 4th ... to fold B. So each fold has about half
of every category, and the split never depends on scores or labels.

Protocol, per cost profile: on fold A, every configuration of a small declared grid is scored with
the threshold that is best on fold A (NAB's own threshold optimisation, restricted to A); the best
configuration and its threshold are then applied unchanged to fold B. The same with A and B
swapped. The cross-fold score is the raw NAB score of B (chosen on A) plus that of A (chosen on B),
normalised over the whole corpus's windows as NAB normalises (100 perfect, 0 never firing).

Every configuration's scores are computed once per file (each file learns on its own probationary
rows, so a file's scores do not depend on the fold)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import PurePosixPath

import numpy as np

from wattwatch.evaluate.nab.corpus import Corpus
from wattwatch.evaluate.nab.runner import file_scores
from wattwatch.evaluate.nab.scorer import normalised, score_file, threshold_curve

__all__ = ["DEFAULT_GRID", "configs", "cross_fold", "split"]

#: The declared grid for the recommended NAB detector (window_novelty): comparison window length
#: (readings) and the onset horizon (blocks an onset must exceed). 12 configurations.
DEFAULT_GRID: dict[str, dict[str, list]] = {"window_novelty": {"window": [4, 8, 16, 32], "onset": [25, 50, 100]}}


def split(keys) -> tuple[list[str], list[str]]:
    """Fold A and fold B of the file keys (``<category>/<name>.csv``): alternate within each
    category, files sorted by name."""
    by_cat: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        by_cat[str(PurePosixPath(k).parent)].append(k)
    a, b = [], []
    for cat in sorted(by_cat):
        for i, k in enumerate(sorted(by_cat[cat])):
            (a if i % 2 == 0 else b).append(k)
    return a, b


def configs(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values (in the declared order)."""
    names = list(grid)
    return [dict(zip(names, vals)) for vals in itertools.product(*(grid[n] for n in names))]


def all_scores(build, corpus: Corpus, grid_configs: list[dict], log=lambda *_: None) -> list[list[np.ndarray]]:
    """Per configuration: the scores of every corpus file (``build(params)`` makes a detector)."""
    out = []
    for n, params in enumerate(grid_configs):
        det = build(params)
        out.append([file_scores(det, f) for f in corpus.files])
        log(n + 1, len(grid_configs), params)
    return out


def cross_fold(corpus: Corpus, grid_configs: list[dict], scores: list[list[np.ndarray]]) -> dict:
    """The two-fold protocol (module docstring) on precomputed ``scores[config][file]``."""
    keys = [f.key for f in corpus.files]
    fold_a, fold_b = split(keys)
    index = {k: i for i, k in enumerate(keys)}
    layouts = [f.layout for f in corpus.files]
    folds = {"A": [index[k] for k in fold_a], "B": [index[k] for k in fold_b]}
    result: dict = {"folds": {"A": fold_a, "B": fold_b}, "profiles": {}}
    for profile in corpus.profiles:
        rows = {}
        total = 0.0
        for choose, judge in (("A", "B"), ("B", "A")):
            best = None
            for c, sc in enumerate(scores):
                cur = threshold_curve([(sc[i], layouts[i]) for i in folds[choose]], profile).best
                if best is None or cur.score > best[1].score + 1e-9:
                    best = (c, cur)
            c, thr = best[0], best[1].threshold
            raw = float(sum(score_file(scores[c][i], layouts[i], profile, thr) for i in folds[judge]))
            n_win = sum(layouts[i].n_windows for i in folds[judge])
            rows[f"chosen on {choose}, scored on {judge}"] = {
                "params": grid_configs[c], "threshold": thr, "raw": raw,
                "fold_score": normalised(raw, n_win, profile),
                "score_on_choice_fold": normalised(best[1].score, sum(layouts[i].n_windows for i in folds[choose]),
                                                   profile)}
            total += raw
        result["profiles"][profile.name] = {"cross_fold": normalised(total, corpus.n_windows, profile),
                                            "raw": total, "folds": rows}
    return result
