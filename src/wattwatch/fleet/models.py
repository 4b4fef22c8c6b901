"""Cross-meter detectors on the per-POD-per-period feature table, and their consensus.

Which delivery points (PODs) behave unlike the rest of the fleet this period? Three detectors from
scikit-learn look at the feature table from three angles: PCA reconstruction error (a row that the
fleet's main directions of variation do not explain), Isolation Forest (a row that random splits
isolate quickly) and the Local Outlier Factor (a row in a sparser neighbourhood than its
neighbours'). Their scores are combined into a consensus ranking, whose top q is the label; how
many models put a row in their own top q is kept as ``votes``.

The consensus. Averaging the three rank percentiles, as a first version did, let a model that is
unsure of its list drag the others' (on the simulated POD fleet Isolation Forest's precision@k was
0.39-0.62 where PCA's and LOF's were 0.69-0.75, and the rank average fell between them), and it
weighs the order of the bulk of normal rows as much as the top. So the consensus is chosen by the
same unsupervised criterion as the hyper-parameters, never by labels: every subset of the models
(all three first), combined either by the mean rank percentile or by the mean robust z of their
scores (each model's score centred on its median, divided by its IQR / 1.349, clipped to ±CLIP: a
row far out in a model's tail counts more than a row ranked in the middle by several), is scored
by the stability of its top-q list over the same subsamples as the hyper-parameter search (their
replicate scores are reused: no refit). The most stable wins; ties (within ``TIE``) go to more
models, then to rank before z. ``chosen["consensus"]`` says which and lists every candidate's value.

Scaling. Each feature column is centred on its median and divided by its inter-quartile range
(scaled to a normal's standard deviation, IQR / 1.349); a column whose IQR is 0 (most rows equal)
falls back to the MAD, then to the standard deviation; a column with no spread at all, or with
fewer than half its values present, is dropped and listed in ``chosen["dropped_features"]``.
Infinite values count as missing. The scaled values are clipped to ``±CLIP`` robust standard
deviations (a value 20 IQRs away is as anomalous as needed; the clip keeps one wild column from
owning the PCA axes and the LOF distances), and a missing value becomes 0, the column's median:
a missing feature says nothing either way. The robust z before clipping is what names the
features that drove a row.

Hyper-parameters, each chosen by one unsupervised criterion, never by labels: PCA
``n_components`` (1..12), Isolation Forest ``max_samples`` (64..512) and LOF ``n_neighbors``
(5..80) take the value whose top-k list is most stable under resampling. For each candidate the
model is refitted on ``B`` seeded subsamples (80 % of the rows, without replacement: duplicated
rows from a bootstrap give LOF zero distances) and each replicate's top-k (k = ceil(q·n)) is
compared with every other's on the rows both contain (mean Jaccard). An inspection list that
changes when a fifth of the fleet is left out is not a finding. Ties (within ``TIE``) go to the
silhouette of the candidate's top-k vs rest split in the scaled space (a list that stands apart),
then to the first candidate listed (the smaller value).

(The held-out probabilistic-PCA likelihood was tried first for ``n_components``: on the fleet
features it grows with every component, because several features are near-exact functions of
others (phase shares add up to 1, energy = mean power x hours); it picked 12 of 18 and left PCA a
residual of noise directions, ROC-AUC 0.44 on thefts. Stability picks 1 there.)

The selection runs on at most ``search_rows`` rows (a seeded sample) so that it costs the same for
a city and a country; the final models are fitted on every row (LOF's ``n_neighbors`` scaled by
rows / search rows, so the neighbourhood stays the same share of the fleet; ``n_neighbors_full``).

Rows are sorted by (pod_id, period) first, so the result does not depend on the order the rows
came in (the Spark and local engines deliver them differently).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

KEYS = ("pod_id", "period")
# Keys and bookkeeping of the feature table (wattwatch.fleet.features.ID_COLUMNS and friends).
# ``coverage`` says how complete the data is, not how the POD consumes: a POD with a few missing
# hours is a data-quality matter, not a suspect, so it is not a feature here by default.
NON_FEATURES = {"pod_id", "period", "period_start", "period_end", "panel_id", "town", "town_code", "peer_group",
                "meter_id", "coverage", "n_readings", "complete", "excluded", "reason", "is_panel"}
MODELS = ("pca", "iforest", "lof")
CLIP = 20.0
TIE = 0.02
N_TREES = 100


@dataclass(frozen=True)
class FleetScores:
    """What :func:`score` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (pod_id, period): ``{model}_score`` (higher = more anomalous) and
        ``{model}_rank`` (1 = most anomalous) for pca, iforest and lof; ``consensus_score`` (the rank
        percentile, 0..1, higher = worse, of the consensus ``chosen["consensus"]`` names: models and
        rule, chosen by stability), ``consensus_rank``, ``votes`` (how many
        models put the row in their top q), ``consensus_label`` (the row is in the consensus's own
        top q: ``consensus_rank`` <= ceil(q n), ties included), ``rank_in_period``
        and ``driver_1..3`` with ``driver_1..3_z``: the features with the largest robust |z|.
    chosen : dict
        Hyper-parameters and the criterion value of every candidate tried.
    silhouette : float
        Silhouette of the consensus anomalous vs normal split in the scaled feature space (NaN when
        one side is empty).
    """

    table: pd.DataFrame
    chosen: dict = field(default_factory=dict)
    silhouette: float = float("nan")


def feature_columns(features: pd.DataFrame) -> list[str]:
    """The numeric columns of ``features`` that are features (not keys or bookkeeping)."""
    return [c for c in features.columns
            if c not in NON_FEATURES and pd.api.types.is_numeric_dtype(features[c])
            and not pd.api.types.is_bool_dtype(features[c])]


def robust_scale(x: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str], dict]:
    """Median/IQR scaling with the fall-backs the module docstring states.

    Returns the unclipped robust z (NaN kept), the kept column names, and what was dropped and why.
    """
    x = np.where(np.isfinite(x), x, np.nan)
    present = np.isfinite(x).mean(axis=0) if len(x) else np.zeros(x.shape[1])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: dropped below
        med = np.nanmedian(x, axis=0)
        q75, q25 = np.nanpercentile(x, [75, 25], axis=0)
        mad = np.nanmedian(np.abs(x - med), axis=0) * 1.4826
        sd = np.nanstd(x, axis=0)
    spread = (q75 - q25) / 1.349
    spread = np.where(spread > 0, spread, np.where(mad > 0, mad, sd))
    dropped = {}
    keep = []
    for j, name in enumerate(names):
        if present[j] < 0.5:
            dropped[name] = f"only {present[j]:.0%} of rows have a value"
        elif not (np.isfinite(spread[j]) and spread[j] > 1e-12 * max(1.0, abs(med[j]))):
            dropped[name] = "no spread across rows"
        else:
            keep.append(j)
    z = (x[:, keep] - med[keep]) / spread[keep]
    return z, [names[j] for j in keep], dropped


def _rank_desc(s: np.ndarray) -> np.ndarray:
    """1 = highest score; ties share the lowest rank (scipy 'min')."""
    from scipy.stats import rankdata
    return rankdata(-s, method="min").astype(np.int64)


def _pca_scores(x_fit: np.ndarray, x: np.ndarray, n_components: int, seed: int,
                observed: np.ndarray | None = None) -> np.ndarray:
    """Squared reconstruction error per row of ``x``. ``observed`` (the shape of ``x``): which values
    were present; a row with missing values is projected on the components by its present values
    only (least squares) and its error summed over them, times d / present: the median put in its
    place breaks the correlations the components learned (f1 missing, f2 normal: a large error on f1
    that the POD never showed), which made normal rows with a missing feature PCA's suspects."""
    from sklearn.decomposition import PCA
    p = PCA(n_components=n_components, svd_solver="full", random_state=seed).fit(x_fit)
    r = x - p.inverse_transform(p.transform(x))
    out = np.einsum("ij,ij->i", r, r)
    if observed is None or observed.all():
        return out
    w, c = p.components_, x - p.mean_
    holes = ~observed.all(axis=1)
    patterns, which = np.unique(observed[holes], axis=0, return_inverse=True)
    rows = np.flatnonzero(holes)
    for k, obs in enumerate(patterns):  # one least-squares solve per pattern of missing features
        at = rows[which.ravel() == k]
        if not obs.any():
            out[at] = 0.0
            continue
        t = np.linalg.lstsq(w[:, obs].T, c[np.ix_(at, obs)].T, rcond=None)[0]
        rk = c[np.ix_(at, obs)] - t.T @ w[:, obs]
        out[at] = np.einsum("ij,ij->i", rk, rk) * (x.shape[1] / obs.sum())
    return out


