"""The diffusion problem, unchanged, plus the Ray node each candidate was evaluated on.

Simulated Ray nodes (``ray.cluster_utils.Cluster``) share this machine's hostname, so
``measured_on["node"]`` cannot tell them apart; ``measured_on["ray_node_id"]`` can.
Everything else (training, measuring, the target's memory budget) is
:class:`~evodiff_ray.problems.diffusion.DiffusionProblem`'s own.
"""

from __future__ import annotations

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems.diffusion import DiffusionProblem


class DiffusionOnNode(DiffusionProblem):
    def evaluate(self, x) -> Fitness:
        import ray

        fit = super().evaluate(x)
        fit.measured_on = {**fit.measured_on, "ray_node_id": ray.get_runtime_context().get_node_id()}
        return fit
