"""Fitness: the JSON record of one evaluation, shared by actors, cache, front and tracker.

Failure taxonomy. An infeasible record is either a *permanent* failure of the candidate
(non-finite loss, out of memory at its size, an unsupported op, over a budget, a time limit
on an idle machine): the same candidate fails the same way again, so the record is cached
like any other. Or it is a *transient* failure of the infrastructure (an evaluator actor or
node lost, a time limit hit while the machine was overloaded): the candidate may well
succeed next time, so the record is shown in the search's results but never cached.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

FITNESS_SCHEMA = 1


class FitnessFormatError(ValueError):
    """A Fitness record (from Redis, a file or the network) failed validation."""


@dataclass
class Fitness:
    """The outcome of evaluating one candidate. All objectives are minimised.

    Attributes:
        objectives: objective name -> value. Infeasible records may hold ``inf``.
        constraints: constraint name -> value; ``<= 0`` means satisfied (pymoo's G).
        feasible: False when the candidate failed or violates a hard limit.
        reason: why it is infeasible (``None`` when feasible).
        measured_on: where and how it was measured: ``node``, ``device``, ``chip``,
            ``torch`` and ``predicted`` (names of objectives that were predicted).
        extras: other measurements (parameter count, held-out loss, latency p90, ...).
        seconds: wall time the evaluation took.
        evaluated_at: unix time the evaluation finished.
        schema: record version; readers reject a foreign schema.
        transient: the failure was the infrastructure's, not the candidate's (only on
            infeasible records); such a record is never cached. See :attr:`failure`.
    """

    objectives: dict[str, float]
    constraints: dict[str, float] = field(default_factory=dict)
    feasible: bool = True
    reason: str | None = None
    measured_on: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    evaluated_at: float = field(default_factory=time.time)
    schema: int = FITNESS_SCHEMA
    transient: bool = field(default=False, kw_only=True)

    def __post_init__(self):
        if self.transient and self.feasible:
            raise ValueError("a transient failure cannot be feasible")

    @classmethod
    def infeasible(cls, objective_names, reason: str, constraint_names=(), *, transient: bool = False,
                   **kw) -> "Fitness":
        """A failed evaluation: every objective and constraint is ``inf``.

        Args:
            objective_names: the problem's objective names (never empty: the record must
                still read back, and compare, as one of this problem's).
            reason: why it failed, one line.
            constraint_names: the problem's constraint names.
            transient: the infrastructure failed, not the candidate (never cached).

        Raises:
            ValueError: no objective names.
        """
        objective_names = tuple(objective_names)
        if not objective_names:
            raise ValueError("an infeasible Fitness needs the problem's objective names")
        return cls(
            objectives={n: math.inf for n in objective_names},
            constraints={n: math.inf for n in constraint_names},
            feasible=False,
            reason=reason,
            transient=transient,
            **kw,
        )

    @property
    def failure(self) -> str | None:
        """``None`` when feasible, else ``"transient"`` or ``"permanent"`` (see the module doc)."""
        if self.feasible:
            return None
        return "transient" if self.transient else "permanent"

    @property
    def cacheable(self) -> bool:
        """Whether a shared cache may keep this record: everything but a transient failure."""
        return not self.transient

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; non-finite floats become the strings ``"inf"``, ``"-inf"``, ``"nan"``."""
        return {
            "schema": self.schema,
            "objectives": {k: _enc(v) for k, v in self.objectives.items()},
            "constraints": {k: _enc(v) for k, v in self.constraints.items()},
            "feasible": self.feasible,
            "reason": self.reason,
            "transient": self.transient,
            "measured_on": self.measured_on,
            "extras": {k: _enc(v) if isinstance(v, float) else v for k, v in self.extras.items()},
            "seconds": self.seconds,
            "evaluated_at": self.evaluated_at,
        }

    @classmethod
    def from_dict(cls, d: Any) -> "Fitness":
        """Validate and build a Fitness from untrusted JSON data.

        Raises:
            FitnessFormatError: naming the field that is wrong.
        """
        if not isinstance(d, dict):
            raise FitnessFormatError("fitness record must be a JSON object")
        if d.get("schema") != FITNESS_SCHEMA:
            raise FitnessFormatError(f"fitness schema {d.get('schema')!r} is not {FITNESS_SCHEMA}")
        objectives = _float_map(d, "objectives")
        if not objectives:
            raise FitnessFormatError("fitness 'objectives' is empty")
        constraints = _float_map(d, "constraints")
        feasible = d.get("feasible")
        if not isinstance(feasible, bool):
            raise FitnessFormatError("fitness 'feasible' must be true or false")
        reason = d.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise FitnessFormatError("fitness 'reason' must be a string or null")
        transient = d.get("transient", False)   # records written before the taxonomy: permanent
        if not isinstance(transient, bool):
            raise FitnessFormatError("fitness 'transient' must be true or false")
        if transient and feasible:
            raise FitnessFormatError("fitness 'transient' is only for infeasible records")
        measured_on = d.get("measured_on", {})
        extras = d.get("extras", {})
        if not isinstance(measured_on, dict) or not isinstance(extras, dict):
            raise FitnessFormatError("fitness 'measured_on' and 'extras' must be objects")
        seconds, at = d.get("seconds", 0.0), d.get("evaluated_at", 0.0)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (seconds, at)):
            raise FitnessFormatError("fitness 'seconds' and 'evaluated_at' must be numbers")
        return cls(
            objectives=objectives,
            constraints=constraints,
            feasible=feasible,
            reason=reason,
            measured_on=measured_on,
            extras=extras,
            seconds=float(seconds),
            evaluated_at=float(at),
            transient=transient,
        )

    @property
    def predicted(self) -> list[str]:
        """Names of objectives that were predicted rather than measured."""
        return list(self.measured_on.get("predicted", []))


def overloaded(load1: float | None = None, cpus: int | None = None) -> bool:
    """Whether the machine is overloaded: its 1-minute load average exceeds its CPU count.

    A candidate's time limit that fires then says more about the machine than about the
    candidate, so such a timeout is a transient failure.

    Args:
        load1: the 1-minute load average (default: measured now; unknown -> not overloaded).
        cpus: the CPU count (default: this machine's).
    """
    if load1 is None:
        try:
            load1 = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this platform
            return False
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    return load1 > cpus


def _enc(v: float) -> float | str:
    v = float(v)
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _dec(v: Any, where: str) -> float:
    if isinstance(v, bool):
        raise FitnessFormatError(f"fitness {where} must be a number")
    if isinstance(v, (int, float)):
        return float(v)
    if v in ("inf", "-inf", "nan"):
        return float(v)
    raise FitnessFormatError(f"fitness {where} must be a number, got {v!r}")


def _float_map(d: dict, name: str) -> dict[str, float]:
    m = d.get(name, {})
    if not isinstance(m, dict):
        raise FitnessFormatError(f"fitness '{name}' must be an object of numbers")
    return {str(k): _dec(v, f"'{name}.{k}'") for k, v in m.items()}
