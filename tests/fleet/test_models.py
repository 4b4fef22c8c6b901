"""Cross-meter scoring: planted outliers found, deterministic per seed, hyper-parameters follow the data."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from wattwatch.fleet.models import score as _score


def score(f, **kw):
    kw.setdefault("replicates", 4)  # fewer subsamples than the default keep the file fast
    return _score(f, **kw)


def fleet(n=240, d=8, latent=2, seed=1, n_out=12, periods=1):
    """A feature table with ``latent`` directions of normal variation and ``n_out`` planted outliers."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(latent, d))
    x = rng.normal(size=(n, latent)) * 3 @ w + rng.normal(size=(n, d)) * 0.3
    out = rng.choice(n, n_out, replace=False)
    x[out] += rng.normal(size=(n_out, d)) * 3
    f = pd.DataFrame(x, columns=[f"f{i}" for i in range(d)])
    f["pod_id"] = [f"P{i // periods:04d}" for i in range(n)]
    f["period"] = [f"2025-{1 + i % periods:02d}" for i in range(n)]
    y = np.zeros(n, bool)
    y[out] = True
    return f, y


@pytest.fixture(scope="module")
def planted():
    f, y = fleet()
    return f, y, score(f, seed=0)


def test_planted_outliers_rank_on_top_for_every_model_and_the_consensus(planted):
    f, y, r = planted
    t = r.table.set_index(["pod_id", "period"]).loc[list(zip(f["pod_id"], f["period"]))]
    for m in ("pca", "iforest", "lof", "consensus"):
        assert roc_auc_score(y, t[f"{m}_score"]) > 0.85, m
    # the vote: most of the consensus-labelled rows are planted ones, and the split separates
    assert y[t["consensus_label"].to_numpy()].mean() >= 0.7
    assert r.silhouette > 0.1
    assert set(t["votes"]) <= {0, 1, 2, 3}
    # the label is the chosen consensus's own top q (not a vote of models the consensus may leave out)
    kq = int(np.ceil(r.chosen["q"] * len(t)))
    assert (t["consensus_label"] == (t["consensus_rank"] <= kq)).all()
    assert t["consensus_label"].sum() >= kq
    assert r.chosen["label"].startswith("consensus_label: the top 5% of the consensus (" + "+".join(r.chosen["consensus"]["models"]))


def test_table_has_ranks_drivers_and_the_chosen_hyper_parameters(planted):
    _, _, r = planted
    t = r.table
    for c in ("pca_score", "pca_rank", "iforest_rank", "lof_rank", "consensus_score", "consensus_rank",
              "votes", "consensus_label", "driver_1", "driver_2", "driver_3", "driver_1_z"):
        assert c in t.columns
    assert t["consensus_rank"].min() == 1 and len(t) == 240
    # top-ranked row: the consensus score is the largest
    assert t.loc[t["consensus_rank"].idxmin(), "consensus_score"] == t["consensus_score"].max()
    for m, p in (("pca", "n_components"), ("iforest", "max_samples"), ("lof", "n_neighbors")):
        vals = r.chosen[m]["values"]
        assert r.chosen[m][p] in vals and r.chosen[m]["criterion"]
        best = max(vals.values())
        assert vals[r.chosen[m][p]] >= best - 0.02 - 1e-12  # within the stated tie of the most stable


def test_one_extreme_feature_is_named_as_the_driver():
    f, _ = fleet(seed=3)
    f.loc[7, "f5"] = f["f5"].median() + 50 * (f["f5"].quantile(0.75) - f["f5"].quantile(0.25))
    r = score(f, seed=0)
    row = r.table.set_index("pod_id").loc[f.loc[7, "pod_id"]]
    assert row["driver_1"] == "f5" and row["driver_1_z"] > 20
    assert row["consensus_rank"] <= 13  # among the 12 planted outliers and it


def test_same_seed_same_table_other_seed_close_and_row_order_irrelevant(planted):
    f, y, r = planted
    again = score(f.sample(frac=1.0, random_state=5), seed=0)  # shuffled rows, same seed
    pd.testing.assert_frame_equal(r.table, again.table)
    assert r.chosen == again.chosen
    other = score(f, seed=1)
    a = r.table["consensus_score"].to_numpy()
    b = other.table["consensus_score"].to_numpy()
    assert not np.array_equal(r.table["iforest_score"].to_numpy(), other.table["iforest_score"].to_numpy())
    # the bulk of normal rows may reorder (another seed may choose other hyper-parameters); the list on top may not
    assert pd.Series(a).corr(pd.Series(b), method="spearman") > 0.8
    assert roc_auc_score(y, b) > 0.85
    k = int(y.sum())
    top_a = set(np.argsort(-a)[:k])
    top_b = set(np.argsort(-b)[:k])
    assert len(top_a & top_b) / len(top_a | top_b) >= 0.6


