"""Promote a front member to the MLflow model registry, with its evolutionary metadata.

``promote`` picks a point of a search's front (the knee, weights over the objectives, an
index or a key), has the
search's problem train it into a model (the diffusion problem trains the architecture at
``full`` fidelity, or reuses weights trained before, and gives a pyfunc that samples
images), logs that model, registers it under a model name with tags (search id,
generation, objectives, parents, genome key, target) and points an alias at the new version.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from evodiff_ray.core.errors import UsageError

MODELS_DIR = ".models"
#: ``--pick weights:NAME=W,...``: the prefix of a weighted pick
WEIGHTS_PREFIX = "weights:"
_WEIGHTS_EXAMPLE = "e.g. weights:quality_fd=2,latency_ms=1"


def knee_index(points: list[dict[str, Any]], objective_names: list[str]) -> int:
    """The knee of a front: the point nearest the ideal point after min-max normalisation.

    Each objective is scaled to [0, 1] over the front; the knee minimises the Euclidean
    distance to the origin (the ideal point), i.e. the most balanced trade-off.

    Raises:
        UsageError: for an empty front.
    """
    if not points:
        raise UsageError("the front is empty; nothing to promote (did the search evaluate anything?)")
    dist = [math.sqrt(sum(v * v for v in row)) for row in _normalised(points, objective_names)]
    return min(range(len(points)), key=lambda i: (dist[i], i))


def _normalised(points: list[dict[str, Any]], objective_names: Sequence[str]) -> list[list[float]]:
    """Each objective min-max scaled to [0, 1] over the points (0 where all are equal)."""
    F = [[float(p["objectives"][n]) for n in objective_names] for p in points]
    lo = [min(col) for col in zip(*F)]
    hi = [max(col) for col in zip(*F)]
    return [[(v - a) / (b - a) if b > a else 0.0 for v, a, b in zip(row, lo, hi)] for row in F]


def parse_weights(spec: str, objective_names: Sequence[str] | None = None) -> dict[str, float]:
    """``"quality_fd=2,latency_ms=1"`` (the part after ``weights:``) -> ``{name: weight}``.

    Args:
        spec: comma-separated ``NAME=WEIGHT`` pairs; weights are finite numbers >= 0, not all 0.
        objective_names: the front's objectives, each name must be one of them (None: not
            checked, e.g. before the front is read).

    Raises:
        UsageError: a malformed pair, a repeated or unknown name, a negative or non-finite
            weight, or all weights 0; one line naming the fix.
    """
    weights: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, text = (s.strip() for s in part.partition("="))
        if not sep or not name or not text:
            raise UsageError(f"--pick weights:{spec}: expected NAME=WEIGHT pairs separated by commas, "
                             f"{_WEIGHTS_EXAMPLE}")
        try:
            w = float(text)
        except ValueError:
            raise UsageError(f"--pick weights:{spec}: the weight of {name!r} is not a number ({text!r})") from None
        if not math.isfinite(w) or w < 0:
            raise UsageError(f"--pick weights:{spec}: weights must be finite and >= 0; {name}={text}")
        if name in weights:
            raise UsageError(f"--pick weights:{spec}: {name!r} is given twice; keep one")
        if objective_names is not None and name not in objective_names:
            raise UsageError(f"--pick weights:{spec}: the front has no objective {name!r}; "
                             f"weigh some of {', '.join(objective_names)}")
        weights[name] = w
    if not any(weights.values()):
        raise UsageError(f"--pick weights:{spec}: every weight is 0; give at least one a positive weight")
    return weights


def weighted_index(points: list[dict[str, Any]], objective_names: Sequence[str],
                   weights: dict[str, float]) -> int:
    """The front member minimising the weighted sum of its objectives, each normalised to
    [0, 1] over the front (pure).

    Objectives not in ``weights`` weigh 0 (they do not count); ties go to the earlier point.
    Scaling each objective by its range over the front makes the weights compare objectives
    in different units (milliseconds and FD), so ``quality_fd=2,latency_ms=1`` means
    "a front-wide step in quality counts twice a front-wide step in latency".

    Raises:
        UsageError: for an empty front.
    """
    if not points:
        raise UsageError("the front is empty; nothing to promote (did the search evaluate anything?)")
    w = [float(weights.get(n, 0.0)) for n in objective_names]
    scores = [sum(wi * v for wi, v in zip(w, row)) for row in _normalised(points, objective_names)]
    return min(range(len(points)), key=lambda i: (scores[i], i))


def pick_point(front: dict[str, Any], pick: str) -> dict[str, Any]:
    """``knee``, ``weights:NAME=W,...``, an index into the front's points, or a key (a unique
    prefix is enough).

    ``weights:quality_fd=2,latency_ms=1`` picks the member minimising the weighted sum of
    its objectives normalised to [0, 1] over the front (:func:`weighted_index`); objectives
    not named weigh 0.

    Raises:
        UsageError: bad weights, an index out of range or an unknown/ambiguous key.
    """
    points = front.get("points", [])
    if pick == "knee":
        return points[knee_index(points, front["objectives"])]
    if pick.startswith(WEIGHTS_PREFIX):
        weights = parse_weights(pick[len(WEIGHTS_PREFIX):], front["objectives"])
        return points[weighted_index(points, front["objectives"], weights)]
    if pick.isdigit():
        i = int(pick)
        if not 0 <= i < len(points):
            raise UsageError(f"--pick {i}: the front has {len(points)} points; use 0..{len(points) - 1} or 'knee'")
        return points[i]
    hits = [p for p in points if p["key"].startswith(pick)]
    if len(hits) != 1:
        what = "no front point has" if not hits else f"{len(hits)} front points share"
        raise UsageError(f"--pick {pick}: {what} that key prefix; use 'knee', 'weights:NAME=W,...', "
                         "an index or a longer key")
    return hits[0]


def promote(search_id: str, *, runs_dir: str | Path = "evodiff-runs", pick: str = "knee",
            alias: str = "candidate", model_name: str | None = None, tracking_uri: str | None = None,
            redis_url: str | None = None, fidelity: str = "full", progress=lambda m: None) -> dict[str, Any]:
    """Train, log and register one front member; returns what was registered.

    The search's problem trains the member (:meth:`~evodiff_ray.problems.SearchProblem.train_model`):
    the registry knows nothing of what a candidate is.

    Raises:
        UsageError: unknown search, bad pick, or a problem whose candidates are not models.
    """
    import mlflow
    from mlflow import MlflowClient

    from evodiff_ray.cache.front_store import read_front
    from evodiff_ray.problems import make_problem
    from evodiff_ray.tracking.mlflow_tracker import RUN_FILE, experiment_id, point_mlflow_at, resolve_tracking_uri

    runs = Path(runs_dir)
    front = read_front(search_id, str(runs), redis_url)
    config_path = runs / search_id / "config.json"
    if not config_path.exists():
        raise UsageError(f"{config_path} is missing; promote needs the search's run dir (pass --runs-dir)")
    config = json.loads(config_path.read_text())
    problem = make_problem(config["problem"], config.get("problem_options"))
    point = pick_point(front, pick)
    model = problem.train_model(problem.from_json(point["genome"]), models_dir=runs / MODELS_DIR,
                                fidelity=fidelity, progress=progress)
    if model is None:
        raise UsageError(f"search {search_id!r} is a {problem.name!r} search, whose candidates are not models; "
                         "nothing to promote")

    uri = resolve_tracking_uri(tracking_uri or config.get("tracking_uri"), runs)
    point_mlflow_at(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    parent = None
    run_file = runs / search_id / RUN_FILE
    if run_file.exists():
        parent = json.loads(run_file.read_text()).get("run_id")
    exp_name = f"evodiff-{problem.name}-promoted"
    exp_id = experiment_id(client, exp_name, uri, runs)
    name = model_name or f"evodiff-{search_id}"
    tags = {
        "search_id": search_id,
        "genome_key": point["key"],
        # the genome itself, so 'search --seed-from models:/NAME@ALIAS' can start from it
        "genome": json.dumps(point.get("genome"), sort_keys=True, separators=(",", ":")),
        "generation": str(point.get("generation")),
        "parents": json.dumps(point.get("parents", [])),
        "objectives": json.dumps(point["objectives"]),
        "target": str(config.get("target") or "local"),
        "pick": pick,
        "fidelity": fidelity,
    }
    run_tags = {k: v for k, v in tags.items() if k != "genome"}   # run tags are capped at 8000 chars
    if parent:
        run_tags["mlflow.parentRunId"] = parent
    run = client.create_run(exp_id, run_name=f"promote-{point['key'][:12]}", tags=run_tags)
    with mlflow.start_run(run_id=run.info.run_id):
        info = mlflow.pyfunc.log_model(name="model", python_model=model.python_model, artifacts=dict(model.artifacts),
                                       pip_requirements=list(model.pip_requirements))
    version = mlflow.register_model(info.model_uri, name, tags=tags)
    client.set_registered_model_alias(name, alias, version.version)
    return {"model_name": name, "version": version.version, "alias": alias, "key": point["key"],
            "objectives": point["objectives"], "model_uri": f"models:/{name}@{alias}", "tracking_uri": uri}