def _iforest_scores(x_fit: np.ndarray, x: np.ndarray, max_samples: int, seed: int) -> np.ndarray:
    from sklearn.ensemble import IsolationForest
    f = IsolationForest(n_estimators=N_TREES, max_samples=min(max_samples, len(x_fit)), random_state=seed,
                        n_jobs=1).fit(x_fit)
    return -f.score_samples(x)


def _lof_scores(x: np.ndarray, n_neighbors: int) -> np.ndarray:
    from sklearn.neighbors import LocalOutlierFactor
    k = max(1, min(n_neighbors, len(x) - 1))
    lof = LocalOutlierFactor(n_neighbors=k).fit(x)
    return -lof.negative_outlier_factor_


def _pca_candidates(d: int, n: int) -> list[int]:
    return list(range(1, max(1, min(d - 1, n - 1, 12)) + 1))


def _topk_jaccard(scores: np.ndarray, members: np.ndarray, k_share: float) -> float:
    """Mean pairwise Jaccard of the replicates' top-k lists on the rows both replicates hold.

    ``scores``: (B, n) with NaN where a row was left out of the replicate; ``members``: (B, n) bool.
    """
    b = scores.shape[0]
    vals = []
    for i in range(b):
        for j in range(i + 1, b):
            both = members[i] & members[j]
            m = int(both.sum())
            k = max(1, int(np.ceil(k_share * m)))
            si, sj = scores[i, both], scores[j, both]
            ti = set(np.argsort(-si, kind="stable")[:k])
            tj = set(np.argsort(-sj, kind="stable")[:k])
            vals.append(len(ti & tj) / len(ti | tj))
    return float(np.mean(vals)) if vals else float("nan")


