"""Random search: uniform in the bounds or over the whole genome space, unique, seeded."""

import numpy as np

from evodiff_ray.genome import Genome
from evodiff_ray.problems import make_problem
from evodiff_ray.strategies import make_strategy


def test_vector_draws_are_uniform_in_the_bounds_and_seeded():
    p = make_problem("zdt1", {"n_var": 3})
    s = make_strategy("random", p, pop_size=2000, n_offsprings=5, seed=1)
    X = np.array([c.x for c in s.ask()])
    assert X.shape == (2000, 3) and X.min() >= 0 and X.max() <= 1
    assert np.allclose(X.mean(axis=0), 0.5, atol=0.03) and np.allclose(X.var(axis=0), 1 / 12, atol=0.01)
    assert len(s.ask()) == 5   # later asks: n_offsprings
    again = make_strategy("random", p, pop_size=2000, n_offsprings=5, seed=1).ask()
    assert np.array_equal(X, np.array([c.x for c in again]))


def test_genome_draws_ignore_the_complexity_schedule_and_never_repeat():
    p = make_problem("diffusion", {})
    s = make_strategy("random", p, pop_size=300, n_offsprings=None, seed=3)
    genomes = [c.x for c in s.ask()] + [c.x for c in s.ask()]
    assert len({g.key() for g in genomes}) == 600
    assert all(Genome.from_dict(g.to_dict()) == g for g in genomes)
    first = p.space.limits(0)   # what NSGA-II's sampler may use in generation 0
    assert any(g.parameters["base_channels"] > max(first.base_channels) for g in genomes)
    assert any(g.depth > first.max_depth for g in genomes)


def test_a_small_space_is_exhausted_not_repeated():
    p = make_problem("diffusion", {"space": {"base_channels": [8], "channel_mults": [1], "max_levels": 1,
                                             "max_depth": 1, "max_stage_layers": 1, "time_emb_dims": [16],
                                             "sampler_steps": [5], "norm_groups": [1], "heads": [1],
                                             "kernels": [3], "activations": ["silu"],
                                             "kind_weights": {"conv": 1.0}}})
    s = make_strategy("random", p, pop_size=100, n_offsprings=None, seed=0)
    drawn = s.ask()
    assert 1 <= len(drawn) < 20 and len({p.key(c.x) for c in drawn}) == len(drawn)
    assert s.ask() == []   # nothing new left: the loop stops
