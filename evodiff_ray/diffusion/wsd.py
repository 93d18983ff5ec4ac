"""Warmup-stable-decay training that stops at a rung and continues later from saved state.

Multi-fidelity search trains a candidate in rungs. The learning rate warms up linearly
and then stays constant (the *trunk*), so training can stop after any number of trunk
steps and continue later exactly where it stopped. To measure quality at a rung, a copy
of the trunk takes a short linear *decay* of the learning rate to zero (the *branch*);
the branch is sampled from and then thrown away, and the trunk continues to the next
rung. So a candidate continued from a stored rung gets exactly the model it would have
got by training straight through the same steps on the same schedule.

The trunk's whole state (weights, EMA, Adam moments, data order, random generators) is
a flat dict of tensors and numbers: :func:`state_bytes` and :func:`state_from_bytes`
write and read it with ``torch.save`` / ``torch.load(weights_only=True)``, which
refuses anything but tensors and plain containers, so nothing is unpickled.
"""

from __future__ import annotations

import copy
import io
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from evodiff_ray.diffusion.fidelity import Fidelity
from evodiff_ray.diffusion.loss import EpsilonLoss, draw_noise
from evodiff_ray.diffusion.schedule import NoiseSchedule
from evodiff_ray.diffusion.train import NonFiniteLoss, _ema_update


@dataclass(frozen=True)
class Rungs:
    """The rungs of a multi-fidelity search.

    Attributes:
        fidelity: the recipe (batch size, peak LR, EMA, clipping). Its ``train_steps``
            is the budget of rung ``base`` and sets the warm-up length.
        factors: each rung's budget as a multiple of ``fidelity.train_steps``, increasing
            (e.g. ``(0.25, 1, 4)``: a quarter, once and four times ``quick``).
        decay_fraction: share of a rung's budget spent in its decay branch.
    """

    fidelity: Fidelity
    factors: tuple[float, ...] = (0.25, 1.0, 4.0)
    decay_fraction: float = 0.1

    def __post_init__(self):
        if not self.factors or any(b <= a for a, b in zip(self.factors, self.factors[1:])) or self.factors[0] <= 0:
            raise ValueError(f"rung factors must be positive and increasing, got {list(self.factors)}")
        if not 0 < self.decay_fraction < 1:
            raise ValueError(f"decay_fraction must be in (0, 1), got {self.decay_fraction}")

    def __len__(self) -> int:
        return len(self.factors)

    @property
    def warmup_steps(self) -> int:
        """Linear warm-up steps, shared by every rung (from the base fidelity's recipe)."""
        return max(1, int(round(self.fidelity.warmup_fraction * self.fidelity.train_steps)))

    def budget(self, rung: int) -> int:
        """Total optimiser steps behind rung ``rung``'s measurement (trunk + decay)."""
        return int(round(self.factors[rung] * self.fidelity.train_steps))

    def decay_steps(self, rung: int) -> int:
        """Steps of rung ``rung``'s decay branch."""
        return max(1, int(round(self.decay_fraction * self.budget(rung))))

    def trunk_steps(self, rung: int) -> int:
        """Trunk (warm-up + stable) steps before rung ``rung``'s branch."""
        return self.budget(rung) - self.decay_steps(rung)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (joins the evaluation settings, hence the cache key)."""
        return {"fidelity": self.fidelity.to_dict(), "factors": list(self.factors),
                "decay_fraction": self.decay_fraction}


def trunk_lr(step: int, peak: float, warmup: int) -> float:
    """The trunk's learning rate: linear warm-up over ``warmup`` steps, then ``peak``."""
    return peak * (step + 1) / warmup if step < warmup else peak


def decay_lr(i: int, n: int, peak: float) -> float:
    """Step ``i`` of an ``n``-step branch: linear from ``peak`` down to ``peak / n``."""
    return peak * (n - i) / n


