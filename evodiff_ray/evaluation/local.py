"""In-process evaluation, and the guard every evaluator puts around a candidate's evaluation."""

from __future__ import annotations

import math
import time
import traceback
from collections import deque
from typing import Any, Sequence

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.evaluator import Evaluator, Outcome, Task
from evodiff_ray.core.fitness import Fitness


def evaluate_safely(problem, x_json: Any, rung: int | None = None) -> Fitness:
    """Decode and evaluate one candidate; any failure becomes an infeasible Fitness.

    Used by every evaluator (in-process and in actors) so that a candidate's exception,
    NaN objective or bad JSON never takes the worker down. These are permanent failures of
    the candidate; a record the problem itself marks ``transient`` passes through as it is.

    Args:
        problem: a set-up :class:`~evodiff_ray.problems.base.SearchProblem`.
        x_json: the candidate as JSON data.
        rung: None for :meth:`~SearchProblem.evaluate`, else the rung for
            :meth:`~SearchProblem.evaluate_rung` (multi-fidelity).
    """
    t0 = time.perf_counter()
    try:
        x = problem.from_json(x_json)
        fit = problem.evaluate(x) if rung is None else problem.evaluate_rung(x, rung)
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

    Raises:
        UsageError: the problem has no objective names.
    """

    def __init__(self, problem):
        self.problem = problem
        problem.setup()
        if not tuple(problem.objective_names):
            raise UsageError(f"problem {problem.name or type(problem).__name__!r} reports no "
                             "objective names; set objective_names on the problem")
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
        fit = evaluate_safely(self.problem, task.x, task.rung)
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
