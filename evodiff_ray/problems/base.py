"""SearchProblem: the plug-in interface the engine searches over.

A problem describes itself, so generic code (config, search, tracking) never tests a
problem's name: its presets, which config fields it takes as options, its baseline
candidate, the evaluation settings that join the cache key, extra trackers, and what a
hardware-target plan means for it. Adding a problem touches only ``problems/``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from evodiff_ray.core.fitness import Fitness


class SearchProblem(ABC):
    """A multi-objective problem the engine can search.

    A problem is built from ``(name, options)`` by :func:`evodiff_ray.problems.make_problem`
    on the driver *and* inside every evaluator actor, so it never needs pickling and its
    warm state (datasets, feature networks) lives in the actor after :meth:`setup`.

    The driver uses :meth:`pymoo_problem`, :meth:`operators`, :meth:`key`,
    :meth:`to_json` / :meth:`from_json`; actors use :meth:`setup` and :meth:`evaluate`.
    """

    #: registry name, e.g. ``"zdt1"`` or ``"diffusion"``
    name: str = ""
    #: objective names, all minimised, in the order of pymoo's F columns
    objective_names: tuple[str, ...] = ()
    #: constraint names, in the order of pymoo's G columns (``<= 0`` is satisfied)
    constraint_names: tuple[str, ...] = ()
    #: named starting points (SearchConfig fields), overridden field by field by a TOML
    #: file and CLI flags. These suit problems whose evaluations cost milliseconds.
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # a smoke run: seconds on a laptop
        "quick": {"pop_size": 16, "generations": 5},
        # NSGA-II's usual population, enough generations to converge on ZDT
        "standard": {"pop_size": 64, "generations": 50},
    }
    #: SearchConfig fields this problem takes as options of the same name (e.g. ``fidelity``,
    #: ``target``); the config carries them into ``problem_options``. A field that is set
    #: but not listed here is a usage error.
    config_options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def target_options(cls, plan: dict[str, Any]) -> dict[str, Any]:
        """Problem options implied by a hardware-target plan
        (:func:`evodiff_ray.hardware.targets.plan_target`); none by default."""
        return {}

    @abstractmethod
    def pymoo_problem(self):
        """The pymoo ``Problem`` describing variables, objectives and constraints."""

    def operators(self) -> dict[str, Any]:
        """Keyword arguments for pymoo's ``NSGA2`` (sampling, crossover, mutation, ...).

        An empty dict means pymoo's defaults, which suit real-vector problems.
        """
        return {}

    @abstractmethod
    def to_json(self, x) -> Any:
        """The candidate as JSON data (a genome dict, or a list of floats)."""

    @abstractmethod
    def from_json(self, data: Any):
        """Inverse of :meth:`to_json`; validates untrusted data."""

    def key(self, x) -> str:
        """Content key of a candidate: sha256 of its canonical JSON."""
        blob = json.dumps(self.to_json(x), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def evaluation_settings(self) -> dict[str, Any]:
        """Everything besides the candidate that changes its fitness (joins the cache key)."""
        return {"problem": self.name}

    def reference_point(self) -> np.ndarray | None:
        """Fixed hypervolume reference point, or None to derive one from the first front."""
        return None

    def diversity(self, xs: list) -> float | None:
        """Population diversity for tracking: mean pairwise distance of the decision vectors
        divided by ``sqrt(n_var)`` (vectors in [0, 1]); problems over other encodings override it.
        """
        try:
            X = np.asarray([np.asarray(x, dtype=float).ravel() for x in xs])
        except (TypeError, ValueError):
            return None
        if X.ndim != 2 or len(X) < 2:
            return 0.0 if len(X) == 1 else None
        d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
        n = len(X)
        return float(d.sum() / (n * (n - 1)) / np.sqrt(X.shape[1]))

    def baseline(self) -> Any | None:
        """The hand-designed reference candidate that results are compared with, or None."""
        return None

    def trackers(self) -> list:
        """Extra :class:`~evodiff_ray.core.tracker.Tracker` objects a search of this problem adds."""
        return []

    def setup(self) -> None:
        """Load warm state (called once per evaluator actor before the first evaluation)."""

    @abstractmethod
    def evaluate(self, x) -> Fitness:
        """Evaluate one candidate. Candidate-level failures return an infeasible Fitness."""