@dataclass
class TrainState:
    """Everything training needs to continue: the trunk after ``step`` optimiser steps.

    Attributes:
        net: the trained network (trunk weights).
        ema: the EMA copy (None when the recipe has no EMA).
        opt: Adam over ``net``'s parameters.
        order_gen, noise_gen: CPU generators for data order and noise.
        perm, pos: the current epoch's permutation and the position in it.
        step: trunk steps taken.
        seconds: wall time spent training so far (all rungs).
    """

    net: nn.Module
    ema: nn.Module | None
    opt: torch.optim.Optimizer
    order_gen: torch.Generator
    noise_gen: torch.Generator
    perm: torch.Tensor
    pos: int = 0
    step: int = 0
    seconds: float = 0.0
    tail_losses: list[float] = field(default_factory=list)


def start(net: nn.Module, n_data: int, fidelity: Fidelity, seed: int) -> TrainState:
    """A fresh trunk for ``net`` (already on its device), seeded like :func:`~.train.train`."""
    order_gen = torch.Generator().manual_seed(int(seed))
    noise_gen = torch.Generator().manual_seed(int(seed) + 1)
    return TrainState(
        net=net,
        ema=copy.deepcopy(net).eval() if fidelity.ema_decay > 0 else None,
        opt=torch.optim.Adam(net.parameters(), lr=fidelity.lr, foreach=True),
        order_gen=order_gen,
        noise_gen=noise_gen,
        perm=torch.randperm(n_data, generator=order_gen),
    )


def _steps(state: TrainState, data: torch.Tensor, schedule: NoiseSchedule, fidelity: Fidelity,
           lrs, on_step: Callable[[int], None] | None) -> None:
    """Take one optimiser step per learning rate in ``lrs`` (advances ``state`` in place)."""
    device = next(state.net.parameters()).device
    loss_fn = EpsilonLoss(schedule)
    n = data.shape[0]
    state.net.train()
    for lr in lrs:
        if on_step is not None:
            on_step(state.step)
        if state.pos + fidelity.batch_size > n:
            state.perm, state.pos = torch.randperm(n, generator=state.order_gen), 0
        idx = state.perm[state.pos : state.pos + fidelity.batch_size]
        state.pos += fidelity.batch_size
        x0 = data[idx].to(device)                                   # (B, C, H, W)
        t, noise = draw_noise(schedule, tuple(x0.shape), state.noise_gen)
        for group in state.opt.param_groups:
            group["lr"] = lr
        loss = loss_fn(state.net, x0, t, noise)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(f"non-finite training loss ({value}) at step {state.step}")
        state.opt.zero_grad(set_to_none=True)
        loss.backward()
        if fidelity.grad_clip > 0:
            nn.utils.clip_grad_norm_(state.net.parameters(), fidelity.grad_clip, foreach=True)
        state.opt.step()
        if state.ema is not None:
            _ema_update(state.ema, state.net, min(fidelity.ema_decay, (1 + state.step) / (10 + state.step)))
        state.tail_losses = (state.tail_losses + [value])[-50:]
        state.step += 1
    state.net.eval()


def advance(state: TrainState, data: torch.Tensor, schedule: NoiseSchedule, rungs: Rungs, to_step: int,
            on_step: Callable[[int], None] | None = None) -> TrainState:
    """Train the trunk until it has taken ``to_step`` steps (no-op when it already has).

    Args:
        state: from :func:`start` or :func:`state_from_bytes`.
        data: ``(N, C, H, W)`` training images in ``[-1, 1]``.
        schedule: the fixed noise schedule.
        rungs: the rung recipe (peak LR, warm-up, batch size).
        to_step: trunk steps to reach.
        on_step: called with the step index before each step; may raise to abort.
    """
    t0 = time.perf_counter()
    fid, warm = rungs.fidelity, rungs.warmup_steps
    _steps(state, data, schedule, fid, (trunk_lr(s, fid.lr, warm) for s in range(state.step, to_step)), on_step)
    state.seconds += time.perf_counter() - t0
    return state


