"""The evaluation interface the search loop drives: submit tasks, poll outcomes.

Every evaluation path has this interface: the in-process
:class:`~evodiff_ray.evaluation.local.LocalEvaluator`, the Ray
:class:`~evodiff_ray.evaluation.pool.EvaluatorPool`, and wrappers around either (a fitness
cache answers hits at once and passes misses on; STYLE principle 6: wrap, don't fork).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.tracker import Tracker

#: Outcome.source values: evaluated here, answered by a cache, or waited for another search's evaluation
SOURCES = ("evaluated", "hit", "waited")


@dataclass(frozen=True)
class Task:
    """One candidate to evaluate.

    Attributes:
        ordinal: the search's sequence number of the candidate (unique within a search).
        key: content key of the candidate (``SearchProblem.key``).
        x: the candidate as JSON data (``SearchProblem.to_json``).
        rung: the multi-fidelity step to evaluate at: None for a plain evaluation, -1 for a
            probe of the objectives that need no training, 0, 1, ... for a training rung
            (see :mod:`evodiff_ray.evaluation.rungs`).
    """

    ordinal: int
    key: str
    x: Any
    rung: int | None = None

    @property
    def cache_key(self) -> str:
        """The candidate key, with the rung when there is one (each rung is its own result)."""
        return self.key if self.rung is None else f"{self.key}@r{self.rung}"


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

    def worker_facts(self) -> dict[str, Any] | None:
        """Facts of the hardware the workers measure on (device class, processor), as their
        problem reports them (:meth:`~evodiff_ray.problems.base.SearchProblem.worker_facts`);
        None when evaluation runs in this process. Wrappers pass on what they wrap."""
        return None

    def release(self) -> None:
        """Let go of what this evaluator holds for one search while leaving what it wraps open
        (a wrapper around a caller's evaluator: claims, threads); nothing by default."""

    def metrics_tracker(self) -> "Tracker | None":
        """A tracker that exports this evaluator's own metrics (a pool's Ray metrics), added to
        the search's trackers; None by default."""
        return None

    def restore(self, records: Sequence[dict[str, Any]]) -> None:
        """Take back the state a resumed search's told records imply (called once, before
        any submit; e.g. the multi-fidelity rankings). Nothing by default; a wrapper restores
        its own state and passes the call on."""

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


class EvaluatorWrapper(Evaluator):
    """An evaluator around another (STYLE principle 6: wrap, don't fork).

    It holds ``inner`` and passes every call on, so a subclass overrides only what it
    changes, and a hook declared on :class:`Evaluator` later is forwarded by every wrapper
    at once instead of being forgotten by one.
    """

    def __init__(self, inner: Evaluator):
        self.inner = inner

    @property
    def capacity(self) -> int:
        return self.inner.capacity

    @property
    def in_flight(self) -> int:
        return self.inner.in_flight

    def submit(self, tasks: Sequence[Task]) -> None:
        self.inner.submit(tasks)

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        return self.inner.poll(timeout)

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()

    def release(self) -> None:
        self.inner.release()

    def worker_facts(self) -> dict[str, Any] | None:
        return self.inner.worker_facts()

    def metrics_tracker(self) -> "Tracker | None":
        return self.inner.metrics_tracker()

    def restore(self, records: Sequence[dict[str, Any]]) -> None:
        self.inner.restore(records)
