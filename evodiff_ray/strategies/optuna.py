"""Optuna's multi-objective samplers (NSGA-II or TPE) as a strategy, through ``study.ask()/tell()``.

The study lives in memory; the engine's loop, pool, cache, checkpoint and front serve it
like any strategy. A candidate is drawn as named parameters over a flat encoding of the
problem's search space (:mod:`evodiff_ray.strategies.encoding`: floats for a real-vector
problem; conditional parameters for a genome) and decoded as it is drawn. Constraints
reach the sampler as the trial's constraints (``Trial.set_constraint``, which Optuna 5
reads in both samplers and which replaced the deprecated ``constraints_func``): the
problem's constraint values and ``evaluation_failed`` (1 for a failed candidate), each
``<= 0`` when satisfied. A failed candidate's objectives are the same large finite
penalty NSGA-II gets.

Duplicates: a drawn candidate whose key was asked before is not handed out. If it was told,
the trial is told the same values (the sampler learns it is known); otherwise it is
marked failed. Then another is drawn.

Nothing is pickled: a resume builds a fresh study with the same seed and replays the
ledger's asks and tells into it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.strategies.base import Candidate, Strategy
from evodiff_ray.strategies.encoding import Param, encoding_for
from evodiff_ray.strategies.nsga2 import FAILED_CONSTRAINT, fitness_arrays

SAMPLERS = ("nsga2", "tpe")
#: draws per wanted candidate before the strategy gives up on finding a new one
MAX_DRAWS_PER_CANDIDATE = 50
EXTRA = "pip install 'evodiff-ray[optuna]'"


def import_optuna():
    """The ``optuna`` module, quiet.

    Raises:
        UsageError: Optuna is not installed (names the extra).
    """
    try:
        import optuna
    except ImportError:
        raise UsageError(f"strategy 'optuna' needs Optuna, an optional extra: {EXTRA}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def trial_suggest(trial) -> Callable[[Param], Any]:
    """``suggest(param)`` for an encoding's decode, asking an Optuna trial (define by run)."""

    def suggest(p: Param):
        if p.kind == "float":
            return trial.suggest_float(p.name, p.low, p.high)
        if p.kind == "int":
            return trial.suggest_int(p.name, int(p.low), int(p.high))
        return trial.suggest_categorical(p.name, p.choices)

    return suggest


class OptunaStrategy(Strategy):
    """An in-memory Optuna study over the problem's flat encoding.

    Args:
        problem: a problem whose ``search_space()`` gives bounds or a genome SearchSpace.
        pop_size: candidates in the first ask; NSGA-II's population size.
        n_offsprings: candidates in each later ask (default ``pop_size``).
        seed: the sampler's seed.
        sampler: ``"nsga2"`` (``NSGAIISampler``, the default) or ``"tpe"`` (``TPESampler``).
        initial: warm-start candidates, enqueued as the study's first trials.

    Raises:
        UsageError: Optuna is missing, an unknown sampler, or a problem without a search space.
    """

    name = "optuna"

    def __init__(self, problem, *, pop_size: int, n_offsprings: int | None = None, seed: int = 1,
                 sampler: str = "nsga2", initial: Sequence[Any] = ()):
        if sampler not in SAMPLERS:
            raise UsageError(f"strategy 'optuna': sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        optuna = import_optuna()
        self.optuna = optuna
        self.problem = problem
        self.encoding = encoding_for(problem, self.name)
        self.objective_names = tuple(problem.objective_names)
        self.constraint_names = tuple(problem.constraint_names)
        self._constraint_keys = (*self.constraint_names, FAILED_CONSTRAINT)
        self.pop_size = pop_size
        self.n_offsprings = n_offsprings or pop_size
        if sampler == "tpe":
            s = optuna.samplers.TPESampler(seed=seed)
        else:
            s = optuna.samplers.NSGAIISampler(population_size=pop_size, seed=seed)
        self.study = optuna.create_study(directions=["minimize"] * len(self.objective_names), sampler=s)
        self.asks = 0
        self.told: dict[str, tuple[list[float], list[float]]] = {}   # key -> (values, constraints)
        self.asked: set[str] = set()
        self.seeds: dict[str, Any] = {}   # key -> warm-start candidate (its lineage is kept)
        for x in initial:   # a warm start: enqueued trials come first, in order
            self.seeds[self.problem.key(x)] = x
            self.study.enqueue_trial(self.encoding.encode(x), skip_if_exists=True)

    def ask(self) -> list[Candidate]:
        want = self.pop_size if self.asks == 0 else self.n_offsprings
        out: list[Candidate] = []
        for _ in range(want * MAX_DRAWS_PER_CANDIDATE):
            if len(out) == want:
                break
            trial = self.study.ask()
            x = self._draw(trial)
            key = self.problem.key(x)
            if key in self.asked:
                self._tell_duplicate(trial, key)
                continue
            self.asked.add(key)
            out.append(Candidate(x, self.asks, trial))
        self.asks += 1
        return out

    def tell(self, candidates: Sequence[Candidate], fitnesses: Sequence[Fitness]) -> None:
        F, G = fitness_arrays(fitnesses, self.objective_names, self.constraint_names)
        for cand, f, g in zip(candidates, F, G):
            values, constraints = [float(v) for v in f], [float(v) for v in g]
            self.told[self.problem.key(cand.x)] = (values, constraints)
            self._tell(cand.handle, values, constraints)

    # -- internals -------------------------------------------------------------------
    def _draw(self, trial) -> Any:
        x = self.encoding.decode(trial_suggest(trial), generation=self.asks)
        return self.seeds.get(self.problem.key(x), x) if self.seeds else x

    def _tell_duplicate(self, trial, key: str) -> None:
        known = self.told.get(key)
        if known is None:   # asked, still being evaluated: nothing to tell the sampler yet
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
            return
        self._tell(trial, *known)

    def _tell(self, trial, values: list[float], constraints: list[float]) -> None:
        for name, value in zip(self._constraint_keys, constraints):
            trial.set_constraint(name, value)
        self.study.tell(trial, values)
