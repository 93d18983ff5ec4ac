"""The Optuna strategy: both samplers over the flat encoding, constraints passed on, no repeats."""

import sys

import numpy as np
import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.genome import Genome
from evodiff_ray.problems import make_problem
from evodiff_ray.strategies import make_strategy
from evodiff_ray.strategies.nsga2 import FAILED_CONSTRAINT, PENALTY

pytest.importorskip("optuna")


def fake_fitness(problem, c, rng, fail=False):
    if fail:
        return Fitness.infeasible(problem.objective_names, "boom", problem.constraint_names)
    g = c.x
    return Fitness({"quality_fd": float(rng.random()), "latency_ms": float(g.depth),
                    "memory_mb": float(g.parameters["base_channels"])},
                   constraints={n: -0.5 for n in problem.constraint_names})


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_samplers_draw_valid_unique_genomes_and_see_constraints(sampler):
    p = make_problem("diffusion", {})
    s = make_strategy("optuna", p, pop_size=8, n_offsprings=4, seed=1, options={"sampler": sampler})
    rng = np.random.default_rng(0)
    keys = []
    for gen in range(5):
        cands = s.ask()
        assert len(cands) == (8 if gen == 0 else 4)
        assert all(Genome.from_dict(c.x.to_dict()) == c.x and c.generation == gen for c in cands)
        keys += [p.key(c.x) for c in cands]
        s.tell(cands, [fake_fitness(p, c, rng, fail=(i == 0)) for i, c in enumerate(cands)])
    assert len(set(keys)) == len(keys)
    told = [t for t in s.study.trials if t.values is not None]   # complete trials
    failed = [t for t in told if t.constraints[FAILED_CONSTRAINT] > 0]
    assert len(failed) >= 5 and all(v == PENALTY for t in failed for v in t.values)
    assert all(t.constraints["params"] == -0.5 for t in told if t not in failed)


def test_same_seed_and_tells_give_the_same_asks():
    p = make_problem("zdt1", {"n_var": 5})

    def run():
        s = make_strategy("optuna", p, pop_size=6, n_offsprings=None, seed=9, options={"sampler": "tpe"})
        out = []
        for _ in range(3):
            cands = s.ask()
            out += [p.key(c.x) for c in cands]
            s.tell(cands, [p.evaluate(c.x) for c in cands])
        return out

    assert run() == run()


def test_duplicates_are_told_not_handed_out():
    p = make_problem("diffusion", {"space": {"base_channels": [8], "channel_mults": [1], "max_levels": 1,
                                             "max_stage_layers": 1, "time_emb_dims": [16],
                                             "sampler_steps": [5], "norm_groups": [1], "heads": [1],
                                             "kernels": [3], "activations": ["silu"],
                                             "kind_weights": {"conv": 1.0}}})
    s = make_strategy("optuna", p, pop_size=4, n_offsprings=None, seed=0, options={"sampler": "nsga2"})
    rng = np.random.default_rng(1)
    seen = []
    for _ in range(4):
        cands = s.ask()
        seen += [p.key(c.x) for c in cands]
        s.tell(cands, [fake_fitness(p, c, rng) for c in cands])
    assert len(seen) == len(set(seen)) and len(s.study.trials) > len(seen)


def test_bad_options_and_a_missing_optuna_are_one_line_errors(monkeypatch):
    p = make_problem("zdt1", {})
    with pytest.raises(UsageError, match="sampler must be one of nsga2, tpe"):
        make_strategy("optuna", p, pop_size=4, n_offsprings=None, seed=0, options={"sampler": "cmaes"})
    with pytest.raises(UsageError, match="bad strategy_options"):
        make_strategy("optuna", p, pop_size=4, n_offsprings=None, seed=0, options={"colour": 1})
    monkeypatch.setitem(sys.modules, "optuna", None)   # as if it were not installed
    with pytest.raises(UsageError, match=r"pip install 'evodiff-ray\[optuna\]'") as e:
        make_strategy("optuna", p, pop_size=4, n_offsprings=None, seed=0)
    assert "\n" not in str(e.value)
