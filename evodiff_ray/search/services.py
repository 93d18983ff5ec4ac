"""The search's services at the edges: fitness cache, live-front store and MLflow tracker.

:func:`search_services` turns a config into the three things :func:`evodiff_ray.search.search`
plugs in, with the embedded defaults: a local redis-server the tool starts itself (AOF in
``<runs_dir>/.redis``) when no URL is given, and sqlite MLflow in the runs dir. It stops
what it started when the search ends.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from evodiff_ray.core.front import FileFrontStore, FrontStore
from evodiff_ray.core.key import EvaluationSettings
from evodiff_ray.core.tracker import Tracker
from evodiff_ray.core.urls import redact

log = logging.getLogger(__name__)
REDIS_DIR = ".redis"


@dataclass
class Services:
    """What a search plugs in: an evaluator wrapper, a front store, extra trackers."""

    wrap_evaluator: Callable | None = None
    front_store: FrontStore | None = None
    trackers: list[Tracker] = field(default_factory=list)
    redis_url: str | None = None
    cache: object | None = None              # the FitnessCache, when caching
    settings: EvaluationSettings | None = None   # the problem's evaluation settings, computed once
    notes: list[str] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    problem: object | None = None

    def refresh_settings(self) -> EvaluationSettings | None:
        """The problem's settings now (after it adopted its actors' hardware facts)."""
        if self.problem is not None:
            self.settings = self.problem.evaluation_settings()
        return self.settings

    def close(self) -> None:
        """Close the service clients (before an embedded server is stopped)."""
        for fn in self.closers:
            try:
                fn()
            except Exception:  # noqa: BLE001 - closing on the way out
                pass


def redis_url_for(config) -> str | None:
    """``--redis-url``, else ``EVODIFF_REDIS_URL``, else None (the embedded server)."""
    return config.redis_url or os.environ.get("EVODIFF_REDIS_URL") or None


@contextmanager
def search_services(config, problem) -> Iterator[Services]:
    """Start (or connect to) the cache and tracker a config asks for; stop them afterwards.

    Raises:
        UsageError: redis-server is needed and not installed (the message names
            ``--no-cache``).
    """
    services = Services(front_store=FileFrontStore(config.runs_dir), settings=problem.evaluation_settings(),
                        problem=problem)
    server = None
    try:
        if not config.no_cache:
            url = redis_url_for(config)
            if url is None:
                from evodiff_ray.cache.local_redis import LocalRedis

                server = LocalRedis(Path(config.runs_dir) / REDIS_DIR).start()
                url = server.url
                services.notes.append(f"fitness cache: embedded redis-server on 127.0.0.1:{server.port} "
                                      f"(AOF in {server.data_dir})")
            _attach_cache(services, url, config)
        services.trackers.extend(problem.trackers())
        if not config.no_tracking:
            from evodiff_ray.tracking.mlflow_tracker import MlflowTracker, resolve_tracking_uri

            uri = resolve_tracking_uri(config.tracking_uri, config.runs_dir)
            services.trackers.append(MlflowTracker(uri, experiment=config.experiment, settings=services.settings,
                                                   baseline=_baseline(services, problem)))
            services.notes.append(f"tracking: MLflow at {redact(uri)}")
            if config.register_top > 0 and problem.produces_models:
                from evodiff_ray.tracking.registration import RegistrationTracker

                fidelity = (config.register_fidelity or config.fidelity
                            or (config.problem_options or {}).get("fidelity"))
                services.trackers.append(RegistrationTracker(problem, k=config.register_top, tracking_uri=uri,
                                                             fidelity=fidelity))
                services.notes.append(f"registration: the front's top {config.register_top} go to the model "
                                      f"registry at the end (--register-top 0: none)")
        yield services
    finally:
        services.close()
        if server is not None:
            server.stop()


def _attach_cache(services: Services, url: str, config) -> None:
    import redis

    from evodiff_ray.cache import CachedEvaluator, FitnessCache, RedisFrontStore

    owner, resumed = _claim_owner(config)
    cache = FitnessCache(url, owner=owner)
    try:
        cache.ping()
        if resumed:
            _take_back_claims(cache)
    except redis.RedisError as e:
        log.warning("Redis at %s is unreachable (%s); starting uncached and retrying", redact(url),
                    type(e).__name__)
    services.redis_url, services.cache = url, cache
    # the settings as of wrapping: by then the problem has adopted its actors' hardware facts
    services.wrap_evaluator = lambda inner: CachedEvaluator(inner, cache, services.refresh_settings(),
                                                            rung_settings=services.problem.rung_settings)
    store = RedisFrontStore(url, inner=services.front_store)
    services.front_store = store
    services.closers += [cache.close, store.client.close]
    if config.redis_url or os.environ.get("EVODIFF_REDIS_URL"):
        services.notes.append(f"fitness cache and live front: {redact(url)}")


CLAIM_OWNER_FILE = "claim_owner"


def _claim_owner(config) -> tuple[str, bool]:
    """This search's claim token, kept in its run dir, and whether an earlier run of it left one.

    A driver killed mid-evaluation leaves its claims in Redis until their TTL runs out (a
    minute); its resume would wait that long on its own claims before evaluating them.
    """
    import re
    import uuid

    from evodiff_ray.core.io import atomic_write_text

    path = Path(config.run_dir) / CLAIM_OWNER_FILE
    try:
        token = path.read_text().strip()
    except OSError:
        token = ""
    if re.fullmatch(r"[0-9a-f]{32}", token):
        return token, True
    token = uuid.uuid4().hex
    atomic_write_text(path, token + "\n", durable=False)
    return token, False


def _take_back_claims(cache) -> None:
    """Drop the claims an earlier run of this search left (compare-and-delete: only ours)."""
    prefix = "evodiff:claim:"
    keys = [k.decode() for k in cache.client.scan_iter(match=prefix + "*", count=1000)]
    cache.release_many([k.replace(prefix, "evodiff:fit:", 1) for k in keys])


def _baseline(services: Services, problem) -> dict | None:
    """The problem's baseline's objectives, when the cache holds them for these settings."""
    baseline = problem.baseline()
    if services.cache is None or baseline is None:
        return None
    try:
        from evodiff_ray.core.key import cache_key

        fit = services.cache.get_many([cache_key(problem.key(baseline), services.settings)])[0]
    except Exception:  # noqa: BLE001 - the mark on a plot is optional
        return None
    return dict(fit.objectives) if fit is not None and fit.feasible else None
