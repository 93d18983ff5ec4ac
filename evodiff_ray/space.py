"""SearchSpace: the choices for every gene, the constraints, and the complexity schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from evodiff_ray.cost import estimate
from evodiff_ray.core.errors import UsageError
from evodiff_ray.genome import ACTIVATIONS, KERNELS, KINDS, MAX_LEVELS, Genome


@dataclass(frozen=True)
class ComplexitySchedule:
    """Lets the allowed depth and width grow with the generation number.

    At generation ``g`` the operators may use a fraction
    ``start_fraction + (1 - start_fraction) * min(1, g / full_at_generation)`` of the
    space's maximum depth and width. Constraints always use the full limits.

    Attributes:
        enabled: False gives the full space from generation 0.
        start_fraction: fraction allowed at generation 0, in (0, 1].
        full_at_generation: generation from which the whole space is open.
    """

    enabled: bool = True
    start_fraction: float = 0.5
    full_at_generation: int = 10

    def fraction(self, generation: int) -> float:
        """Allowed fraction of depth and width at a generation."""
        if not self.enabled or self.full_at_generation <= 0:
            return 1.0
        ramp = min(1.0, max(0, generation) / self.full_at_generation)
        return self.start_fraction + (1.0 - self.start_fraction) * ramp


@dataclass(frozen=True)
class Limits:
    """What the operators may generate at one generation (see :class:`ComplexitySchedule`)."""

    max_depth: int
    base_channels: tuple[int, ...]


@dataclass(frozen=True)
class SearchSpace:
    """Bounds and choices for every gene, plus constraints.

    Attributes:
        base_channels: choices for the width at level 0.
        channel_mults: choices for each level's width multiplier (non-decreasing with level).
        max_levels: most resolution levels (the data resolution must allow them).
        time_emb_dims: choices for the time-embedding size.
        sampler_steps: choices for the sampler's step count (quality vs latency).
        norm_groups: choices for GroupNorm groups (filtered to divisors of the widths).
        heads: choices for attention heads.
        kernels: choices for conv and residual kernel sizes.
        activations: choices for activation layers.
        kind_weights: relative frequency of each layer kind when one is drawn.
        max_stage_layers: most layers in one (side, level) stage.
        max_depth: most layers in a genome.
        resolution: data resolution the cost model and memory constraint use.
        in_channels: image channels.
        eval_batch: batch size the memory constraint assumes (sampling batch).
        max_params: constraint: parameter count.
        max_memory_mb: constraint: analytic peak sampling memory (params + activations).
        schedule: the complexity schedule.
    """

    base_channels: tuple[int, ...] = (8, 16, 24, 32, 48, 64)
    channel_mults: tuple[int, ...] = (1, 2, 3, 4)
    max_levels: int = 3
    time_emb_dims: tuple[int, ...] = (16, 32, 64, 128)
    sampler_steps: tuple[int, ...] = (5, 10, 20, 40)
    norm_groups: tuple[int, ...] = (1, 2, 4, 8)
    heads: tuple[int, ...] = (1, 2, 4)
    kernels: tuple[int, ...] = (1, 3, 5)
    activations: tuple[str, ...] = ACTIVATIONS
    kind_weights: tuple[tuple[str, float], ...] = (
        ("residual", 0.4),
        ("conv", 0.2),
        ("attention", 0.15),
        ("norm", 0.1),
        ("activation", 0.15),
    )
    max_stage_layers: int = 3
    max_depth: int = 16
    resolution: int = 8
    in_channels: int = 1
    eval_batch: int = 256
    max_params: int = 3_000_000
    max_memory_mb: float = 512.0
    schedule: ComplexitySchedule = field(default_factory=ComplexitySchedule)

    def __post_init__(self):
        _check_space(self)

    # -- construction --------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "space") -> "SearchSpace":
        """Build from config data (lists become tuples); unknown keys are errors."""
        if not isinstance(d, dict):
            raise UsageError(f"{where}: must be a table of search-space settings")
        names = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if k not in names:
                raise UsageError(f"{where}.{k}: unknown setting; allowed: {', '.join(sorted(names))}")
            if k == "schedule":
                if not isinstance(v, dict):
                    raise UsageError(f"{where}.schedule: must be a table")
                try:
                    v = ComplexitySchedule(**v)
                except TypeError as e:
                    raise UsageError(f"{where}.schedule: {e}; allowed: enabled, start_fraction, full_at_generation")
            elif k == "kind_weights":
                if not isinstance(v, dict):
                    raise UsageError(f"{where}.kind_weights: must be a table of kind = weight")
                v = tuple((kk, float(w)) for kk, w in v.items())
            elif isinstance(v, list):
                v = tuple(v)
            kw[k] = v
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON data of the resolved space."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "schedule":
                v = {"enabled": v.enabled, "start_fraction": v.start_fraction, "full_at_generation": v.full_at_generation}
            elif f.name == "kind_weights":
                v = dict(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    # -- schedule ------------------------------------------------------------------
    def limits(self, generation: int = 0) -> Limits:
        """What operators may generate at ``generation``."""
        f = self.schedule.fraction(generation)
        depth = max(2, math.ceil(self.max_depth * f))
        widest = max(self.base_channels) * f
        widths = tuple(c for c in self.base_channels if c <= widest) or self.base_channels[:1]
        if len(widths) < 2 and len(self.base_channels) >= 2:
            widths = self.base_channels[:2]
        return Limits(max_depth=depth, base_channels=widths)

    # -- constraints ---------------------------------------------------------------
    constraint_names = ("params", "memory", "depth")

    def constraints(self, genome: Genome) -> dict[str, float]:
        """pymoo constraint values (``<= 0`` satisfied), normalised by each limit.

        ``params``: parameter count over ``max_params``; ``memory``: analytic peak
        sampling memory (float32 weights plus peak activations at ``eval_batch``) over
        ``max_memory_mb``; ``depth``: layers over ``max_depth``. Each is ``value/limit - 1``.
        """
        c = estimate(genome, resolution=self.resolution, batch=self.eval_batch, in_channels=self.in_channels)
        memory_mb = (c.params * 4 + c.peak_activation_bytes) / 2**20
        return {
            "params": c.params / self.max_params - 1.0,
            "memory": memory_mb / self.max_memory_mb - 1.0,
            "depth": genome.depth / self.max_depth - 1.0,
        }

    def groups_for(self, widths: list[int]) -> tuple[int, ...]:
        """The norm-group choices that divide every width."""
        return tuple(g for g in self.norm_groups if all(w % g == 0 for w in widths)) or (1,)

    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.kind_weights)


def _check_space(s: SearchSpace) -> None:
    def bad(name: str, why: str):
        raise UsageError(f"space.{name}: {why}")

    for name in ("base_channels", "channel_mults", "time_emb_dims", "sampler_steps", "norm_groups", "heads", "kernels"):
        v = getattr(s, name)
        if not isinstance(v, tuple) or not v or not all(isinstance(x, int) and x > 0 for x in v):
            bad(name, "must be a non-empty list of positive integers")
    if any(c % 4 for c in s.base_channels):
        bad("base_channels", "use multiples of 4")
    if any(t % 2 for t in s.time_emb_dims):
        bad("time_emb_dims", "use even sizes")
    if any(k not in KERNELS for k in s.kernels):
        bad("kernels", f"use values from {KERNELS}")
    if any(a not in ACTIVATIONS for a in s.activations):
        bad("activations", f"use values from {ACTIVATIONS}")
    if not 1 <= s.max_levels <= MAX_LEVELS:
        bad("max_levels", f"use 1..{MAX_LEVELS}")
    if s.resolution % (2 ** (s.max_levels - 1)):
        bad("max_levels", f"resolution {s.resolution} cannot be halved {s.max_levels - 1} times; lower max_levels")
    kinds = [k for k, _ in s.kind_weights]
    if not kinds or any(k not in KINDS for k in kinds) or any(w < 0 for _, w in s.kind_weights):
        bad("kind_weights", f"give non-negative weights for kinds among {KINDS}")
    if sum(w for _, w in s.kind_weights) <= 0:
        bad("kind_weights", "at least one weight must be positive")
    for name in ("max_stage_layers", "max_depth", "resolution", "in_channels", "eval_batch", "max_params"):
        v = getattr(s, name)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            bad(name, "must be a positive integer")
    if s.max_depth > 64:
        bad("max_depth", "use at most 64")
    if not (isinstance(s.max_memory_mb, (int, float)) and s.max_memory_mb > 0):
        bad("max_memory_mb", "must be a positive number")
    sch = s.schedule
    if not 0 < sch.start_fraction <= 1:
        bad("schedule.start_fraction", "use a number in (0, 1]")
    if not isinstance(sch.full_at_generation, int) or sch.full_at_generation < 0:
        bad("schedule.full_at_generation", "use a non-negative integer")
