"""A synthetic problem with configurable evaluation time and failures, for orchestration tests.

Objectives are ZDT1's, so fronts are checkable. The evaluation time and whether an
evaluation fails are drawn from a generator seeded by the candidate's key, so they are
reproducible: the same candidate always takes the same time and fails (or not) the same way,
which keeps resumed runs equal to uninterrupted ones.
"""

from __future__ import annotations

import math
import platform
import time
from typing import Any

import numpy as np
from pymoo.core.problem import ElementwiseProblem

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.key import ProblemSettings
from evodiff_ray.problems.base import SearchProblem

TIME_DISTRIBUTIONS = ("fixed", "lognormal")


def synthetic_objectives(x: np.ndarray) -> np.ndarray:
    """ZDT1 objectives of a vector in [0, 1]^n (pure kernel).

    Args:
        x: shape (n_var,), n_var >= 2.

    Returns:
        shape (2,): ``[f1, f2]``; the Pareto front is ``f2 = 1 - sqrt(f1)``.
    """
    f1 = float(x[0])
    g = 1.0 + 9.0 * float(np.sum(x[1:])) / (len(x) - 1)
    return np.array([f1, g * (1.0 - math.sqrt(f1 / g))])


def candidate_rng(key: str, seed: int) -> np.random.Generator:
    """A generator determined by a candidate's key and the problem seed."""
    return np.random.default_rng([int(seed), int(key[:16], 16)])


def draw_delay(rng: np.random.Generator, distribution: str, mean_s: float, sigma: float) -> float:
    """Evaluation time in seconds: fixed ``mean_s``, or lognormal with mean ``mean_s``.

    For the lognormal, ``sigma`` is the log-space standard deviation and
    ``mu = ln(mean_s) - sigma^2 / 2`` so that the mean is ``mean_s``.
    """
    if distribution == "fixed" or mean_s <= 0.0:
        return max(0.0, mean_s)
    mu = math.log(mean_s) - sigma * sigma / 2.0
    return float(rng.lognormal(mu, sigma))


class SyntheticProblem(SearchProblem):
    """ZDT1 objectives with simulated evaluation time and failures.

    Args:
        n_var: decision variables, each in [0, 1].
        time: ``"fixed"`` or ``"lognormal"``.
        mean_ms: mean evaluation time in milliseconds (0 = no sleep).
        sigma: log-space standard deviation of the lognormal.
        failure_rate: probability that an evaluation fails (an infeasible Fitness).
        seed: seeds the per-candidate draws of time and failure.
    """

    name = "synthetic"
    objective_names = ("f1", "f2")

    def __init__(
        self,
        n_var: int = 10,
        time: str = "fixed",
        mean_ms: float = 0.0,
        sigma: float = 1.0,
        failure_rate: float = 0.0,
        seed: int = 0,
    ):
        if isinstance(n_var, bool) or not isinstance(n_var, int) or n_var < 2:
            raise UsageError(f"synthetic: n_var must be an integer >= 2, got {n_var!r}")
        if time not in TIME_DISTRIBUTIONS:
            raise UsageError(f"synthetic: time must be one of {', '.join(TIME_DISTRIBUTIONS)}, got {time!r}")
        for label, v in (("mean_ms", mean_ms), ("sigma", sigma)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or not math.isfinite(v):
                raise UsageError(f"synthetic: {label} must be a number >= 0, got {v!r}")
        if isinstance(failure_rate, bool) or not isinstance(failure_rate, (int, float)) or not 0 <= failure_rate <= 1:
            raise UsageError(f"synthetic: failure_rate must be in [0, 1], got {failure_rate!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError(f"synthetic: seed must be an integer, got {seed!r}")
        self.n_var = n_var
        self.time = time
        self.mean_s = float(mean_ms) / 1000.0
        self.sigma = float(sigma)
        self.failure_rate = float(failure_rate)
        self.seed = seed

    def pymoo_problem(self, **kwargs):
        """An evaluable pymoo ``ElementwiseProblem`` (kwargs such as ``elementwise_runner`` pass on)."""
        return _SyntheticPymoo(self, **kwargs)

    def to_json(self, x) -> list[float]:
        return [float(v) for v in np.asarray(x, dtype=float).ravel()]

    def from_json(self, data: Any) -> np.ndarray:
        if not isinstance(data, list) or len(data) != self.n_var:
            raise ValueError(f"synthetic: a candidate is a list of {self.n_var} numbers")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
            raise ValueError("synthetic: candidate entries must be numbers")
        x = np.asarray(data, dtype=float)
        if not np.all((x >= 0.0) & (x <= 1.0)):
            raise ValueError("synthetic: candidate entries must lie in [0, 1]")
        return x

    def evaluation_settings(self) -> ProblemSettings:
        return ProblemSettings(self.name, {
            "n_var": self.n_var, "time": self.time, "mean_s": self.mean_s,
            "sigma": self.sigma, "failure_rate": self.failure_rate, "seed": self.seed,
        })

    def reference_point(self) -> np.ndarray:
        """The worst objective values any candidate can have, plus 10% of each range.

        ``f1 = x[0]`` lies in [0, 1] and ``f2 <= g <= 10`` (at ``f1 = 0`` and every
        ``x[i] = 1``), so every feasible point dominates ``(1.1, 11)`` and the
        hypervolume is positive from the first front on. ZDT1's nadir ``(1.1, 1.1)``
        covers only points near the true front: random initial populations have
        ``f2`` of 3 to 5, and a short run's hypervolume stayed 0.
        """
        return np.array([1.1, 11.0])

    def pareto_front(self, n_points: int = 200) -> np.ndarray:
        """ZDT1's true front, shape (n_points, 2)."""
        f1 = np.linspace(0.0, 1.0, n_points)
        return np.column_stack([f1, 1.0 - np.sqrt(f1)])

    def evaluate(self, x) -> Fitness:
        t0 = time.perf_counter()
        x = np.asarray(x, dtype=float)
        rng = candidate_rng(self.key(x), self.seed)
        delay = draw_delay(rng, self.time, self.mean_s, self.sigma)
        fails = rng.random() < self.failure_rate
        if delay > 0:
            time.sleep(delay)
        measured_on = {"node": platform.node(), "device": "cpu", "chip": None, "predicted": []}
        if fails:
            return Fitness.infeasible(
                self.objective_names, "synthetic failure (failure_rate)",
                measured_on=measured_on, seconds=time.perf_counter() - t0,
            )
        F = synthetic_objectives(x)
        return Fitness(
            objectives={"f1": float(F[0]), "f2": float(F[1])},
            measured_on=measured_on,
            seconds=time.perf_counter() - t0,
        )


class _SyntheticPymoo(ElementwiseProblem):
    """The synthetic problem as a pymoo elementwise problem (peer benchmarks call it directly)."""

    def __init__(self, synthetic: SyntheticProblem, **kwargs):
        super().__init__(n_var=synthetic.n_var, n_obj=2, xl=0.0, xu=1.0, **kwargs)
        self.synthetic = synthetic

    def _evaluate(self, x, out, *args, **kwargs):
        fit = self.synthetic.evaluate(x)
        out["F"] = [min(v, 1e12) for v in fit.objectives.values()]