def _silhouette_top(x: np.ndarray, s: np.ndarray, q: float, seed: int) -> float:
    from sklearn.metrics import silhouette_score
    k = max(1, int(np.ceil(q * len(s))))
    lab = np.zeros(len(s), dtype=int)
    lab[np.argsort(-s, kind="stable")[:k]] = 1
    if lab.sum() in (0, len(lab)) or len(lab) < 3:
        return float("nan")
    return float(silhouette_score(x, lab, sample_size=min(len(lab), 4000), random_state=seed))


def choose_by_stability(x: np.ndarray, model: str, candidates: list[int], *, seed: int, q: float,
                        replicates: int = 6, share: float = 0.8, keep: dict | None = None,
                        observed: np.ndarray | None = None) -> tuple[int, dict]:
    """The candidate whose top-q list is most stable across seeded subsamples (see module doc).
    ``keep``: given a dict, the chosen candidate's replicate scores (``scores``, (B, n), NaN where a
    row was left out) and ``members`` are put in it (the subsamples depend on ``seed``, ``n``,
    ``replicates`` and ``share`` only, so every model's replicates hold the same rows)."""
    n = len(x)
    rng = np.random.default_rng(seed)
    m = max(2, int(round(share * n)))
    subsets = [np.sort(rng.choice(n, m, replace=False)) for _ in range(replicates)]
    members = np.zeros((replicates, n), bool)
    for b, idx in enumerate(subsets):
        members[b, idx] = True
    vals, sil, reps = {}, {}, {}
    for c in candidates:
        sc = reps[c] = np.full((replicates, n), np.nan)
        for b, idx in enumerate(subsets):
            xb = x[idx]
            if model == "lof":
                sc[b, idx] = _lof_scores(xb, c)
            elif model == "pca":
                sc[b, idx] = _pca_scores(xb, xb, c, seed, None if observed is None else observed[idx])
            else:
                sc[b, idx] = _iforest_scores(xb, xb, c, seed + 1000 + b)
        vals[c] = _topk_jaccard(sc, members, q)
    top = max(vals.values())
    tied = [c for c in candidates if vals[c] >= top - TIE]
    if len(tied) > 1:
        for c in tied:
            full = (_lof_scores(x, c) if model == "lof" else _pca_scores(x, x, c, seed, observed) if model == "pca"
                    else _iforest_scores(x, x, c, seed))
            sil[c] = _silhouette_top(x, full, q, seed)
        best = max(tied, key=lambda c: (np.nan_to_num(sil[c], nan=-2.0), -candidates.index(c)))
    else:
        best = tied[0]
    if keep is not None:
        keep.update(scores=reps[best], members=members)
    return best, {"criterion": f"mean Jaccard of top-{q:.0%} lists over {replicates} subsamples of "
                               f"{share:.0%} (ties within {TIE}: silhouette of the top-{q:.0%} split)",
                  "values": vals, "silhouette_of_tied": sil}


