"""ExtraObjectives: the search's view of a problem whose extra objectives a wrapper supplies."""

import numpy as np
import pytest

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems import make_problem
from evodiff_ray.problems.extra_objectives import ExtraObjectives
from evodiff_ray.strategies import make_strategy


def test_objectives_grow_and_everything_else_is_the_inner_problems():
    inner = make_problem("zdt1", {"n_var": 4})
    p = ExtraObjectives(inner, ("rating",), reference=(4.4,))
    assert p.objective_names == ("f1", "f2", "rating") and p.name == "zdt1"
    assert p.pymoo_problem().n_obj == 3 and inner.pymoo_problem().n_obj == 2   # the inner one is untouched
    assert np.allclose(p.reference_point(), [*inner.reference_point(), 4.4])
    x = [0.1, 0.2, 0.3, 0.4]
    assert p.key(np.array(x)) == inner.key(np.array(x))
    assert p.evaluation_settings() == inner.evaluation_settings()      # the cache key does not change
    assert p.features(np.array(x)) == {"x0": 0.1, "x1": 0.2, "x2": 0.3, "x3": 0.4}
    assert p.n_var == 4                                                # the inner problem's own attributes
    assert ExtraObjectives(inner, ("rating",)).reference_point() is None


def test_bad_extra_objectives_are_refused():
    inner = make_problem("zdt1", {"n_var": 4})
    with pytest.raises(ValueError, match="already has objective 'f1'"):
        ExtraObjectives(inner, ("f1",))
    with pytest.raises(ValueError, match="at least one"):
        ExtraObjectives(inner, ())


@pytest.mark.parametrize("strategy", ["nsga2", "random"])
def test_a_strategy_asks_and_is_told_three_objectives(strategy):
    p = ExtraObjectives(make_problem("zdt1", {"n_var": 4}), ("rating",))
    s = make_strategy(strategy, p, pop_size=6, n_offsprings=None, seed=1)
    for _ in range(2):
        cands = s.ask()
        fits = [Fitness(objectives={"f1": float(c.x[0]), "f2": 1 - float(c.x[0]), "rating": float(i % 3)})
                for i, c in enumerate(cands)]
        s.tell(cands, fits)
    assert s.ask()                                       # told 3-column F, it asks on
    if strategy == "nsga2":
        assert len(s.population()) == 6


def test_problems_describe_candidates_for_surrogates():
    diffusion = make_problem("diffusion", {})
    f = diffusion.features(diffusion.baseline())
    assert set(f) == {"depth", "levels", "base_channels", "sampler_steps", "attention", "connections",
                      "log10_params"}
    assert f["depth"] == len(diffusion.baseline().layers) and 4 < f["log10_params"] < 7
    assert make_problem("zdt1", {"n_var": 2}).features(np.array([0.5, 0.25])) == {"x0": 0.5, "x1": 0.25}
