"""The asynchronous loop: no generation barrier, every worker kept busy.

New candidates are asked for as evaluation slots free up (``n_offsprings`` per ask, by
default one per worker) and outcomes are told in small batches as they arrive; with
NSGA-II each tell runs survival over the population plus the new arrivals. A strategy
that is not ``ready`` (NSGA-II before its initial population is told) is not asked.

Termination counts evaluations when they are submitted, so exactly ``max_evaluations``
(or ``pop_size * generations``) are evaluated. At ``max_seconds``, or on a hypervolume
plateau over ``plateau_generations * pop_size`` evaluations, no new work starts and the
evaluations in flight are finished and told.
"""

from __future__ import annotations

import math
from collections import deque

from evodiff_ray.search.loop import SearchRun


def evaluation_budget(config) -> float:
    """Evaluations an async search may run: ``max_evaluations`` and ``pop_size * generations``."""
    budget = math.inf
    if config.max_evaluations is not None:
        budget = min(budget, config.max_evaluations)
    if config.generations is not None:
        budget = min(budget, config.pop_size * config.generations)
    return budget


def run_async(run: SearchRun, poll_s: float = 0.5) -> str:
    """Drive ``run`` without generation barriers until a termination fires.

    Returns:
        The stop reason.
    """
    config, evaluator = run.config, run.evaluator
    budget = evaluation_budget(config)
    tell_batch = max(1, (run.n_offsprings or 1) // 2)
    # after a resume: what was asked but never told is evaluated first, in ask order
    ledger = run.ledger
    queue = deque(a.task for _, a in sorted(ledger.pending.items()))
    submitted = len(ledger.records)
    buffered: list = []
    stop: str | None = None
    while True:
        if stop is None:
            stop = _termination(run, submitted, budget)
        if stop is None:
            free = evaluator.capacity - evaluator.in_flight
            batch = []
            while free > len(batch) and submitted + len(batch) < budget:
                if not queue:
                    if not ledger.ready:
                        break  # e.g. NSGA-II cannot be asked again before its first tell
                    new = run.ask()
                    if not new:
                        stop = "no new candidates (the population has converged)"
                        break
                    queue.extend(new)
                batch.append(queue.popleft())
            if batch:
                evaluator.submit(batch)
                submitted += len(batch)
        if evaluator.in_flight == 0 and not buffered:
            if stop is not None:
                return stop
            if submitted >= budget:
                return _termination(run, submitted, budget) or "evaluation budget spent"
        arrived = evaluator.poll(timeout=poll_s)
        run.notify_evaluated(arrived, len(ledger.records) + len(buffered),
                             None if math.isinf(budget) else int(budget))
        buffered.extend(arrived)
        if buffered and (len(buffered) >= tell_batch or evaluator.in_flight == 0 or stop is not None):
            stats = run.tell(buffered, in_flight=evaluator.in_flight)
            buffered = []
            run.after_tell(stats, force=False)


def _termination(run: SearchRun, submitted: int, budget: float) -> str | None:
    c = run.config
    if c.max_seconds is not None and run.elapsed() >= c.max_seconds:
        return f"max_seconds={c.max_seconds}"
    if submitted >= budget:
        if c.max_evaluations is not None and submitted >= c.max_evaluations:
            return f"max_evaluations={c.max_evaluations}"
        return f"generations={c.generations} (pop_size * generations evaluations)"
    # a generation is pop_size evaluations here, as for the generations budget
    return run.plateau_reason(per_generation=c.pop_size)
