"""The ledger: a search's state, and nothing else (no I/O, no trackers, no evaluator).

:class:`Ledger` drives a :class:`~evodiff_ray.strategies.base.Strategy` through ask and
tell and keeps the books: the tasks asked and not yet told, every record, the front, the
hypervolume against a fixed reference point, and one stats entry per tell. A resume is
:meth:`Ledger.replay`: the checkpoint's events fed into a fresh ledger (same seed), which
asks again and is told the recorded fitness, so the strategy stands where it stood.

The persistence and publishing edge (:class:`~evodiff_ray.search.loop.SearchRun`) turns
what the ledger returns into checkpoint events, front documents and tracker calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from evodiff_ray.core.errors import RuntimeFailure
from evodiff_ray.core.evaluator import Outcome, Task
from evodiff_ray.core.fitness import Fitness, FitnessFormatError
from evodiff_ray.core.front import derive_reference_point, front_of, hypervolume
from evodiff_ray.strategies.base import Candidate, Strategy

#: history fields that depend only on the seed and the fitness values (equal after a resume)
DETERMINISTIC_STATS = ("generation", "evaluations", "failures", "hypervolume", "reference_point",
                       "best", "front_size", "cache")
#: Outcome.source -> the front JSON's cache counter
_CACHE_COUNTER = {"evaluated": "misses", "hit": "hits", "waited": "waited"}


@dataclass
class Asked:
    """A task asked and not yet told, with the strategy's candidate behind it."""

    task: Task
    candidate: Candidate
    parents: list[str]
    origin: str | None = None   # lineage: the edit that made it (genomes carry it; vectors do not)


