"""RedisFrontStore: each search's live front and status in Redis, readable from anywhere.

Keys: ``evodiff:search:<id>:front`` (the front JSON, see :func:`~evodiff_ray.core.front.front_json`),
``evodiff:search:<id>:status`` and the sorted set ``evodiff:searches`` (search ids by last
update time). The run dir's ``front.json`` is still written by the
:class:`~evodiff_ray.core.front.FileFrontStore` that this store wraps, so losing Redis
loses nothing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.front import FileFrontStore, FrontStore, validate_front
from evodiff_ray.core.urls import redact

log = logging.getLogger(__name__)
SEARCHES = "evodiff:searches"


def front_key(search_id: str) -> str:
    return f"evodiff:search:{search_id}:front"


def status_key(search_id: str) -> str:
    return f"evodiff:search:{search_id}:status"


class RedisFrontStore(FrontStore):
    """Publishes to Redis and to an optional inner store (the run dir's file).

    Args:
        url: Redis URL.
        inner: another store that always receives the front too (e.g. ``FileFrontStore``).
    """

    def __init__(self, url: str, inner: FrontStore | None = None, socket_timeout_s: float = 2.0):
        import redis

        self.url = url
        self.inner = inner
        self.client = redis.Redis.from_url(url, socket_timeout=socket_timeout_s,
                                           socket_connect_timeout=socket_timeout_s)
        self._warned = False

    def publish(self, search_id: str, front: dict[str, Any]) -> None:
        import redis

        if self.inner is not None:
            self.inner.publish(search_id, front)
        status = {"search_id": search_id, "status": front.get("status"), "generation": front.get("generation"),
                  "evaluations": front.get("evaluations"), "front_size": len(front.get("points", [])),
                  "updated_at": time.time()}
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(front_key(search_id), json.dumps(front, allow_nan=False))
            pipe.set(status_key(search_id), json.dumps(status))
            pipe.zadd(SEARCHES, {search_id: status["updated_at"]})
            pipe.execute()
        except redis.RedisError as e:
            if not self._warned:
                self._warned = True
                log.warning("cannot publish the front to Redis at %s (%s); the run dir still has it",
                            redact(self.url), type(e).__name__)

    def read(self, search_id: str) -> dict[str, Any] | None:
        raw = self.client.get(front_key(search_id))
        if raw is None:
            return None
        return validate_front(json.loads(raw))

    def searches(self) -> list[dict[str, Any]]:
        """Known searches, most recently updated first, with their status records."""
        ids = [i.decode() for i in self.client.zrevrange(SEARCHES, 0, -1)]
        if not ids:
            return []
        out = []
        for sid, raw in zip(ids, self.client.mget([status_key(i) for i in ids])):
            try:
                rec = json.loads(raw) if raw else {}
            except ValueError:
                rec = {}
            if not isinstance(rec, dict):
                rec = {}
            rec["search_id"] = sid
            out.append(rec)
        return out

    def latest(self) -> str | None:
        ids = self.client.zrevrange(SEARCHES, 0, 0)
        return ids[0].decode() if ids else None


def read_front(search_id: str, runs_dir: str, redis_url: str | None = None) -> dict:
    """A search's front from Redis (when a URL is given) or from its run dir.

    Raises:
        UsageError: the search is unknown or its front unreadable, naming where it looked.
    """
    if redis_url:
        import redis

        try:
            front = RedisFrontStore(redis_url).read(search_id)
        except redis.RedisError as e:
            raise UsageError(f"cannot read from Redis at {redact(redis_url)} ({type(e).__name__}); "
                             "check --redis-url") from None
        except ValueError as e:
            raise UsageError(f"search {search_id!r} has a malformed front in Redis ({e})") from None
        if front is not None:
            return front
    try:
        front = FileFrontStore(runs_dir).read(search_id)
    except (ValueError, OSError) as e:
        raise UsageError(f"search {search_id!r}: unreadable front.json ({e})") from None
    if front is None:
        raise UsageError(f"no search {search_id!r} in {runs_dir}/" + (" (nor in Redis)" if redis_url else "") + "; "
                         "list them with 'evodiff-ray searches' or pass --runs-dir")
    return validate_front(front)
