"""The search driver's edge: one short loop wiring ask -> evaluate -> tell -> publish -> track -> checkpoint.

:class:`~evodiff_ray.search.ledger.Ledger` holds a search's state and does the pure
bookkeeping of each ask and tell. :class:`SearchRun` is the edge around it: it asks the
ledger, evaluates, tells, and then appends the checkpoint, publishes the front, writes
``history.json`` and calls the trackers. A resume replays the checkpoint into the ledger
before the edge starts. :func:`run_generational` is the generation-barrier loop;
:mod:`evodiff_ray.search.async_loop` is the barrier-free one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Sequence

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.evaluator import Evaluator, Outcome, Task
from evodiff_ray.core.front import FrontStore, atomic_write_text, front_json
from evodiff_ray.core.tracker import Tracker
from evodiff_ray.search.checkpoint import Checkpoint, CheckpointState
from evodiff_ray.search.ledger import DETERMINISTIC_STATS, Ledger, ask_event, tell_event
from evodiff_ray.search.result import SearchResult

__all__ = ["DETERMINISTIC_STATS", "HISTORY_FILE", "SearchRun", "offspring_per_ask", "run_generational"]

log = logging.getLogger(__name__)
HISTORY_FILE = "history.json"
#: what a checkpoint written before strategies were selectable was made with
PRE_STRATEGY_META = {"strategy": "nsga2", "strategy_options": {}}
#: what a checkpoint written before ``--constraint`` existed was made with
PRE_CONSTRAINTS_META = {"constraints": []}


def offspring_per_ask(config, evaluator: Evaluator) -> int | None:
    """``config.n_offsprings``; in async mode without one, one per evaluation slot."""
    if config.mode == "async" and config.n_offsprings is None:
        return max(1, evaluator.capacity)
    return config.n_offsprings


class SearchRun:
    """The edge of one search: evaluation, checkpoint, front, history file and trackers.

    Args:
        config: the resolved :class:`~evodiff_ray.config.SearchConfig`.
        ledger: the search's state (replayed already when resuming).
        evaluator: any :class:`~evodiff_ray.core.evaluator.Evaluator`.
        front_store: where the live front is published.
        trackers: receive start, records, per-batch stats and the result.
        checkpoint: the event log in the run dir.
        n_offsprings: candidates per later ask (recorded in the checkpoint's metadata).
    """

    def __init__(self, config, ledger: Ledger, evaluator: Evaluator, *, front_store: FrontStore,
                 trackers: Sequence[Tracker] = (), checkpoint: Checkpoint, n_offsprings: int | None):
        self.config = config
        self.ledger = ledger
        self.evaluator = evaluator
        self.front_store = front_store
        self.trackers = list(trackers)
        self.checkpoint = checkpoint
        self.n_offsprings = n_offsprings
        self._unsaved: list[dict[str, Any]] = []
        self._elapsed_before = 0.0
        self._t0 = time.monotonic()
        self._last_save = -math.inf

    # ----------------------------------------------------------------------------- ask / tell

    def ask(self) -> list[Task]:
        """New tasks from the ledger (logged for the checkpoint); empty when there are none."""
        tasks = self.ledger.ask()
        if tasks:
            self._unsaved.append(ask_event(tasks))
        return tasks

    def tell(self, outcomes: Sequence[Outcome], in_flight: int = 0) -> dict[str, Any]:
        """Tell the ledger; hand the new records to the trackers; log the tell.

        Returns:
            The new history entry.
        """
        records, stats = self.ledger.tell(outcomes, in_flight=in_flight, evaluator_stats=self.evaluator.stats(),
                                          elapsed_s=self.elapsed())
        for t in self.trackers:
            t.on_records(records)
        self._unsaved.append(tell_event(records, stats))
        return stats

    def evaluate_batch(self, tasks: Sequence[Task], poll_s: float = 1.0) -> list[Outcome]:
        """Evaluate ``tasks`` and wait for all of them (the generation barrier), telling the
        trackers of each outcome as it arrives; outcomes in the order of ``tasks``."""
        self.evaluator.submit(tasks)
        by_ordinal: dict[int, Outcome] = {}
        while len(by_ordinal) < len(tasks):
            arrived = self.evaluator.poll(timeout=poll_s)
            for o in arrived:
                by_ordinal[o.task.ordinal] = o
            self.notify_evaluated(arrived, len(by_ordinal) - len(arrived), len(tasks))
        return [by_ordinal[t.ordinal] for t in tasks]

    def notify_evaluated(self, outcomes: Sequence[Outcome], done_before: int, total: int | None) -> None:
        """:meth:`~evodiff_ray.core.tracker.Tracker.on_evaluated` for each of ``outcomes``."""
        for i, o in enumerate(outcomes):
            f = o.fitness
            summary = {"ordinal": o.task.ordinal, "key": o.task.key, "source": o.source,
                       "feasible": f.feasible, "objectives": dict(f.objectives), "reason": f.reason,
                       "seconds": f.seconds}
            in_flight = self.evaluator.in_flight + len(outcomes) - i - 1
            for t in self.trackers:
                t.on_evaluated(summary, done_before + i + 1, in_flight, total)

    # ------------------------------------------------------------------- side effects

    def elapsed(self) -> float:
        """Seconds of search so far, including the runs before a resume."""
        return self._elapsed_before + time.monotonic() - self._t0

    def front_document(self, status: str) -> dict[str, Any]:
        """The front JSON (:func:`~evodiff_ray.core.front.front_json`) as of now."""
        led = self.ledger
        util = led.history[-1]["utilization"] if led.history else None
        return front_json(
            search_id=self.config.search_id, status=status, generation=led.generation,
            evaluations=len(led.records), cache=led.cache, utilization=util,
            objective_names=led.objective_names, front_records=led.front_records,
            constraints=getattr(self.config, "constraints", None) or (),
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
                          json.dumps(self.ledger.history, allow_nan=False) + "\n", durable=False)
        self._last_save = time.monotonic()
        return front

    def meta(self) -> dict[str, Any]:
        """What identifies the search in the checkpoint (a resume must match it)."""
        c = self.config
        return {"search_id": c.search_id, "problem": c.problem, "problem_options": c.problem_options,
                "strategy": c.strategy, "strategy_options": c.strategy_options,
                "mode": c.mode, "seed": c.seed, "pop_size": c.pop_size, "n_offsprings": self.n_offsprings,
                "constraints": list(getattr(c, "constraints", None) or []), "elapsed_s": self.elapsed()}

    # ------------------------------------------------------------------------- resume

    def restore(self, state: CheckpointState) -> None:
        """Resume from a checkpoint: check it is this search, replay its events into the ledger.

        Raises:
            UsageError: the checkpoint belongs to a different search definition.
            RuntimeFailure: the replay diverges (code or dependency versions changed).
        """
        saved = {**PRE_STRATEGY_META, **PRE_CONSTRAINTS_META, **state.meta}
        for k, v in self.meta().items():
            if k != "elapsed_s" and saved.get(k) != json.loads(json.dumps(v)):
                raise UsageError(f"checkpoint was made with {k}={saved.get(k)!r}, not {v!r}; "
                                 "resume with the saved config")
        self.ledger.replay(state.events)
        # e.g. multi-fidelity: later rungs are ranked against every told result, as before the stop
        self.evaluator.restore(self.ledger.records)
        self._elapsed_before = float(state.meta.get("elapsed_s", 0.0))
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------------- finish

    def stop_reason(self) -> str | None:
        """Which termination has fired (generational semantics), or None."""
        c = self.config
        if c.generations is not None and self.ledger.generation >= c.generations:
            return f"generations={c.generations}"
        if c.max_evaluations is not None and len(self.ledger.records) >= c.max_evaluations:
            return f"max_evaluations={c.max_evaluations}"
        if c.max_seconds is not None and self.elapsed() >= c.max_seconds:
            return f"max_seconds={c.max_seconds}"
        return self.plateau_reason()

    def plateau_reason(self, per_generation: int | None = None) -> str | None:
        """The convergence stop, or None: the hypervolume has not grown over the last
        ``plateau_generations`` told batches (async: that many times ``per_generation``
        evaluations)."""
        k = self.config.plateau_generations
        if k is None or not self.ledger.plateaued(k, per_generation=per_generation):
            return None
        span = f"{k} generations" if per_generation is None else f"{k * per_generation} evaluations"
        return f"hypervolume plateau: no gain in {span} (plateau_generations={k})"

    def finish(self, stop_reason: str, reference: dict[str, Any] | None = None,
               fidelity: str | None = None) -> SearchResult:
        """Final checkpoint and front (status ``finished``), the front sheet (``front.png``,
        when candidates kept sample grids); the result, given to trackers.

        Args:
            stop_reason: which termination fired.
            reference: the problem's reference candidate, evaluated (shown beside the front).
            fidelity: the evaluation fidelity, for the pictures' titles.
        """
        from evodiff_ray.search.pictures import REFERENCE_FILE, write_front_sheet
        from evodiff_ray.tracking.plots import search_title

        front = self.save("finished")
        led = self.ledger
        title = search_title(self.config.search_id, len(led.records), self.elapsed(), fidelity)
        if reference is not None:
            atomic_write_text(self.config.run_dir / REFERENCE_FILE,
                              json.dumps(reference, indent=1, default=str) + "\n", durable=False)
        try:
            sheet = write_front_sheet(self.config.run_dir, front, reference, title)
        except Exception as e:  # noqa: BLE001 - a picture must never lose a finished search
            log.warning("front.png not written (%s: %s)", type(e).__name__, e)
            sheet = None
        result = SearchResult(
            search_id=self.config.search_id, run_dir=self.config.run_dir, front=front,
            history=list(led.history), records=list(led.records),
            objective_names=led.objective_names, reference_point=led.reference_point,
            stop_reason=stop_reason, population=led.population_keys(),
            reference=reference, title=title, front_sheet=sheet,
        )
        for t in self.trackers:
            t.on_finish(result)
        return result


def run_generational(run: SearchRun) -> str:
    """Generation barrier (classic NSGA-II): ask a batch, evaluate all of it, tell it; until a
    termination fires.

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
        outcomes = run.evaluate_batch(tasks)
        stats = run.tell(outcomes, in_flight=run.evaluator.in_flight)
        run.after_tell(stats, force=True)
