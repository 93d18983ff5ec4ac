"""The product: denoiser architectures for a diffusion model, trained and measured on real data.

``problem`` is the :class:`DiffusionProblem` the engine searches; ``settings`` is the one
frozen :class:`DiffusionSettings` object that says how candidates are trained and
measured (and is their cache key); ``bench`` is the candidate bench
(:class:`~evodiff_ray.problems.diffusion.bench.DiffusionBench`) that builds, trains and
measures one genome inside an evaluator actor; ``model`` trains a front member into a
registered model.
"""

from evodiff_ray.problems.diffusion.problem import DiffusionProblem, GenomeProblem, baseline_genome
from evodiff_ray.problems.diffusion.settings import OBJECTIVES, DiffusionSettings

__all__ = ["OBJECTIVES", "DiffusionProblem", "DiffusionSettings", "GenomeProblem", "baseline_genome"]
