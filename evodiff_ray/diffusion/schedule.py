"""The noise schedule: a discrete DDPM variance schedule, fixed for every candidate."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete-time DDPM schedule with ``T`` steps.

    Attributes:
        betas: ``(T,)`` float64 per-step noise variances.
        alphas_cumprod: ``(T,)`` float64 ``prod_{s<=t} (1 - beta_s)``, the signal fraction.
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    @property
    def num_steps(self) -> int:
        return int(self.betas.shape[0])

    def describe(self) -> dict:
        """JSON description (joins the evaluation settings)."""
        return {
            "kind": "linear",
            "T": self.num_steps,
            "beta_start": float(self.betas[0]),
            "beta_end": float(self.betas[-1]),
        }


def linear_schedule(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """Ho et al.'s linear beta schedule.

    Args:
        num_steps: number of diffusion steps ``T``.
        beta_start: variance of the first step.
        beta_end: variance of the last step.
    """
    betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    return NoiseSchedule(betas=betas, alphas_cumprod=torch.cumprod(1.0 - betas, dim=0))


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Noise clean images to timestep ``t``: ``sqrt(a_t) x0 + sqrt(1 - a_t) noise``.

    Args:
        schedule: the noise schedule.
        x0: ``(B, C, H, W)`` clean images.
        t: ``(B,)`` integer timesteps in ``[0, T)``.
        noise: ``(B, C, H, W)`` standard normal noise.
    """
    a = schedule.alphas_cumprod.to(x0.device)[t.to(x0.device)].to(x0.dtype)[:, None, None, None]  # (B,1,1,1)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise
