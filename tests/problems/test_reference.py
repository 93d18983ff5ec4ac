"""Reference problems: JSON form, validation, values equal to pymoo's, known fronts."""

import numpy as np
import pytest

from evodiff_ray.problems import make_problem


@pytest.mark.parametrize("name", ["zdt1", "zdt2", "zdt3", "dtlz2"])
def test_values_match_pymoo_and_json_round_trips(name):
    p = make_problem(name, {})
    rng = np.random.default_rng(0)
    pp = p.pymoo_problem()
    X = pp.xl + rng.random((5, p.n_var)) * (pp.xu - pp.xl)
    F = pp.evaluate(X, return_values_of=["F"])
    for x, f in zip(X, F):
        x2 = p.from_json(p.to_json(x))
        assert np.array_equal(x, x2)
        fit = p.evaluate(x2)
        assert fit.feasible and [fit.objectives[n] for n in p.objective_names] == pytest.approx(f, rel=1e-12)
        assert fit.measured_on["device"] == "cpu"


@pytest.mark.parametrize("name, n_obj", [("zdt1", 2), ("zdt3", 2), ("dtlz2", 3)])
def test_pareto_front_and_reference_point(name, n_obj):
    p = make_problem(name, {})
    pf = p.pareto_front()
    assert pf.ndim == 2 and pf.shape[1] == n_obj and len(pf) > 10
    assert np.all(p.reference_point() > pf.max(axis=0))


def test_from_json_rejects_bad_candidates():
    p = make_problem("zdt1", {"n_var": 3})
    for bad in ([0.1, 0.2], "x", [0.1, True, 0.2], [0.1, float("nan"), 0.2]):
        with pytest.raises(ValueError):
            p.from_json(bad)


def test_key_is_content_addressed():
    p = make_problem("zdt1", {"n_var": 3})
    assert p.key(np.array([0.1, 0.2, 0.3])) == p.key([0.1, 0.2, 0.3])
    assert p.key([0.1, 0.2, 0.3]) != p.key([0.1, 0.2, 0.31])
