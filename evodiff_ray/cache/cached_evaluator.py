"""CachedEvaluator: a Redis fitness cache wrapped around any evaluator, same interface.

On :meth:`submit` it looks every task up in one MGET; hits come back at once. Misses
are claimed in one pipeline: claimed keys go to the wrapped evaluator, keys another
search has claimed are *waited for* (polled with backoff) instead of evaluated again,
and duplicates within this search ride along with the first copy. A claim whose owner
died expires; the waiter then takes it over and evaluates.

If Redis goes away the search carries on uncached: it warns once, retries the
connection with backoff, writes back the results it got meanwhile, and resumes caching.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from evodiff_ray.cache.redis_cache import FitnessCache
from evodiff_ray.core.urls import redact
from evodiff_ray.core.evaluator import Evaluator, Outcome, Task
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.key import cache_key_function

log = logging.getLogger(__name__)

#: most results kept in memory for write-back while Redis is down
BACKLOG_LIMIT = 10_000


@dataclass
class _Wait:
    tasks: list[Task]
    next_check: float
    delay: float = 0.05


@dataclass
class _Stats:
    hits: int = 0
    misses: int = 0
    waited: int = 0
    stale_takeovers: int = 0
    uncached: int = 0
    lookups: int = 0
    lookup_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _cacheable(fit: Fitness) -> bool:
    """Transient failures (worker deaths, time-outs under load) are not cached."""
    return not fit.extras.get("transient", False)


class CachedEvaluator(Evaluator):
    """Wraps ``inner`` with a :class:`FitnessCache`.

    Args:
        inner: the evaluator doing real work (Ray pool or in-process).
        cache: the Redis fitness cache.
        settings: evaluation settings joining the candidate key (see
            :func:`evodiff_ray.core.key.cache_key`).
        max_wait_delay_s: longest pause between checks on another search's claim.
        reconnect_max_s: longest pause between reconnection attempts while Redis is down.
    """

    def __init__(self, inner: Evaluator, cache: FitnessCache, settings: dict[str, Any],
                 max_wait_delay_s: float = 2.0, reconnect_max_s: float = 30.0):
        self.inner = inner
        self.cache = cache
        self.settings = settings
        self._rkey = cache_key_function(settings)
        self.max_wait_delay_s = max_wait_delay_s
        self.reconnect_max_s = reconnect_max_s
        self._ready: list[Outcome] = []
        self._followers: dict[str, list[Task]] = {}   # rkey -> tasks riding on one evaluation
        self._owned: dict[int, str] = {}               # ordinal sent to inner -> rkey (claimed by us)
        self._uncached: set[int] = set()               # ordinals sent to inner while Redis was down
        self._waiting: dict[str, _Wait] = {}
        self._backlog: dict[str, Fitness] = {}
        self._down = False
        self._retry_at = 0.0
        self._retry_delay = 0.5
        self._warned_down = False
        self.stats_ = _Stats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, name="evodiff-claim-renewer", daemon=True)
        self._renewer.start()

    # -- Evaluator interface -------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.inner.capacity

    @property
    def in_flight(self) -> int:
        followers = sum(len(v) - 1 for v in self._followers.values())
        waiting = sum(len(w.tasks) for w in self._waiting.values())
        return self.inner.in_flight + followers + waiting + len(self._ready)

    def submit(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        self._maybe_reconnect()
        if self._down:
            self._send_uncached(tasks)
            return
        groups: dict[str, list[Task]] = {}
        for t in tasks:
            rkey = self._rkey(t.key)
            if rkey in self._followers:          # already being evaluated by this search
                self._followers[rkey].append(t)
            elif rkey in self._waiting:          # already waiting on another search
                self._waiting[rkey].tasks.append(t)
            else:
                groups.setdefault(rkey, []).append(t)
        if groups:
            self._lookup_and_dispatch(groups)

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        self._maybe_reconnect()
        if self._ready:
            out, self._ready = self._ready, []
            return out + self._collect(self.inner.poll(timeout=0))
        deadline = time.monotonic() + (timeout or 0)
        while True:
            wait = max(0.0, deadline - time.monotonic())
            if self._waiting:
                nxt = min(w.next_check for w in self._waiting.values())
                wait = min(wait, max(0.0, nxt - time.monotonic()))
            got = self._collect(self.inner.poll(timeout=wait) if self.inner.in_flight else self._sleep(wait))
            self._check_waiting()
            if self._ready:
                got, self._ready = got + self._ready, []
            if got or time.monotonic() >= deadline or (not self.inner.in_flight and not self._waiting):
                return got

    def stats(self) -> dict[str, Any]:
        s = dict(self.inner.stats())
        st = self.stats_
        s["cache"] = {
            "hits": st.hits, "misses": st.misses, "waited": st.waited, "stale_takeovers": st.stale_takeovers,
            "uncached": st.uncached, "redis": "down" if self._down else "up",
            "lookup_ms_per_key": 1000 * st.lookup_s / st.lookups if st.lookups else None,
        }
        return s

    def close(self) -> None:
        self.release()
        self.inner.close()

    def release(self) -> None:
        """Stop renewing and drop our claims, leaving the wrapped evaluator open."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._renewer.join(timeout=5)
        if not self._down:
            for rkey in set(self._owned.values()):
                try:
                    self.cache.release(rkey)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    break

    # -- internals -----------------------------------------------------------------
    def _sleep(self, seconds: float) -> list[Outcome]:
        time.sleep(min(seconds, 0.5))
        return []

    def _lookup_and_dispatch(self, groups: dict[str, list[Task]]) -> None:
        import redis

        rkeys = list(groups)
        try:
            t0 = time.perf_counter()
            found = self.cache.get_many(rkeys)
            self.stats_.lookups += len(rkeys)
            self.stats_.lookup_s += time.perf_counter() - t0
            misses = [k for k, f in zip(rkeys, found) if f is None]
            claims = self.cache.claim_many(misses)
        except redis.RedisError as e:
            self._went_down(e)
            self._send_uncached([t for ts in groups.values() for t in ts])
            return
        for rkey, fit in zip(rkeys, found):
            if fit is not None:
                self._ready.extend(Outcome(t, fit, "hit") for t in groups[rkey])
                self.stats_.hits += len(groups[rkey])
        to_inner = []
        now = time.monotonic()
        for rkey, mine in zip(misses, claims):
            if mine:
                to_inner.append(self._own(rkey, groups[rkey]))
            else:
                self._waiting[rkey] = _Wait(list(groups[rkey]), now + 0.05)
        if to_inner:
            self.inner.submit(to_inner)

    def _own(self, rkey: str, tasks: list[Task]) -> Task:
        with self._lock:
            self._followers[rkey] = list(tasks)
            self._owned[tasks[0].ordinal] = rkey
        return tasks[0]

    def _send_uncached(self, tasks: Sequence[Task]) -> None:
        for t in tasks:
            self._uncached.add(t.ordinal)
        self.inner.submit(list(tasks))

    def _collect(self, outcomes: list[Outcome]) -> list[Outcome]:
        import redis

        out: list[Outcome] = []
        for o in outcomes:
            if o.task.ordinal in self._uncached:
                self._uncached.discard(o.task.ordinal)
                self.stats_.misses += 1
                self.stats_.uncached += 1
                if _cacheable(o.fitness) and len(self._backlog) < BACKLOG_LIMIT:
                    self._backlog[self._rkey(o.task.key)] = o.fitness
                out.append(o)
                continue
            with self._lock:
                rkey = self._owned.pop(o.task.ordinal, None)
                riders = self._followers.pop(rkey, [o.task]) if rkey else [o.task]
            self.stats_.misses += 1
            out.append(Outcome(o.task, o.fitness, "evaluated"))
            for t in riders[1:]:
                out.append(Outcome(t, o.fitness, "hit"))
                self.stats_.hits += 1
            if rkey is None:
                continue
            if not _cacheable(o.fitness):
                self._safe(lambda: self.cache.release(rkey))
                continue
            if self._down:
                self._backlog[rkey] = o.fitness
                continue
            try:
                self.cache.put(rkey, o.fitness)
            except redis.RedisError as e:
                self._went_down(e)
                self._backlog[rkey] = o.fitness
        return out

    def _check_waiting(self) -> None:
        import redis

        if not self._waiting or self._down:
            return
        now = time.monotonic()
        due = [k for k, w in self._waiting.items() if w.next_check <= now]
        if not due:
            return
        try:
            found = self.cache.get_many(due)
            pending = [k for k, f in zip(due, found) if f is None]
            alive = dict(zip(pending, self.cache.claimed(pending)))
            orphans = [k for k in pending if not alive[k]]
            taken = dict(zip(orphans, self.cache.claim_many(orphans)))
        except redis.RedisError as e:
            self._went_down(e)
            return
        to_inner = []
        for rkey, fit in zip(due, found):
            w = self._waiting[rkey]
            if fit is not None:
                del self._waiting[rkey]
                self._ready.extend(Outcome(t, fit, "waited") for t in w.tasks)
                self.stats_.waited += len(w.tasks)
            elif taken.get(rkey):
                del self._waiting[rkey]
                self.stats_.stale_takeovers += 1
                to_inner.append(self._own(rkey, w.tasks))
            else:
                w.delay = min(w.delay * 2, self.max_wait_delay_s)
                w.next_check = now + w.delay
        if to_inner:
            self.inner.submit(to_inner)

    def _renew_loop(self) -> None:
        period = max(0.05, self.cache.claim_ttl_ms / 3000)
        while not self._stop.wait(period):
            with self._lock:
                keys = list(set(self._owned.values()))
            if keys and not self._down:
                self._safe(lambda: self.cache.renew(keys))

    def _safe(self, fn) -> None:
        import redis

        try:
            fn()
        except redis.RedisError:
            pass

    def _went_down(self, error: Exception) -> None:
        if not self._down:
            self._down = True
            self._retry_at = time.monotonic() + self._retry_delay
            if not self._warned_down:
                self._warned_down = True
                log.warning("Redis at %s is unreachable (%s); continuing without the cache and retrying",
                            redact(self.cache.url), type(error).__name__)
        # tasks waiting on other searches can no longer be watched: evaluate them ourselves
        waiting, self._waiting = self._waiting, {}
        if waiting:
            self._send_uncached([t for w in waiting.values() for t in w.tasks])

    def _maybe_reconnect(self) -> None:
        import redis

        if not self._down or time.monotonic() < self._retry_at:
            return
        try:
            self.cache.ping()
            for rkey, fit in list(self._backlog.items()):
                self.cache.put(rkey, fit)
                del self._backlog[rkey]
        except redis.RedisError:
            self._retry_delay = min(self._retry_delay * 2, self.reconnect_max_s)
            self._retry_at = time.monotonic() + self._retry_delay
            return
        self._down = False
        self._retry_delay = 0.5
        log.warning("Redis at %s is back; caching resumed", redact(self.cache.url))
