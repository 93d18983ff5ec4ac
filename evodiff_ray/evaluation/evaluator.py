"""The evaluation interface the search loop drives: submit tasks, poll outcomes.

Every evaluation path has this interface: the in-process :class:`LocalEvaluator`, the Ray
:class:`~evodiff_ray.evaluation.pool.EvaluatorPool`, and wrappers around either (a fitness
cache answers hits at once and passes misses on; STYLE principle 6: wrap, don't fork).
"""

from __future__ import annotations

import math
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any, Sequence

from evodiff_ray.evaluation.fitness import Fitness

#: Outcome.source values: evaluated here, answered by a cache, or waited for another search's evaluation
SOURCES = ("evaluated", "hit", "waited")


@dataclass(frozen=True)
class Task:
    """One candidate to evaluate.

    Attributes:
        ordinal: the search's sequence number of the candidate (unique within a search).
        key: content key of the candidate (``SearchProblem.key``).
        x: the candidate as JSON data (``SearchProblem.to_json``).
    """

    ordinal: int
    key: str
    x: Any


@dataclass
class Outcome:
    """The fitness of one task, and where it came from (``evaluated``, ``hit`` or ``waited``)."""

    task: Task
    fitness: Fitness
    source: str = "evaluated"


class Evaluator(ABC):
    """Evaluates tasks asynchronously: :meth:`submit` any number, :meth:`poll` for outcomes.

    Each submitted task yields exactly one :class:`Outcome` from :meth:`poll`.
    """

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many evaluations run at once (the async loop keeps this many in flight)."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Tasks submitted whose outcome :meth:`poll` has not returned yet."""

    @abstractmethod
    def submit(self, tasks: Sequence[Task]) -> None:
        """Queue tasks for evaluation; returns at once."""

    @abstractmethod
    def poll(self, timeout: float | None = None) -> list[Outcome]:
        """Outcomes finished so far; waits up to ``timeout`` seconds for at least one.

        Returns an empty list on timeout, or when nothing is in flight.
        """

    def stats(self) -> dict[str, Any]:
        """Counters for progress and metrics (``utilization``, ``failures``, ``deaths``, ...)."""
        return {}

    def close(self) -> None:
        """Release workers. The evaluator is not used afterwards."""

    def evaluate(self, tasks: Sequence[Task], poll_s: float = 1.0) -> list[Outcome]:
        """Evaluate ``tasks`` and wait for all of them; outcomes in the order of ``tasks``."""
        self.submit(tasks)
        by_ordinal: dict[int, Outcome] = {}
        while len(by_ordinal) < len(tasks):
            for o in self.poll(timeout=poll_s):
                by_ordinal[o.task.ordinal] = o
        return [by_ordinal[t.ordinal] for t in tasks]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def evaluate_safely(problem, x_json: Any) -> Fitness:
    """Decode and evaluate one candidate; any failure becomes an infeasible Fitness.

    Used by every evaluator (in-process and in actors) so that a candidate's exception,
    NaN objective or bad JSON never takes the worker down.

    Args:
        problem: a set-up :class:`~evodiff_ray.problems.base.SearchProblem`.
        x_json: the candidate as JSON data.
    """
    t0 = time.perf_counter()
    try:
        fit = problem.evaluate(problem.from_json(x_json))
    except MemoryError:
        return _failed(problem, "out of memory", t0)
    except Exception as e:  # a candidate's failure, not the search's
        where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        at = f" at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}" if where else ""
        return _failed(problem, f"{type(e).__name__}: {e}{at}"[:500], t0)
    if not isinstance(fit, Fitness):
        return _failed(problem, f"evaluate returned {type(fit).__name__}, not Fitness", t0)
    if fit.feasible and any(math.isnan(v) for v in fit.objectives.values()):
        return _failed(problem, "objective is NaN", t0)
    missing = set(problem.objective_names) - set(fit.objectives)
    if missing:
        return _failed(problem, f"fitness lacks objectives {sorted(missing)}", t0)
    return fit


def _failed(problem, reason: str, t0: float) -> Fitness:
    return Fitness.infeasible(
        problem.objective_names, reason, constraint_names=problem.constraint_names,
        seconds=time.perf_counter() - t0,
    )


class LocalEvaluator(Evaluator):
    """Serial, in-process evaluation (``backend = "local"``): debugging and fast tests.

    Evaluation happens inside :meth:`poll`, one task per call, so the loops see the same
    submit/poll rhythm as with the Ray pool.

    Args:
        problem: a :class:`~evodiff_ray.problems.base.SearchProblem`; ``setup()`` is called here.
    """

    def __init__(self, problem):
        self.problem = problem
        problem.setup()
        self._queue: deque[Task] = deque()
        self._busy_s = 0.0
        self._start = time.perf_counter()
        self._done = 0
        self._failures = 0

    @property
    def capacity(self) -> int:
        return 1

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def submit(self, tasks: Sequence[Task]) -> None:
        self._queue.extend(tasks)

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        if not self._queue:
            return []
        task = self._queue.popleft()
        t0 = time.perf_counter()
        fit = evaluate_safely(self.problem, task.x)
        self._busy_s += time.perf_counter() - t0
        self._done += 1
        self._failures += not fit.feasible
        return [Outcome(task, fit)]

    def stats(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._start
        return {
            "workers": 1, "evaluated": self._done, "failures": self._failures, "deaths": 0,
            "utilization": self._busy_s / wall if wall > 0 else None,
        }
