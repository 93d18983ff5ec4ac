"""Analytic cost model: exact parameter counts, scaling of FLOPs and bytes."""

import numpy as np
import pytest

from evodiff_ray.cost import dominant_layer, estimate, layer_costs
from evodiff_ray.denoiser import build_denoiser
from evodiff_ray.genome import Genome
from evodiff_ray.operators import sample_population
from evodiff_ray.space import SearchSpace


def test_param_count_matches_the_built_module_exactly():
    gs = sample_population(SearchSpace(), 40, np.random.default_rng(3), generation=10**6)
    for g in gs:
        model = build_denoiser(g, in_channels=1)
        assert estimate(g).params == sum(p.numel() for p in model.parameters()), g.to_json()
    g = gs[0]
    assert estimate(g, in_channels=3).params == sum(p.numel() for p in build_denoiser(g, 3).parameters())


def test_flops_and_bytes_scale_with_batch_and_resolution():
    g = Genome.load("evodiff_ray/assets/baseline_unet.json")
    a, b = estimate(g, resolution=8, batch=1), estimate(g, resolution=8, batch=4)
    assert b.flops_per_step == pytest.approx(4 * a.flops_per_step, rel=0.01)
    assert b.activation_bytes_per_step == 4 * a.activation_bytes_per_step
    assert estimate(g, resolution=16, batch=1).flops_per_step > 3.5 * a.flops_per_step
    assert a.sampling_flops == 20 * a.flops_per_step
    assert a.params == b.params


def test_dominant_layer_is_high_resolution_attention():
    d = {"parameters": {"base_channels": 32, "channel_mults": [1, 1], "norm_groups": 8},
         "layers": [{"kind": "attention", "side": "down", "level": 0, "heads": 1},
                    {"kind": "conv", "side": "down", "level": 1, "kernel": 1},
                    {"kind": "activation", "side": "up", "level": 0}]}
    g = Genome.from_dict(d)
    assert dominant_layer(g, resolution=32) == 0
    names = [c.name for c in layer_costs(g)]
    assert names == ["time_mlp", "stem", "layers[0]", "down1", "layers[1]", "up1", "layers[2]", "head"]
