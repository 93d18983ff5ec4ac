"""Fitness for a target chip: predicted device objectives, labelled, and the memory budget.

Pure functions on :class:`~evodiff_ray.core.fitness.Fitness` records, for the
diffusion problem to call (it owns *when*; this module owns *what*):

* :func:`precheck_memory` before training: a candidate whose predicted peak is over
  the target's budget is infeasible at once and is not trained or sampled.
* :func:`retarget_fitness` after a measurement made elsewhere (predict mode): the
  device objectives become the target's predictions, named in
  ``measured_on["predicted"]``, the values measured on the evaluating device move to
  ``extras``, and the memory-budget constraint is applied.
* :func:`apply_memory_budget` after a measurement on the target (measure mode).
"""

from __future__ import annotations

import dataclasses
import math

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.genome import Genome
from evodiff_ray.hardware.budget import CONSTRAINT_NAME, memory_constraint, over_budget_reason
from evodiff_ray.hardware.predict import Predictor
from evodiff_ray.hardware.targets import DEVICE_OBJECTIVES


def precheck_memory(genome: Genome, predictor: Predictor, budget_mb: float, chip: str | None = None) -> str | None:
    """The reason to skip a candidate whose *predicted* peak exceeds the budget, or None."""
    return over_budget_reason(predictor.memory_mb(genome), budget_mb, predicted=True, chip=chip)


def apply_memory_budget(fit: Fitness, budget_mb: float, *, chip: str | None = None,
                        predicted: bool = False, objective: str = "memory_mb") -> Fitness:
    """A copy with the ``memory_budget`` constraint set from ``fit.objectives[objective]``.

    Over budget makes the record infeasible with the reason; an already infeasible
    record gets ``inf``.
    """
    out = dataclasses.replace(fit, constraints=dict(fit.constraints), extras=dict(fit.extras))
    if not fit.feasible:
        out.constraints[CONSTRAINT_NAME] = math.inf
        return out
    peak = fit.objectives.get(objective, math.inf)
    out.constraints[CONSTRAINT_NAME] = memory_constraint(peak, budget_mb)
    reason = over_budget_reason(peak, budget_mb, predicted=predicted, chip=chip)
    if reason:
        out.feasible, out.reason = False, reason
    out.extras["memory_budget_mb"] = budget_mb
    return out


def retarget_fitness(fit: Fitness, genome: Genome, predictor: Predictor, *, chip: str,
                     budget_mb: float | None = None) -> Fitness:
    """The record as the target chip would see it: device objectives predicted and labelled.

    Args:
        fit: measured on some other device (quality is device-independent and kept).
        genome: the candidate.
        predictor: the target chip's predictor (:func:`~evodiff_ray.hardware.predict.predictor_for`).
        chip: the target chip's name (goes to ``measured_on["chip"]``).
        budget_mb: the target's memory budget (None: no budget constraint).

    Returns:
        A new Fitness; ``measured_on`` keeps the node and device that measured quality,
        with ``chip`` the target, ``measured_chip`` the evaluating chip, and
        ``predicted`` naming the predicted objectives.
    """
    out = dataclasses.replace(fit, objectives=dict(fit.objectives), extras=dict(fit.extras),
                              measured_on=dict(fit.measured_on), constraints=dict(fit.constraints))
    predicted = [n for n in DEVICE_OBJECTIVES if n in fit.objectives]
    if fit.feasible:
        values = predictor.predict(genome)
        for name in predicted:
            out.extras[f"measured_{name}"] = fit.objectives[name]
            out.objectives[name] = values[name]
    out.measured_on["measured_chip"] = fit.measured_on.get("chip")
    out.measured_on["chip"] = chip
    out.measured_on["predicted"] = sorted(set(fit.measured_on.get("predicted", [])) | set(predicted))
    out.extras["predictor"] = predictor.profile.name
    if budget_mb is not None:
        out = apply_memory_budget(out, budget_mb, chip=chip, predicted=True)
    return out
