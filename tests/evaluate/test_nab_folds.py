"""NAB two-fold protocol: the split is fixed and disjoint; parameters come from the other fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattwatch.evaluate.nab.corpus import Corpus, DataFile
from wattwatch.evaluate.nab.folds import DEFAULT_GRID, configs, cross_fold, split
from wattwatch.evaluate.nab.scorer import STANDARD_PROFILES

NAB = Path("/work/shared/data/nab")


def test_split_is_deterministic_disjoint_and_alternates_within_categories():
    keys = [f"{c}/{n}.csv" for c in ("realTraffic", "artificialWithAnomaly", "realTweets") for n in "edcbaf"][:-1]
    a, b = split(keys)
    a2, b2 = split(list(reversed(keys)))
    assert (a, b) == (a2, b2)  # order of the input does not matter
    assert not set(a) & set(b) and sorted(a + b) == sorted(keys)
    assert [k for k in a if k.startswith("realTraffic/")] == ["realTraffic/a.csv", "realTraffic/c.csv", "realTraffic/e.csv"]
    assert [k for k in b if k.startswith("realTraffic/")] == ["realTraffic/b.csv", "realTraffic/d.csv", "realTraffic/f.csv"]
    assert [k for k in b if k.startswith("realTweets/")] == ["realTweets/b.csv", "realTweets/d.csv"]


@pytest.mark.skipif(not (NAB / "labels").is_dir(), reason="NAB corpus not at /work/shared/data/nab")
def test_split_of_the_real_corpus_halves_every_category():
    from wattwatch.evaluate.nab.corpus import load_corpus

    keys = [f.key for f in load_corpus(NAB).files]
    a, b = split(keys)
    assert len(a) + len(b) == len(keys) == 58 and not set(a) & set(b)
    for cat in {k.split("/")[0] for k in keys}:
        na, nb = sum(k.startswith(cat + "/") for k in a), sum(k.startswith(cat + "/") for k in b)
        assert na - nb in (0, 1)


def test_grid_is_small_and_complete():
    cs = configs(DEFAULT_GRID["window_novelty"])
    assert len(cs) == 12 and {"window": 8, "onset": 50} in cs  # the defaults are one of the choices


def _corpus(n_files=6, n=400):
    rng = np.random.default_rng(3)
    files = []
    for k in range(n_files):
        lo = 200 + 20 * k
        files.append(DataFile(key=f"{'xy'[k % 2]}/f{k}.csv", timestamps=pd.Series(pd.date_range("2020", periods=n,
                              freq="5min")), values=rng.normal(size=n), windows=[(lo, lo + 30)]))
    return Corpus(root=Path("."), files=files, profiles=STANDARD_PROFILES[:1])


def test_cross_fold_chooses_on_one_fold_and_scores_the_other():
    corpus = _corpus()
    rng = np.random.default_rng(0)
    noise = [rng.uniform(0, 0.4, len(f.values)) for f in corpus.files]
    good = []
    for f in corpus.files:  # fires at the start of each window only
        s = np.zeros(len(f.values))
        s[f.windows[0][0]] = 0.9
        good.append(s)
    r = cross_fold(corpus, [{"c": "noise"}, {"c": "good"}], [noise, good])
    std = r["profiles"]["standard"]
    assert all(row["params"] == {"c": "good"} for row in std["folds"].values())
    assert std["cross_fold"] > 90
    # with only the noise configuration the score collapses: the choice matters, and is made per fold
    r0 = cross_fold(corpus, [{"c": "noise"}], [noise])
    assert r0["profiles"]["standard"]["cross_fold"] < std["cross_fold"] - 50
    a, b = r["folds"]["A"], r["folds"]["B"]
    assert not set(a) & set(b) and len(a) + len(b) == len(corpus.files)


def test_cli_nab_folds_rejects_a_bad_grid(tmp_path):
    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    r = CliRunner().invoke(app, ["nab", "folds", "--data", str(tmp_path), "--grid", "window=4,x"])
    assert r.exit_code == 2 and "'x' is not a number" in r.output
