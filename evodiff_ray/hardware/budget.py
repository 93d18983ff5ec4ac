"""Memory budget of a target chip, and the constraint a candidate's peak memory must meet.

On Apple Silicon the GPU shares the unified memory with macOS and every other app,
and Metal caps what one process's GPU work may keep resident at the device's
``recommendedMaxWorkingSetSize`` (``torch.mps.recommended_max_memory()``). The budget
is therefore:

* on a real Mac: the recommended working set it reports (:mod:`.detect`);
* for a chip profile: ``unified memory x usable fraction``, with
  :data:`DEFAULT_USABLE_FRACTION` = 0.75 unless told otherwise. **This fraction is an
  estimate.** Apple documents no formula; community measurements of
  ``recommendedMaxWorkingSetSize`` (llama.cpp, MLX and ds4 issue threads) report about
  2/3 of RAM on 8-16 GB machines and about 0.84 on 128 GB machines (107.5 GiB of 128
  on macOS 26, antirez/ds4#893). 0.75 sits between them; pass ``usable_fraction`` or
  measure on the machine when it matters.

A candidate over budget is infeasible: :func:`memory_constraint` gives pymoo's
``G > 0``, and :func:`over_budget_reason` the reason string, so a predicted peak can
stop a candidate *before* it is trained.
"""

from __future__ import annotations

import math

from evodiff_ray.core.errors import UsageError
from evodiff_ray.hardware.chips import ChipProfile, get_chip

DEFAULT_USABLE_FRACTION = 0.75
MIB = 2**20
#: name of the constraint in Fitness.constraints / pymoo's G
CONSTRAINT_NAME = "memory_budget"


def memory_budget_mb(
    chip: ChipProfile | str,
    usable_fraction: float | None = None,
    *,
    memory_gb: int | None = None,
    recommended_max_bytes: int | None = None,
) -> float:
    """The memory (MiB) one evaluation may use on a chip.

    Args:
        chip: a :class:`ChipProfile` or its name (``"m2-max"``).
        usable_fraction: share of unified memory usable by the GPU, in (0, 1]. None:
            ``recommended_max_bytes`` when given, else :data:`DEFAULT_USABLE_FRACTION`.
        memory_gb: which configuration (one of ``chip.memory_gb``); None: the smallest,
            so that the model fits every machine with this chip.
        recommended_max_bytes: Metal's recommended working set measured on a real Mac.

    Returns:
        The budget in MiB.

    Raises:
        UsageError: a fraction outside (0, 1], or a memory size the chip was not sold with.
    """
    profile = chip if isinstance(chip, ChipProfile) else get_chip(chip)
    if usable_fraction is not None and not (0 < usable_fraction <= 1):
        raise UsageError(f"usable_fraction {usable_fraction!r} must be in (0, 1], e.g. 0.75")
    if memory_gb is None:
        memory_gb = profile.memory_gb[0]
    elif memory_gb not in profile.memory_gb:
        sizes = ", ".join(str(m) for m in profile.memory_gb)
        raise UsageError(f"{profile.name} comes with {sizes} GB of unified memory, not {memory_gb}; pick one of those")
    if usable_fraction is None and recommended_max_bytes:
        return recommended_max_bytes / MIB
    fraction = DEFAULT_USABLE_FRACTION if usable_fraction is None else usable_fraction
    return memory_gb * 2**30 * fraction / MIB


def memory_constraint(peak_mb: float, budget_mb: float) -> float:
    """pymoo constraint value of a peak against a budget: ``peak / budget - 1`` (``> 0`` violates).

    Normalised like :meth:`~evodiff_ray.space.SearchSpace.constraints`; a NaN or infinite
    peak (a failed measurement) counts as violated (``inf``).
    """
    if budget_mb <= 0:
        raise ValueError("budget_mb must be positive")
    if peak_mb is None or not math.isfinite(peak_mb):
        return math.inf
    return float(peak_mb) / float(budget_mb) - 1.0


def over_budget_reason(peak_mb: float, budget_mb: float, *, predicted: bool, chip: str | None = None) -> str | None:
    """The infeasibility reason for a peak over budget, or None when it fits.

    Args:
        peak_mb: measured or predicted peak memory, MiB.
        budget_mb: the budget, MiB.
        predicted: the peak is a prediction (the candidate was not run on the target).
        chip: the target chip's name, for the message.
    """
    if memory_constraint(peak_mb, budget_mb) <= 0:
        return None
    how = "predicted" if predicted else "measured"
    on = f" on {chip}" if chip else ""
    return f"memory budget: {how} peak {peak_mb:.1f} MiB exceeds the {budget_mb:.0f} MiB budget{on}"
