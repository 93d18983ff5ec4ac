"""Automatic registration: at the end of a search, its front's top k go to MLflow's registry.

The members are chosen by :func:`select_top`: the knee first (the most balanced trade-off),
then the rest by crowding distance, most isolated first (the extremes of the front have an
infinite crowding distance, so they come right after the knee), which spreads k models
over the front. Each comes from the search's problem
(:meth:`~evodiff_ray.problems.SearchProblem.train_model`): in a multi-fidelity search, the
model measured at the member's rung, taken from the trunk store; where no stored weights
serve, trained at ``register_fidelity``, default the search's fidelity (weights trained
before at that fidelity are reused). It is logged as a
pyfunc in a child run of the search's MLflow run, and registered as a version of the model
``evodiff-<search_id>`` with aliases ``knee`` and ``front-<i>``. Each version's tags hold
the genome (so ``--seed-from models:/NAME@ALIAS`` can start a search from it), its
objectives, rung and training steps, its lineage (generation, parents, origin, search id),
the dataset digest and ``measured_on``.

:class:`RegistrationTracker` does it from ``on_finish``; the search driver adds one when
tracking is on and ``register_top > 0``. It lives in the tracking layer so the search
driver can reach it. A problem whose candidates are not models registers nothing.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from evodiff_ray.core.tracker import Tracker

log = logging.getLogger(__name__)

__all__ = ["RegistrationTracker", "crowding_distances", "register_front", "select_top"]


def crowding_distances(points: list[dict[str, Any]], objective_names: list[str]) -> list[float]:
    """NSGA-II's crowding distance of each front point (pure): the sum over objectives of the
    normalised gap between its neighbours; the extremes of each objective get ``inf``."""
    n = len(points)
    dist = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for name in objective_names:
        vals = [float(p["objectives"][name]) for p in points]
        order = sorted(range(n), key=lambda i: (vals[i], i))
        lo, hi = vals[order[0]], vals[order[-1]]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi <= lo:
            continue
        for j in range(1, n - 1):
            dist[order[j]] += (vals[order[j + 1]] - vals[order[j - 1]]) / (hi - lo)
    return dist


def select_top(points: list[dict[str, Any]], objective_names: list[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` front points to register: the knee, then by crowding distance (most
    isolated first; ties by key). Pure and deterministic."""
    from evodiff_ray.tracking.registry import knee_index

    if k <= 0 or not points:
        return []
    knee = knee_index(points, objective_names)
    crowd = crowding_distances(points, objective_names)
    rest = sorted((i for i in range(len(points)) if i != knee), key=lambda i: (-crowd[i], points[i]["key"]))
    return [points[i] for i in [knee, *rest][:k]]


def version_tags(point: dict[str, Any], *, search_id: str, dataset_digest: str | None,
                 trained: dict[str, Any] | None = None, rank: int = 0) -> dict[str, str]:
    """The registry tags of one front member (strings; JSON where structured)."""
    genome = point.get("genome")
    tags = {
        "search_id": search_id,
        "genome_key": point["key"],
        "genome": json.dumps(genome, sort_keys=True, separators=(",", ":")),
        "objectives": json.dumps(point["objectives"]),
        "rung": json.dumps(point.get("rung")),
        "train_steps": json.dumps(point.get("train_steps")),
        "generation": str(point.get("generation")),
        "parents": json.dumps(point.get("parents", [])),
        "origin": str(point.get("origin") or ""),
        "measured_on": json.dumps(point.get("measured_on") or {}),
        "front_rank": str(rank),
    }
    if dataset_digest:
        tags["dataset_digest"] = dataset_digest
    if trained:
        fid = trained.get("fidelity") or {}
        tags["trained_fidelity"] = str(fid.get("name", ""))
        tags["trained_steps"] = str(fid.get("train_steps", ""))
        tags["weights_from"] = f"trunk rung {trained.get('rung')}" if trained.get("from_trunk") else "trained"
    return tags


