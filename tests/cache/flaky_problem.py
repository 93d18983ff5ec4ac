"""A 2-variable problem whose first genome fails on its first attempts (failure-taxonomy tests).

Every attempt is appended to ``log_path`` (``O_APPEND``, unbuffered, so it survives a killed
process), which makes the attempts countable across processes, actors and searches. The
*victim* is the first genome the log ever saw; its first ``fail_first`` attempts fail as
``mode`` says:

* ``"die"``: the evaluating process exits at once (``os._exit``): an evaluator actor killed
  mid-evaluation, i.e. an infrastructure failure;
* ``"transient"``: an infeasible Fitness marked transient (a time limit under overload);
* ``"nan"``: a NaN objective, every time (a permanent failure of the genome).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems.base import SearchProblem


class FlakyProblem(SearchProblem):
    name = "flaky"
    objective_names = ("f1", "f2")
    constraint_names = ("g1",)

    def __init__(self, log_path: str, fail_first: int = 1, mode: str = "die", delay_s: float = 0.0):
        self.log_path = log_path
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.mode = mode

    def pymoo_problem(self):
        from pymoo.core.problem import Problem

        return Problem(n_var=2, n_obj=2, n_ieq_constr=1, xl=0.0, xu=1.0)

    def to_json(self, x):
        return [float(v) for v in x]

    def from_json(self, data):
        return [float(v) for v in data]

    def attempts(self) -> list[str]:
        """Keys of every attempt so far, in order."""
        path = Path(self.log_path)
        return path.read_text().split() if path.exists() else []

    def evaluate(self, x) -> Fitness:
        time.sleep(self.delay_s)
        key = self.key(x)
        seen = self.attempts()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (key + "\n").encode())
        finally:
            os.close(fd)
        victim = seen[0] if seen else key
        if key == victim and (self.mode == "nan" or seen.count(key) < self.fail_first):
            if self.mode == "die":
                os._exit(1)
            if self.mode == "transient":
                return Fitness.infeasible(self.objective_names, "time limit while the machine was overloaded",
                                          self.constraint_names, transient=True)
            return Fitness(objectives={"f1": math.nan, "f2": 0.0}, constraints={"g1": 0.0})
        return Fitness(objectives={"f1": x[0], "f2": 1.0 - x[0] + x[1]}, constraints={"g1": 0.0},
                       measured_on={"device": "cpu", "predicted": []})


def make(log_path: str, fail_first: int = 1, mode: str = "die", delay_s: float = 0.0) -> FlakyProblem:
    return FlakyProblem(log_path, fail_first, mode, delay_s)
