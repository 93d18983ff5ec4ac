"""Promote a front member to the MLflow model registry, with its evolutionary metadata.

``promote`` picks a point of a search's front (the knee, an index or a key), trains that
architecture at ``full`` fidelity (or reuses weights already trained at that fidelity for
the same genome, dataset and seed), logs it as a pyfunc that samples images, registers
it under a model name with tags (search id, generation, objectives, parents, genome key,
target) and points an alias at the new version.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from evodiff_ray.core.errors import UsageError

MODELS_DIR = ".models"


def knee_index(points: list[dict[str, Any]], objective_names: list[str]) -> int:
    """The knee of a front: the point nearest the ideal point after min-max normalisation.

    Each objective is scaled to [0, 1] over the front; the knee minimises the Euclidean
    distance to the origin (the ideal point), i.e. the most balanced trade-off.

    Raises:
        UsageError: for an empty front.
    """
    if not points:
        raise UsageError("the front is empty; nothing to promote (did the search evaluate anything?)")
    F = [[float(p["objectives"][n]) for n in objective_names] for p in points]
    lo = [min(col) for col in zip(*F)]
    hi = [max(col) for col in zip(*F)]
    def dist(row):
        return math.sqrt(sum(((v - a) / (b - a) if b > a else 0.0) ** 2 for v, a, b in zip(row, lo, hi)))
    return min(range(len(F)), key=lambda i: (dist(F[i]), i))


def pick_point(front: dict[str, Any], pick: str) -> dict[str, Any]:
    """``knee``, an index into the front's points, or a key (a unique prefix is enough).

    Raises:
        UsageError: an index out of range or an unknown/ambiguous key.
    """
    points = front.get("points", [])
    if pick == "knee":
        return points[knee_index(points, front["objectives"])]
    if pick.isdigit():
        i = int(pick)
        if not 0 <= i < len(points):
            raise UsageError(f"--pick {i}: the front has {len(points)} points; use 0..{len(points) - 1} or 'knee'")
        return points[i]
    hits = [p for p in points if p["key"].startswith(pick)]
    if len(hits) != 1:
        what = "no front point has" if not hits else f"{len(hits)} front points share"
        raise UsageError(f"--pick {pick}: {what} that key prefix; use 'knee', an index or a longer key")
    return hits[0]


def train_full(genome_data: dict[str, Any], problem_options: dict[str, Any], models_dir: Path,
               progress=lambda m: None, fidelity: str = "full") -> tuple[Path, dict[str, Any]]:
    """Train a genome at ``fidelity`` (``full`` by default), or reuse weights trained before.

    Returns:
        (weights path, metadata: resolution, channels, dataset digest, fidelity, final loss).
    """
    import torch

    from evodiff_ray.data import load_dataset
    from evodiff_ray.denoiser import build_denoiser
    from evodiff_ray.diffusion.fidelity import get_fidelity
    from evodiff_ray.diffusion.schedule import linear_schedule
    from evodiff_ray.diffusion.train import train
    from evodiff_ray.core.key import evaluation_key
    from evodiff_ray.genome import Genome

    genome = Genome.from_dict(genome_data)
    fid = get_fidelity(fidelity)
    ds = load_dataset(problem_options.get("dataset", "digits"), resolution=problem_options.get("resolution"))
    seed = int(problem_options.get("seed", 0))
    key = evaluation_key(genome.key(), {"fidelity": fid.to_dict(), "dataset": ds.digest, "seed": seed,
                                        "purpose": "promote"})
    weights = models_dir / f"{key}.pt"
    meta_path = models_dir / f"{key}.json"
    if weights.exists() and meta_path.exists():
        progress(f"reusing weights trained at {fid.name} fidelity: {weights}")
        return weights, json.loads(meta_path.read_text())
    torch.manual_seed(seed)
    net = build_denoiser(genome, in_channels=ds.channels)
    progress(f"training {genome.key()[:12]} at {fid.name} fidelity ({fid.train_steps} steps)")
    result = train(net, ds.train, linear_schedule(), fid, seed)
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(".tmp")
    torch.save(result.model.state_dict(), tmp)
    tmp.replace(weights)
    meta = {"resolution": ds.resolution, "channels": ds.channels, "dataset_digest": ds.digest,
            "fidelity": fid.to_dict(), "final_loss": result.final_loss, "train_seconds": result.seconds}
    meta_path.write_text(json.dumps(meta))
    return weights, meta


def promote(search_id: str, *, runs_dir: str | Path = "evodiff-runs", pick: str = "knee",
            alias: str = "candidate", model_name: str | None = None, tracking_uri: str | None = None,
            redis_url: str | None = None, fidelity: str = "full", progress=lambda m: None) -> dict[str, Any]:
    """Train, log and register one front member; returns what was registered.

    Raises:
        UsageError: unknown search, bad pick, or a front that is not of the diffusion problem.
    """
    import mlflow
    from mlflow import MlflowClient

    from evodiff_ray.cache.front_store import read_front
    from evodiff_ray.tracking.mlflow_tracker import RUN_FILE, resolve_tracking_uri

    runs = Path(runs_dir)
    front = read_front(search_id, str(runs), redis_url)
    config_path = runs / search_id / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    if config.get("problem", "diffusion") != "diffusion":
        raise UsageError(f"search {search_id!r} is a {config.get('problem')!r} search; only diffusion "
                         "architectures can be promoted to models")
    point = pick_point(front, pick)
    options = dict(config.get("problem_options") or {})
    weights, meta = train_full(point["genome"], options, runs / MODELS_DIR, progress, fidelity)

    uri = resolve_tracking_uri(tracking_uri or config.get("tracking_uri"), runs)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    parent = None
    run_file = runs / search_id / RUN_FILE
    if run_file.exists():
        parent = json.loads(run_file.read_text()).get("run_id")
    exp_name = f"evodiff-{config.get('problem', 'diffusion')}-promoted"
    exp = client.get_experiment_by_name(exp_name)
    exp_id = exp.experiment_id if exp else client.create_experiment(exp_name)
    name = model_name or f"evodiff-{search_id}"
    tags = {
        "search_id": search_id,
        "genome_key": point["key"],
        "generation": str(point.get("generation")),
        "parents": json.dumps(point.get("parents", [])),
        "objectives": json.dumps(point["objectives"]),
        "target": str(config.get("target") or "local"),
        "pick": pick,
        "fidelity": fidelity,
    }
    with tempfile.TemporaryDirectory() as tmp:
        genome_path = Path(tmp) / "genome.json"
        genome_path.write_text(json.dumps(point["genome"], indent=1))
        meta_path = Path(tmp) / "meta.json"
        meta_path.write_text(json.dumps(meta))
        run_tags = dict(tags)
        if parent:
            run_tags["mlflow.parentRunId"] = parent
        run = client.create_run(exp_id, run_name=f"promote-{point['key'][:12]}", tags=run_tags)
        with mlflow.start_run(run_id=run.info.run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"genome": str(genome_path), "weights": str(weights), "meta": str(meta_path)},
                pip_requirements=["evodiff-ray", "torch==2.13.0", "mlflow"],
            )
    version = mlflow.register_model(info.model_uri, name, tags=tags)
    client.set_registered_model_alias(name, alias, version.version)
    return {"model_name": name, "version": version.version, "alias": alias, "key": point["key"],
            "objectives": point["objectives"], "model_uri": f"models:/{name}@{alias}", "tracking_uri": uri}