def _robust_z(s: np.ndarray) -> np.ndarray:
    """A model's scores on a common scale: (s - median) / (IQR / 1.349), MAD then std when the IQR
    is 0, clipped to ±CLIP (NaN stays NaN)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(s)
        q75, q25 = np.nanpercentile(s, [75, 25])
        spread = (q75 - q25) / 1.349
        if not spread > 0:
            spread = np.nanmedian(np.abs(s - med)) * 1.4826
        if not spread > 0:
            spread = np.nanstd(s)
        z = (s - med) / spread if spread > 0 else np.zeros_like(s)
    return np.clip(z, -CLIP, CLIP)


def _percentile(s: np.ndarray) -> np.ndarray:
    """Rank percentile, 1 = the highest score, 0 = the lowest (NaN stays NaN)."""
    out = np.full(len(s), np.nan)
    ok = np.isfinite(s)
    m = int(ok.sum())
    if m:
        out[ok] = (m - _rank_desc(s[ok])) / max(m - 1, 1)
    return out


COMBINE = {"rank": _percentile, "zscore": _robust_z}


def combine(scores: dict[str, np.ndarray], models: tuple[str, ...], rule: str) -> np.ndarray:
    """The consensus of ``models``' scores: the mean of their rank percentiles (``rank``) or of their
    robust z (``zscore``: a row far out in one model's tail counts more than a row that several
    models rank in the middle)."""
    f = COMBINE[rule]
    return np.mean([f(np.asarray(scores[m], float)) for m in models], axis=0)


def consensus_candidates() -> list[tuple[tuple[str, ...], str]]:
    """Every non-empty subset of the models (all three first) with each combination rule (one
    model alone: its own ranking, whatever the rule)."""
    from itertools import combinations

    subsets = [c for r in range(len(MODELS), 0, -1) for c in combinations(MODELS, r)]
    return [(sub, rule) for sub in subsets for rule in (COMBINE if len(sub) > 1 else ["rank"])]


def choose_consensus(reps: dict[str, np.ndarray], members: np.ndarray, q: float) -> tuple[tuple[str, ...], str, dict]:
    """The consensus (which models, which rule) whose top-q list is most stable under resampling,
    by the hyper-parameters' criterion (mean Jaccard of the replicates' top-q lists), on the
    replicate scores the hyper-parameter search already computed (no refit, no labels). Ties
    (within ``TIE``) go to more models, then to the candidate listed first (rank before zscore)."""
    vals = {}
    for sub, rule in consensus_candidates():
        cons = np.full(members.shape, np.nan)
        for b in range(members.shape[0]):
            row = members[b]
            cons[b, row] = combine({m: reps[m][b, row] for m in sub}, sub, rule)
        vals[(sub, rule)] = _topk_jaccard(cons, members, q)
    top = max(vals.values())
    best = next(c for c in vals if vals[c] >= top - TIE)  # listed from more models to fewer
    info = {"criterion": f"mean Jaccard of the consensus top-{q:.0%} lists over the same subsamples "
                         f"(ties within {TIE}: more models, then rank before zscore)",
            "values": {f"{'+'.join(sub)}:{rule}": v for (sub, rule), v in vals.items()}}
    return best[0], best[1], info


def _lof_candidates(n: int) -> list[int]:
    return [k for k in (5, 10, 20, 35, 50, 80) if k < n] or [max(1, n - 1)]


def _iforest_candidates(n: int) -> list[int]:
    c = [s for s in (64, 128, 256, 512) if s <= n]
    return c or [n]


def score(features: pd.DataFrame, *, seed: int = 0, feature_cols: list[str] | None = None,
          q: float = 0.05, search_rows: int = 3000, replicates: int = 6) -> FleetScores:
    """Score every (pod_id, period) row of ``features`` with PCA, Isolation Forest and LOF.

    Parameters
    ----------
    features : pandas.DataFrame
        One row per pod_id and period (the ``.features`` of ``wattwatch.fleet.features.pod_periods``).
    seed : int
        Seeds every random choice (subsamples, folds, the forest); same seed, same table.
    feature_cols : list of str, optional
        The columns to use; by default every numeric column that is not a key or bookkeeping.
    q : float
        Each model's "top q" share: the vote and the stability criterion's top-k.
    search_rows : int
        At most this many rows (a seeded sample) take part in the hyper-parameter search.
    replicates : int
        Subsamples per candidate in the stability criterion.

    Returns
    -------
    FleetScores
    """
    missing = [k for k in KEYS if k not in features.columns]
    if missing:
        raise ValueError(f"features: missing column(s) {missing} (need one row per pod_id and period)")
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    frame = features.sort_values(list(KEYS), kind="mergesort").reset_index(drop=True)
    if frame.duplicated(list(KEYS)).any():
        dup = frame.loc[frame.duplicated(list(KEYS)), list(KEYS)].iloc[0].tolist()
        raise ValueError(f"features: more than one row for pod_id/period {dup}")
    cols = list(feature_cols) if feature_cols is not None else feature_columns(frame)
    bad = [c for c in cols if c not in frame.columns]
    if bad:
        raise ValueError(f"features: no column(s) {bad}")
    n = len(frame)
    if n < 3:
        raise ValueError(f"features: {n} row(s); cross-meter scoring needs at least 3")
    raw = frame[cols].to_numpy(dtype=float, na_value=np.nan)
    z, kept, dropped = robust_scale(raw, cols)
    if not kept:
        raise ValueError(f"features: no usable feature column (dropped: {dropped})")
    x = np.nan_to_num(np.clip(z, -CLIP, CLIP), nan=0.0)
    observed = np.isfinite(z)

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, search_rows, replace=False)) if n > search_rows else np.arange(n)
    xs = x[sample]
    # Library warnings (LOF on many identical rows, e.g. months of zeros) are kept in ``chosen``
    # rather than printed once per candidate and subsample.
    keep = {m: {} for m in MODELS}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Not a fit's: an unrelated object the garbage collector closes meanwhile (Python ignores
        # these by default); recorded, it made the same fleet's ``chosen`` differ between runs.
        warnings.simplefilter("ignore", ResourceWarning)
        n_comp, pca_info = choose_by_stability(xs, "pca", _pca_candidates(xs.shape[1], len(xs)), seed=seed, q=q,
                                               replicates=replicates, keep=keep["pca"], observed=observed[sample])
        max_samples, if_info = choose_by_stability(xs, "iforest", _iforest_candidates(len(xs)), seed=seed, q=q,
                                                   replicates=replicates, keep=keep["iforest"])
        n_neighbors, lof_info = choose_by_stability(xs, "lof", _lof_candidates(len(xs)), seed=seed, q=q,
                                                    replicates=replicates, keep=keep["lof"])
        use, rule, cons_info = choose_consensus({m: keep[m]["scores"] for m in MODELS}, keep["pca"]["members"], q)
        # On the full table, LOF's neighbourhood keeps the share of the fleet it had in the search sample.
        k_full = int(round(n_neighbors * n / len(xs)))
        scores = {
            "pca": _pca_scores(x, x, min(n_comp, x.shape[1]), seed, observed),
            "iforest": _iforest_scores(x, x, max_samples, seed),
            "lof": _lof_scores(x, k_full),
        }
    n_dupes = int(len(x) - len(np.unique(x, axis=0)))
    out = frame[list(KEYS)].copy()
    kq = max(1, int(np.ceil(q * n)))
    votes = np.zeros(n, dtype=np.int64)
    for name in MODELS:
        s = scores[name]
        r = _rank_desc(s)
        out[f"{name}_score"] = s
        out[f"{name}_rank"] = r
        votes += (r <= kq).astype(np.int64)
    # The consensus score is the rank percentile (0..1, 1 = worst) of the chosen combination.
    cons = _percentile(combine(scores, use, rule))
    out["consensus_score"] = cons
    out["consensus_rank"] = _rank_desc(cons)
    out["votes"] = votes
    # The label is the chosen consensus's own top-q list (the list whose stability chose it), so
    # that label and score say the same thing; a 2-of-3 vote of all three models labelled rows that
    # the consensus score (following a subset) ranked low. ``votes`` stays, for information.
    out["consensus_label"] = out["consensus_rank"].to_numpy() <= kq
    out["rank_in_period"] = out.groupby("period", sort=False)["consensus_score"].rank(
        ascending=False, method="min").astype(np.int64)
    # The features that drove the row: largest robust |z| (before the clip).
    az = np.where(np.isfinite(z), np.abs(z), -1.0)
    top = np.argsort(-az, axis=1, kind="stable")[:, :3]
    names = np.array(kept, dtype=object)
    for i in range(3):
        if i < len(kept):
            out[f"driver_{i + 1}"] = names[top[:, i]]
            out[f"driver_{i + 1}_z"] = np.take_along_axis(z, top[:, [i]], axis=1)[:, 0]
        else:
            out[f"driver_{i + 1}"] = None
            out[f"driver_{i + 1}_z"] = np.nan
    lab = out["consensus_label"].to_numpy()
    sil = float("nan")
    if 0 < lab.sum() < n:
        from sklearn.metrics import silhouette_score
        sil = float(silhouette_score(x, lab.astype(int), sample_size=min(n, 5000), random_state=seed))
    chosen = {
        "seed": seed, "q": q, "rows": n, "search_rows": len(xs),
        "features": kept, "dropped_features": dropped,
        "scaling": f"median / (IQR/1.349), MAD then std when IQR is 0; clipped to ±{CLIP:g}; NaN -> median",
        "pca": {"n_components": int(min(n_comp, x.shape[1])), **pca_info},
        "iforest": {"max_samples": int(max_samples), "n_estimators": N_TREES, **if_info},
        "lof": {"n_neighbors": int(n_neighbors), "n_neighbors_full": int(k_full), **lof_info},
        "consensus": {"models": list(use), "rule": rule, **cons_info},
        "vote": f"top {q:.0%} of each model ({kq} rows), counted in votes",
        "label": f"consensus_label: the top {q:.0%} of the consensus ({'+'.join(use)}, {rule}): consensus_rank <= {kq}",
        "duplicate_rows": n_dupes,
        "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
    }
    return FleetScores(table=out, chosen=chosen, silhouette=sil)
