"""Hardware: Apple Silicon chip profiles, local detection, device helpers, prediction, targets.

Submodules (one concept each): :mod:`.chips` (the table), :mod:`.detect` (this
machine), :mod:`.device` (select/synchronize, no MPS fallback), :mod:`.budget` (memory
budget constraint), :mod:`.predict` (roofline latency and memory per device),
:mod:`.targets` (``--target`` and measure-or-predict), :mod:`.retarget` (Fitness for a
target). Import from the submodules; this package imports nothing heavy.
"""

from evodiff_ray.hardware.budget import DEFAULT_USABLE_FRACTION, memory_budget_mb, memory_constraint
from evodiff_ray.hardware.chips import CHIPS, ChipProfile, get_chip
from evodiff_ray.hardware.targets import Target, parse_target, parse_targets, plan_target

__all__ = [
    "CHIPS", "ChipProfile", "DEFAULT_USABLE_FRACTION", "Target", "get_chip", "memory_budget_mb",
    "memory_constraint", "parse_target", "parse_targets", "plan_target",
]
