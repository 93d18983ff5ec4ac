"""A tiny vector problem that logs every evaluation to a file (evaluator-side counting)."""

from __future__ import annotations

import os
import time

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems.base import SearchProblem


class CountingProblem(SearchProblem):
    name = "counting"
    objective_names = ("f1", "f2")

    def __init__(self, log_path: str, delay_s: float = 0.0):
        self.log_path = log_path
        self.delay_s = delay_s

    def pymoo_problem(self):  # pragma: no cover - not searched in these tests
        from pymoo.core.problem import Problem

        return Problem(n_var=2, n_obj=2, xl=0.0, xu=1.0)

    def to_json(self, x):
        return [float(v) for v in x]

    def from_json(self, data):
        return [float(v) for v in data]

    def evaluate(self, x) -> Fitness:
        time.sleep(self.delay_s)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (self.key(x) + "\n").encode())
        finally:
            os.close(fd)
        return Fitness(objectives={"f1": x[0], "f2": 1.0 - x[0] + x[1]}, measured_on={"device": "cpu"})


def make(log_path: str, delay_s: float = 0.0) -> CountingProblem:
    return CountingProblem(log_path, delay_s)
