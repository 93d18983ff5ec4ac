"""Synthetic problem: ZDT1 values, reproducible per-candidate time and failures."""

import numpy as np
import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.problems import make_problem
from evodiff_ray.problems.synthetic import candidate_rng, draw_delay, synthetic_objectives


def test_objectives_are_zdt1():
    zdt1 = make_problem("zdt1", {"n_var": 10}).pymoo_problem()
    X = np.random.default_rng(1).random((20, 10))
    expected = zdt1.evaluate(X, return_values_of=["F"])
    got = np.array([synthetic_objectives(x) for x in X])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_front_points_lie_on_the_known_front():
    p = make_problem("synthetic", {})
    for f1 in (0.0, 0.25, 1.0):
        x = np.zeros(10)
        x[0] = f1
        fit = p.evaluate(x)
        assert fit.objectives["f2"] == pytest.approx(1 - np.sqrt(f1))


def test_failures_are_reproducible_and_near_the_rate():
    p = make_problem("synthetic", {"failure_rate": 0.3, "seed": 5})
    X = np.random.default_rng(2).random((400, 10))
    first = [p.evaluate(x) for x in X]
    again = [p.evaluate(x) for x in X]
    assert [f.feasible for f in first] == [f.feasible for f in again]
    failed = [f for f in first if not f.feasible]
    assert 0.22 < len(failed) / len(X) < 0.38
    assert all(f.reason and "synthetic failure" in f.reason for f in failed)
    assert all(np.isinf(f.objectives["f1"]) for f in failed)


def test_lognormal_delay_has_the_requested_mean():
    rng = np.random.default_rng(0)
    draws = np.array([draw_delay(rng, "lognormal", 0.2, 1.0) for _ in range(40000)])
    assert draws.mean() == pytest.approx(0.2, rel=0.05)
    assert np.median(draws) < draws.mean()  # skewed: most evaluations are shorter than the mean
    assert draw_delay(rng, "fixed", 0.05, 1.0) == 0.05


def test_candidate_rng_depends_on_key_and_seed():
    k = "ab" * 32
    assert candidate_rng(k, 1).random() == candidate_rng(k, 1).random()
    assert candidate_rng(k, 1).random() != candidate_rng(k, 2).random()


@pytest.mark.parametrize("opts, match", [
    ({"n_var": 1}, "n_var"), ({"time": "gamma"}, "time must be"),
    ({"mean_ms": -1}, "mean_ms"), ({"failure_rate": 1.5}, "failure_rate"),
])
def test_bad_options(opts, match):
    with pytest.raises(UsageError, match=match):
        make_problem("synthetic", opts)


def test_out_of_bounds_candidate_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        make_problem("synthetic", {}).from_json([2.0] * 10)


def test_reference_point_bounds_every_candidate():
    p = make_problem("synthetic", {})
    X = np.vstack([np.random.default_rng(3).random((500, 10)), np.ones(10), np.zeros(10)])
    F = np.array([synthetic_objectives(x) for x in X])
    assert np.all(F < p.reference_point())


def test_short_search_hypervolume_is_positive_and_grows(tmp_path):
    from evodiff_ray.config import load_config
    from evodiff_ray.search import search

    r = search(load_config(overrides={
        "problem": "synthetic", "pop_size": 10, "generations": 6, "seed": 3, "backend": "local",
        "runs_dir": str(tmp_path), "no_cache": True, "no_tracking": True}))
    hv = [h["hypervolume"] for h in r.history]
    assert len(hv) == 6 and hv[0] > 0
    assert all(b >= a for a, b in zip(hv, hv[1:])) and hv[-1] > hv[0]
