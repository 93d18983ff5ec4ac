"""Preferences as constraints: ``OBJECTIVE<=LIMIT`` or ``OBJECTIVE>=LIMIT`` on the told fitness.

A user states what a result must meet (``evodiff-ray search --constraint latency_ms<=20``).
Each statement is an inequality constraint on one objective, as the search measures or
predicts it: with ``--target m2`` the latency and memory objectives are already the m2
values, so "latency <= 20 ms on m2" needs no chip syntax. Its value is normalised like the
search space's and the memory budget's constraints (``value/limit - 1`` for ``<=``,
``1 - value/limit`` for ``>=``, both divided by ``|limit|`` in general, plain differences
for a limit of 0): ``<= 0`` satisfied, and how far above 0 says by how much it is violated.

Where it applies. :class:`ConstraintEvaluator` wraps the evaluator outside the fitness
cache, the multi-fidelity rungs and the rating: a preference is the user's, not the
candidate's, so the cache keeps the measured fitness alone and a later search with other
constraints reuses it. A violating candidate stays ``feasible`` (it did not fail); its
positive constraint value ranks it behind every candidate that meets the constraints
(NSGA-II's constraint domination, Optuna's constraints) and keeps it off the front
(:func:`~evodiff_ray.core.front.front_of`). The strategy counts the constraints through
:class:`~evodiff_ray.problems.extra_constraints.ExtraConstraints` (STYLE 6: wrap, don't fork).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.evaluator import Evaluator, EvaluatorWrapper, Outcome
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems.base import SearchProblem
from evodiff_ray.problems.extra_constraints import ExtraConstraints

#: the comparisons a constraint may state (``≤``/``≥`` are read as these)
OPERATORS = ("<=", ">=")
_FORM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(<=|>=|≤|≥|=<|=>|<|>|==|=)\s*([^\s<>=≤≥].*?)\s*$")
_EXAMPLE = "e.g. latency_ms<=20 or quality_fd<=30"


def constraint_value(value: float, op: str, limit: float) -> float:
    """pymoo's constraint value of an objective ``value`` against ``op limit`` (pure).

    ``<=``: ``(value - limit) / |limit|``; ``>=``: ``(limit - value) / |limit|`` (for a
    positive limit, ``value/limit - 1`` and ``1 - value/limit``, as the space's constraints);
    with a limit of 0, the plain difference. ``<= 0`` is satisfied; a NaN or infinite value
    that cannot meet the limit (a failed measurement) is ``inf``.
    """
    value = float(value)
    if math.isnan(value):
        return math.inf
    gap = value - limit if op == "<=" else limit - value
    return gap / abs(limit) if limit != 0 else gap


@dataclass(frozen=True)
class ObjectiveConstraint:
    """One stated constraint: ``objective op limit``.

    Attributes:
        objective: the objective's name (as the problem names it).
        op: ``"<="`` or ``">="``.
        limit: a finite number, in the objective's units.
    """

    objective: str
    op: str
    limit: float

    @property
    def name(self) -> str:
        """The canonical text, e.g. ``latency_ms<=20``: its name in ``Fitness.constraints``,
        in the front JSON and in the config."""
        limit = int(self.limit) if float(self.limit).is_integer() and abs(self.limit) < 1e15 else self.limit
        return f"{self.objective}{self.op}{limit!r}"

    def value(self, objectives: Mapping[str, float]) -> float:
        """The constraint value for a record's objectives (missing objective: ``inf``)."""
        return constraint_value(objectives.get(self.objective, math.inf), self.op, self.limit)

    @classmethod
    def parse(cls, text: Any) -> "ObjectiveConstraint":
        """``"latency_ms<=20"`` (spaces allowed) -> the constraint.

        Raises:
            UsageError: not ``OBJECTIVE<=NUMBER`` or ``OBJECTIVE>=NUMBER``, or a limit that is
                not a finite number; the message says what to write instead.
        """
        if not isinstance(text, str):
            raise UsageError(f"constraint {text!r} must be a string like 'latency_ms<=20'")
        m = _FORM.match(text)
        if m is None:
            raise UsageError(f"constraint {text!r} is not OBJECTIVE<=LIMIT or OBJECTIVE>=LIMIT ({_EXAMPLE})")
        objective, op, limit_text = m.groups()
        op = {"≤": "<=", "=<": "<=", "≥": ">=", "=>": ">="}.get(op, op)
        if op not in OPERATORS:
            raise UsageError(f"constraint {text!r}: use <= or >= (not {op}), {_EXAMPLE}")
        try:
            limit = float(limit_text)
        except ValueError:
            raise UsageError(f"constraint {text!r}: the limit {limit_text!r} is not a number ({_EXAMPLE}; "
                             "units are the objective's own)") from None
        if not math.isfinite(limit):
            raise UsageError(f"constraint {text!r}: the limit must be a finite number, got {limit_text!r}")
        return cls(objective, op, limit)


def parse_constraints(texts: Iterable[Any]) -> tuple[ObjectiveConstraint, ...]:
    """Every stated constraint, parsed, in order.

    Raises:
        UsageError: a malformed one (see :meth:`ObjectiveConstraint.parse`) or one stated twice.
    """
    out: list[ObjectiveConstraint] = []
    for text in texts:
        c = ObjectiveConstraint.parse(text)
        if any(c.name == o.name for o in out):
            raise UsageError(f"constraint {c.name!r} is given twice; keep one")
        out.append(c)
    return tuple(out)


@dataclass(frozen=True)
class StatedConstraints:
    """A search's stated constraints: what the strategy counts, what the wrapper computes.

    Attributes:
        constraints: the parsed constraints, in the order given.
    """

    constraints: tuple[ObjectiveConstraint, ...]

    @classmethod
    def parse(cls, texts: Iterable[Any]) -> "StatedConstraints":
        """From the config's texts (see :func:`parse_constraints`)."""
        return cls(parse_constraints(texts))

    @property
    def names(self) -> tuple[str, ...]:
        """The constraints' canonical texts, in order."""
        return tuple(c.name for c in self.constraints)

    def check(self, objective_names: Sequence[str], problem: str = "the problem") -> None:
        """Every constraint must name one of ``objective_names``.

        Raises:
            UsageError: naming the constraint, the unknown objective and the known ones.
        """
        for c in self.constraints:
            if c.objective not in objective_names:
                raise UsageError(f"constraint {c.name!r}: {problem} has no objective {c.objective!r}; "
                                 f"constrain one of {', '.join(objective_names)}")

    def apply(self, fitness: Fitness) -> Fitness:
        """``fitness`` with every stated constraint's value added (pure; a new Fitness).

        A failed (infeasible) record gets ``inf`` for each, as :meth:`Fitness.infeasible`
        gives every constraint; ``feasible`` and everything else are kept.
        """
        values = {c.name: (c.value(fitness.objectives) if fitness.feasible else math.inf)
                  for c in self.constraints}
        return dataclasses.replace(fitness, constraints={**fitness.constraints, **values})

    def problem(self, inner: SearchProblem) -> ExtraConstraints:
        """``inner`` as the search sees it: its constraints and these."""
        return ExtraConstraints(inner, self.names)

    def wrap(self, inner: Evaluator) -> "ConstraintEvaluator":
        """``inner`` with every outcome constrained (put it outside the cache and the rungs)."""
        return ConstraintEvaluator(inner, self)


class ConstraintEvaluator(EvaluatorWrapper):
    """Wraps an evaluator; every outcome, a cache hit included, gains the stated constraints'
    values (see the module doc).

    Args:
        inner: the evaluator to wrap (the cache, rungs, rating and pool inside it).
        stated: the constraints to compute.
    """

    def __init__(self, inner: Evaluator, stated: StatedConstraints):
        super().__init__(inner)
        self.stated = stated
        self.violations = {name: 0 for name in stated.names}

    def _constrain(self, o: Outcome) -> Outcome:
        fit = self.stated.apply(o.fitness)
        if fit.feasible:
            for name in self.stated.names:
                self.violations[name] += not fit.constraints[name] <= 0
        return dataclasses.replace(o, fitness=fit)

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        return [self._constrain(o) for o in self.inner.poll(timeout)]

    def restore(self, records: Sequence[dict[str, Any]]) -> None:
        """Count the resumed search's violations again, then pass on."""
        for r in records:
            fit = r.get("fitness") or {}
            if fit.get("feasible"):
                values = fit.get("constraints") or {}
                for name in self.stated.names:
                    self.violations[name] += name in values and not float(values[name]) <= 0   # "nan"/"inf" read too
        self.inner.restore(records)

    def stats(self) -> dict[str, Any]:
        """The inner stats with ``constraints``: how many feasible outcomes violated each."""
        return {**self.inner.stats(), "constraints": dict(self.violations)}
