"""Test problems that report which Ray node evaluated them (``measured_on["node_id"]``).

``vector``: a 2-variable problem with an optional delay (search and node-removal tests).
``genome``: genome candidates whose device objectives come from the CPU predictor (a
stand-in for measuring) and, with ``target_chip``, are retargeted to that chip exactly as
the diffusion problem does in predict mode.
"""

from __future__ import annotations

import time

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.genome import Genome
from evodiff_ray.problems.base import SearchProblem


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


class VectorNodeProblem(SearchProblem):
    name = "vector-node"
    objective_names = ("f1", "f2")

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s

    def pymoo_problem(self):
        from pymoo.core.problem import Problem

        return Problem(n_var=2, n_obj=2, xl=0.0, xu=1.0)

    def to_json(self, x):
        return [float(v) for v in x]

    def from_json(self, data):
        return [float(v) for v in data]

    def evaluate(self, x) -> Fitness:
        time.sleep(self.delay_s)
        return Fitness(objectives={"f1": x[0], "f2": 1.0 - x[0] + x[1]},
                       measured_on={"node_id": _node_id(), "device": "cpu", "predicted": []})


class GenomeNodeProblem(SearchProblem):
    name = "genome-node"
    objective_names = ("quality_fd", "latency_ms", "memory_mb")

    def __init__(self, target_chip: str | None = None):
        self.target_chip = target_chip

    def pymoo_problem(self):  # pragma: no cover - evaluated directly in these tests
        raise NotImplementedError

    def to_json(self, x):
        return x.to_dict() if isinstance(x, Genome) else x

    def from_json(self, data):
        return Genome.from_dict(data)

    def evaluate(self, x) -> Fitness:
        from evodiff_ray.hardware.budget import memory_budget_mb
        from evodiff_ray.hardware.predict import predictor_for
        from evodiff_ray.hardware.retarget import retarget_fitness

        here = predictor_for("cpu").predict(x)
        fit = Fitness(objectives={"quality_fd": 1.0 / (1 + len(x.layers)), **here},
                      measured_on={"node_id": _node_id(), "device": "cpu", "chip": "test-cpu", "predicted": []})
        if self.target_chip:
            fit = retarget_fitness(fit, x, predictor_for(self.target_chip), chip=self.target_chip,
                                   budget_mb=memory_budget_mb(self.target_chip))
        return fit


def vector(delay_s: float = 0.0) -> VectorNodeProblem:
    return VectorNodeProblem(delay_s)


def genome(target_chip: str | None = None) -> GenomeNodeProblem:
    return GenomeNodeProblem(target_chip)
