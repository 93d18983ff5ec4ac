"""CachedEvaluator: a Redis fitness cache wrapped around any evaluator, same interface.

On :meth:`submit` it looks every task up in one MGET; hits come back at once. Misses
are claimed in one pipeline: claimed keys go to the wrapped evaluator, keys another
search has claimed are *waited for* (polled with backoff) instead of evaluated again,
and duplicates within this search ride along with the first copy. A claim whose owner
died expires; the waiter then takes it over and evaluates.

Three parts, composed here: the claim protocol (:class:`~evodiff_ray.cache.claims.ClaimBook`),
the Redis up/down state with write-back (:class:`~evodiff_ray.cache.connection.ResilientConnection`)
and the claims' lease renewer (:class:`~evodiff_ray.cache.renewer.LeaseRenewer`). If Redis
goes away the search carries on uncached and resumes caching when it is back.

Transient failures (an actor or node lost, a time limit under overload) are returned to
the search but never stored; their claim is released so that a waiter, or a later
search, evaluates the genome again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from evodiff_ray.cache.claims import ClaimBook, Lookup
from evodiff_ray.cache.connection import BACKLOG_LIMIT, ResilientConnection
from evodiff_ray.cache.redis_cache import FitnessCache
from evodiff_ray.cache.renewer import LeaseRenewer
from evodiff_ray.core.evaluator import Evaluator, EvaluatorWrapper, Outcome, Task
from evodiff_ray.core.key import EvaluationSettings, cache_key_function

__all__ = ["BACKLOG_LIMIT", "CachedEvaluator"]


@dataclass
class _Stats:
    hits: int = 0
    misses: int = 0
    waited: int = 0
    stale_takeovers: int = 0
    uncached: int = 0
    transient: int = 0
    lookups: int = 0
    lookup_s: float = 0.0


class CachedEvaluator(EvaluatorWrapper):
    """Wraps ``inner`` with a :class:`FitnessCache`.

    Args:
        inner: the evaluator doing real work (Ray pool or in-process).
        cache: the Redis fitness cache.
        settings: the problem's evaluation settings (an
            :class:`~evodiff_ray.core.key.EvaluationSettings`), joining the candidate key (see
            :func:`evodiff_ray.core.key.cache_key`).
        max_wait_delay_s: longest pause between checks on another search's claim.
        reconnect_max_s: longest pause between reconnection attempts while Redis is down.
        rung_settings: for multi-fidelity tasks (``Task.rung`` set), the settings a rung's
            result depends on (``SearchProblem.rung_settings``); None: ``settings`` for all.
    """

    def __init__(self, inner: Evaluator, cache: FitnessCache, settings: EvaluationSettings,
                 max_wait_delay_s: float = 2.0, reconnect_max_s: float = 30.0,
                 rung_settings: Callable[[int], EvaluationSettings] | None = None):
        super().__init__(inner)
        self.cache = cache
        self.settings = settings
        self._plain_key = cache_key_function(settings)
        self._rung_settings = rung_settings
        self._rung_keys: dict[int, Callable[[str], str]] = {}
        self.claims = ClaimBook(cache, self._rkey, max_wait_delay_s)
        self.connection = ResilientConnection(cache, reconnect_max_s, on_down=self._on_down)
        self.renewer = LeaseRenewer(lambda keys: self.connection.safely(lambda: cache.renew(keys)),
                                    self.claims.owned_keys, period_s=cache.claim_ttl_ms / 3000).start()
        self._ready: list[Outcome] = []
        self._uncached: set[int] = set()               # ordinals sent to inner while Redis was down
        self.stats_ = _Stats()

    def _rkey(self, task: Task) -> str:
        """The fitness key of a task: its rung's settings when it has a rung."""
        if task.rung is None or self._rung_settings is None:
            return self._plain_key(task.cache_key)
        fn = self._rung_keys.get(task.rung)
        if fn is None:
            fn = self._rung_keys[task.rung] = cache_key_function(self._rung_settings(task.rung))
        return fn(task.cache_key)

    # -- Evaluator interface (capacity, worker facts and metrics pass through) -------
    @property
    def in_flight(self) -> int:
        return self.inner.in_flight + self.claims.riders + self.claims.waiting + len(self._ready)

    def submit(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        if not self.connection.maybe_reconnect():
            self._send_uncached(tasks)
            return
        groups = self.claims.route(tasks)
        if not groups:
            return
        import redis

        t0 = time.perf_counter()
        try:
            found = self.claims.lookup(groups)
        except redis.RedisError as e:
            self.connection.went_down(e)
            self._send_uncached([t for ts in groups.values() for t in ts])
            return
        self.stats_.lookups += len(groups)
        self.stats_.lookup_s += time.perf_counter() - t0
        self.stats_.hits += len(found.answered)
        self._take(found)

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        self.connection.maybe_reconnect()
        if self._ready:
            out, self._ready = self._ready, []
            return out + self._collect(self.inner.poll(timeout=0))
        deadline = time.monotonic() + (timeout or 0)
        while True:
            wait = max(0.0, deadline - time.monotonic())
            nxt = self.claims.next_check
            if nxt is not None:
                wait = min(wait, max(0.0, nxt - time.monotonic()))
            got = self._collect(self.inner.poll(timeout=wait) if self.inner.in_flight else self._sleep(wait))
            self._check_waiting()
            if self._ready:
                got, self._ready = got + self._ready, []
            if got or time.monotonic() >= deadline or (not self.inner.in_flight and not self.claims.waiting):
                return got

    def stats(self) -> dict[str, Any]:
        s = dict(self.inner.stats())
        st = self.stats_
        s["cache"] = {
            "hits": st.hits, "misses": st.misses, "waited": st.waited, "stale_takeovers": st.stale_takeovers,
            "uncached": st.uncached, "transient": st.transient,
            "redis": "down" if self.connection.down else "up",
            "lookup_ms_per_key": 1000 * st.lookup_s / st.lookups if st.lookups else None,
        }
        return s

    def close(self) -> None:
        self.release()
        self.inner.close()

    def release(self) -> None:
        """Stop renewing and drop our claims, leaving the wrapped evaluator open."""
        if self.renewer.stopped:
            return
        self.renewer.stop()
        keys = self.claims.owned_keys()
        self.connection.safely(lambda: self.cache.release_many(keys))

    # -- internals -----------------------------------------------------------------
    def _sleep(self, seconds: float) -> list[Outcome]:
        time.sleep(min(seconds, 0.5))
        return []

    def _take(self, found: Lookup) -> None:
        """Queue what the cache answered; send what we now hold the claims for to ``inner``."""
        self._ready.extend(found.answered)
        if found.to_evaluate:
            self.inner.submit(found.to_evaluate)

    def _send_uncached(self, tasks: Sequence[Task]) -> None:
        for t in tasks:
            self._uncached.add(t.ordinal)
        self.inner.submit(list(tasks))

    def _on_down(self) -> None:
        # tasks waiting on other searches can no longer be watched: evaluate them ourselves
        waiting = self.claims.abandon_waiting()
        if waiting:
            self._send_uncached(waiting)

    def _collect(self, outcomes: list[Outcome]) -> list[Outcome]:
        out: list[Outcome] = []
        for o in outcomes:
            self.stats_.misses += 1
            self.stats_.transient += o.fitness.transient
            if o.task.ordinal in self._uncached:
                self._uncached.discard(o.task.ordinal)
                self.stats_.uncached += 1
                # sent while Redis was down, but it may be back by now: store (or keep while down)
                self.connection.store(self._rkey(o.task), o.fitness)
                out.append(o)
                continue
            rkey, riders = self.claims.settle(o.task)
            out.append(Outcome(o.task, o.fitness, "evaluated"))
            out.extend(Outcome(t, o.fitness, "hit") for t in riders)
            self.stats_.hits += len(riders)
            if rkey is not None:
                self.connection.store(rkey, o.fitness)
        return out

    def _check_waiting(self) -> None:
        import redis

        if not self.claims.waiting or self.connection.down:
            return
        try:
            found = self.claims.check_waiting()
        except redis.RedisError as e:
            self.connection.went_down(e)
            return
        self.stats_.waited += len(found.answered)
        self.stats_.stale_takeovers += found.takeovers
        self._take(found)