def test_pca_dimension_follows_the_structure_of_the_data():
    low = score(fleet(latent=2, n_out=6)[0], seed=0).chosen["pca"]["n_components"]
    high = score(fleet(latent=6, n_out=6)[0], seed=0).chosen["pca"]["n_components"]
    assert low < high


def test_missing_values_constant_columns_and_bad_input():
    f, y = fleet(seed=4)
    f["const"] = 1.0
    f["sparse"] = np.where(np.arange(len(f)) % 3 == 0, 1.0, np.nan)  # two thirds missing
    f.loc[f.index[~y][:20], "f1"] = np.nan
    f.loc[f.index[~y][20], "f2"] = np.inf
    r = score(f, seed=0)
    assert set(r.chosen["dropped_features"]) == {"const", "sparse"}
    t = r.table.set_index("pod_id").loc[f["pod_id"]]
    # a normal row with a missing value is not made suspect by it
    assert not t["consensus_label"].to_numpy()[f.index[~y][:21]].any()
    assert np.isfinite(t[["pca_score", "iforest_score", "lof_score"]].to_numpy()).all()
    with pytest.raises(ValueError, match="pod_id"):
        score(f.drop(columns=["pod_id"]))
    with pytest.raises(ValueError, match="more than one row"):
        score(pd.concat([f, f.iloc[:1]]))
    with pytest.raises(ValueError, match="no column"):
        score(f, feature_cols=["nope"])


def test_consensus_leaves_out_a_model_whose_top_list_does_not_hold_under_resampling():
    """Two models agree, in every subsample, on the same 50 rows (5 %); a third is surer of
    itself but flags another 5 % in each subsample. The consensus is chosen by the stability of its
    own top list on the same subsamples: it keeps the two, drops the third, and its top 50 on the
    full table are the 50 rows."""
    from wattwatch.fleet.models import choose_consensus, combine

    rng = np.random.default_rng(0)
    n, b, k = 1000, 6, 50
    members = np.zeros((b, n), bool)
    for i in range(b):
        members[i, np.sort(rng.choice(n, 800, replace=False))] = True
    hot = np.zeros(n)
    hot[:k] = 5.0

    def flaky(size):  # sure of itself, a different list each time
        return rng.normal(size=size) + 30.0 * (rng.random(size) < 0.05)

    reps = {m: np.where(members, hot + rng.normal(size=(b, n)) * 0.5, np.nan) for m in ("pca", "lof")}
    reps["iforest"] = np.where(members, flaky((b, n)), np.nan)
    use, rule, info = choose_consensus(reps, members, q=0.05)
    assert set(use) == {"pca", "lof"}, info["values"]
    assert max(info["values"]["pca+iforest+lof:" + r] for r in ("rank", "zscore")) < info["values"]["pca+lof:" + rule]
    full = {m: hot + rng.normal(size=n) * 0.5 for m in ("pca", "lof")} | {"iforest": flaky(n)}
    assert set(np.argsort(-combine(full, use, rule))[:k]) == set(range(k))


def test_the_table_says_which_consensus_it_used_and_its_score_follows_it(planted):
    from wattwatch.fleet.models import _percentile, combine

    _, _, r = planted
    c = r.chosen["consensus"]
    assert c["models"] and set(c["models"]) <= {"pca", "iforest", "lof"} and c["rule"] in ("rank", "zscore")
    assert c["values"]["+".join(c["models"]) + ":" + c["rule"]] >= max(c["values"].values()) - 0.02 - 1e-12
    t = r.table
    want = _percentile(combine({m: t[f"{m}_score"].to_numpy() for m in ("pca", "iforest", "lof")},
                               tuple(c["models"]), c["rule"]))
    np.testing.assert_allclose(t["consensus_score"].to_numpy(), want, rtol=0, atol=1e-12)
    assert t["consensus_score"].between(0, 1).all()


def test_a_warning_of_something_else_collected_meanwhile_is_not_the_models(monkeypatch):
    """rev45: ``score`` records the library warnings its fits raise in ``chosen["warnings"]`` with
    every warning shown while it runs, so an unrelated object the garbage collector closed in that
    time (an event loop another test left: ``ResourceWarning: unclosed event loop``) became one of
    the models' warnings, and the same fleet scored twice gave two ``chosen`` (seen in
    test_same_seed_same_table_other_seed_close_and_row_order_irrelevant under pytest -n 1)."""
    import os

    import wattwatch.fleet.models as models

    real = models.choose_by_stability

    def leaky(*a, **k):
        f = open(os.devnull)  # noqa: SIM115 - dropped unclosed on purpose: a ResourceWarning now
        del f
        return real(*a, **k)

    monkeypatch.setattr(models, "choose_by_stability", leaky)
    f, _ = fleet(seed=2)
    r = score(f, seed=0)
    assert not [w for w in r.chosen["warnings"] if w.startswith("ResourceWarning")], r.chosen["warnings"]
