"""Random search: uniform draws from the problem's search space, the baseline every NAS
result is measured against.

A real-vector problem draws each variable uniformly between its bounds; a genome problem
draws with the space's own sampler over the whole space (no complexity schedule, the size
of each architecture uniform in [0, 1]). Fitness is ignored. Draws are de-duplicated by
key: a candidate already asked is drawn again. The generator is seeded, so the same seed
gives the same draws (a resume replays them).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems.base import Bounds
from evodiff_ray.strategies.base import Candidate, Strategy
from evodiff_ray.strategies.encoding import described_space

#: draws per wanted candidate before the space counts as exhausted
MAX_DRAWS_PER_CANDIDATE = 100


class RandomStrategy(Strategy):
    """Uniform random search.

    Args:
        problem: a problem whose ``search_space()`` gives bounds or a genome SearchSpace.
        pop_size: candidates in the first ask.
        n_offsprings: candidates in each later ask (default ``pop_size``).
        seed: seeds the generator.
        initial: warm-start candidates, first in the first ask.

    Raises:
        UsageError: the problem describes no search space.
    """

    name = "random"

    def __init__(self, problem, *, pop_size: int, n_offsprings: int | None = None, seed: int = 1,
                 initial: Sequence[Any] = ()):
        self.problem = problem
        self.initial = list(initial)
        self.space = described_space(problem, self.name)
        self.pop_size = pop_size
        self.n_offsprings = n_offsprings or pop_size
        self.rng = np.random.default_rng(seed)
        self.seen: set[str] = set()
        self.asks = 0

    def draw(self) -> Any:
        """One uniform candidate (pure given the generator's state)."""
        if isinstance(self.space, Bounds):
            return self.rng.uniform(self.space.xl, self.space.xu)
        from evodiff_ray.operators.sampling import sample_genome

        return sample_genome(self.space, self.rng).with_lineage(self.asks, ())

    def ask(self) -> list[Candidate]:
        want = self.pop_size if self.asks == 0 else self.n_offsprings
        out: list[Candidate] = []
        seeds = self.initial if self.asks == 0 else []
        for x in seeds:   # a warm start: the seeds first
            key = self.problem.key(x)
            if len(out) < want and key not in self.seen:
                self.seen.add(key)
                out.append(Candidate(x, self.asks))
        for _ in range(want * MAX_DRAWS_PER_CANDIDATE):
            if len(out) == want:
                break
            x = self.draw()
            key = self.problem.key(x)
            if key not in self.seen:
                self.seen.add(key)
                out.append(Candidate(x, self.asks))
        self.asks += 1
        return out

    def tell(self, candidates: Sequence[Candidate], fitnesses: Sequence[Fitness]) -> None:
        """Random search learns nothing."""
