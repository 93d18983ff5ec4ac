"""The product: denoiser architectures for a diffusion model, trained and measured on real data.

``problem`` is the :class:`DiffusionProblem` the engine searches; ``bench`` is the
candidate bench (:class:`~evodiff_ray.problems.diffusion.bench.DiffusionBench`) that
builds, trains and measures one genome inside an evaluator actor.
"""

from evodiff_ray.problems.diffusion.problem import OBJECTIVES, DiffusionProblem, GenomeProblem, baseline_genome

__all__ = ["OBJECTIVES", "DiffusionProblem", "GenomeProblem", "baseline_genome"]
