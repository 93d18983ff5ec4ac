"""A vector problem whose evaluating process reports the processor it runs on (from the environment).

``EVODIFF_TEST_PROCESSOR`` stands in for what a Mac worker would read from ``sysctl``:
actors started with it set report it, the driver (without it) reports ``driver``; the
value ``pid`` makes every process report a different processor.
"""

from __future__ import annotations

import os

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.key import ProblemSettings
from evodiff_ray.problems.base import SearchProblem


class HardwareProblem(SearchProblem):
    name = "hardware-test"
    objective_names = ("f1", "f2")

    def __init__(self):
        self.processor = _here()

    def pymoo_problem(self):
        from pymoo.core.problem import Problem

        return Problem(n_var=2, n_obj=2, xl=0.0, xu=1.0)

    def to_json(self, x):
        return [float(v) for v in x]

    def from_json(self, data):
        return [float(v) for v in data]

    def worker_facts(self):
        return {"processor": _here()}

    def adopt_worker_facts(self, facts):
        self.processor = facts["processor"]

    def evaluation_settings(self):
        return ProblemSettings(self.name, {"processor": self.processor})

    def evaluate(self, x) -> Fitness:
        return Fitness(objectives={"f1": x[0], "f2": 1.0 - x[0] + x[1]}, measured_on={"chip": _here()})


def _here() -> str:
    value = os.environ.get("EVODIFF_TEST_PROCESSOR", "driver")
    return str(os.getpid()) if value == "pid" else value


def make() -> HardwareProblem:
    return HardwareProblem()
