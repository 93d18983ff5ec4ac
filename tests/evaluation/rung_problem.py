"""A vector problem with rungs: quality improves with the training budget, cheap objectives need none.

x = (a, b, c) in [0, 1]^3. Latency is ``1 + 10 a``, memory ``1 + 10 b``; quality at rung r
is ``(1 + 10 c) * (1 + 2 ** -r)``, so a candidate's rank on quality is the same at every
rung, and every rung halves the gap to the final value. Each evaluation is appended to a
log (evaluator-side counting), with its rung and the steps it cost.
"""

from __future__ import annotations

import json
import os

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems.base import SearchProblem

STEPS = (10, 40, 160)   # training steps behind each rung's measurement


class RungProblem(SearchProblem):
    name = "rung-test"
    objective_names = ("quality", "latency", "memory")

    def __init__(self, log_path: str):
        self.log_path = log_path

    def pymoo_problem(self):  # pragma: no cover - not searched by pymoo here
        from pymoo.core.problem import Problem

        return Problem(n_var=3, n_obj=3, xl=0.0, xu=1.0)

    def to_json(self, x):
        return [float(v) for v in x]

    def from_json(self, data):
        return [float(v) for v in data]

    def rung_count(self) -> int:
        return len(STEPS)

    def evaluate(self, x) -> Fitness:
        return self.evaluate_rung(x, len(STEPS) - 1)

    def evaluate_rung(self, x, rung: int) -> Fitness:
        a, b, c = x
        with open(self.log_path, "a") as f:
            f.write(json.dumps({"key": self.key(x), "rung": rung}) + "\n")
        cheap = {"latency": 1 + 10 * a, "memory": 1 + 10 * b}
        if rung < 0:
            return Fitness(objectives={"quality": float("inf"), **cheap}, extras={"rung": rung, "train_steps": 0},
                           measured_on={"device": "cpu", "node": os.uname().nodename})
        spent = STEPS[rung] - (STEPS[rung - 1] if rung else 0)   # continued from the rung below
        return Fitness(objectives={"quality": (1 + 10 * c) * (1 + 2.0 ** -rung), **cheap},
                       extras={"rung": rung, "train_steps": STEPS[rung], "train_steps_spent": spent})
