"""The sampler: deterministic DDIM (eta = 0) with its starting noise injected."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from evodiff_ray.diffusion.schedule import NoiseSchedule


def ddim_timesteps(schedule: NoiseSchedule, steps: int) -> list[int]:
    """``steps`` timesteps evenly spaced from ``T-1`` down to 0 (distinct, descending)."""
    T = schedule.num_steps
    steps = max(1, min(int(steps), T))
    ts = torch.linspace(T - 1, 0, steps).round().long().tolist()
    return sorted(set(ts), reverse=True)


@torch.no_grad()
def ddim_sample(
    net: nn.Module,
    schedule: NoiseSchedule,
    noise: torch.Tensor,
    steps: int,
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Run deterministic DDIM from ``noise`` to images.

    The same ``noise`` always gives the same images: all randomness is in the argument.

    Args:
        net: the denoiser, ``forward(x, t)`` predicting epsilon.
        schedule: the fixed noise schedule.
        noise: ``(B, C, H, W)`` standard normal start, already on the net's device.
        steps: number of network evaluations (the genome's ``sampler_steps``).
        on_step: called with the step index before each network evaluation (time
            limits, fault injection); may raise to abort.

    Returns:
        ``(B, C, H, W)`` images, clamped to ``[-1, 1]``.
    """
    abar = schedule.alphas_cumprod.to(noise.device).to(noise.dtype)
    ts = ddim_timesteps(schedule, steps)
    x = noise
    x0 = noise
    for i, t in enumerate(ts):
        if on_step is not None:
            on_step(i)
        a = abar[t]
        a_prev = abar[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), dtype=noise.dtype, device=noise.device)
        tt = torch.full((x.shape[0],), float(t), device=x.device)
        eps = net(x, tt)                                           # (B, C, H, W)
        x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()                 # consistent with the clamped x0
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x0


def sample_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard normal starting noise from a fresh CPU generator (device-independent)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=g)
