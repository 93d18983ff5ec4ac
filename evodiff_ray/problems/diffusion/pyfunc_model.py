"""MLflow "model from code" for a promoted denoiser: a pyfunc whose ``predict`` samples images.

MLflow loads this file (not a pickle) and the two artifacts logged with it: the genome
JSON and the weights (a ``state_dict`` read with ``torch.load(weights_only=True)``).

``predict`` takes ``{"n": int, "seed": int, "steps": int | None}`` (a dict, or a one-row
DataFrame) and returns ``(n, C, H, W)`` float32 images in ``[-1, 1]``.
"""

from __future__ import annotations

import json

import mlflow
from mlflow.pyfunc import PythonModel


class DenoiserSampler(PythonModel):
    """Samples images with deterministic DDIM from the promoted denoiser."""

    def load_context(self, context):
        import torch

        from evodiff_ray.denoiser import build_denoiser
        from evodiff_ray.diffusion.schedule import linear_schedule
        from evodiff_ray.genome import Genome

        with open(context.artifacts["meta"]) as f:
            self.meta = json.load(f)
        self.genome = Genome.load(context.artifacts["genome"])
        self.net = build_denoiser(self.genome, in_channels=int(self.meta["channels"]))
        state = torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval()
        self.schedule = linear_schedule()

    def predict(self, context, model_input, params=None):
        from evodiff_ray.diffusion.sampler import ddim_sample, sample_noise

        req = model_input
        if hasattr(req, "to_dict"):  # a pandas DataFrame: use its first row
            req = {k: v[0] for k, v in req.to_dict(orient="list").items()}
        n = int(req.get("n", 16))
        seed = int(req.get("seed", 0))
        steps = req.get("steps")
        steps = int(self.genome.parameters["sampler_steps"] if steps is None else steps)
        res, ch = int(self.meta["resolution"]), int(self.meta["channels"])
        noise = sample_noise((n, ch, res, res), seed)
        return ddim_sample(self.net, self.schedule, noise, steps).numpy()


mlflow.models.set_model(DenoiserSampler())
