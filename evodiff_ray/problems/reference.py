"""pymoo's reference problems (ZDT1-3, DTLZ2) as search problems with known Pareto fronts.

They validate the engine: a run's IGD against :meth:`ReferenceProblem.pareto_front` is
compared with pymoo's own serial ``minimize``.
"""

from __future__ import annotations

import math
import platform
import time
from typing import Any

import numpy as np

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.key import ProblemSettings
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems.base import SearchProblem


class ReferenceProblem(SearchProblem):
    """A real-vector pymoo test problem; candidates are lists of floats.

    Args:
        name: pymoo problem name (``zdt1``, ``zdt2``, ``zdt3``, ``dtlz2``).
        n_var: number of decision variables (pymoo's default when None).
        n_obj: number of objectives (DTLZ only).
    """

    def __init__(self, name: str, n_var: int | None = None, n_obj: int | None = None):
        from pymoo.problems import get_problem

        kwargs: dict[str, Any] = {}
        if n_var is not None:
            kwargs["n_var"] = _positive_int("n_var", n_var)
        if n_obj is not None:
            kwargs["n_obj"] = _positive_int("n_obj", n_obj)
        self.name = name
        self._problem = get_problem(name, **kwargs)
        self.n_var = int(self._problem.n_var)
        self.objective_names = tuple(f"f{i + 1}" for i in range(self._problem.n_obj))
        self.constraint_names = ()
        self._options = kwargs

    def pymoo_problem(self):
        return self._problem

    def to_json(self, x) -> list[float]:
        return [float(v) for v in np.asarray(x, dtype=float).ravel()]

    def from_json(self, data: Any) -> np.ndarray:
        if not isinstance(data, list) or len(data) != self.n_var:
            raise ValueError(f"{self.name}: a candidate is a list of {self.n_var} numbers")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
            raise ValueError(f"{self.name}: candidate entries must be numbers")
        x = np.asarray(data, dtype=float)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{self.name}: candidate entries must be finite")
        return x

    def evaluation_settings(self) -> ProblemSettings:
        return ProblemSettings(self.name, self._options)

    def reference_point(self) -> np.ndarray:
        """Nadir of the true front plus 0.1 per objective (a common choice for these problems)."""
        return self.pareto_front().max(axis=0) + 0.1

    def pareto_front(self) -> np.ndarray:
        """Sampled true Pareto front, shape (n_points, n_obj)."""
        if self.name.startswith("dtlz"):
            from pymoo.util.ref_dirs import get_reference_directions

            ref_dirs = get_reference_directions("das-dennis", self._problem.n_obj, n_partitions=12)
            return np.asarray(self._problem.pareto_front(ref_dirs))
        return np.asarray(self._problem.pareto_front())

    def evaluate(self, x) -> Fitness:
        t0 = time.perf_counter()
        F = self._problem.evaluate(np.asarray(x, dtype=float)[None, :], return_values_of=["F"])
        F = np.asarray(F, dtype=float).ravel()
        return Fitness(
            objectives={n: float(v) for n, v in zip(self.objective_names, F)},
            measured_on={"node": platform.node(), "device": "cpu", "chip": None, "predicted": []},
            seconds=time.perf_counter() - t0,
        )


def zdt1(n_var: int = 30) -> ReferenceProblem:
    """ZDT1: convex two-objective front."""
    return ReferenceProblem("zdt1", n_var=n_var)


def zdt2(n_var: int = 30) -> ReferenceProblem:
    """ZDT2: concave two-objective front."""
    return ReferenceProblem("zdt2", n_var=n_var)


def zdt3(n_var: int = 30) -> ReferenceProblem:
    """ZDT3: disconnected two-objective front."""
    return ReferenceProblem("zdt3", n_var=n_var)


def dtlz2(n_var: int = 12, n_obj: int = 3) -> ReferenceProblem:
    """DTLZ2: spherical front, three objectives by default."""
    return ReferenceProblem("dtlz2", n_var=n_var, n_obj=n_obj)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or math.isinf(value):
        raise UsageError(f"problem option {name!r} must be a positive integer, got {value!r}")
    return value
