"""The rating predictor: a candidate's mean user rating from its measured objectives and genome.

Users rate only the few versions that were served, so most candidates of a search have no
human rating. :func:`fit_rating_model` fits a Gaussian process (scikit-learn's
``GaussianProcessRegressor``) from the rated genomes' features (their measured objectives
and :meth:`~evodiff_ray.problems.base.SearchProblem.features`) to their mean rating, and
:meth:`RatingModel.predict` gives, for any candidate, the predicted mean rating and its
standard deviation.

Why a Gaussian process and not a ridge regression: the training set is tiny (one row per
rated genome, often a handful) and the GP is exact and cheap there; its uncertainty
grows away from the rated genomes and returns to the prior spread far from them, which is
the honest answer for an architecture unlike anything users saw (a linear model would
extrapolate with confidence); and the raters' noise enters per genome (``alpha_i =
rater variance / n_i``), so a genome with 50 ratings pins the fit and one with a single
rating barely bends it. The kernel is an amplitude times an isotropic RBF on standardised
features: one length scale, because a few rows cannot support one per feature (ARD).
The prior mean is the rated genomes' average rating; predictions are clipped to the
rating scale. The fit is deterministic (a fixed ``random_state`` for the optimiser's
restarts), so a resumed search refits the same model from the same snapshot.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

#: the rating scale of the serving loop's ``POST /feedback`` (``serving/feedback.py``)
LOWEST_RATING, TOP_RATING = 1, 5
#: rater variance assumed when no genome has two ratings to measure it (about one star)
DEFAULT_RATER_VAR = 1.0
#: bounds of the measured rater variance (a few identical ratings must not claim certainty)
RATER_VAR_BOUNDS = (0.05, 4.0)


def rater_variance(ratings: Sequence[Sequence[float]]) -> float:
    """The raters' variance around each genome's mean, pooled over genomes (pure).

    Args:
        ratings: per genome, its individual ratings.

    Returns:
        ``sum_i sum_j (r_ij - mean_i)^2 / sum_i (n_i - 1)``, clipped to
        :data:`RATER_VAR_BOUNDS`; :data:`DEFAULT_RATER_VAR` when no genome has two ratings.
    """
    ss, dof = 0.0, 0
    for rs in ratings:
        rs = np.asarray(rs, dtype=float)
        if len(rs) >= 2:
            ss += float(((rs - rs.mean()) ** 2).sum())
            dof += len(rs) - 1
    if dof == 0:
        return DEFAULT_RATER_VAR
    return float(np.clip(ss / dof, *RATER_VAR_BOUNDS))


def mean_and_error(ratings: Sequence[float], rater_var: float) -> tuple[float, float]:
    """A genome's mean human rating and the standard error of that mean (pure).

    The error uses the pooled ``rater_var`` (a genome's own spread over two or three
    ratings says little), the same noise model the predictor is fitted with.
    """
    n = len(ratings)
    if n == 0:
        raise ValueError("no ratings")
    return float(np.mean(ratings)), math.sqrt(rater_var / n)


@dataclass
class RatingModel:
    """A fitted rating predictor (see :func:`fit_rating_model`).

    Attributes:
        names: feature names, in column order.
        center, scale: per-feature standardisation (training mean and spread).
        prior_mean: the rated genomes' average rating (the prediction far from all of them).
        rater_var: the pooled rater variance the fit assumed.
        rows: how many rated genomes it was fitted on.
        gp: the fitted ``GaussianProcessRegressor`` (on centred ratings).
    """

    names: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    prior_mean: float
    rater_var: float
    rows: int
    gp: Any

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Standardised feature rows; a missing or non-finite feature is taken at the
        training mean (0 after standardisation)."""
        X = np.array([[_num(r.get(n)) for n in self.names] for r in rows], dtype=float).reshape(len(rows), -1)
        Z = (X - self.center) / self.scale
        return np.where(np.isfinite(Z), Z, 0.0)

    def predict(self, rows: Sequence[Mapping[str, float]]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean rating and its standard deviation, one per row.

        Returns:
            ``(mean, std)``, each of shape ``(len(rows),)``; ``mean`` in
            ``[LOWEST_RATING, TOP_RATING]``.
        """
        if not rows:
            return np.zeros(0), np.zeros(0)
        mu, sd = self.gp.predict(self.matrix(rows), return_std=True)
        mean = np.clip(self.prior_mean + np.asarray(mu, dtype=float), LOWEST_RATING, TOP_RATING)
        return mean, np.asarray(sd, dtype=float)

    def describe(self) -> dict[str, Any]:
        """What was fitted, as JSON data (for the run dir and the logs)."""
        return {"kind": "gaussian_process", "kernel": str(self.gp.kernel_), "features": list(self.names),
                "rows": self.rows, "prior_mean": self.prior_mean, "rater_var": self.rater_var}


def fit_rating_model(rows: Sequence[Mapping[str, float]], ratings: Sequence[Sequence[float]], *,
                     seed: int = 0) -> RatingModel:
    """Fit the predictor on rated genomes (pure: no I/O, its randomness seeded).

    Args:
        rows: per rated genome, its features by name (measured objectives, genome features).
            The features every row has are used; a non-finite value is imputed by the
            column's mean.
        ratings: per rated genome, its individual 1-5 ratings (at least one each).
        seed: the hyperparameter optimiser's restarts.

    Returns:
        The fitted :class:`RatingModel`.

    Raises:
        ValueError: no rows, a row without ratings, or no feature that every row has.
    """
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    if not rows or len(rows) != len(ratings):
        raise ValueError("the rating predictor needs at least one rated genome (rows and ratings, one each)")
    if any(len(r) == 0 for r in ratings):
        raise ValueError("every rated genome needs at least one rating")
    names = tuple(sorted(set.intersection(*(set(r) for r in rows))))
    if not names:
        raise ValueError("the rated genomes share no feature to predict from")
    X = np.array([[_num(r[n]) for n in names] for r in rows], dtype=float)
    col_mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in np.where(np.isfinite(X), X, np.nan).T])
    X = np.where(np.isfinite(X), X, col_mean)
    center = X.mean(axis=0)
    spread = X.std(axis=0)
    scale = np.where(spread > 1e-12, spread, 1.0)
    Z = (X - center) / scale
    y = np.array([float(np.mean(r)) for r in ratings])
    n = np.array([len(r) for r in ratings], dtype=float)
    var = rater_variance(ratings)
    prior = float(y.mean())
    d = Z.shape[1]
    kernel = (ConstantKernel(1.0, (1e-2, 16.0))
              * RBF(length_scale=math.sqrt(d), length_scale_bounds=(1e-2, 1e3)))
    gp = GaussianProcessRegressor(
        kernel=kernel, alpha=var / n, normalize_y=False, random_state=seed,
        # two or fewer rows cannot pin a length scale: keep the prior's hyperparameters
        optimizer="fmin_l_bfgs_b" if len(y) >= 3 else None, n_restarts_optimizer=2)
    with warnings.catch_warnings():   # a length scale at its bound is a fact of tiny data, not an error
        warnings.simplefilter("ignore")
        gp.fit(Z, y - prior)
    return RatingModel(names=names, center=center, scale=scale, prior_mean=prior, rater_var=var,
                       rows=len(y), gp=gp)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
