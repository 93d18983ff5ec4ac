"""Operators: validity over many draws, determinism, diversity, lineage, the cost-aware edit."""

import numpy as np
import pytest

from evodiff_ray.cost import dominant_layer, estimate
from evodiff_ray.genome import Genome
from evodiff_ray.operators import (MutationRates, crossover, diversity, genome_distance, mutate,
                                   sample_genome, sample_population)
from evodiff_ray.operators.mutation import reduce_cost
from evodiff_ray.operators.repair import repair, to_draft
from evodiff_ray.space import SearchSpace

SPACE = SearchSpace()


def _revalidate(g: Genome) -> Genome:
    """Round-trip through the strict loader: a valid genome must load unchanged."""
    back = Genome.from_dict(g.to_dict())
    assert back.key() == g.key()
    return back


def test_500_sampled_mutated_and_crossed_genomes_are_valid():
    rng = np.random.default_rng(42)
    pop = sample_population(SPACE, 50, rng, generation=10**6)
    for _ in range(500):
        a, b = pop[int(rng.integers(len(pop)))], pop[int(rng.integers(len(pop)))]
        g = sample_genome(SPACE, rng, generation=int(rng.integers(0, 20)))
        m = mutate(a, SPACE, rng)
        c1, c2 = crossover(a, b, SPACE, rng)
        for x in (g, m, c1, c2):
            _revalidate(x)
            assert x.levels <= SPACE.max_levels and x.depth <= SPACE.max_depth
        pop[int(rng.integers(len(pop)))] = m


def test_operators_are_deterministic_under_a_seed():
    def run(seed):
        rng = np.random.default_rng(seed)
        pop = sample_population(SPACE, 10, rng)
        kids = [mutate(g, SPACE, rng) for g in pop]
        kids += list(crossover(pop[0], pop[1], SPACE, rng))
        return [g.key() for g in pop + kids]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_initial_population_spans_sizes_attention_and_depth():
    pop = sample_population(SPACE, 40, np.random.default_rng(1))
    params = [estimate(g).params for g in pop]
    depths = [g.depth for g in pop]
    assert max(params) > 20 * min(params)
    assert any(g.has_attention() for g in pop) and not all(g.has_attention() for g in pop)
    assert max(depths) - min(depths) >= 4
    assert len({g.key() for g in pop}) == len(pop)
    assert len({g.levels for g in pop}) == SPACE.max_levels


def test_mutation_changes_the_genome_and_records_lineage():
    rng = np.random.default_rng(0)
    for g in sample_population(SPACE, 30, rng):
        child = mutate(g, SPACE, rng, generation=5, parents=(g.key(),))
        assert child.key() != g.key()
        assert child.generation == 5 and child.parents == (g.key(),)


def test_each_edit_alone_can_act():
    rng = np.random.default_rng(0)
    pop = sample_population(SPACE, 20, rng, generation=10**6)
    for name in ("change_kind", "add_layer", "remove_layer", "change_attention", "rewire", "change_parameter"):
        rates = MutationRates(**{n: 0.0 for n in ("change_kind", "add_layer", "remove_layer", "change_attention",
                                                   "rewire", "change_parameter", "analysis")} | {name: 1.0})
        changed = sum(mutate(g, SPACE, rng, rates).key() != g.key() for g in pop)
        assert changed >= 15, name


def test_crossover_children_mix_both_parents():
    rng = np.random.default_rng(5)
    pop = sample_population(SPACE, 30, rng, generation=10**6)
    mixed = 0
    for i in range(0, 30, 2):
        a, b = pop[i], pop[i + 1]
        c1, c2 = crossover(a, b, SPACE, rng, generation=3)
        assert c1.parents == (a.key(), b.key()) and c1.generation == 3
        da, db = genome_distance(c1, a), genome_distance(c1, b)
        mixed += (0 < da and 0 < db)
    assert mixed >= 10


def test_analysis_driven_edit_lowers_the_dominant_cost():
    d = {"parameters": {"base_channels": 32, "channel_mults": [1, 2], "norm_groups": 8},
         "layers": [{"kind": "attention", "side": "down", "level": 0, "heads": 4},
                    {"kind": "norm", "side": "down", "level": 1},
                    {"kind": "conv", "side": "up", "level": 0, "kernel": 1}]}
    g = Genome.from_dict(d)
    assert dominant_layer(g, resolution=SPACE.resolution, batch=SPACE.eval_batch) == 0
    draft = to_draft(g)
    assert reduce_cost(draft, SPACE, np.random.default_rng(0), g)
    child = repair(draft, SPACE)
    att = [x for x in child.layers if x["kind"] == "attention"]
    assert att and att[0]["level"] == 1  # attention moved to the lower resolution
    assert estimate(child, resolution=8, batch=256).flops_per_step < estimate(g, resolution=8, batch=256).flops_per_step


def test_analysis_mutation_can_be_switched_off():
    rng = np.random.default_rng(0)
    pop = sample_population(SPACE, 40, rng, generation=10**6)
    on = MutationRates(change_kind=0, add_layer=0, remove_layer=0, change_attention=0, rewire=0,
                       change_parameter=0, analysis=1.0)
    off = MutationRates(change_kind=0, add_layer=0, remove_layer=0, change_attention=0, rewire=0,
                        change_parameter=1e-9, analysis=0.0)
    cheaper_on = np.mean([estimate(mutate(g, SPACE, rng, on), resolution=8, batch=256).flops_per_step <
                          estimate(g, resolution=8, batch=256).flops_per_step for g in pop])
    cheaper_off = np.mean([estimate(mutate(g, SPACE, rng, off), resolution=8, batch=256).flops_per_step <
                           estimate(g, resolution=8, batch=256).flops_per_step for g in pop])
    assert cheaper_on > 0.9 and cheaper_on > cheaper_off


def test_diversity_measure():
    pop = sample_population(SPACE, 20, np.random.default_rng(0))
    assert diversity([pop[0]] * 5) == 0.0
    assert 0.2 < diversity(pop) <= 1.0
    assert diversity(pop[:1]) == 0.0


def test_mutation_rates_validation():
    from evodiff_ray.core.errors import UsageError

    with pytest.raises(UsageError, match="mutation.rewire"):
        MutationRates.from_dict({"rewire": 2})
    with pytest.raises(UsageError, match="unknown rate"):
        MutationRates.from_dict({"swap": 0.1})
