"""The search driver: one short loop wiring ask -> evaluate -> tell -> publish -> track -> checkpoint.

:class:`SearchRun` holds a search's state and does the bookkeeping of each ask and tell
(records, front, hypervolume, history, event log). :func:`run_generational` is classic
NSGA-II on top of it; :mod:`evodiff_ray.search.async_loop` is the barrier-free variant.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

from evodiff_ray.core.errors import RuntimeFailure, UsageError
from evodiff_ray.core.evaluator import Evaluator, Outcome, Task
from evodiff_ray.core.fitness import Fitness, FitnessFormatError
from evodiff_ray.search import algorithm as nsga
from evodiff_ray.search.checkpoint import Checkpoint, CheckpointState
from evodiff_ray.core.front import (
    FrontStore,
    atomic_write_text,
    derive_reference_point,
    front_json,
    front_of,
    hypervolume,
)
from evodiff_ray.search.result import SearchResult
from evodiff_ray.core.tracker import Tracker

HISTORY_FILE = "history.json"
#: history fields that depend only on the seed and the fitness values (equal after a resume)
DETERMINISTIC_STATS = ("generation", "evaluations", "failures", "hypervolume", "reference_point",
                       "best", "front_size", "cache")


@dataclass
class _Asked:
    individual: Any       # the pymoo Individual
    task: Task
    generation: int       # pymoo's n_gen when it was asked
    parents: list[str]


class SearchRun:
    """One search's state: NSGA-II, records, front, history and the unsaved event log.

    Args:
        config: the resolved :class:`~evodiff_ray.config.SearchConfig`.
        problem: the driver's :class:`~evodiff_ray.problems.base.SearchProblem`.
        evaluator: any :class:`~evodiff_ray.core.evaluator.Evaluator`.
        front_store: where the live front is published.
        trackers: receive start, per-batch stats and the result.
        checkpoint: the event log in the run dir.
    """

    def __init__(self, config, problem, evaluator: Evaluator, *, front_store: FrontStore,
                 trackers: Sequence[Tracker] = (), checkpoint: Checkpoint):
        self.config = config
        self.problem = problem
        self.evaluator = evaluator
        self.front_store = front_store
        self.trackers = list(trackers)
        self.checkpoint = checkpoint
        self.objective_names = tuple(problem.objective_names)
        self.constraint_names = tuple(problem.constraint_names)
        n_off = config.n_offsprings
        if config.mode == "async" and n_off is None:
            n_off = max(1, evaluator.capacity)
        self.n_offsprings = n_off
        self.algorithm = nsga.make_algorithm(problem, config.pop_size, config.seed, n_off)
        self.records: list[dict[str, Any]] = []
        self.pending: dict[int, _Asked] = {}      # asked, not yet told; by ordinal
        self.next_ordinal = 0
        self.generation = 0                        # told batches
        self.history: list[dict[str, Any]] = []
        self.front_records: list[dict[str, Any]] = []
        ref = problem.reference_point()
        self.reference_point = None if ref is None else [float(v) for v in ref]
        self.cache = {"hits": 0, "misses": 0, "waited": 0}
        self.failures = 0
        self._unsaved: list[dict[str, Any]] = []
        self._replaying = False
        self._elapsed_before = 0.0
        self._t0 = time.monotonic()
        self._last_save = -math.inf

    # ----------------------------------------------------------------------------- ask / tell

    @property
    def initialized(self) -> bool:
        """True once the first batch was told (before that, NSGA-II must not be asked again)."""
        return bool(self.algorithm.is_initialized)

    def ask(self) -> list[Task]:
        """New candidates from NSGA-II, as tasks; empty when it can produce none."""
        pop = nsga.ask(self.algorithm)
        if pop is None:
            return []
        tasks = []
        for ind in pop:
            x_json = self.problem.to_json(ind.X)
            task = Task(self.next_ordinal, self.problem.key(ind.X), x_json)
            parents = x_json.get("parents", []) if isinstance(x_json, dict) else []
            self.pending[task.ordinal] = _Asked(ind, task, int(ind.get("n_gen") or 0), list(parents))
            self.next_ordinal += 1
            tasks.append(task)
        self._log({"op": "ask", "first": tasks[0].ordinal, "keys": [t.key for t in tasks]})
        return tasks

    def tell(self, outcomes: Sequence[Outcome], in_flight: int = 0) -> dict[str, Any]:
        """Tell NSGA-II the outcomes (in the given order); update front, history and log.

        Returns:
            The new history entry.
        """
        from pymoo.core.population import Population

        asked = [self.pending.pop(o.task.ordinal) for o in outcomes]
        pop = Population.create(*[a.individual for a in asked])
        nsga.tell(self.algorithm, pop, [o.fitness for o in outcomes],
                  self.objective_names, self.constraint_names)
        self.generation += 1
        new = [self._record(a, o) for a, o in zip(asked, outcomes)]
        self.records.extend(new)
        self.failures += sum(not r["fitness"]["feasible"] for r in new)
        for o in outcomes:
            self.cache[{"evaluated": "misses", "hit": "hits", "waited": "waited"}[o.source]] += 1
        self.front_records = front_of(self.front_records + new, self.objective_names)
        if not self._replaying:
            for t in self.trackers:
                getattr(t, "on_records", lambda _r: None)(new)
        stats = self._stats(in_flight)
        self.history.append(stats)
        self._log({"op": "tell", "records": new, "stats": stats})
        return stats

    def _record(self, asked: _Asked, outcome: Outcome) -> dict[str, Any]:
        return {
            "ordinal": asked.task.ordinal,
            "key": asked.task.key,
            "x": asked.task.x,
            "generation": asked.generation,
            "parents": asked.parents,
            "source": outcome.source,
            "fitness": outcome.fitness.to_dict(),
        }

    def _stats(self, in_flight: int) -> dict[str, Any]:
        F = [[float(r["fitness"]["objectives"][n]) for n in self.objective_names] for r in self.front_records]
        if self.reference_point is None and F:
            self.reference_point = derive_reference_point(F)  # fixed from now on, and recorded
        hv = hypervolume(F, self.reference_point) if F else 0.0
        ev_stats = self.evaluator.stats() if not self._replaying else {}
        util = ev_stats.get("utilization")
        return {
            "generation": self.generation,
            "evaluations": len(self.records),
            "failures": self.failures,
            "in_flight": in_flight,
            "hypervolume": hv,
            "reference_point": self.reference_point,
            "best": {n: min(f[i] for f in F) for i, n in enumerate(self.objective_names)} if F else {},
            "front_size": len(F),
            "diversity": self._diversity(),
            "utilization": util,
            "cache": dict(self.cache),
            "cache_service": _service_stats(ev_stats.get("cache")),
            "elapsed_s": round(self.elapsed(), 3),
        }

    def _diversity(self) -> float | None:
        """The problem's diversity measure over NSGA-II's current population."""
        pop = getattr(self.algorithm, "pop", None)
        if pop is None or len(pop) == 0:
            return None
        return self.problem.diversity([ind.X for ind in pop])

    # ------------------------------------------------------------------- side effects

    def elapsed(self) -> float:
        """Seconds of search so far, including the runs before a resume."""
        return self._elapsed_before + time.monotonic() - self._t0

    def front_document(self, status: str) -> dict[str, Any]:
        """The front JSON (DESIGN section 4) as of now."""
        util = self.history[-1]["utilization"] if self.history else None
        return front_json(
            search_id=self.config.search_id, status=status, generation=self.generation,
            evaluations=len(self.records), cache=self.cache, utilization=util,
            objective_names=self.objective_names, front_records=self.front_records,
        )

    def after_tell(self, stats: dict[str, Any], force: bool) -> None:
        """Checkpoint every told batch; publish, track and fsync at most every ``checkpoint_interval_s``.

        The event log gets a new segment after every tell (atomic: temp file and
        ``os.replace``), so a killed driver loses nothing it told. Forcing it to disk
        (fsync), rewriting ``history.json`` and publishing the front happen on every
        generation in generational mode and at most once per ``checkpoint_interval_s``
        in async mode, where a tell may hold a single result.
        """
        due = force or time.monotonic() - self._last_save >= self.config.checkpoint_interval_s
        self._append(durable=due)
        front = self.publish("running") if due else None
        for t in self.trackers:
            t.on_generation(stats, front if front is not None else self.front_document("running"))

    def _append(self, durable: bool) -> None:
        self.checkpoint.append(self.meta(), self._unsaved, durable=durable)
        self._unsaved = []

    def save(self, status: str) -> dict[str, Any]:
        """Checkpoint durably, then publish the front and write ``history.json``; returns the front."""
        self._append(durable=True)
        return self.publish(status)

    def publish(self, status: str) -> dict[str, Any]:
        """Publish the front and write ``history.json``; returns the front."""
        front = self.front_document(status)
        self.front_store.publish(self.config.search_id, front)
        atomic_write_text(self.config.run_dir / HISTORY_FILE,
                          json.dumps(self.history, allow_nan=False) + "\n", durable=False)
        self._last_save = time.monotonic()
        return front

    def meta(self) -> dict[str, Any]:
        c = self.config
        return {"search_id": c.search_id, "problem": c.problem, "problem_options": c.problem_options,
                "mode": c.mode, "seed": c.seed, "pop_size": c.pop_size, "n_offsprings": self.n_offsprings,
                "elapsed_s": self.elapsed()}

    def _log(self, event: dict[str, Any]) -> None:
        if not self._replaying:
            self._unsaved.append(event)

    # ------------------------------------------------------------------------- resume

    def restore(self, state: CheckpointState) -> None:
        """Replay a checkpoint: same seed, same asks, recorded fitness told (no evaluation).

        Raises:
            UsageError: the checkpoint belongs to a different search definition.
            RuntimeFailure: the replay diverges (code or dependency versions changed).
        """
        for k, v in self.meta().items():
            if k != "elapsed_s" and state.meta.get(k) != json.loads(json.dumps(v)):
                raise UsageError(f"checkpoint was made with {k}={state.meta.get(k)!r}, not {v!r}; "
                                 "resume with the saved config")
        self._replaying = True
        try:
            for event in state.events:
                if event["op"] == "ask":
                    self._replay_ask(event)
                else:
                    self._replay_tell(event)
        finally:
            self._replaying = False
        self._elapsed_before = float(state.meta.get("elapsed_s", 0.0))
        self._t0 = time.monotonic()

    def _replay_ask(self, event) -> None:
        tasks = self.ask()
        if event.get("first") != (tasks[0].ordinal if tasks else None) or event.get("keys") != [t.key for t in tasks]:
            raise RuntimeFailure(
                "checkpoint replay diverged (the code, problem or pymoo version changed since it was "
                "written); start a new search"
            )

    def _replay_tell(self, event) -> None:
        outcomes = []
        try:
            for r in event["records"]:
                outcomes.append(Outcome(self.pending[r["ordinal"]].task, Fitness.from_dict(r["fitness"]),
                                        r.get("source", "evaluated")))
        except (KeyError, TypeError, FitnessFormatError) as e:
            raise RuntimeFailure(f"checkpoint holds a malformed tell event ({e})") from None
        self.tell(outcomes, in_flight=event["stats"].get("in_flight", 0))
        self.history[-1] = event["stats"]

    # ------------------------------------------------------------------------- finish

    def stop_reason(self) -> str | None:
        """Which termination has fired (generational semantics), or None."""
        c = self.config
        if c.generations is not None and self.generation >= c.generations:
            return f"generations={c.generations}"
        if c.max_evaluations is not None and len(self.records) >= c.max_evaluations:
            return f"max_evaluations={c.max_evaluations}"
        if c.max_seconds is not None and self.elapsed() >= c.max_seconds:
            return f"max_seconds={c.max_seconds}"
        return None

    def finish(self, stop_reason: str) -> SearchResult:
        """Final checkpoint and front (status ``finished``); the result, given to trackers."""
        front = self.save("finished")
        result = SearchResult(
            search_id=self.config.search_id, run_dir=self.config.run_dir, front=front,
            history=list(self.history), records=list(self.records),
            objective_names=self.objective_names, reference_point=self.reference_point,
            stop_reason=stop_reason,
            population=[self.problem.key(ind.X) for ind in (self.algorithm.pop if self.algorithm.pop is not None else [])],
        )
        for t in self.trackers:
            t.on_finish(result)
        return result


def _service_stats(cache: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cache wrapper's own counters (stale claims taken over, Redis up or down)."""
    if not cache:
        return None
    return {k: cache[k] for k in ("stale_takeovers", "uncached", "redis") if k in cache}


def run_generational(run: SearchRun) -> str:
    """Classic NSGA-II: ask a generation, evaluate all of it, tell it; until a termination fires.

    Returns:
        The stop reason.
    """
    while True:
        reason = run.stop_reason()
        if reason:
            return reason
        tasks = run.ask()
        if not tasks:
            return "no new candidates (the population has converged)"
        outcomes = run.evaluator.evaluate(tasks)
        stats = run.tell(outcomes, in_flight=run.evaluator.in_flight)
        run.after_tell(stats, force=True)
