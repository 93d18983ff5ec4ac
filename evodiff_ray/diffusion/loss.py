"""The training loss: DDPM epsilon-prediction MSE, with its randomness injected."""

from __future__ import annotations

import torch
from torch import nn

from evodiff_ray.diffusion.schedule import NoiseSchedule, q_sample


def draw_noise(
    schedule: NoiseSchedule, shape: tuple[int, ...], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Timesteps and noise for one batch, drawn on the CPU from ``generator``.

    Drawing on the CPU makes the draws identical on every device, so candidates and
    machines see the same random numbers (common random numbers).

    Returns:
        ``t (B,)`` int64 in ``[0, T)`` and ``noise`` of ``shape``.
    """
    t = torch.randint(0, schedule.num_steps, (shape[0],), generator=generator)
    noise = torch.randn(shape, generator=generator)
    return t, noise


class EpsilonLoss:
    """``E ||net(q_sample(x0, t, eps), t) - eps||^2`` with ``t`` uniform over ``[0, T)``.

    Args:
        schedule: the fixed noise schedule.
    """

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    def __call__(self, net: nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the predicted noise.

        Args:
            net: the denoiser, ``forward(x, t)``.
            x0: ``(B, C, H, W)`` clean images on the net's device.
            t: ``(B,)`` timesteps (from :func:`draw_noise`).
            noise: ``(B, C, H, W)`` noise (from :func:`draw_noise`).

        Returns:
            A scalar tensor.
        """
        noise = noise.to(x0.device)
        t = t.to(x0.device)
        xt = q_sample(self.schedule, x0, t, noise)
        return torch.mean((net(xt, t.float()) - noise) ** 2)
