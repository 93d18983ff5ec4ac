"""SearchSpace: constraints, complexity schedule, configuration errors."""

import numpy as np
import pytest

from evodiff_ray.cost import estimate
from evodiff_ray.core.errors import UsageError
from evodiff_ray.genome import Genome
from evodiff_ray.operators import sample_population
from evodiff_ray.space import ComplexitySchedule, SearchSpace


def test_constraint_values_are_normalised_distances_to_the_limits():
    g = Genome.load("evodiff_ray/assets/baseline_unet.json")
    c = estimate(g, resolution=8, batch=256)
    mem_mb = (c.params * 4 + c.peak_activation_bytes) / 2**20
    s = SearchSpace(max_params=c.params * 2, max_memory_mb=mem_mb / 2, max_depth=6)
    g_vals = s.constraints(g)
    assert g_vals["params"] == pytest.approx(-0.5)
    assert g_vals["memory"] == pytest.approx(1.0)
    assert g_vals["depth"] == pytest.approx(0.0)
    tight = SearchSpace(max_params=c.params - 1)
    assert tight.constraints(g)["params"] > 0


def test_complexity_schedule_widens_over_generations():
    s = SearchSpace(schedule=ComplexitySchedule(start_fraction=0.25, full_at_generation=8))
    limits = [s.limits(g) for g in range(0, 12)]
    depths = [x.max_depth for x in limits]
    widths = [max(x.base_channels) for x in limits]
    assert depths == sorted(depths) and widths == sorted(widths)
    assert depths[0] < depths[-1] == s.max_depth
    assert widths[0] < widths[-1] == max(s.base_channels)
    off = SearchSpace(schedule=ComplexitySchedule(enabled=False))
    assert off.limits(0).max_depth == off.max_depth


def test_sampled_genomes_respect_the_schedule():
    s = SearchSpace(schedule=ComplexitySchedule(start_fraction=0.25, full_at_generation=10))
    early = sample_population(s, 60, np.random.default_rng(0), generation=0)
    late = sample_population(s, 60, np.random.default_rng(0), generation=10)
    lim = s.limits(0)
    assert all(g.depth <= lim.max_depth and g.parameters["base_channels"] in lim.base_channels for g in early)
    assert max(g.depth for g in late) > lim.max_depth
    assert max(g.parameters["base_channels"] for g in late) > max(lim.base_channels)


@pytest.mark.parametrize("kw, field", [
    ({"base_channels": (6, 8)}, "base_channels"),
    ({"max_levels": 5}, "max_levels"),
    ({"max_depth": 0}, "max_depth"),
    ({"resolution": 6, "max_levels": 3}, "max_levels"),
    ({"max_memory_mb": -1}, "max_memory_mb"),
])
def test_bad_space_settings_are_usage_errors(kw, field):
    with pytest.raises(UsageError, match=f"space.{field}"):
        SearchSpace(**kw)


def test_space_from_dict_round_trip_and_unknown_key():
    s = SearchSpace.from_dict({"base_channels": [8, 16], "schedule": {"start_fraction": 0.3}})
    assert s.base_channels == (8, 16) and s.schedule.start_fraction == 0.3
    assert SearchSpace.from_dict(s.to_dict()) == s
    with pytest.raises(UsageError, match="space.widths: unknown setting"):
        SearchSpace.from_dict({"widths": [8]})
