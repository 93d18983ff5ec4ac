"""Strategy: the ask/tell optimiser interface the search loop drives.

A strategy proposes candidates (:meth:`Strategy.ask`) and learns from their fitness
(:meth:`Strategy.tell`); nothing else. It never imports Ray, Redis or MLflow, never
evaluates, and never writes a file: the loop's ledger feeds it, and a resume rebuilds it
by replaying the same asks and tells into a fresh one made with the same seed, so no
strategy state is ever pickled.

Candidates are in the problem's own representation (``SearchProblem.to_json`` turns
them into JSON); a strategy keeps whatever it needs to learn from one in
:attr:`Candidate.handle`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from evodiff_ray.core.fitness import Fitness


@dataclass
class Candidate:
    """One proposal of a strategy.

    Attributes:
        x: the candidate as the problem represents it (a Genome, a vector).
        generation: the strategy's generation when it was asked (lineage; 0 for strategies
            without generations).
        handle: the strategy's own record of the proposal (a pymoo Individual, an Optuna
            trial); opaque to the loop and handed back in :meth:`Strategy.tell`.
    """

    x: Any
    generation: int = 0
    handle: Any = None


class Strategy(ABC):
    """An ask/tell multi-objective optimiser over a :class:`~evodiff_ray.problems.base.SearchProblem`.

    Built by :func:`evodiff_ray.strategies.make_strategy` as
    ``factory(problem, pop_size=..., n_offsprings=..., seed=..., **options)``. The same
    arguments and the same sequence of asks and tells (with the same fitness values)
    must give the same candidates: that is how a search resumes.

    All objectives are minimised; a :class:`Fitness` that is not ``feasible`` is a failed or
    over-limit candidate, and its constraint values say by how much (``<= 0`` satisfied).
    """

    #: registry name (``"nsga2"``, ``"random"``, ``"optuna"``)
    name: ClassVar[str] = ""

    @abstractmethod
    def ask(self) -> list[Candidate]:
        """The next candidates (the first ask: an initial population of ``pop_size``; later
        ones: ``n_offsprings``); an empty list when the strategy can propose nothing new."""

    @abstractmethod
    def tell(self, candidates: Sequence[Candidate], fitnesses: Sequence[Fitness]) -> None:
        """The fitness of asked candidates, in the same order. In async mode a tell may
        hold any subset of what was asked, in any grouping."""

    @property
    def ready(self) -> bool:
        """False while the strategy must be told before it can be asked again (back-pressure
        for the async loop: NSGA-II cannot breed before its first population is told)."""
        return True

    def population(self) -> list[Any]:
        """The candidates the strategy currently builds on (NSGA-II's survivors), for the
        diversity statistic and ``SearchResult.population``; empty when it keeps none."""
        return []
