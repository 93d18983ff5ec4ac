"""pymoo NSGA-II with the genome operators on a cheap analytic objective."""

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.problem import Problem
from pymoo.problems.static import StaticProblem

from evodiff_ray.cost import estimate
from evodiff_ray.operators import genome_operators
from evodiff_ray.space import SearchSpace


def test_nsga2_runs_generations_without_duplicate_keys():
    space = SearchSpace()
    problem = Problem(n_var=1, n_obj=2, n_ieq_constr=3, vtype=object)
    algo = NSGA2(pop_size=16, **genome_operators(space))
    algo.setup(problem, seed=1, termination=("n_gen", 5))
    seen_generations = []
    while algo.has_next():
        pop = algo.ask()
        genomes = [x[0] for x in pop.get("X")]
        keys = [g.key() for g in genomes]
        assert len(set(keys)) == len(keys), "duplicate genome in one batch"
        F = np.array([[estimate(g).params, -g.depth] for g in genomes], dtype=float)
        G = np.array([list(space.constraints(g).values()) for g in genomes])
        Evaluator().eval(StaticProblem(problem, F=F, G=G), pop)
        algo.tell(infills=pop)
        pkeys = [x[0].key() for x in algo.pop.get("X")]
        assert len(set(pkeys)) == len(pkeys), "duplicate genome in the population"
        seen_generations.append(max(g.generation for g in genomes))
    assert algo.n_gen >= 5
    assert seen_generations[-1] > 0  # offspring carry their generation
    kids = [x[0] for x in algo.pop.get("X") if x[0].generation > 0]
    assert kids and all(k.parents for k in kids)
