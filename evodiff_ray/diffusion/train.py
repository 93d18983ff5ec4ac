"""Training: the fixed recipe every candidate gets (seeded, device-agnostic, budgeted)."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from evodiff_ray.diffusion.fidelity import Fidelity
from evodiff_ray.diffusion.loss import EpsilonLoss, draw_noise
from evodiff_ray.diffusion.schedule import NoiseSchedule


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss."""


@dataclass
class TrainResult:
    """What training produced.

    Attributes:
        model: the network to sample from (the EMA copy when the fidelity uses one).
        steps: optimiser steps taken.
        final_loss: mean training loss over the last 10% of the steps.
        seconds: wall time.
    """

    model: nn.Module
    steps: int
    final_loss: float
    seconds: float


def step_progress(progress: Callable[[str], None], total: int, label: str, every_s: float = 10.0,
                  then: Callable[[int], None] | None = None, clock: Callable[[], float] = time.monotonic
                  ) -> Callable[[int], None]:
    """An ``on_step`` for :func:`train` that reports ``label: step i/total (p%), ETA`` at most
    every ``every_s`` seconds, so a long training shows it is alive; ``then`` is called too.

    Args:
        progress: the one-line sink (stderr for the CLI).
        total: the training steps.
        label: what is trained (genome key and fidelity).
        every_s: least interval between lines.
        then: another ``on_step`` to chain (a time limit's check).
        clock: seconds, monotonic (for tests).
    """
    t0 = clock()
    last = [t0]

    def on_step(step: int) -> None:
        if then is not None:
            then(step)
        now = clock()
        if step > 0 and now - last[0] >= every_s:
            last[0] = now
            eta = (now - t0) / step * (total - step)
            progress(f"{label}: step {step}/{total} ({100 * step / total:.0f}%), "
                     f"{now - t0:.0f} s elapsed, ETA {eta:.0f} s")

    return on_step


def lr_at(step: int, fidelity: Fidelity) -> float:
    """Linear warm-up then cosine decay to zero, as a function of the step."""
    n = fidelity.train_steps
    warm = max(1, int(round(fidelity.warmup_fraction * n)))
    if step < warm:
        return fidelity.lr * (step + 1) / warm
    progress = (step - warm) / max(1, n - warm)
    return fidelity.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def _ema_update(ema: nn.Module, net: nn.Module, decay: float) -> None:
    # one fused call over all tensors: per-tensor Python calls dominate for small nets
    torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1.0 - decay)
    for be, b in zip(ema.buffers(), net.buffers()):
        be.copy_(b)


def train(
    net: nn.Module,
    data: torch.Tensor,
    schedule: NoiseSchedule,
    fidelity: Fidelity,
    seed: int,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``net`` with the epsilon loss for the fidelity's budget.

    Data order and noise come from CPU generators seeded by ``seed`` alone, so every
    candidate sees the same batches and draws (common random numbers) on any device.

    Args:
        net: the denoiser, already on its device.
        data: ``(N, C, H, W)`` training images in ``[-1, 1]`` (any device).
        schedule: the fixed noise schedule.
        fidelity: the budget.
        seed: seeds data order and noise.
        on_step: called with the step index before each step (time limits, fault
            injection); may raise to abort.

    Returns:
        A :class:`TrainResult`.

    Raises:
        NonFiniteLoss: when a loss is NaN or infinite.
    """
    t0 = time.perf_counter()
    device = next(net.parameters()).device
    loss_fn = EpsilonLoss(schedule)
    opt = torch.optim.Adam(net.parameters(), lr=fidelity.lr, foreach=True)
    ema = copy.deepcopy(net).eval() if fidelity.ema_decay > 0 else None
    order_gen = torch.Generator().manual_seed(int(seed))
    noise_gen = torch.Generator().manual_seed(int(seed) + 1)
    n = data.shape[0]
    perm, pos = torch.randperm(n, generator=order_gen), 0
    tail = max(1, fidelity.train_steps // 10)
    tail_losses: list[float] = []
    net.train()
    for step in range(fidelity.train_steps):
        if on_step is not None:
            on_step(step)
        if pos + fidelity.batch_size > n:
            perm, pos = torch.randperm(n, generator=order_gen), 0
        idx = perm[pos : pos + fidelity.batch_size]
        pos += fidelity.batch_size
        x0 = data[idx].to(device)                                   # (B, C, H, W)
        t, noise = draw_noise(schedule, tuple(x0.shape), noise_gen)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, fidelity)
        loss = loss_fn(net, x0, t, noise)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(f"non-finite training loss ({value}) at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if fidelity.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), fidelity.grad_clip, foreach=True)
        opt.step()
        if ema is not None:
            # warm-up of the EMA itself: early steps follow the weights more closely
            _ema_update(ema, net, min(fidelity.ema_decay, (1 + step) / (10 + step)))
        if step >= fidelity.train_steps - tail:
            tail_losses.append(value)
    net.eval()
    model = ema if ema is not None else net
    final = sum(tail_losses) / len(tail_losses) if tail_losses else float("nan")
    return TrainResult(model=model, steps=fidelity.train_steps, final_loss=final, seconds=time.perf_counter() - t0)


@torch.no_grad()
def heldout_loss(
    net: nn.Module, data: torch.Tensor, schedule: NoiseSchedule, seed: int, batch_size: int = 256
) -> float:
    """Mean epsilon loss on held-out images with fixed timesteps and noise.

    Args:
        net: the trained denoiser (eval mode).
        data: ``(N, C, H, W)`` held-out images in ``[-1, 1]``.
        schedule: the fixed noise schedule.
        seed: seeds the timesteps and noise (fixed -> comparable across candidates).
        batch_size: evaluation batch.
    """
    device = next(net.parameters()).device
    loss_fn = EpsilonLoss(schedule)
    gen = torch.Generator().manual_seed(int(seed))
    total, count = 0.0, 0
    for i in range(0, data.shape[0], batch_size):
        x0 = data[i : i + batch_size].to(device)
        t, noise = draw_noise(schedule, tuple(x0.shape), gen)
        total += float(loss_fn(net, x0, t, noise)) * x0.shape[0]
        count += x0.shape[0]
    return total / max(1, count)
