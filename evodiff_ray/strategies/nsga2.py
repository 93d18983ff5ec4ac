"""NSGA-II (pymoo) through ask/tell: the default strategy.

Module-level functions turn a problem into a set-up pymoo ``NSGA2`` and Fitness records
into pymoo's F and G; :class:`NSGA2Strategy` is the :class:`~evodiff_ray.strategies.base.Strategy`
around them. A failed evaluation gets a large finite penalty in every objective and a
violated extra constraint ``evaluation_failed``, so pymoo ranks it behind every feasible
candidate without meeting ``inf`` or ``nan``.

With multi-fidelity (a problem with rungs), survival ranks like with like:
:class:`RungStratifiedSurvival` compares candidates by rank and crowding only within the
rung their quality was measured at, and keeps higher rungs first.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import numpy as np

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.strategies.base import Candidate, Strategy

#: objective value given to failed or non-finite objectives
PENALTY = 1e12
#: name of the constraint column the engine appends (``G > 0`` when the evaluation failed)
FAILED_CONSTRAINT = "evaluation_failed"


def engine_problem(problem):
    """The problem's pymoo ``Problem`` with one more inequality constraint, ``evaluation_failed``.

    The copy is only described, never evaluated: values come from :func:`tell`.
    """
    base = problem.pymoo_problem()
    wrapped = copy.copy(base)
    wrapped.n_ieq_constr = int(base.n_ieq_constr) + 1
    wrapped.elementwise = False  # values arrive as whole arrays from StaticProblem
    return wrapped


def _rung_survival():
    """:class:`RungStratifiedSurvival`, defined lazily (pymoo is imported where it is used)."""
    from pymoo.core.population import Population
    from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

    class RungStratifiedSurvival(RankAndCrowding):
        """NSGA-II's rank and crowding within each rung, higher rungs first.

        A candidate's quality measured after more training is not comparable with one
        measured after less, so candidates are only ranked against those of their own
        rung (the ``rung`` attribute :func:`tell` sets). The strata are filled from the
        highest rung down; ranks are offset per stratum, so the binary tournament also
        prefers a higher rung. With one rung it is plain rank and crowding.
        """

        def _do(self, problem, pop, *args, n_survive=None, **kwargs):
            rungs = np.array([_rung_of(ind) for ind in pop])
            levels = sorted(set(rungs.tolist()), reverse=True)
            if len(levels) <= 1:
                return super()._do(problem, pop, *args, n_survive=n_survive, **kwargs)
            n_survive = len(pop) if n_survive is None else n_survive
            survivors, offset = [], 0
            for level in levels:
                need = n_survive - len(survivors)
                if need <= 0:
                    break
                stratum = pop[rungs == level]
                chosen = super()._do(problem, stratum, *args, n_survive=min(need, len(stratum)), **kwargs)
                ranks = [int(ind.get("rank")) for ind in chosen]
                for ind in chosen:
                    ind.set("rank", int(ind.get("rank")) + offset)
                offset += max(ranks) + 1
                survivors.extend(chosen)
            return Population.create(*survivors)

    return RungStratifiedSurvival()


def _rung_of(ind) -> int:
    rung = ind.get("rung")
    return -1 if rung is None else int(rung)


def seeded_sampling(base, initial: Sequence[Any]):
    """A pymoo ``Sampling`` whose first draw holds ``initial`` (warm-start seeds, up to the
    requested size), then ``base``'s own samples for the rest."""
    from pymoo.core.sampling import Sampling

    class SeededSampling(Sampling):
        """Warm start: the seeds first, then the problem's own sampling."""

        def _do(self, problem, n_samples, random_state=None, **kwargs):
            seeds = list(initial)[:n_samples]
            rest = n_samples - len(seeds)
            drawn = base._do(problem, rest, random_state=random_state, **kwargs) if rest > 0 else None
            if problem.vtype is object or (drawn is not None and np.asarray(drawn).dtype == object):
                X = np.empty((len(seeds), 1), dtype=object)
                for i, s in enumerate(seeds):
                    X[i, 0] = s
            else:
                X = np.asarray([np.asarray(s, dtype=float) for s in seeds]).reshape(len(seeds), -1)
            return X if drawn is None or len(drawn) == 0 else np.concatenate([X, np.asarray(drawn)], axis=0)

    return SeededSampling()


def history_elimination(inner, key, seen: set[str]):
    """A pymoo duplicate elimination that also drops every candidate whose key is in ``seen``.

    pymoo eliminates offspring that duplicate the current population or each other. A
    candidate evaluated earlier and since dropped from the population, or still in flight
    in async mode, is not in the population, so NSGA-II could propose it again and, with
    the fitness cache off, pay for it twice. ``seen`` holds the key of every candidate
    asked so far (:class:`NSGA2Strategy` adds them); pymoo's mating then draws again in
    their place (up to its ``n_max_iterations``).

    Args:
        inner: the problem's duplicate elimination (None or a pymoo one).
        key: the problem's content key of a candidate's ``X``.
        seen: keys already asked.
    """
    from pymoo.core.duplicate import DuplicateElimination, NoDuplicateElimination

    inner = inner if isinstance(inner, DuplicateElimination) else NoDuplicateElimination()

    class HistoryDuplicateElimination(DuplicateElimination):
        def do(self, pop, *args, return_indices=False, to_itself=True):
            original = pop
            if seen and len(pop):
                pop = pop[[key(ind.X) not in seen for ind in pop]]
            pop = inner.do(pop, *args, to_itself=to_itself) if len(pop) else pop
            if not return_indices:
                return pop
            kept = set(pop)
            return (pop, [i for i, ind in enumerate(original) if ind in kept],
                    [i for i, ind in enumerate(original) if ind not in kept])

    return HistoryDuplicateElimination()


