"""ProblemView: a problem as the search sees it, everything delegated to the problem it wraps.

Some of what a search optimises comes from outside a candidate's evaluation: the
``rating`` objective (:class:`~evodiff_ray.problems.extra_objectives.ExtraObjectives`) or a
user's constraints on objectives
(:class:`~evodiff_ray.problems.extra_constraints.ExtraConstraints`). An evaluator wrapper
supplies their values; the strategy, the ledger and the front still need to count them.
A view is the inner problem with names appended; everything else (keys, JSON, operators,
space, settings, evaluation) is the inner problem's, so the cache key, the evaluator actors
and the multi-fidelity rungs keep using the inner problem and never see the added names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems.base import SearchProblem


class ProblemView(SearchProblem):
    """``inner`` unchanged; subclasses grow its objective or constraint names.

    Args:
        inner: the problem whose candidates are searched and evaluated.
    """

    def __init__(self, inner: SearchProblem):
        self.inner = inner
        self.name = inner.name
        self.objective_names = tuple(inner.objective_names)
        self.constraint_names = tuple(inner.constraint_names)
        self.presets = inner.presets
        self.config_options = inner.config_options
        self.produces_models = inner.produces_models

    def __getattr__(self, name: str) -> Any:
        # what a problem adds beyond SearchProblem (the diffusion problem's space, settings)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def pymoo_problem(self):
        return self.inner.pymoo_problem()

    def reference_point(self) -> np.ndarray | None:
        return self.inner.reference_point()

    def operators(self) -> dict[str, Any]:
        return self.inner.operators()

    def search_space(self) -> Any:
        return self.inner.search_space()

    def to_json(self, x) -> Any:
        return self.inner.to_json(x)

    def from_json(self, data: Any):
        return self.inner.from_json(data)

    def key(self, x) -> str:
        return self.inner.key(x)

    def evaluation_settings(self):
        return self.inner.evaluation_settings()

    def diversity(self, xs: list) -> float | None:
        return self.inner.diversity(xs)

    def features(self, x) -> dict[str, float]:
        return self.inner.features(x)

    def baseline(self) -> Any | None:
        return self.inner.baseline()

    def trackers(self) -> list:
        return self.inner.trackers()

    def train_model(self, x, *, models_dir: str | Path, fidelity: str | None = None,
                    progress: Callable[[str], None] | None = None, rung: int | None = None):
        return self.inner.train_model(x, models_dir=models_dir, fidelity=fidelity, progress=progress, rung=rung)

    def setup(self, *args, **kwargs) -> None:
        self.inner.setup(*args, **kwargs)

    def worker_facts(self) -> dict[str, Any]:
        return self.inner.worker_facts()

    def adopt_worker_facts(self, facts: dict[str, Any]) -> None:
        self.inner.adopt_worker_facts(facts)

    def rung_count(self) -> int:
        return self.inner.rung_count()

    def rung_settings(self, rung: int):
        return self.inner.rung_settings(rung)

    def evaluate_rung(self, x, rung: int) -> Fitness:
        return self.inner.evaluate_rung(x, rung)

    def evaluate(self, x) -> Fitness:
        """The inner evaluation: what the view adds is not in it (a wrapper adds it)."""
        return self.inner.evaluate(x)