def register_front(front: dict[str, Any], problem, *, k: int, search_id: str, runs_dir: str | Path,
                   tracking_uri: str, fidelity: str | None = None, model_name: str | None = None,
                   parent_run_id: str | None = None, progress=lambda m: None) -> list[dict[str, Any]]:
    """Train, log and register the front's top ``k``; returns one dict per registered version.

    Returns an empty list when ``k`` is 0, the front is empty, or the problem's candidates
    are not models (its ``train_model`` returns None).
    """
    chosen = select_top(list(front.get("points", [])), list(front["objectives"]), k)
    if not chosen:
        return []
    import mlflow
    from mlflow import MlflowClient

    from evodiff_ray.tracking.mlflow_tracker import experiment_id, point_mlflow_at
    from evodiff_ray.tracking.registry import MODELS_DIR

    runs = Path(runs_dir)
    models = []
    for point in chosen:
        model = problem.train_model(problem.from_json(point["genome"]), models_dir=runs / MODELS_DIR,
                                    fidelity=fidelity, progress=progress, rung=point.get("rung"))
        if model is None:   # this problem's candidates are not models
            return []
        models.append(model)
    point_mlflow_at(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    exp_id = experiment_id(client, f"evodiff-{problem.name}-registered", tracking_uri, runs)
    name = model_name or f"evodiff-{search_id}"
    digest = getattr(problem.evaluation_settings(), "dataset_digest", None)
    out = []
    for rank, (point, model) in enumerate(zip(chosen, models)):
        tags = version_tags(point, search_id=search_id, dataset_digest=digest or model.meta.get("dataset_digest"),
                            trained=model.meta, rank=rank)
        # run tags are capped at 8000 chars (the genome is an artifact there); ``search_id`` on a
        # run marks a search's own run, so this child run names its search differently
        run_tags = {k: v for k, v in tags.items() if k not in ("genome", "search_id")}
        run_tags["registered_from_search"] = search_id
        if parent_run_id:
            run_tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(exp_id, run_name=f"register-{point['key'][:12]}", tags=run_tags)
        with mlflow.start_run(run_id=run.info.run_id):
            mlflow.log_dict(point.get("genome"), "genome.json")
            info = mlflow.pyfunc.log_model(name="model", python_model=model.python_model,
                                           artifacts=dict(model.artifacts),
                                           pip_requirements=list(model.pip_requirements))
        version = mlflow.register_model(info.model_uri, name, tags=tags)
        aliases = [f"front-{rank + 1}"] + (["knee"] if rank == 0 else [])
        for alias in aliases:
            client.set_registered_model_alias(name, alias, version.version)
        progress(f"registered {point['key'][:12]} as {name} version {version.version} ({', '.join(aliases)})")
        out.append({"model_name": name, "version": version.version, "aliases": aliases, "key": point["key"],
                    "objectives": point["objectives"], "model_uri": f"models:/{name}@{aliases[-1]}"})
    return out


class RegistrationTracker(Tracker):
    """Registers the front's top ``k`` when the search finishes (see :func:`register_front`).

    A failure is logged and never fails the search (the run dir keeps the front; ``promote``
    can register a member later). What was registered goes to ``<run_dir>/registered.json``.
    """

    def __init__(self, problem, *, k: int, tracking_uri: str, fidelity: str | None = None):
        self.problem, self.k, self.tracking_uri, self.fidelity = problem, k, tracking_uri, fidelity
        self.config = None
        self.run_dir: Path | None = None
        self.registered: list[dict[str, Any]] = []
        self._notes: list[str] = []

    def on_start(self, config, run_dir: Path, resumed: bool) -> None:
        self.config, self.run_dir = config, Path(run_dir)

    def on_finish(self, result) -> None:
        if self.config is None:
            return
        from evodiff_ray.tracking.mlflow_tracker import RUN_FILE

        done = Path(self.run_dir) / "registered.json"
        if done.is_file():   # a resumed search whose front did not change: registered already
            try:
                before = [v["key"] for v in json.loads(done.read_text())]
            except (ValueError, KeyError, TypeError):
                before = None
            objectives = list(result.front.get("objectives", []))
            if before == [p["key"] for p in select_top(list(result.front.get("points", [])), objectives, self.k)]:
                return
        parent = None
        run_file = Path(self.run_dir) / RUN_FILE
        if run_file.exists():
            parent = json.loads(run_file.read_text()).get("run_id")
        try:
            self.registered = register_front(
                result.front, self.problem, k=self.k, search_id=self.config.search_id,
                runs_dir=self.config.runs_dir, tracking_uri=self.tracking_uri,
                fidelity=self.fidelity or getattr(self.config, "fidelity", None), parent_run_id=parent,
                progress=log.info)
        except Exception as e:  # noqa: BLE001 - registration must never fail a finished search
            log.warning("registering the front failed (%s: %s); 'evodiff-ray promote %s' can register a member",
                        type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "", self.config.search_id)
            return
        if self.registered:
            from evodiff_ray.core.io import atomic_write_text

            atomic_write_text(Path(self.run_dir) / "registered.json", json.dumps(self.registered, indent=1))
