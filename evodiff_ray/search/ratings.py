"""Human ratings for the ``rating`` objective (``--rating-from MODEL``): read, joined to genomes, kept.

Where the ratings are. The serving loop credits each 1-5 rating to the registered version
that served the request, per deployment, as a Redis list
``evodiff:serve:<model>:dep:<deployment>:v:<version>:ratings``
(:func:`evodiff_ray.serving.metrics.record_rating`). A registered version carries the
genome it was trained from in its registry tags: ``genome_key``, ``genome`` and the
``objectives`` its search measured (:mod:`evodiff_ray.tracking.registration`, ``promote``).

What this module does. The edges read the two stores (:func:`read_ratings`: Redis;
:func:`registered_tags`: the MLflow registry); the pure functions join them
(:func:`ratings_by_version`, :func:`join_ratings` -> ``{genome_key: [ratings]}``,
:func:`rated_genomes`). :func:`load_rating` snapshots the result into
``<run_dir>/ratings.json`` once, before the search starts, and fits the predictor
(:func:`rating_objective`); a resume reads the snapshot back, so one search rates every
candidate against the same ratings while new ones keep arriving (the next search reads
them anew). Every failure is a one-line :class:`UsageError` before anything starts.

Why no neutral prior when there are no ratings: a constant ``rating`` would add an
objective that ranks nothing and a column that looks like evidence. Asking for ratings
and having none is a usage error that names what to do.

This lives in the search layer, as :mod:`.seeds` does, because ``search(config)`` itself
honours ``config.rating_from``. The search layer sits below serving, so the key layout is
restated here; ``tests/search/test_ratings.py`` writes ratings with serving's own
functions and reads them back with these, which pins that the two agree.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.urls import redact
from evodiff_ray.evaluation.rating import RatingObjective
from evodiff_ray.evaluation.rating_model import LOWEST_RATING, TOP_RATING, fit_rating_model

#: the snapshot in the run dir
RATINGS_FILE = "ratings.json"
#: ``serving.state.prefix(model)``; the rest of a key is ``serving.metrics.Keys.arm(...) + ":ratings"``
SERVE_PREFIX = "evodiff:serve:"
_GLOB_SPECIAL = "\\*?[]"


@dataclass(frozen=True)
class RatedGenome:
    """A genome users rated, through the registered versions trained from it.

    Attributes:
        key: the genome key (``SearchProblem.key``; the registry's ``genome_key`` tag).
        ratings: every rating of every version of it, versions in order.
        versions: the registered versions joined to it.
        genome: its JSON (the ``genome`` tag of its latest version that has one), or None.
        objectives: the objectives its search measured (the ``objectives`` tag), or empty.
    """

    key: str
    ratings: tuple[int, ...]
    versions: tuple[str, ...]
    genome: Any = None
    objectives: Mapping[str, float] | None = None


# -- pure: keys and the join ----------------------------------------------------------------

def ratings_match(model: str) -> str:
    """The ``SCAN MATCH`` pattern of every rating list of ``model`` (glob characters escaped)."""
    escaped = "".join(f"\\{c}" if c in _GLOB_SPECIAL else c for c in model)
    return f"{SERVE_PREFIX}{escaped}:dep:*:v:*:ratings"


def version_of(key: str, model: str) -> str | None:
    """The version of a rating list's key (``...:dep:<deployment>:v:<version>:ratings``), or None."""
    head, tail = f"{SERVE_PREFIX}{model}:dep:", ":ratings"
    if not (key.startswith(head) and key.endswith(tail)):
        return None
    deployment, sep, version = key[len(head):-len(tail)].rpartition(":v:")
    return version if sep and deployment and version else None


def ratings_by_version(lists: Mapping[str, Sequence[Any]], model: str) -> dict[str, list[int]]:
    """Rating lists as Redis holds them (key -> items) merged per version, across deployments.

    Items that are not whole numbers on the 1-5 scale are dropped; keys that are not
    ``model``'s rating lists are ignored. Deployments are taken in key order.
    """
    out: dict[str, list[int]] = {}
    for key in sorted(lists):
        version = version_of(key, model)
        if version is None:
            continue
        for item in lists[key]:
            r = _rating(item)
            if r is not None:
                out.setdefault(version, []).append(r)
    return out


def join_ratings(by_version: Mapping[str, Sequence[int]], genome_keys: Mapping[str, str]) -> dict[str, list[int]]:
    """``{genome_key: [ratings]}``: each version's ratings credited to the genome it was trained from.

    Args:
        by_version: version -> its ratings (:func:`ratings_by_version`).
        genome_keys: version -> genome key (the registry's ``genome_key`` tags).

    Returns:
        Ratings per genome key, versions taken in numeric order; versions without a genome
        key are left out (:func:`unjoined` names them).
    """
    out: dict[str, list[int]] = {}
    for version in sorted(by_version, key=_version_order):
        key = genome_keys.get(version)
        if key and by_version[version]:
            out.setdefault(key, []).extend(int(r) for r in by_version[version])
    return out


def unjoined(by_version: Mapping[str, Sequence[int]], genome_keys: Mapping[str, str]) -> list[str]:
    """Versions with ratings but no genome key (registered by something else, or deleted)."""
    return sorted((v for v in by_version if by_version[v] and not genome_keys.get(v)), key=_version_order)


def rated_genomes(by_version: Mapping[str, Sequence[int]],
                  tags_by_version: Mapping[str, Mapping[str, str]]) -> list[RatedGenome]:
    """The join with what each genome's registry tags say (pure).

    Args:
        by_version: version -> its ratings.
        tags_by_version: version -> its registry tags.

    Returns:
        One :class:`RatedGenome` per rated genome key, in the order of its first version.
    """
    keys = {v: t.get("genome_key", "") for v, t in tags_by_version.items()}
    joined = join_ratings(by_version, keys)
    out = []
    for key, ratings in joined.items():
        versions = tuple(v for v in sorted(by_version, key=_version_order) if keys.get(v) == key and by_version[v])
        genome, objectives = None, None
        for v in sorted((v for v in tags_by_version if keys.get(v) == key), key=_version_order):
            tags = tags_by_version[v]
            genome = _json(tags.get("genome")) if tags.get("genome") else genome
            objectives = _objectives(tags.get("objectives")) or objectives
        out.append(RatedGenome(key, tuple(ratings), versions, genome, objectives))
    return out


# -- the edges: Redis and the registry ------------------------------------------------------

def read_ratings(client, model: str) -> dict[str, list[int]]:
    """Every rating of ``model``'s versions stored in Redis (a sync client): version -> ratings."""
    keys = sorted(_text(k) for k in client.scan_iter(match=ratings_match(model), count=1000))
    if not keys:
        return {}
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.lrange(k, 0, -1)
    return ratings_by_version(dict(zip(keys, pipe.execute())), model)


def registered_tags(tracking_uri: str, model: str) -> dict[str, dict[str, str]]:
    """Version -> registry tags of every version of ``model``.

    Raises:
        UsageError: no registered model of that name.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        client.get_registered_model(model)
    except MlflowException:
        raise UsageError(f"--rating-from {model}: no registered model {model!r} in the registry at "
                         f"{redact(tracking_uri)}; name a served model (or pass --tracking-uri)") from None
    return {str(v.version): dict(v.tags or {}) for v in client.search_model_versions(f"name='{model}'")}


def read_snapshot(config) -> dict[str, Any]:
    """Read ``config.rating_from``'s ratings and registry tags, joined (JSON data).

    Raises:
        UsageError: no Redis to read, an unknown model, no ratings, or no rated version that
            names its genome.
    """
    from evodiff_ray.tracking.mlflow_tracker import resolve_tracking_uri

    model = config.rating_from
    by_version, where = _read_redis(config, model)
    uri = resolve_tracking_uri(config.tracking_uri, config.runs_dir)
    tags = registered_tags(uri, model)
    flag = f"--rating-from {model}"
    if not by_version:
        raise UsageError(f"{flag}: no user ratings stored for model {model!r} in Redis at {where}; collect some "
                         "first (POST /feedback to the serving gateway) or search without --rating-from")
    genomes = rated_genomes(by_version, tags)
    missing = unjoined(by_version, {v: t.get("genome_key", "") for v, t in tags.items()})
    if not genomes:
        raise UsageError(f"{flag}: versions {', '.join(missing)} have ratings but none carries a 'genome_key' tag "
                         "(register versions with 'evodiff-ray promote' or a search's --register-top)")
    return {"model": model, "read_at": time.time(), "redis": where, "tracking_uri": redact(uri),
            "unjoined_versions": missing, "genomes": [asdict(g) for g in genomes]}


def _read_redis(config, model: str) -> tuple[dict[str, list[int]], str]:
    """Ratings by version, and where they were read (a redacted URL).

    With no URL (``--redis-url``, ``EVODIFF_REDIS_URL``) the embedded server under
    ``<runs_dir>/.redis`` is read, started from its AOF for the moment when it is not running.
    """
    import redis

    from evodiff_ray.cache.local_redis import LocalRedis
    from evodiff_ray.search.services import REDIS_DIR, redis_url_for

    url, server = redis_url_for(config), None
    flag = f"--rating-from {model}"
    if url is None:
        data_dir = Path(config.runs_dir) / REDIS_DIR
        found = LocalRedis.running(data_dir)
        if found is None:
            if not data_dir.is_dir():
                raise UsageError(f"{flag}: no Redis to read ratings from (no --redis-url, no EVODIFF_REDIS_URL, "
                                 f"no embedded server under {data_dir}); pass the serving loop's --redis-url")
            found = server = LocalRedis(data_dir).start()
        url = found.url
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return read_ratings(client, model), redact(url)
    except redis.RedisError as e:
        raise UsageError(f"{flag}: cannot read ratings from Redis at {redact(url)} ({type(e).__name__}); "
                         "check --redis-url") from None
    finally:
        client.close()
        if server is not None:
            server.stop()


# -- the search's rating objective -----------------------------------------------------------

def load_rating(config, problem, *, resume: bool) -> RatingObjective | None:
    """The ``rating`` objective ``config.rating_from`` asks for (None without it).

    The joined ratings are written to ``<run_dir>/ratings.json`` once; a resume reads them
    from there.

    Raises:
        UsageError: see :func:`read_snapshot` and :func:`rating_objective`.
    """
    if not config.rating_from:
        return None
    path = Path(config.run_dir) / RATINGS_FILE
    if resume and not path.is_file():
        raise UsageError(f"{path} is missing: a resumed search rates with the ratings it started with; "
                         "restore the file or start a new search")
    if resume:
        try:
            snapshot = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"{path}: unreadable ratings snapshot ({e}); restore it or start a new search") from None
    else:
        snapshot = read_snapshot(config)
        from evodiff_ray.core.io import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(snapshot, indent=1, allow_nan=False) + "\n")
    return rating_objective(snapshot, problem)


def rating_objective(snapshot: Mapping[str, Any], problem) -> RatingObjective:
    """Fit the predictor on a snapshot's rated genomes that record ``problem``'s objectives.

    A rated genome's features are the objectives its search measured (the registry's
    ``objectives`` tag) and ``problem.features`` of its genome; a candidate's are its
    measured objectives and the same genome features.

    Raises:
        UsageError: no rated genome records every objective of ``problem``.
    """
    names = tuple(problem.objective_names)
    features = candidate_features(problem, names)
    genomes = [RatedGenome(g["key"], tuple(g["ratings"]), tuple(g["versions"]), g.get("genome"),
                           g.get("objectives")) for g in snapshot["genomes"]]
    usable = [g for g in genomes
              if g.objectives and all(_finite(g.objectives.get(n)) for n in names)]
    if not usable:
        raise UsageError(f"--rating-from {snapshot['model']}: none of the {len(genomes)} rated genomes records "
                         f"this search's objectives ({', '.join(names)}), so no predictor can be fitted; rate "
                         "versions registered from a search of this problem")
    rows = [features(g.genome, g.objectives) for g in usable]
    model = fit_rating_model(rows, [g.ratings for g in usable])
    return RatingObjective(human={g.key: g.ratings for g in genomes}, model=model, features=features)


def candidate_features(problem, objective_names: Sequence[str]):
    """The predictor's features of a candidate: ``objective.<name>`` for each measured
    objective and ``genome.<name>`` for each of ``problem.features`` (none when the JSON
    is not one of this problem's candidates)."""
    names = tuple(objective_names)

    def features(x_json: Any, objectives: Mapping[str, float]) -> dict[str, float]:
        out = {f"objective.{n}": float(objectives[n]) for n in names if n in objectives}
        try:
            genome = problem.features(problem.from_json(x_json)) if x_json is not None else {}
        except (UsageError, ValueError, TypeError, KeyError):
            genome = {}
        out.update({f"genome.{k}": float(v) for k, v in genome.items()})
        return out

    return features


def _rating(item: Any) -> int | None:
    try:
        r = int(_text(item))
    except (TypeError, ValueError):
        return None
    return r if LOWEST_RATING <= r <= TOP_RATING else None


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _version_order(v: str):
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _objectives(text: str | None) -> dict[str, float] | None:
    data = _json(text) if text else None
    if not isinstance(data, dict):
        return None
    out = {}
    for k, v in data.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out or None


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
