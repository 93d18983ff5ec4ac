"""Tiny registered versions for the serving tests: a genome's untrained weights, logged with the real pyfunc.

Training is not what serving tests test, so each version is a freshly initialised
denoiser (seeded), written as ``promote`` writes a trained one (``state_dict``, genome and
meta JSON) and logged with the same model-from-code file, then registered. Untrained, a
version draws noise; the served-FD test also needs one that draws digits, so
``register_version(..., train_steps=...)`` trains it briefly first (:data:`LEARNER`).
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


#: a small UNet that learns 8x8 digits quickly: 1000 steps (~7 s on one idle core) bring the FD
#: of 128 samples to ~140-190, against ~440 for MINIMAL's noise and ~45 for real digits
LEARNER = {"parameters": {"base_channels": 16, "channel_mults": [1, 2], "time_emb_dim": 16, "sampler_steps": 20,
                          "norm_groups": 4},
           "layers": [{"kind": "residual", "side": "down", "level": 0},
                      {"kind": "residual", "side": "mid", "level": 1},
                      {"kind": "residual", "side": "up", "level": 0}],
           "connections": [[0, 2]], "generation": 1, "parents": []}


def trained_on_digits(net, steps: int, seed: int):
    """``net`` trained ``steps`` steps on the digits train split (the EMA copy), deterministic for a seed."""
    from evodiff_ray.data import load_dataset
    from evodiff_ray.diffusion.fidelity import Fidelity
    from evodiff_ray.diffusion.schedule import linear_schedule
    from evodiff_ray.diffusion.train import train

    ds = load_dataset("digits", resolution=8)
    budget = Fidelity("serving-test", train_steps=int(steps), batch_size=32, lr=4e-3, ema_decay=0.95)
    return train(net, ds.train, linear_schedule(), budget, seed).model


def register_version(tracking_uri: str, model: str, folder: Path, genome: dict | None = None, seed: int = 0,
                     alias: str | None = None, train_steps: int = 0) -> str:
    """Log and register one version of ``model``; returns its version number.

    Args:
        tracking_uri: the registry's MLflow URI.
        model: registered model name.
        folder: where the artifacts are written (one subfolder per version).
        genome: the architecture (default :data:`MINIMAL`).
        seed: seeds the initial weights (and the training).
        alias: an alias to point at the new version (``production``).
        train_steps: train on digits this long first (0: untrained, it draws noise).
    """
    import mlflow
    import torch

    from evodiff_ray.denoiser import build_denoiser
    from evodiff_ray.genome import Genome
    from evodiff_ray.problems.diffusion.model import PYFUNC_MODEL
    from evodiff_ray.tracking.mlflow_tracker import experiment_id, point_mlflow_at

    g = Genome.from_dict(genome or MINIMAL)
    folder = Path(folder) / f"{g.key()[:12]}-s{seed}-t{int(train_steps)}"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = build_denoiser(g, in_channels=1)
    if train_steps:
        net = trained_on_digits(net, train_steps, seed)
    torch.save(net.state_dict(), folder / "weights.pt")
    (folder / "genome.json").write_text(json.dumps(g.to_dict()))
    (folder / "meta.json").write_text(json.dumps({"resolution": 8, "channels": 1, "dataset_digest": "test"}))
    point_mlflow_at(tracking_uri)
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


class ServingStack:
    """One serving stack for a test: an embedded redis-server, Ray Serve on a free port, the
    controller serving ``production`` and the gateway up (what ``evodiff-ray serve`` starts).

    Args:
        runs: the runs dir (the redis-server's AOF goes under ``.redis``).
        uri: the MLflow registry URI.
        model: the registered model.
        production: the version to serve.
        options: :class:`~evodiff_ray.serving.server.ServeOptions` fields (small test policies).
    """

    def __init__(self, runs: Path, uri: str, model: str, production: str, **options):
        import redis

        from evodiff_ray.cache.local_redis import LocalRedis, free_port
        from evodiff_ray.serving.controller import Controller
        from evodiff_ray.serving.events import DeploymentRecorder
        from evodiff_ray.serving.server import ServeOptions, Supervisor, start_serve

        self.redis_server = LocalRedis(Path(runs) / ".redis").start(reuse=False)
        self.client = redis.Redis.from_url(self.redis_server.url)
        port = free_port()
        self.options = ServeOptions(model, uri, self.redis_server.url, runs_dir=str(runs), port=port,
                                    **{"replica_cpus": 0.25, "check_interval_s": 0.3, "grace_s": 1.0,
                                       "fd_interval_s": 0, **options})
        self.url = self.options.url
        start_serve("127.0.0.1", port)
        self.recorder = DeploymentRecorder(uri, model, str(runs))
        self.controller = Controller(self.client, model, self.recorder)
        self.controller.start_serving(production)
        self.supervisor = Supervisor(self.options, self.controller)
        self.supervisor.deploy_gateway()
        self.supervisor.start_background()
        assert self.supervisor.wait_ready(timeout_s=180), self.supervisor.errors

    def close(self) -> None:
        """Stop the supervisor, Serve and the redis-server."""
        from ray import serve

        self.supervisor.stop()
        serve.shutdown()
        self.client.close()
        self.redis_server.stop(force=True)