def make_algorithm(problem, pop_size: int, seed: int, n_offsprings: int | None = None,
                   initial: Sequence[Any] = ()):
    """NSGA-II set up for ask/tell on ``problem``.

    Args:
        problem: a :class:`~evodiff_ray.problems.base.SearchProblem`; its ``operators()``
            (sampling, crossover, mutation, repair, duplicate elimination) replace pymoo's defaults.
        pop_size: population size.
        seed: seeds the algorithm's ``random_state``; the same seed and the same fitness
            values give the same sequence of candidates.
        n_offsprings: offspring per ask (default ``pop_size``).
        initial: warm-start candidates, first in the initial population.

    Returns:
        A pymoo ``NSGA2`` after ``setup``, whose termination never fires (the loop decides).
    """
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.termination import NoTermination

    kwargs = dict(problem.operators())
    if initial:
        from pymoo.operators.sampling.rnd import FloatRandomSampling

        kwargs["sampling"] = seeded_sampling(kwargs.get("sampling") or FloatRandomSampling(), initial)
    if problem.rung_count() > 0:
        kwargs.setdefault("survival", _rung_survival())
    algorithm = NSGA2(pop_size=pop_size, n_offsprings=n_offsprings, **kwargs)
    algorithm.setup(engine_problem(problem), termination=NoTermination(), seed=seed, verbose=False)
    return algorithm


def ask(algorithm):
    """The next candidates as a pymoo ``Population``; None when pymoo can produce no new one."""
    pop = algorithm.ask()
    if pop is None or len(pop) == 0:
        return None
    return pop


def fitness_arrays(
    fitnesses: Sequence[Fitness],
    objective_names: Sequence[str],
    constraint_names: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """pymoo's F and G for a batch of Fitness records (pure).

    Returns:
        ``F`` of shape (n, n_obj) and ``G`` of shape (n, n_constr + 1); the last G column is
        ``evaluation_failed``: 1.0 for an infeasible record, 0.0 otherwise.
    """
    n = len(fitnesses)
    F = np.empty((n, len(objective_names)))
    G = np.zeros((n, len(constraint_names) + 1))
    for i, fit in enumerate(fitnesses):
        F[i] = [_finite(fit.objectives.get(name, math.inf)) for name in objective_names]
        G[i, :-1] = [_finite(fit.constraints.get(name, 0.0)) for name in constraint_names]
        G[i, -1] = 0.0 if fit.feasible else 1.0
    return F, G


def tell(algorithm, pop, fitnesses: Sequence[Fitness], objective_names, constraint_names=()) -> None:
    """Hand the fitness of ``pop`` (in order) to the algorithm and advance it.

    Args:
        algorithm: from :func:`make_algorithm`.
        pop: a Population returned by :func:`ask`, or a subset of one (async mode).
        fitnesses: one Fitness per individual of ``pop``, in the same order.
    """
    from pymoo.core.evaluator import Evaluator
    from pymoo.problems.static import StaticProblem

    if len(pop) != len(fitnesses):
        raise ValueError(f"tell: {len(pop)} individuals but {len(fitnesses)} fitness records")
    F, G = fitness_arrays(fitnesses, objective_names, constraint_names)
    Evaluator().eval(StaticProblem(algorithm.problem, F=F, G=G), pop)
    for ind, fit in zip(pop, fitnesses):
        ind.set("rung", fit.extras.get("rung"))
    algorithm.tell(infills=pop)


def _finite(v: float) -> float:
    v = float(v)
    if math.isnan(v) or v > PENALTY:
        return PENALTY
    return max(v, -PENALTY)


class NSGA2Strategy(Strategy):
    """pymoo's NSGA-II with the problem's operators (sampling, crossover, mutation, repair,
    duplicate elimination), seeded: the same tells give the same asks.

    Args:
        problem: a :class:`~evodiff_ray.problems.base.SearchProblem`.
        pop_size: population size (the first ask).
        n_offsprings: offspring per later ask (default ``pop_size``).
        seed: pymoo's random state.
        initial: warm-start candidates (``--seed-from``), first in the initial population.
    """

    name = "nsga2"

    def __init__(self, problem, *, pop_size: int, n_offsprings: int | None = None, seed: int = 1,
                 initial: Sequence[Any] = ()):
        self.objective_names = tuple(problem.objective_names)
        self.constraint_names = tuple(problem.constraint_names)
        self.algorithm = make_algorithm(problem, pop_size, seed, n_offsprings, initial)
        self._key = problem.key
        self._seen: set[str] = set()          # every key asked: never proposed again
        mating = self.algorithm.mating
        mating.eliminate_duplicates = history_elimination(mating.eliminate_duplicates, self._key, self._seen)
        self._asked = False

    @property
    def ready(self) -> bool:
        return bool(self.algorithm.is_initialized) or not self._asked

    def ask(self) -> list[Candidate]:
        pop = ask(self.algorithm)
        self._asked = True
        if pop is None:
            return []
        self._seen.update(self._key(ind.X) for ind in pop)
        return [Candidate(ind.X, int(ind.get("n_gen") or 0), ind) for ind in pop]

    def tell(self, candidates: Sequence[Candidate], fitnesses: Sequence[Fitness]) -> None:
        from pymoo.core.population import Population

        pop = Population.create(*[c.handle for c in candidates])
        tell(self.algorithm, pop, fitnesses, self.objective_names, self.constraint_names)

    def population(self) -> list[Any]:
        pop = self.algorithm.pop
        return [] if pop is None else [ind.X for ind in pop]
