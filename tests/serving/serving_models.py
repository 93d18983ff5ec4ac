"""Tiny registered versions for the serving tests: a genome's untrained weights, logged with the real pyfunc.

Training is not what serving tests test, so each version is a freshly initialised
denoiser (seeded), written as ``promote`` writes a trained one (``state_dict``, genome and
meta JSON) and logged with the same model-from-code file, then registered.
"""

from __future__ import annotations

import json
from pathlib import Path

MINIMAL = {"parameters": {"base_channels": 4, "channel_mults": [1], "time_emb_dim": 8, "sampler_steps": 2,
                          "norm_groups": 1},
           "layers": [{"kind": "conv", "side": "mid", "level": 0, "kernel": 1}],
           "connections": [], "generation": 1, "parents": []}


def genome_with_steps(steps: int, base_channels: int | None = None) -> dict:
    """MINIMAL with ``sampler_steps`` network evaluations per sample (latency grows with it),
    optionally wider (latency grows with that too)."""
    params = {**MINIMAL["parameters"], "sampler_steps": int(steps)}
    if base_channels is not None:
        params["base_channels"] = int(base_channels)
    layers = MINIMAL["layers"] if base_channels is None else [
        {"kind": "conv", "side": "mid", "level": 0, "kernel": 3},
        {"kind": "residual", "side": "mid", "level": 0},
    ]
    return {**MINIMAL, "parameters": params, "layers": layers}


def register_version(tracking_uri: str, model: str, folder: Path, genome: dict | None = None, seed: int = 0,
                     alias: str | None = None) -> str:
    """Log and register one version of ``model``; returns its version number."""
    import mlflow
    import torch

    from evodiff_ray.denoiser import build_denoiser
    from evodiff_ray.genome import Genome
    from evodiff_ray.problems.diffusion.model import PYFUNC_MODEL
    from evodiff_ray.tracking.mlflow_tracker import experiment_id

    g = Genome.from_dict(genome or MINIMAL)
    folder = Path(folder) / f"{g.key()[:12]}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.save(build_denoiser(g, in_channels=1).state_dict(), folder / "weights.pt")
    (folder / "genome.json").write_text(json.dumps(g.to_dict()))
    (folder / "meta.json").write_text(json.dumps({"resolution": 8, "channels": 1, "dataset_digest": "test"}))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    exp = experiment_id(client, "serving-tests", tracking_uri, folder.parent)
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_MODEL),
                                       artifacts={k: str(folder / f"{k}.{'pt' if k == 'weights' else 'json'}")
                                                  for k in ("genome", "weights", "meta")},
                                       pip_requirements=["evodiff-ray"])
    version = mlflow.register_model(info.model_uri, model).version
    if alias:
        client.set_registered_model_alias(model, alias, version)
    return str(version)
