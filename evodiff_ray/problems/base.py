"""SearchProblem: the plug-in interface the engine searches over.

A problem describes itself, so generic code (config, search, tracking) never tests a
problem's name: its presets, which config fields it takes as options, its baseline
candidate, the evaluation settings that join the cache key, extra trackers, what a
hardware-target plan and the evaluator's threads mean for it, and whether a candidate
can be trained into a registered model. Adding a problem touches only ``problems/``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.key import EvaluationSettings, ProblemSettings


@dataclass(frozen=True)
class TrainedModel:
    """A candidate trained into a model the registry logs as MLflow "model from code".

    Attributes:
        python_model: path of the model-from-code file MLflow loads (it reads ``artifacts``).
        artifacts: artifact name -> local file.
        pip_requirements: what the model needs where it is served.
        meta: facts about the training (fidelity, dataset digest, loss, ...), JSON data.
    """

    python_model: str
    artifacts: dict[str, str]
    pip_requirements: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Bounds:
    """A real-vector search space, ``xl <= x <= xu`` elementwise (see :meth:`SearchProblem.search_space`)."""

    xl: np.ndarray
    xu: np.ndarray


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

    @classmethod
    def worker_options(cls, *, threads: int) -> dict[str, Any]:
        """Problem options implied by the evaluator actor it runs in: ``threads`` is the
        torch/OpenMP thread count the pool gives each actor (from ``actor.num_cpus``).
        A problem whose numbers depend on it takes it as an option, so that its
        evaluation settings (and the cache key) name it; none by default."""
        return {}

    @abstractmethod
    def pymoo_problem(self):
        """The pymoo ``Problem`` describing variables, objectives and constraints."""

    def operators(self) -> dict[str, Any]:
        """Keyword arguments for pymoo's ``NSGA2`` (sampling, crossover, mutation, ...).

        An empty dict means pymoo's defaults, which suit real-vector problems.
        """
        return {}

    def search_space(self) -> Any:
        """What strategies other than NSGA-II draw from (:mod:`evodiff_ray.strategies`): a
        :class:`~evodiff_ray.space.SearchSpace` for genome problems, or :class:`Bounds` for
        real-vector ones. The default: :meth:`pymoo_problem`'s bounds when its variables are
        real and bounded; else None, and only NSGA-II (through :meth:`operators`) fits.
        """
        p = self.pymoo_problem()
        if p.vtype not in (None, float) or not p.has_bounds():
            return None
        return Bounds(np.asarray(p.xl, dtype=float), np.asarray(p.xu, dtype=float))

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

    def evaluation_settings(self) -> EvaluationSettings:
        """Everything besides the candidate that changes its fitness, as one frozen object
        whose ``key_dict()`` joins the cache key (:mod:`evodiff_ray.core.key`).

        The default names only the problem; a problem with options that change fitness
        returns a :class:`~evodiff_ray.core.key.ProblemSettings` holding them, or its own
        settings class.
        """
        return ProblemSettings(self.name)

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

    def features(self, x) -> dict[str, float]:
        """Numeric descriptors of a candidate for surrogate models (the ``rating`` predictor,
        :mod:`evodiff_ray.evaluation.rating_model`), by name.

        The default: a real-vector candidate's entries as ``x0, x1, ...``; none for other
        encodings. A problem over structured candidates (genomes) names a few that matter.
        """
        try:
            v = np.asarray(self.to_json(x), dtype=float).ravel()
        except (TypeError, ValueError):
            return {}
        return {f"x{i}": float(a) for i, a in enumerate(v)} if v.ndim == 1 else {}

    def baseline(self) -> Any | None:
        """The hand-designed reference candidate that results are compared with, or None."""
        return None

    def trackers(self) -> list:
        """Extra :class:`~evodiff_ray.core.tracker.Tracker` objects a search of this problem adds."""
        return []

    #: True when :meth:`train_model` returns models (the end-of-search registration trains them)
    produces_models: ClassVar[bool] = False

    def train_model(self, x, *, models_dir: str | Path, fidelity: str | None = None,
                    progress: Callable[[str], None] | None = None, rung: int | None = None) -> TrainedModel | None:
        """Train candidate ``x`` into a model for the registry (``evodiff-ray promote``).

        Args:
            x: the candidate (as :meth:`from_json` returns it).
            models_dir: where trained weights may be kept and reused.
            fidelity: the problem's training budget (None: its choice for a model).
            progress: one-line progress messages.
            rung: the multi-fidelity rung the candidate's quality was measured at; a problem
                that keeps trained state per rung hands over that model instead of training
                (None: train at ``fidelity``).

        Returns:
            The model, or None when this problem's candidates are not models (the default).
        """
        return None

    def setup(self) -> None:
        """Load warm state (called once per evaluator actor before the first evaluation)."""

    def worker_facts(self) -> dict[str, Any]:
        """Facts of this process's hardware that change measured values and so join the key
        (e.g. device class and processor). An evaluator actor reports them, and the search
        keys results by the actors' facts, never the driver's. None by default."""
        return {}

    def adopt_worker_facts(self, facts: dict[str, Any]) -> None:
        """Key results by ``facts`` (from :meth:`worker_facts` in the evaluating processes)
        instead of this process's; nothing by default."""

    def rung_count(self) -> int:
        """Training rungs for multi-fidelity search (0: candidates are evaluated in one go).

        A problem with rungs implements :meth:`evaluate_rung`; the search then probes the
        objectives that need no training first and trains in rungs
        (:mod:`evodiff_ray.evaluation.rungs`).
        """
        return 0

    def rung_settings(self, rung: int):
        """The settings a multi-fidelity step's result depends on (its cache key): by default
        all of :meth:`evaluation_settings`. A problem whose trained quality does not depend
        on the device narrows a training rung to that part, so other hardware reuses it."""
        return self.evaluation_settings()

    def evaluate_rung(self, x, rung: int) -> Fitness:
        """Evaluate ``x`` at one multi-fidelity step: ``-1`` probes the objectives that need no
        training; ``0, 1, ...`` train to that rung (continuing from a stored lower rung) and
        measure. ``extras`` carry ``rung``, ``train_steps`` and ``train_steps_spent``.
        """
        raise NotImplementedError(f"problem {self.name!r} has no rungs")

    @abstractmethod
    def evaluate(self, x) -> Fitness:
        """Evaluate one candidate. Candidate-level failures return an infeasible Fitness."""
