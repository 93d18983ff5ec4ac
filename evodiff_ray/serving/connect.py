"""Connections of the serving commands: the Redis of a served model, and a controller over it."""

from __future__ import annotations

from pathlib import Path


def connect_redis(redis_url: str | None, runs_dir: str | Path, start: bool = True):
    """A sync client of ``redis_url``, else of the embedded server under ``<runs_dir>/.redis``.

    The embedded server is reused when it runs, else started (its AOF holds the state,
    metrics and events of earlier runs) when ``start``.

    Returns:
        ``(client, url, server)``: ``server`` is the :class:`~evodiff_ray.cache.local_redis.LocalRedis`
        this call started (stop it when done), else None.

    Raises:
        UsageError: the Redis does not answer, or there is none and ``start`` is False.
    """
    import redis

    from evodiff_ray.cache.local_redis import LocalRedis
    from evodiff_ray.core.errors import UsageError
    from evodiff_ray.core.urls import redact

    server = None
    if redis_url is None:
        found = LocalRedis.running(Path(runs_dir) / ".redis")
        if found is None:
            if not start:
                raise UsageError(f"no Redis runs for {runs_dir}/; pass --redis-url or start 'evodiff-ray serve'")
            server = LocalRedis(Path(runs_dir) / ".redis").start()
            found = server
        redis_url = found.url
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as e:
        raise UsageError(f"cannot reach Redis at {redact(redis_url)} ({type(e).__name__}); check --redis-url") from None
    return client, redis_url, server



def open_controller(model: str, *, redis_url: str | None, runs_dir: str | Path, tracking_uri: str | None,
                    start_redis: bool = True):
    """A :class:`~evodiff_ray.serving.controller.Controller` of ``model`` with its MLflow recorder.

    Returns:
        ``(controller, server)``: ``server`` is an embedded Redis this call started (stop it when done).
    """
    from evodiff_ray.serving.controller import Controller
    from evodiff_ray.serving.events import DeploymentRecorder
    from evodiff_ray.tracking.mlflow_tracker import resolve_tracking_uri

    client, _, server = connect_redis(redis_url, runs_dir, start=start_redis)
    uri = resolve_tracking_uri(tracking_uri, runs_dir)
    return Controller(client, model, DeploymentRecorder(uri, model, str(runs_dir))), server
