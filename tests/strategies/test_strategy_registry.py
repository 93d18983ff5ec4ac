"""make_strategy: registry names, options, user factories."""

import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.problems import make_problem
from evodiff_ray.strategies import STRATEGIES, Strategy, is_known_strategy, make_strategy, strategy_names


def test_registry_is_explicit_and_lazy():
    assert strategy_names() == ["nsga2", "optuna", "random"]
    assert all(":" in ref for ref in STRATEGIES.values())
    assert is_known_strategy("pkg.mod:factory") and not is_known_strategy("annealing")


@pytest.mark.parametrize("name", ["nsga2", "random"])
def test_built_strategies_ask_a_population_then_offspring(name):
    p = make_problem("zdt1", {"n_var": 4})
    s = make_strategy(name, p, pop_size=6, n_offsprings=3, seed=0)
    assert isinstance(s, Strategy) and s.name == name and s.ready
    first = s.ask()
    assert len(first) == 6
    s.tell(first, [p.evaluate(c.x) for c in first])
    assert len(s.ask()) == 3


def test_nsga2_is_not_ready_before_its_population_is_told():
    p = make_problem("zdt1", {"n_var": 4})
    s = make_strategy("nsga2", p, pop_size=6, n_offsprings=None, seed=0)
    first = s.ask()
    assert not s.ready
    s.tell(first[:2], [p.evaluate(c.x) for c in first[:2]])
    assert s.ready and len(s.population()) == 2


def test_unknown_and_missing():
    p = make_problem("zdt1", {})
    with pytest.raises(UsageError, match="unknown strategy 'sa'; choose one of nsga2, optuna, random"):
        make_strategy("sa", p, pop_size=4, n_offsprings=None, seed=0)
    with pytest.raises(UsageError, match="module 'no_such_module' is not installed"):
        make_strategy("no_such_module:make", p, pop_size=4, n_offsprings=None, seed=0)
    with pytest.raises(UsageError, match="has no callable 'nope'"):
        make_strategy("evodiff_ray.strategies.random:nope", p, pop_size=4, n_offsprings=None, seed=0)
    with pytest.raises(UsageError, match="strategy 'nsga2': bad strategy_options"):
        make_strategy("nsga2", p, pop_size=4, n_offsprings=None, seed=0, options={"mutation": "x"})
