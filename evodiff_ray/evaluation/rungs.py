"""Multi-fidelity evaluation: cheap objectives first, then successive halving on quality.

:class:`SuccessiveHalving` wraps any evaluator (the Ray pool, or the cache around it)
and has the same submit/poll interface, so the search loop does not know it is there.
For each candidate it asks the inner evaluator for:

1. a **probe** (``Task.rung = -1``): latency and memory, which need no training; a
   candidate that is over a hard limit, or whose latency and memory are dominated by a
   finished candidate whose quality is within ``margin`` of the best quality found, is
   not trained at all (it could only reach the front by beating the best quality found
   so far; see :func:`not_worth_training`);
2. **rung 0**, the cheapest training budget; then, rung by rung, the candidates whose
   (quality at that rung, latency, memory) rank in the top ``1/eta`` of every candidate
   measured at that rung so far, by non-dominated sorting and crowding, continue to the
   next rung from their stored weights (MOASHA's rule; decided when a submitted batch has
   finished the rung; with ``asynchronous``, the async loop's mode, every candidate is a
   batch of its own: promoted as soon as it ranks high enough, as in ASHA).
   Rows are ranked in ask order (by ordinal), never in arrival order, so a decision over
   the same results does not depend on the order they came back in (a resumed search's
   cache hits come first).

The outcome of a candidate is its quality at the highest rung it reached, with the
probe's latency and memory; ``extras`` say which rung, after how many training steps,
how many steps this search spent on it, and its quality at every rung it passed
(``rung_quality``), from which :meth:`SuccessiveHalving.restore` rebuilds the rankings
when a search resumes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from evodiff_ray.core.evaluator import Evaluator, EvaluatorWrapper, Outcome, Task
from evodiff_ray.core.fitness import Fitness

PROBE = -1


def promotion_order(F: np.ndarray) -> np.ndarray:
    """Row indices of ``F`` (minimisation) best first: non-dominated rank, then crowding."""
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    order: list[int] = []
    for front in NonDominatedSorting().do(F):
        crowd = calc_crowding_distance(F[front]) if len(front) > 2 else np.full(len(front), np.inf)
        order += [int(front[i]) for i in np.argsort(-crowd, kind="stable")]
    return np.array(order, dtype=int)


def promoted(F: np.ndarray, candidates: Sequence[int], eta: float) -> list[int]:
    """Which of ``candidates`` (row indices of ``F``, all results at one rung) go on.

    A row goes on when its position in :func:`promotion_order` is within the top
    ``ceil(len(F) / eta)``.
    """
    keep = math.ceil(len(F) / eta)
    top = set(promotion_order(F)[:keep].tolist())
    return [c for c in candidates if c in top]


def not_worth_training(cheap: Sequence[float], finished: np.ndarray, margin: float) -> bool:
    """True when a candidate's cheap objectives say training it cannot pay.

    Args:
        cheap: the candidate's (latency, memory).
        finished: rows (quality, latency, memory) of feasible finished candidates.
        margin: relative slack on the best quality (0.1: within 10% of the best).

    Returns:
        True when some finished candidate is at least as fast and as small (and better in
        one of the two) and its quality is within ``margin`` of the best quality found:
        the new candidate could only reach the front by nearly beating the best quality.
    """
    if len(finished) == 0:
        return False
    finished = np.asarray(finished, dtype=float)
    c = np.asarray(cheap, dtype=float)
    dom = (finished[:, 1:] <= c).all(axis=1) & (finished[:, 1:] < c).any(axis=1)
    if not dom.any():
        return False
    return bool(finished[dom, 0].min() <= (1.0 + margin) * finished[:, 0].min())


#: the reason of a candidate the cheap objectives ruled out
NOT_TRAINED = "not trained"


@dataclass
class _Candidate:
    task: Task
    batch: int
    probe: Fitness | None = None
    rung: int = PROBE
    result: Fitness | None = None          # the latest rung's fitness
    steps_spent: float = 0.0
    qualities: list[float] = field(default_factory=list)   # quality at rungs 0, 1, ... (feasible ones)


@dataclass
class _Counters:
    probed: int = 0
    skipped: int = 0
    trained: dict[int, int] = field(default_factory=dict)   # rung -> candidates measured there


class SuccessiveHalving(EvaluatorWrapper):
    """Probe, then train in rungs, promoting the top ``1/eta`` at each rung.

    Args:
        inner: evaluates tasks with ``rung`` set (a problem with rungs; see
            :meth:`~evodiff_ray.problems.base.SearchProblem.evaluate_rung`).
        rungs: number of training rungs (the problem's).
        objective_names: ``(quality, latency, memory)`` names, quality first.
        eta: promotion rate: the top ``1/eta`` go on.
        margin: :func:`not_worth_training`'s slack (None: train every candidate).
        asynchronous: each candidate is decided alone, as soon as its rung result is in:
            promoted when it ranks in the top ``1/eta`` of that rung's results so far (ASHA;
            the async loop's mode). False: the candidates submitted together are decided
            together once all have the rung (synchronous halving; the generation barrier).
    """

    def __init__(self, inner: Evaluator, rungs: int, objective_names: Sequence[str], eta: float = 3.0,
                 margin: float | None = 0.1, asynchronous: bool = False):
        if rungs < 1:
            raise ValueError("successive halving needs at least one rung")
        if eta <= 1:
            raise ValueError(f"eta must be > 1, got {eta}")
        super().__init__(inner)
        self.rungs = rungs
        self.names = tuple(objective_names)
        self.eta = eta
        self.margin = margin
        self.asynchronous = asynchronous
        self._open: dict[int, _Candidate] = {}
        self._batches: dict[int, set[int]] = {}      # batch id -> ordinals still at the current step
        self._waiting: dict[int, list[int]] = {}     # batch id -> ordinals whose rung result is in
        self._at_rung: dict[int, dict[int, list[float]]] = {}   # rung -> ordinal -> row ranked there
        self._finished: list[list[float]] = []
        self._ready: list[Outcome] = []
        self._next_batch = 0
        self.counters = _Counters()

    # -- Evaluator interface (the rest is passed on by EvaluatorWrapper) -------------
    @property
    def in_flight(self) -> int:
        return len(self._open)

    def submit(self, tasks: Sequence[Task]) -> None:
        for group in ([t] for t in tasks) if self.asynchronous else [tasks]:
            batch = self._next_batch
            self._next_batch += 1
            self._batches[batch] = {t.ordinal for t in group}
            self._waiting[batch] = []
            for t in group:
                self._open[t.ordinal] = _Candidate(t, batch)
        self.inner.submit([dataclasses.replace(t, rung=PROBE) for t in tasks])

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        if not self._ready:
            for o in self.inner.poll(timeout):
                self._on_result(o)
        out, self._ready = self._ready, []
        return out

    def stats(self) -> dict[str, Any]:
        s = dict(self.inner.stats())
        s["rungs"] = {"probed": self.counters.probed, "skipped": self.counters.skipped,
                      "trained": dict(sorted(self.counters.trained.items()))}
        return s

    def restore(self, records: Sequence[dict[str, Any]]) -> None:
        """Take back the rankings of a search's told records (a resume, before any submit).

        Without this a resumed search would rank its next candidates against the results
        that arrive after the resume only, and would train candidates that the cheap
        objectives rule out against the finished ones.

        The counters of :meth:`stats` are rebuilt from the records as well, so a resumed
        search reports what the whole search did.

        Args:
            records: the ledger's records (``ordinal`` and ``fitness`` as JSON), whose
                ``extras["rung_quality"]`` this wrapper wrote.
        """
        quality, *cheap = self.names
        for r in records:
            fit = Fitness.from_dict(r["fitness"])
            self.counters.probed += 1
            reached = fit.extras.get("rung")
            if isinstance(reached, int) and reached >= 0:
                for rung in range(reached + 1):
                    self.counters.trained[rung] = self.counters.trained.get(rung, 0) + 1
            elif (fit.reason or "").startswith(NOT_TRAINED):
                self.counters.skipped += 1
            qualities = fit.extras.get("rung_quality")
            if not isinstance(qualities, list) or not qualities:
                continue                   # probed only, or skipped: never ranked
            row_cheap = [float(fit.objectives[n]) for n in cheap]   # the probe's
            for rung, q in enumerate(qualities[: self.rungs - 1]):  # the last rung is never ranked
                self._at_rung.setdefault(rung, {})[int(r["ordinal"])] = [float(q)] + row_cheap
            if fit.feasible:
                self._finished.append([float(fit.objectives[quality])] + row_cheap)
        self.inner.restore(records)

    # -- the rung machine ----------------------------------------------------------
    def _on_result(self, o: Outcome) -> None:
        c = self._open[o.task.ordinal]
        fit = o.fitness
        quality = self.names[0]
        if o.source == "evaluated":   # a cache hit or another search's evaluation cost this search nothing
            c.steps_spent += float(fit.extras.get("train_steps_spent", 0) or 0)
        if c.rung == PROBE:
            self.counters.probed += 1
            c.probe = fit
            cheap = self.names[1:]
            if not fit.feasible:
                return self._finish(c, fit, source=o.source)
            if self.margin is not None and not_worth_training(
                    [fit.objectives[n] for n in cheap], np.array(self._finished).reshape(-1, 3), self.margin):
                self.counters.skipped += 1
                return self._finish(c, Fitness.infeasible(
                    self.names, f"{NOT_TRAINED}: latency and memory dominated by a finished candidate of "
                    "near-best quality", constraint_names=tuple(fit.constraints), transient=True,
                    measured_on=fit.measured_on,
                    extras={"rung": PROBE, "train_steps": 0, **{f"probe_{n}": fit.objectives[n] for n in cheap}}),
                    source=o.source)
            return self._next(c, 0)
        c.result = fit
        self.counters.trained[c.rung] = self.counters.trained.get(c.rung, 0) + 1
        if fit.feasible:
            c.qualities.append(float(fit.objectives[quality]))
        if not fit.feasible or c.rung == self.rungs - 1:
            return self._finish(c, self._combined(c), source=o.source)
        self._at_rung.setdefault(c.rung, {})[c.task.ordinal] = self._row(c)
        self._waiting[c.batch].append(c.task.ordinal)
        self._decide(c.batch)

    def _decide(self, batch: int) -> None:
        """When every open candidate of a batch has its rung result, promote or finish each."""
        members = [self._open[o] for o in sorted(self._batches[batch]) if o in self._open]
        if any(m.task.ordinal not in self._waiting[batch] for m in members):
            return
        by_rung: dict[int, list[_Candidate]] = {}
        for m in members:
            by_rung.setdefault(m.rung, []).append(m)
        self._waiting[batch] = []
        for rung, group in by_rung.items():
            rows = self._at_rung[rung]
            ordinals = sorted(rows)        # ask order: the same decision whatever arrived first
            at = {o: i for i, o in enumerate(ordinals)}
            F = np.array([rows[o] for o in ordinals])
            go = set(promoted(F, [at[m.task.ordinal] for m in group], self.eta))
            for m in group:
                if at[m.task.ordinal] in go:
                    self._next(m, rung + 1)
                else:
                    self._finish(m, self._combined(m), source="evaluated")

    def _next(self, c: _Candidate, rung: int) -> None:
        c.rung = rung
        self.inner.submit([dataclasses.replace(c.task, rung=rung)])

    def _row(self, c: _Candidate) -> list[float]:
        quality, *cheap = self.names
        return [float(c.result.objectives[quality])] + [float(c.probe.objectives[n]) for n in cheap]

    def _combined(self, c: _Candidate) -> Fitness:
        """The rung's quality with the probe's latency, memory, constraints and device."""
        quality, *cheap = self.names
        r, p = c.result, c.probe
        objectives = {quality: r.objectives[quality], **{n: p.objectives[n] for n in cheap}}
        extras = {**p.extras, **r.extras, "rung": c.rung, "train_steps_spent": c.steps_spent,
                  # JSON-safe (a record is written with allow_nan=False): inf as "inf", read back by float()
                  "rung_quality": [q if math.isfinite(q) else str(q) for q in c.qualities]}
        return dataclasses.replace(
            r, objectives=objectives, constraints={**r.constraints, **p.constraints},
            feasible=r.feasible and p.feasible, transient=r.transient or p.transient, extras=extras,
            measured_on={**r.measured_on, **p.measured_on}, seconds=r.seconds + p.seconds)

    def _finish(self, c: _Candidate, fit: Fitness, source: str) -> None:
        del self._open[c.task.ordinal]
        self._batches[c.batch].discard(c.task.ordinal)
        if fit.feasible and c.result is not None:
            self._finished.append(self._row(c))
        fit.extras.setdefault("train_steps_spent", c.steps_spent)
        self._ready.append(Outcome(c.task, fit, source))
        if c.batch in self._batches and self._waiting.get(c.batch):
            self._decide(c.batch)
