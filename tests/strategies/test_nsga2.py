"""NSGA-II via ask/tell: exact equality with pymoo's own loop, and failure handling."""

import math

import numpy as np
import pytest
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.optimize import minimize

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems import make_problem
from evodiff_ray.strategies import nsga2 as nsga


def run_engine(problem, pop_size, n_gen, seed):
    alg = nsga.make_algorithm(problem, pop_size, seed)
    for _ in range(n_gen):
        pop = nsga.ask(alg)
        nsga.tell(alg, pop, [problem.evaluate(ind.X) for ind in pop], problem.objective_names)
    return alg


@pytest.mark.parametrize("name", ["zdt1", "dtlz2"])
def test_ask_tell_equals_pymoo_minimize(name):
    problem = make_problem(name, {})
    ours = run_engine(problem, 24, 12, seed=7)
    ref = minimize(problem.pymoo_problem(), NSGA2(pop_size=24), ("n_gen", 12), seed=7)
    np.testing.assert_array_equal(ours.pop.get("X"), ref.algorithm.pop.get("X"))
    np.testing.assert_array_equal(ours.pop.get("F"), ref.algorithm.pop.get("F"))


def test_fitness_arrays_penalise_failures():
    ok = Fitness({"a": 1.0, "b": 2.0}, constraints={"mem": -1.0})
    failed = Fitness.infeasible(("a", "b"), "boom", constraint_names=("mem",))
    nan = Fitness({"a": math.nan, "b": 1.0})
    F, G = nsga.fitness_arrays([ok, failed, nan], ("a", "b"), ("mem",))
    assert F.tolist() == [[1.0, 2.0], [nsga.PENALTY, nsga.PENALTY], [nsga.PENALTY, 1.0]]
    assert G.tolist() == [[-1.0, 0.0], [nsga.PENALTY, 1.0], [0.0, 0.0]]
    assert np.all(np.isfinite(F)) and np.all(np.isfinite(G))


def test_failed_candidates_do_not_survive():
    problem = make_problem("zdt1", {"n_var": 5})
    alg = nsga.make_algorithm(problem, 10, seed=0)
    pop = nsga.ask(alg)
    fits = [problem.evaluate(ind.X) if i % 2 else Fitness.infeasible(problem.objective_names, "x")
            for i, ind in enumerate(pop)]
    nsga.tell(alg, pop, fits, problem.objective_names)
    off = nsga.ask(alg)
    nsga.tell(alg, off, [problem.evaluate(ind.X) for ind in off], problem.objective_names)
    assert np.all(alg.pop.get("CV") <= 0)  # 15 feasible candidates outcompete the 5 failures
    assert len(alg.pop) == 10
