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


def test_rung_stratified_survival_ranks_like_with_like():
    import numpy as np
    from pymoo.core.individual import Individual
    from pymoo.core.population import Population
    from pymoo.core.problem import Problem

    from evodiff_ray.strategies.nsga2 import _rung_survival

    # quality after more training is lower; a rung-0 point must not push out rung-1 points
    rows = [([1.0, 1.0], 0), ([2.0, 2.0], 1), ([3.0, 1.5], 1), ([1.5, 3.0], 1), ([0.5, 0.5], 0)]
    pop = Population.create(*[Individual(X=np.zeros(1), F=np.array(f), G=np.zeros(0), CV=np.zeros(1),
                                         feas=np.array([True])) for f, _ in rows])
    for ind, (_, rung) in zip(pop, rows):
        ind.set("rung", rung)
    problem = Problem(n_var=1, n_obj=2)
    kept = _rung_survival().do(problem, pop, n_survive=4)
    kept_f = sorted(tuple(ind.F) for ind in kept)
    assert kept_f == sorted([(2.0, 2.0), (3.0, 1.5), (1.5, 3.0), (0.5, 0.5)])
    by_f = {tuple(ind.F): ind for ind in kept}
    assert by_f[(0.5, 0.5)].get("rank") > max(by_f[f].get("rank") for f in [(2.0, 2.0), (3.0, 1.5), (1.5, 3.0)])
    # one rung: plain rank and crowding (the dominated point goes)
    for ind in pop:
        ind.set("rung", None)
    plain = _rung_survival().do(problem, pop, n_survive=4)
    assert (3.0, 1.5) in {tuple(i.F) for i in plain} and (2.0, 2.0) not in {tuple(i.F) for i in plain}


def _small_space_problem():
    return make_problem("diffusion", {"space": {"base_channels": [8, 16], "channel_mults": [1, 2], "max_levels": 2,
                                                "max_depth": 2, "max_stage_layers": 1, "time_emb_dims": [16],
                                                "sampler_steps": [5], "norm_groups": [1], "heads": [1],
                                                "kernels": [3], "activations": ["silu"],
                                                "kind_weights": {"conv": 1.0}}})


def _fake_fitness(problem, x):
    """Deterministic, cheap objectives per key (no training)."""
    h = int(problem.key(x)[:8], 16)
    return Fitness({n: float((h >> (4 * i)) % 97) for i, n in enumerate(problem.objective_names)})


def test_a_candidate_asked_once_is_never_asked_again_even_while_in_flight():
    """Async shape: asks overlap tells; over a small space pymoo alone would repeat keys."""
    from evodiff_ray.strategies import make_strategy

    problem = _small_space_problem()
    s = make_strategy("nsga2", problem, pop_size=8, n_offsprings=4, seed=3)
    asked: list[str] = []
    in_flight = s.ask()
    asked += [problem.key(c.x) for c in in_flight]
    for _ in range(12):
        s.tell(in_flight[:4], [_fake_fitness(problem, c.x) for c in in_flight[:4]])
        in_flight = in_flight[4:]
        new = s.ask()
        if not new:
            break
        asked += [problem.key(c.x) for c in new]
        in_flight += new
    assert len(asked) >= 16
    assert len(asked) == len(set(asked)), "a key was asked twice"


def test_without_the_history_pymoo_repeats_keys_here():
    """The check above can fail: pymoo's own elimination lets evaluated keys come back."""
    problem = _small_space_problem()
    alg = nsga.make_algorithm(problem, 8, seed=3, n_offsprings=4)
    asked = []
    for _ in range(12):
        pop = nsga.ask(alg)
        if pop is None:
            break
        asked += [problem.key(ind.X) for ind in pop]
        nsga.tell(alg, pop, [_fake_fitness(problem, ind.X) for ind in pop], problem.objective_names,
                  problem.constraint_names)
    assert len(asked) > len(set(asked))
