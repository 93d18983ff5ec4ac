"""Training budgets per fidelity: how much a candidate is trained before it is measured."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from evodiff_ray.core.errors import UsageError


@dataclass(frozen=True)
class Fidelity:
    """One training budget. Every candidate at a fidelity gets exactly this budget.

    Attributes:
        name: registry name (``quick``, ``standard``, ``full``).
        train_steps: optimiser steps.
        batch_size: images per step.
        lr: peak Adam learning rate.
        warmup_fraction: share of the steps spent warming the LR up linearly; the rest
            decays it to zero on a cosine (a schedule made for short budgets).
        ema_decay: decay of the weight EMA used for sampling and the held-out loss
            (0 disables the EMA).
        grad_clip: max gradient norm (keeps random architectures from blowing up).
    """

    name: str
    train_steps: int
    batch_size: int
    lr: float
    warmup_fraction: float = 0.05
    ema_decay: float = 0.99
    grad_clip: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (joins the evaluation settings, hence the cache key)."""
        return asdict(self)

    def scaled(self, factor: float, name: str | None = None) -> "Fidelity":
        """The same recipe with ``factor`` times the steps (the fidelity check uses 4x)."""
        return replace(self, name=name or f"{self.name}x{factor:g}", train_steps=int(round(self.train_steps * factor)))


#: The fixed budgets. ``quick`` is made for ranking: many small batches, a high peak LR
#: with warm-up and cosine decay, and EMA weights (each measured to raise the rank
#: correlation with longer training; see benchmarks/bench_evaluation.py). ``standard``
#: is ``quick`` with 4x the steps.
FIDELITIES: dict[str, Fidelity] = {
    # a pipeline check, not a measurement: seconds per candidate, quality barely above noise
    "smoke": Fidelity("smoke", train_steps=40, batch_size=32, lr=4e-3, ema_decay=0.0),
    "quick": Fidelity("quick", train_steps=400, batch_size=32, lr=4e-3, ema_decay=0.97),
    "standard": Fidelity("standard", train_steps=1600, batch_size=32, lr=4e-3, ema_decay=0.99),
    "full": Fidelity("full", train_steps=6000, batch_size=64, lr=2e-3, ema_decay=0.999),
}

def get_fidelity(fidelity: str | Fidelity) -> Fidelity:
    """Look a fidelity up by name (or pass a :class:`Fidelity` through).

    Raises:
        UsageError: for an unknown name.
    """
    if isinstance(fidelity, Fidelity):
        return fidelity
    try:
        return FIDELITIES[fidelity]
    except (KeyError, TypeError):
        raise UsageError(f"unknown fidelity {fidelity!r}; use one of {', '.join(FIDELITIES)}") from None
