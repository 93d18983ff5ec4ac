"""A resilient connection to the fitness cache: the search goes on while Redis is down.

Redis unreachable is a transient failure of the infrastructure, never of a genome: the
search carries on uncached. :class:`ResilientConnection` keeps the up/down state: it warns
once, retries with exponential backoff, keeps what was evaluated meanwhile (bounded), and
writes it back when Redis answers again. Transient failures are never stored, up or down.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from evodiff_ray.cache.redis_cache import FitnessCache
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.urls import redact

log = logging.getLogger(__name__)

#: most results kept in memory for write-back while Redis is down
BACKLOG_LIMIT = 10_000
#: first pause before a reconnection attempt
FIRST_RETRY_S = 0.5


class ResilientConnection:
    """Up/down state of one :class:`FitnessCache`, reconnection with backoff, write-back.

    Args:
        cache: the Redis fitness cache.
        reconnect_max_s: longest pause between reconnection attempts.
        on_down: called each time an operation finds Redis down (e.g. to stop waiting on
            other searches' claims, which can no longer be watched).
        backlog_limit: most results kept for write-back.
    """

    def __init__(self, cache: FitnessCache, reconnect_max_s: float = 30.0,
                 on_down: Callable[[], None] | None = None, backlog_limit: int = BACKLOG_LIMIT):
        self.cache = cache
        self.reconnect_max_s = reconnect_max_s
        self.on_down = on_down
        self.backlog_limit = backlog_limit
        self.down = False
        self._backlog: dict[str, Fitness] = {}
        self._retry_at = 0.0
        self._retry_delay = FIRST_RETRY_S
        self._warned = False

    @property
    def backlog(self) -> int:
        """Results waiting to be written back."""
        return len(self._backlog)

    def went_down(self, error: Exception) -> None:
        """An operation failed with a Redis error: go (or stay) down and tell ``on_down``."""
        if not self.down:
            self.down = True
            self._retry_at = time.monotonic() + self._retry_delay
            if not self._warned:
                self._warned = True
                log.warning("Redis at %s is unreachable (%s); continuing without the cache and retrying",
                            redact(self.cache.url), type(error).__name__)
        if self.on_down is not None:
            self.on_down()

    def maybe_reconnect(self) -> bool:
        """When down and a retry is due: ping, write the backlog back, and come up.

        Returns:
            True when Redis answers (up), False while it stays down.
        """
        import redis

        if not self.down:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            self.cache.ping()
            for rkey, fit in list(self._backlog.items()):
                self.cache.put(rkey, fit)
                del self._backlog[rkey]
        except redis.RedisError:
            self._retry_delay = min(self._retry_delay * 2, self.reconnect_max_s)
            self._retry_at = time.monotonic() + self._retry_delay
            return False
        self.down = False
        self._retry_delay = FIRST_RETRY_S
        log.warning("Redis at %s is back; caching resumed", redact(self.cache.url))
        return True

    def keep(self, rkey: str, fitness: Fitness) -> None:
        """Remember a result obtained while down, to write back later (transient ones never)."""
        if fitness.cacheable and (rkey in self._backlog or len(self._backlog) < self.backlog_limit):
            self._backlog[rkey] = fitness

    def store(self, rkey: str, fitness: Fitness) -> None:
        """Store an evaluated result and release our claim; kept for later while down.

        A transient failure is not stored: the claim is only released, so that a waiter
        or a later search evaluates the genome again.
        """
        import redis

        if not fitness.cacheable:
            self.safely(lambda: self.cache.release(rkey))
            return
        if self.down:
            self.keep(rkey, fitness)
            return
        try:
            self.cache.put(rkey, fitness)
        except redis.RedisError as e:
            self.went_down(e)
            self.keep(rkey, fitness)

    def safely(self, fn: Callable[[], object]) -> None:
        """Best-effort call while up (renewals, releases): a Redis error is ignored, the
        claim then simply expires by its TTL."""
        import redis

        if self.down:
            return
        try:
            fn()
        except redis.RedisError:
            pass