def branch(state: TrainState, data: torch.Tensor, schedule: NoiseSchedule, rungs: Rungs, rung: int,
           on_step: Callable[[int], None] | None = None) -> nn.Module:
    """The model to measure at ``rung``: a copy of the trunk after its decay branch.

    The trunk must stand at ``rungs.trunk_steps(rung)``; it is left untouched (its
    generators included), so it can continue to the next rung afterwards.

    Returns:
        The branch's sampling network (its EMA copy when the recipe uses one), in eval mode.
    """
    if state.step != rungs.trunk_steps(rung):
        raise ValueError(f"trunk is at step {state.step}, rung {rung} branches at {rungs.trunk_steps(rung)}")
    t0 = time.perf_counter()
    b = copy_state(state)
    n = rungs.decay_steps(rung)
    _steps(b, data, schedule, rungs.fidelity, (decay_lr(i, n, rungs.fidelity.lr) for i in range(n)), on_step)
    state.seconds += time.perf_counter() - t0
    model = b.ema if b.ema is not None else b.net
    return model.eval()


def copy_state(state: TrainState) -> TrainState:
    """An independent copy (weights, optimiser and generators) of a trunk."""
    net = copy.deepcopy(state.net)
    opt = torch.optim.Adam(net.parameters(), lr=state.opt.param_groups[0]["lr"], foreach=True)
    opt.load_state_dict(copy.deepcopy(state.opt.state_dict()))
    order_gen, noise_gen = torch.Generator(), torch.Generator()
    order_gen.set_state(state.order_gen.get_state())
    noise_gen.set_state(state.noise_gen.get_state())
    return TrainState(net=net, ema=copy.deepcopy(state.ema) if state.ema is not None else None, opt=opt,
                      order_gen=order_gen, noise_gen=noise_gen, perm=state.perm.clone(), pos=state.pos,
                      step=state.step, seconds=state.seconds, tail_losses=list(state.tail_losses))


def state_bytes(state: TrainState) -> bytes:
    """The trunk as bytes: tensors and plain numbers only (read back with ``weights_only``)."""
    blob = {
        "format": 1,
        "net": {k: v.detach().cpu() for k, v in state.net.state_dict().items()},
        "ema": None if state.ema is None else {k: v.detach().cpu() for k, v in state.ema.state_dict().items()},
        "opt": state.opt.state_dict(),
        "order_gen": state.order_gen.get_state(),
        "noise_gen": state.noise_gen.get_state(),
        "perm": state.perm,
        "pos": int(state.pos),
        "step": int(state.step),
        "seconds": float(state.seconds),
        "tail_losses": [float(v) for v in state.tail_losses],
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    return buf.getvalue()


def state_from_bytes(data: bytes, net: nn.Module, fidelity: Fidelity) -> TrainState:
    """Rebuild a trunk saved by :func:`state_bytes` around a freshly built ``net``.

    ``net`` must be built from the same genome (and on the device to train on); the
    load refuses anything but tensors and plain containers.

    Raises:
        ValueError: the bytes are not a trunk state, or do not fit ``net``.
    """
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable blob is the same error to the caller
        raise ValueError(f"not a training state ({type(e).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != 1:
        raise ValueError("not a training state (unknown format)")
    device = next(net.parameters()).device
    try:
        net.load_state_dict(blob["net"])
        ema = None
        if blob["ema"] is not None:
            ema = copy.deepcopy(net).eval()
            ema.load_state_dict(blob["ema"])
        opt = torch.optim.Adam(net.parameters(), lr=fidelity.lr, foreach=True)
        opt.load_state_dict(blob["opt"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise ValueError(f"training state does not fit this network ({str(e)[:200]})") from None
    for group_state in opt.state.values():  # Adam's moments follow the weights' device
        for k, v in group_state.items():
            if torch.is_tensor(v) and k != "step":
                group_state[k] = v.to(device)
    order_gen, noise_gen = torch.Generator(), torch.Generator()
    order_gen.set_state(blob["order_gen"])
    noise_gen.set_state(blob["noise_gen"])
    return TrainState(net=net, ema=ema, opt=opt, order_gen=order_gen, noise_gen=noise_gen, perm=blob["perm"],
                      pos=int(blob["pos"]), step=int(blob["step"]), seconds=float(blob["seconds"]),
                      tail_losses=list(blob["tail_losses"]))