class Ledger:
    """Asks, tells, records, front and stats of one search.

    Args:
        problem: the driver's :class:`~evodiff_ray.problems.base.SearchProblem` (keys, JSON,
            reference point, diversity).
        strategy: the ask/tell optimiser.
    """

    def __init__(self, problem, strategy: Strategy):
        self.problem = problem
        self.strategy = strategy
        self.objective_names = tuple(problem.objective_names)
        self.records: list[dict[str, Any]] = []
        self.pending: dict[int, Asked] = {}       # asked, not yet told; by ordinal
        self.next_ordinal = 0
        self.generation = 0                        # told batches
        self.history: list[dict[str, Any]] = []
        self.front_records: list[dict[str, Any]] = []
        ref = problem.reference_point()
        self.reference_point = None if ref is None else [float(v) for v in ref]
        self.cache = {"hits": 0, "misses": 0, "waited": 0}
        self.failures = 0

    # ----------------------------------------------------------------------------- ask / tell

    @property
    def ready(self) -> bool:
        """False while the strategy must be told before it is asked again."""
        return self.strategy.ready

    def ask(self) -> list[Task]:
        """New candidates from the strategy, as tasks; empty when it can propose none."""
        tasks = []
        for cand in self.strategy.ask():
            x_json = self.problem.to_json(cand.x)
            task = Task(self.next_ordinal, self.problem.key(cand.x), x_json)
            parents = x_json.get("parents", []) if isinstance(x_json, dict) else []
            origin = x_json.get("origin") if isinstance(x_json, dict) else None
            self.pending[task.ordinal] = Asked(task, cand, list(parents), origin or None)
            self.next_ordinal += 1
            tasks.append(task)
        return tasks

    def tell(self, outcomes: Sequence[Outcome], *, in_flight: int = 0,
             evaluator_stats: dict[str, Any] | None = None,
             elapsed_s: float = 0.0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Tell the strategy the outcomes (in the given order); update records, front and history.

        Args:
            outcomes: one per pending task, any subset of them.
            in_flight, evaluator_stats, elapsed_s: the moment's facts the edge knows, copied
                into the stats entry (``utilization`` and the cache service's counters come
                from ``evaluator_stats``).

        Returns:
            The new records and the new history entry.
        """
        asked = [self.pending.pop(o.task.ordinal) for o in outcomes]
        self.strategy.tell([a.candidate for a in asked], [o.fitness for o in outcomes])
        self.generation += 1
        new = [_record(a, o) for a, o in zip(asked, outcomes)]
        self.records.extend(new)
        self.failures += sum(not r["fitness"]["feasible"] for r in new)
        for o in outcomes:
            self.cache[_CACHE_COUNTER[o.source]] += 1
        self.front_records = front_of(self.front_records + new, self.objective_names)
        stats = self._stats(in_flight, evaluator_stats or {}, elapsed_s)
        self.history.append(stats)
        return new, stats

    def _stats(self, in_flight: int, ev_stats: dict[str, Any], elapsed_s: float) -> dict[str, Any]:
        F = self.front_matrix()
        if self.reference_point is None and F:
            self.reference_point = derive_reference_point(F)  # fixed from now on, and recorded
        return {
            "generation": self.generation,
            "evaluations": len(self.records),
            "failures": self.failures,
            "in_flight": in_flight,
            "hypervolume": hypervolume(F, self.reference_point) if F else 0.0,
            "reference_point": self.reference_point,
            "best": {n: min(f[i] for f in F) for i, n in enumerate(self.objective_names)} if F else {},
            "front_size": len(F),
            "diversity": self._diversity(),
            "utilization": ev_stats.get("utilization"),
            "cache": dict(self.cache),
            "cache_service": _service_stats(ev_stats.get("cache")),
            "elapsed_s": round(elapsed_s, 3),
        }

    def plateaued(self, generations: int, *, per_generation: int | None = None) -> bool:
        """True when the hypervolume has not grown over the last ``generations`` told batches
        or, with ``per_generation``, over the last ``generations * per_generation`` evaluations
        (the reference point is fixed, so the hypervolume never falls). A hypervolume of 0
        (no front inside the reference box yet) is no plateau."""
        h = self.history
        if not h or h[-1]["hypervolume"] <= 0:
            return False
        if per_generation is None:
            return len(h) > generations and h[-1]["hypervolume"] <= h[-1 - generations]["hypervolume"]
        horizon = len(self.records) - generations * per_generation
        before = [e for e in h if e["evaluations"] <= horizon]
        return bool(before) and h[-1]["hypervolume"] <= before[-1]["hypervolume"]

    def front_matrix(self) -> list[list[float]]:
        """The front's objective values, one row per point."""
        return [[float(r["fitness"]["objectives"][n]) for n in self.objective_names] for r in self.front_records]

    def _diversity(self) -> float | None:
        """The problem's diversity measure over the strategy's population (None without one)."""
        xs = self.strategy.population()
        return self.problem.diversity(xs) if xs else None

    def population_keys(self) -> list[str]:
        """Keys of the strategy's current population, in its order."""
        return [self.problem.key(x) for x in self.strategy.population()]

    # ------------------------------------------------------------------------- replay

    def replay(self, events: Sequence[dict[str, Any]]) -> None:
        """Feed a checkpoint's events: each ask is asked again and must give the recorded
        keys; each tell is told the recorded fitness, and its recorded stats entry kept.

        Raises:
            RuntimeFailure: the asks diverge (code or dependency versions changed), or an
                event is malformed.
        """
        for event in events:
            if event["op"] == "ask":
                self._replay_ask(event)
            else:
                self._replay_tell(event)

    def _replay_ask(self, event: dict[str, Any]) -> None:
        tasks = self.ask()
        if event.get("first") != (tasks[0].ordinal if tasks else None) or event.get("keys") != [t.key for t in tasks]:
            raise RuntimeFailure(
                "checkpoint replay diverged (the code, problem, strategy or its library's version "
                "changed since it was written); start a new search"
            )

    def _replay_tell(self, event: dict[str, Any]) -> None:
        outcomes = []
        try:
            for r in event["records"]:
                outcomes.append(Outcome(self.pending[r["ordinal"]].task, Fitness.from_dict(r["fitness"]),
                                        r.get("source", "evaluated")))
            in_flight = event["stats"].get("in_flight", 0)
        except (KeyError, TypeError, AttributeError, FitnessFormatError) as e:
            raise RuntimeFailure(f"checkpoint holds a malformed tell event ({e})") from None
        self.tell(outcomes, in_flight=in_flight)
        self.history[-1] = event["stats"]


def ask_event(tasks: Sequence[Task]) -> dict[str, Any]:
    """The checkpoint event of an ask (the keys let a replay detect divergence)."""
    return {"op": "ask", "first": tasks[0].ordinal, "keys": [t.key for t in tasks]}


def tell_event(records: list[dict[str, Any]], stats: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint event of a tell: the records with their fitness, and the stats entry."""
    return {"op": "tell", "records": records, "stats": stats}


def _record(asked: Asked, outcome: Outcome) -> dict[str, Any]:
    return {
        "ordinal": asked.task.ordinal,
        "key": asked.task.key,
        "x": asked.task.x,
        "generation": asked.candidate.generation,
        "parents": asked.parents,
        "origin": asked.origin,
        "source": outcome.source,
        "fitness": outcome.fitness.to_dict(),
    }


def _service_stats(cache: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cache wrapper's own counters (stale claims taken over, Redis up or down)."""
    if not cache:
        return None
    return {k: cache[k] for k in ("stale_takeovers", "uncached", "redis") if k in cache}

