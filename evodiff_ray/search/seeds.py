"""Warm starts: the candidates ``--seed-from`` puts into a search's initial population.

A source is one of:

- ``SEARCH_ID``: the front of another search (its run dir under ``runs_dir``, or Redis);
- ``FILE.json``: a genome, a list of genomes, or a front document (its points' genomes);
- ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: a registered model, whose version
  tags hold its genome (``evodiff-ray promote`` and the end-of-search registration write them).

Every candidate is validated by the problem (``from_json``) and must fit the search space
as it is encoded for a flat optimiser (same choices, levels and depth), so a genome from
another space or dataset fails with a one-line error before anything starts. Genomes get
generation 0, no parents, and ``origin = "seed:<source>"``, which is how
:mod:`evodiff_ray.adapt.lineage` follows an ancestry back into the source search.

This lives in the search layer (not in ``adapt``) because ``search(config)`` itself must
honour ``config.seed_from``. The resolved seeds are written to ``<run_dir>/seeds.json``
once, and a resume reads them from there, so a source that changed since cannot make the
replay diverge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evodiff_ray.core.errors import UsageError

SEEDS_FILE = "seeds.json"
MODELS_PREFIX = "models:/"


def load_or_resolve(config, problem, *, resume: bool) -> list[Any]:
    """The seeds of ``config.seed_from`` (empty without one), read back on a resume.

    Raises:
        UsageError: an unknown source, a missing model or alias, or a candidate that does
            not fit the problem's space.
    """
    path = Path(config.run_dir) / SEEDS_FILE
    if resume and path.is_file():
        try:
            data = json.loads(path.read_text())
            return [problem.from_json(x) for x in data["candidates"]]
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{path}: unreadable warm-start seeds ({e}); restore it or start a new search") from None
    if not config.seed_from:
        return []
    from evodiff_ray.tracking.mlflow_tracker import resolve_tracking_uri

    seeds = resolve_seeds(config.seed_from, problem, runs_dir=config.runs_dir, redis_url=config.redis_url,
                          tracking_uri=None if config.no_tracking and not config.tracking_uri
                          else resolve_tracking_uri(config.tracking_uri, config.runs_dir))
    from evodiff_ray.core.io import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"source": config.seed_from,
                                        "candidates": [problem.to_json(x) for x in seeds]}, indent=1))
    return seeds


def resolve_seeds(source: str, problem, *, runs_dir: str | Path = "evodiff-runs", redis_url: str | None = None,
                  tracking_uri: str | None = None) -> list[Any]:
    """The candidates a ``--seed-from`` source names, validated and fitted to ``problem``.

    Args:
        source: ``SEARCH_ID``, ``FILE.json`` or ``models:/NAME@ALIAS`` (``/VERSION``).
        problem: the search's problem (validates and keys the candidates).
        runs_dir, redis_url: where searches' fronts are.
        tracking_uri: the MLflow registry (for ``models:/``); default ``MLFLOW_TRACKING_URI``
            or sqlite in ``runs_dir``.

    Raises:
        UsageError: see :func:`load_or_resolve`.
    """
    if source.startswith(MODELS_PREFIX):
        items, label = _from_model(source, runs_dir, tracking_uri)
    elif source.endswith(".json") or Path(source).is_file():
        items, label = _from_file(source), f"file:{Path(source).name}"
    elif (Path(runs_dir) / source).is_dir() or redis_url:
        from evodiff_ray.cache.front_store import read_front

        items, label = [p["genome"] for p in read_front(source, str(runs_dir), redis_url)["points"]], f"search:{source}"
    else:
        raise UsageError(f"--seed-from {source!r}: not a search under {runs_dir}/, a .json file of genomes, "
                         "nor models:/NAME@ALIAS; list searches with 'evodiff-ray searches'")
    if not items:
        raise UsageError(f"--seed-from {source!r}: holds no candidates (an empty front or file)")
    out, seen = [], set()
    for i, item in enumerate(items):
        x = _fit(problem, item, f"--seed-from {source!r}: candidate {i}")
        key = problem.key(x)
        if key not in seen:
            seen.add(key)
            out.append(_with_origin(x, f"seed:{label}"))
    return out


def _fit(problem, data: Any, where: str) -> Any:
    """Validate one candidate and check it lies inside the problem's encoded space."""
    from evodiff_ray.strategies.encoding import encoding_for

    try:
        x = problem.from_json(data)
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    except (ValueError, TypeError) as e:
        raise UsageError(f"{where}: not a {problem.name} candidate ({e})") from None
    try:
        encoding_for(problem, "seed").encode(x)
    except UsageError:
        return x   # a problem without a described space: the problem's own validation is all there is
    except (ValueError, KeyError, IndexError) as e:
        raise UsageError(f"{where} does not fit this search's space ({e}); widen the space "
                         "(problem_options.space) or seed from a search over the same space") from None
    return x


def _with_origin(x: Any, origin: str) -> Any:
    """A genome with warm-start lineage (generation 0, no parents); other candidates as they are."""
    if hasattr(x, "with_lineage"):
        return x.with_lineage(0, (), origin=origin)
    return x


def _from_file(source: str) -> list[Any]:
    path = Path(source)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--seed-from {source}: no such file; give a .json of genomes, a search id "
                         "or models:/NAME@ALIAS") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"--seed-from {source}: unreadable JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("points"), list):   # a front document
        return [p.get("genome") for p in data["points"] if isinstance(p, dict)]
    if isinstance(data, dict) and isinstance(data.get("candidates"), list):   # a seeds.json
        return data["candidates"]
    if isinstance(data, list) and data and not all(isinstance(v, (int, float)) for v in data):
        return data   # a list of candidates (a flat list of numbers is one vector)
    return [data]


def _from_model(source: str, runs_dir, tracking_uri: str | None) -> tuple[list[Any], str]:
    """The genome a registered model version carries in its tags, and its lineage label."""
    from evodiff_ray.tracking.mlflow_tracker import resolve_tracking_uri

    ref = source[len(MODELS_PREFIX):]
    name, at, alias = ref.partition("@")
    version = None
    if not at:
        name, slash, version = ref.rpartition("/")
        if not slash or not version.isdigit():
            raise UsageError(f"--seed-from {source}: use models:/NAME@ALIAS or models:/NAME/VERSION")
    if not name or (at and not alias):
        raise UsageError(f"--seed-from {source}: use models:/NAME@ALIAS or models:/NAME/VERSION")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or resolve_tracking_uri(None, runs_dir)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        mv = client.get_model_version_by_alias(name, alias) if at else client.get_model_version(name, version)
    except MlflowException:
        what = f"alias {alias!r}" if at else f"version {version}"
        raise UsageError(f"--seed-from {source}: registered model {name!r} has no {what} in the registry at "
                         f"{_redact(uri)}; check the name and alias (or pass --tracking-uri)") from None
    tags = dict(mv.tags or {})
    if "genome" not in tags:
        raise UsageError(f"--seed-from {source}: version {mv.version} carries no 'genome' tag (registered by "
                         "something other than evodiff-ray); seed from its search or a genome file instead")
    try:
        genome = json.loads(tags["genome"])
    except ValueError as e:
        raise UsageError(f"--seed-from {source}: its 'genome' tag is not JSON ({e})") from None
    label = f"model:{name}@{alias}" if at else f"model:{name}/{version}"
    if tags.get("search_id"):   # so lineage runs on into the search the model came from
        label += f"|search:{tags['search_id']}"
    return [genome], label


def _redact(uri: str) -> str:
    from evodiff_ray.core.urls import redact

    return redact(uri)
