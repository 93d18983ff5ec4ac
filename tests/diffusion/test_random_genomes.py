"""Every genome the search space can draw builds, keeps the shape and trains one step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evodiff_ray.denoiser import build_denoiser
from evodiff_ray.diffusion.loss import EpsilonLoss, draw_noise
from evodiff_ray.diffusion.sampler import ddim_sample
from evodiff_ray.diffusion.schedule import linear_schedule
from evodiff_ray.operators import sample_genome
from evodiff_ray.space import SearchSpace

DRAWS = 200


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_random_genomes_build_keep_shape_and_give_a_finite_loss():
    # the default space's structure (levels, kinds, layers, skips), at tiny widths
    space = SearchSpace(base_channels=(4, 8), time_emb_dims=(8, 16))
    rng = np.random.default_rng(1234)
    s = linear_schedule()
    loss_fn = EpsilonLoss(s)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, space.resolution, space.resolution, generator=gen) * 2 - 1
    keys = set()
    for i in range(DRAWS):
        g = sample_genome(space, rng, generation=10**6)
        keys.add(g.key())
        torch.manual_seed(i)
        net = build_denoiser(g, in_channels=1)
        t, noise = draw_noise(s, tuple(x0.shape), gen)
        out = net(x0, t.float())
        assert out.shape == x0.shape, g.to_json()
        loss = loss_fn(net, x0, t, noise)
        assert torch.isfinite(loss), g.to_json()
        loss.backward()
        if i % 20 == 0:  # the sampler too, on a tenth of them (it is the same forward)
            net.eval()
            y = ddim_sample(net, s, noise, steps=2)
            assert y.shape == x0.shape and torch.isfinite(y).all()
    assert len(keys) > DRAWS // 2  # the draws are genuinely different architectures
