"""ExtraConstraints: the search's view of a problem whose extra constraints a wrapper supplies."""

import numpy as np
import pytest

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems import make_problem
from evodiff_ray.problems.extra_constraints import ExtraConstraints
from evodiff_ray.problems.extra_objectives import ExtraObjectives
from evodiff_ray.strategies import make_strategy
from evodiff_ray.strategies.nsga2 import fitness_arrays


def test_constraints_grow_and_everything_else_is_the_inner_problems():
    inner = make_problem("zdt1", {"n_var": 4})
    p = ExtraConstraints(inner, ("f1<=0.5",))
    assert p.constraint_names == ("f1<=0.5",) and inner.constraint_names == ()
    assert p.objective_names == inner.objective_names and p.name == "zdt1"
    assert p.pymoo_problem().n_ieq_constr == 1 and inner.pymoo_problem().n_ieq_constr == 0
    x = np.array([0.1, 0.2, 0.3, 0.4])
    assert p.key(x) == inner.key(x) and p.evaluation_settings() == inner.evaluation_settings()
    assert np.allclose(p.reference_point(), inner.reference_point()) and p.n_var == 4
    # over a view with the rating objective: both grow
    both = ExtraConstraints(ExtraObjectives(inner, ("rating",)), ("rating<=1",))
    assert both.objective_names == ("f1", "f2", "rating") and both.constraint_names == ("rating<=1",)
    assert (both.pymoo_problem().n_obj, both.pymoo_problem().n_ieq_constr) == (3, 1)


def test_bad_extra_constraints_are_refused():
    inner = make_problem("zdt1", {"n_var": 4})
    with pytest.raises(ValueError, match="at least one"):
        ExtraConstraints(inner, ())
    with pytest.raises(ValueError, match="repeat"):
        ExtraConstraints(inner, ("f1<=1", "f1<=1"))
    with pytest.raises(ValueError, match="already has constraint 'f1<=1'"):
        ExtraConstraints(ExtraConstraints(inner, ("f1<=1",)), ("f1<=1",))


def test_the_constraint_becomes_a_g_column_before_evaluation_failed():
    fits = [Fitness({"f1": 0.2, "f2": 1.0}, constraints={"f1<=0.5": -0.6}),
            Fitness({"f1": 0.8, "f2": 0.1}, constraints={"f1<=0.5": 0.6})]
    F, G = fitness_arrays(fits, ("f1", "f2"), ("f1<=0.5",))
    assert G.tolist() == [[-0.6, 0.0], [0.6, 0.0]]         # violated, yet not a failed evaluation


@pytest.mark.parametrize("strategy", ["nsga2", "random", "optuna"])
def test_a_strategy_asks_and_is_told_the_extra_constraint(strategy):
    if strategy == "optuna":
        pytest.importorskip("optuna")
    p = ExtraConstraints(make_problem("zdt1", {"n_var": 4}), ("f1<=0.5",))
    s = make_strategy(strategy, p, pop_size=6, n_offsprings=None, seed=1)
    told = []
    for _ in range(3):
        cands = s.ask()
        fits = [Fitness({"f1": float(c.x[0]), "f2": 1 - float(c.x[0])},
                        constraints={"f1<=0.5": float(c.x[0]) / 0.5 - 1}) for c in cands]
        s.tell(cands, fits)
        told += [float(c.x[0]) for c in cands]
    assert s.ask()
    if strategy == "nsga2":   # constraint domination: survivors meet the constraint wherever enough did
        survivors = [float(x[0]) for x in s.population()]
        assert sum(v <= 0.5 for v in survivors) == min(6, sum(v <= 0.5 for v in told))
