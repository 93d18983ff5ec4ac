"""The fixed diffusion machinery: schedule, loss, DDIM sampler, training, fidelities."""

from __future__ import annotations

import math

import pytest
import torch

from evodiff_ray.data import load_dataset
from evodiff_ray.denoiser import build_denoiser
from evodiff_ray.diffusion.fidelity import FIDELITIES, Fidelity, get_fidelity
from evodiff_ray.diffusion.loss import draw_noise
from evodiff_ray.diffusion.sampler import ddim_sample, ddim_timesteps, sample_noise
from evodiff_ray.diffusion.schedule import linear_schedule, q_sample
from evodiff_ray.diffusion.train import NonFiniteLoss, heldout_loss, lr_at, train
from evodiff_ray.core.errors import UsageError
from evodiff_ray.genome import Genome

TINY = {
    "parameters": {"base_channels": 8, "channel_mults": [1, 2], "time_emb_dim": 16, "sampler_steps": 4, "norm_groups": 4},
    "layers": [
        {"kind": "residual", "side": "down", "level": 0},
        {"kind": "residual", "side": "mid", "level": 1},
        {"kind": "residual", "side": "up", "level": 0},
    ],
    "connections": [[0, 2]],
}



pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_schedule_is_monotone_and_q_sample_interpolates():
    s = linear_schedule()
    assert s.num_steps == 1000
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])
    x0, noise = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    early = q_sample(s, x0, torch.tensor([0, 0]), noise)
    late = q_sample(s, x0, torch.tensor([999, 999]), noise)
    assert torch.allclose(early, x0, atol=1e-3)
    assert late.abs().max() < 0.01


def test_draw_noise_is_reproducible_from_the_generator():
    s = linear_schedule()
    a = draw_noise(s, (4, 1, 8, 8), torch.Generator().manual_seed(3))
    b = draw_noise(s, (4, 1, 8, 8), torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].min() >= 0 and a[0].max() < 1000


def test_ddim_timesteps_distinct_descending():
    s = linear_schedule()
    for steps in (1, 5, 20, 1000, 5000):
        ts = ddim_timesteps(s, steps)
        assert ts == sorted(set(ts), reverse=True)
        assert ts[0] == 999 and len(ts) == min(steps, 1000)


def test_ddim_is_deterministic_and_keeps_shape():
    g = Genome.from_dict(TINY)
    torch.manual_seed(0)
    net = build_denoiser(g).eval()
    s = linear_schedule()
    noise = sample_noise((3, 1, 8, 8), seed=7)
    a = ddim_sample(net, s, noise, steps=4)
    b = ddim_sample(net, s, sample_noise((3, 1, 8, 8), seed=7), steps=4)
    assert a.shape == (3, 1, 8, 8)
    assert torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, ddim_sample(net, s, sample_noise((3, 1, 8, 8), seed=8), steps=4))


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = Fidelity("t", train_steps=100, batch_size=8, lr=1e-2, warmup_fraction=0.1)
    lrs = [lr_at(i, f) for i in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1e-2)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 1e-4


def test_training_is_seeded_and_lowers_the_loss(digits):
    g = Genome.from_dict(TINY)
    fid = Fidelity("t", train_steps=40, batch_size=32, lr=3e-3, ema_decay=0.9)
    s = linear_schedule()

    def run(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_denoiser(g)
        res = train(net, digits.train, s, fid, seed=seed)
        return res, heldout_loss(res.model, digits.heldout, s, seed=1)

    (r1, h1), (r2, h2) = run(0), run(0)
    assert r1.final_loss == r2.final_loss and h1 == h2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = build_denoiser(g).eval()
    assert h1 < heldout_loss(untrained, digits.heldout, s, seed=1)


def test_exploding_training_raises_non_finite_loss(digits):
    g = Genome.from_dict(TINY)
    fid = Fidelity("boom", train_steps=200, batch_size=16, lr=1e12, warmup_fraction=0.0, grad_clip=0.0, ema_decay=0.0)
    with pytest.raises(NonFiniteLoss):
        train(build_denoiser(g), digits.train, linear_schedule(), fid, seed=0)


def test_on_step_hook_can_abort_training(digits):
    class Stop(Exception):
        pass

    def hook(step):
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        train(build_denoiser(Genome.from_dict(TINY)), digits.train, linear_schedule(), FIDELITIES["quick"], 0, on_step=hook)


def test_fidelities_are_typed_and_ordered():
    assert list(FIDELITIES) == ["smoke", "quick", "standard", "full"]
    budgets = [f.train_steps * f.batch_size for f in FIDELITIES.values()]
    assert budgets == sorted(budgets)
    assert get_fidelity("quick") is FIDELITIES["quick"]
    assert get_fidelity(FIDELITIES["full"]) is FIDELITIES["full"]
    assert FIDELITIES["quick"].scaled(4).train_steps == 4 * FIDELITIES["quick"].train_steps
    with pytest.raises(UsageError, match="unknown fidelity"):
        get_fidelity("warp")
    assert math.isfinite(FIDELITIES["quick"].to_dict()["lr"])
