"""The rating predictor: a Gaussian process from measured objectives and genome features to the
mean user rating, with its uncertainty."""

import math

import numpy as np
import pytest

from evodiff_ray.evaluation.rating_model import (DEFAULT_RATER_VAR, RATER_VAR_BOUNDS, fit_rating_model,
                                                 mean_and_error, rater_variance)


def truth(a: float, b: float) -> float:
    """A synthetic ground truth: users like small ``a`` most, small ``b`` a little."""
    return 1.0 + 4.0 * float(np.clip(1.0 - 0.7 * a - 0.3 * b, 0.0, 1.0))


def rated(n: int, seed: int = 0):
    """``n`` rated genomes: features (two that matter, one that does not) and 1-5 ratings."""
    rng = np.random.default_rng(seed)
    rows, ratings = [], []
    for _ in range(n):
        a, b, c = rng.random(3)
        rows.append({"objective.a": a, "objective.b": b, "genome.noise": c})
        k = int(rng.integers(1, 6))
        ratings.append([int(v) for v in np.clip(np.round(truth(a, b) + rng.normal(0, 0.7, k)), 1, 5)])
    return rows, ratings


def test_rater_variance_pools_the_spread_within_genomes():
    assert rater_variance([[4, 2], [3, 3, 3], [5]]) == pytest.approx(2.0 / 3)
    assert rater_variance([[4], [2]]) == DEFAULT_RATER_VAR          # nobody rated twice: assumed
    assert rater_variance([[3, 3], [5, 5]]) == RATER_VAR_BOUNDS[0]   # unanimous raters: still some noise
    mean, err = mean_and_error([4, 5, 3, 4], rater_var=1.0)
    assert mean == 4.0 and err == pytest.approx(0.5)


def test_predictions_follow_a_synthetic_ground_truth():
    from scipy.stats import spearmanr

    rows, ratings = rated(25)
    model = fit_rating_model(rows, ratings)
    rng = np.random.default_rng(1)
    test = [{"objective.a": a, "objective.b": b, "genome.noise": c} for a, b, c in rng.random((100, 3))]
    mean, std = model.predict(test)
    rho = spearmanr(mean, [truth(r["objective.a"], r["objective.b"]) for r in test]).statistic
    assert rho > 0.8
    assert ((mean >= 1) & (mean <= 5)).all()
    assert (std > 0).all() and np.isfinite(std).all()


def test_uncertainty_grows_away_from_the_rated_genomes_and_the_fit_is_deterministic():
    rows, ratings = rated(12)
    model = fit_rating_model(rows, ratings)
    near_mean, near_std = model.predict([rows[0]])
    far_mean, far_std = model.predict([{"objective.a": 50.0, "objective.b": -50.0, "genome.noise": 50.0}])
    assert far_std[0] > 2 * near_std[0]
    assert far_mean[0] == pytest.approx(model.prior_mean, abs=0.05)   # far from all: the average rating
    again = fit_rating_model(rows, ratings)
    assert np.array_equal(again.predict(rows)[0], model.predict(rows)[0])
    d = model.describe()
    assert d["kind"] == "gaussian_process" and d["rows"] == 12 and "RBF" in d["kernel"]


def test_missing_or_unknown_features_are_taken_at_the_average_and_tiny_fits_work():
    rows, ratings = rated(6)
    model = fit_rating_model(rows, ratings)
    m1, _ = model.predict([{"objective.a": 0.2, "objective.b": 0.5}])             # no genome.noise
    m2, _ = model.predict([{"objective.a": 0.2, "objective.b": 0.5, "genome.noise": math.nan}])
    assert m1[0] == pytest.approx(m2[0])
    one = fit_rating_model(rows[:1], ratings[:1])        # one rated genome: its rating, with doubt
    mean, std = one.predict(rows[1:3])
    assert np.allclose(mean, np.mean(ratings[0])) and (std > 0.5).all()
    # features not every row has are left out
    mixed = fit_rating_model([{"objective.a": 0.1, "x": 1.0}, {"objective.a": 0.9}], [[5], [1]])
    assert mixed.names == ("objective.a",)


def test_nothing_to_fit_is_an_error():
    with pytest.raises(ValueError, match="at least one rated genome"):
        fit_rating_model([], [])
    with pytest.raises(ValueError, match="at least one rating"):
        fit_rating_model([{"a": 1.0}], [[]])
    with pytest.raises(ValueError, match="share no feature"):
        fit_rating_model([{"a": 1.0}, {"b": 1.0}], [[3], [4]])
