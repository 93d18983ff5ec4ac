"""The claim protocol: one search's side of "evaluate each genome once across searches".

A miss is claimed (``SET NX`` with a TTL, see :class:`~evodiff_ray.cache.redis_cache.FitnessCache`)
before it is evaluated. This book keeps what one search holds and waits for:

* *owned*: keys this search claimed; their first task goes to the evaluator, and later
  tasks for the same key ride along as *followers* instead of being evaluated again;
* *waiting*: keys another search has claimed; they are checked with exponential backoff
  until the value appears (``waited``) or the claim is gone without one, when this
  search takes it over and evaluates (a *stale takeover*: the owner died or gave up).

Redis errors propagate to the caller, which decides what an outage means.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from evodiff_ray.cache.redis_cache import FitnessCache
from evodiff_ray.core.evaluator import Outcome, Task

#: first pause before checking on another search's claim
FIRST_WAIT_S = 0.05


@dataclass
class _Wait:
    tasks: list[Task]
    next_check: float
    delay: float = FIRST_WAIT_S


@dataclass
class Lookup:
    """What :meth:`ClaimBook.lookup` and :meth:`ClaimBook.check_waiting` found.

    Attributes:
        answered: outcomes answered by the cache (source ``hit`` or ``waited``).
        to_evaluate: tasks this search now holds the claim for (one per key).
        takeovers: claims taken over from an owner that went away without a value.
    """

    answered: list[Outcome] = field(default_factory=list)
    to_evaluate: list[Task] = field(default_factory=list)
    takeovers: int = 0


class ClaimBook:
    """Claims held and awaited by one search over one :class:`FitnessCache`.

    Args:
        cache: the Redis fitness cache.
        rkey: task -> fitness key (settings, rung and code version joined in).
        max_wait_delay_s: longest pause between checks on another search's claim.
    """

    def __init__(self, cache: FitnessCache, rkey: Callable[[Task], str], max_wait_delay_s: float = 2.0):
        self.cache = cache
        self.rkey = rkey
        self.max_wait_delay_s = max_wait_delay_s
        self._followers: dict[str, list[Task]] = {}   # rkey -> tasks riding on one evaluation
        self._owned: dict[int, str] = {}               # ordinal sent to the evaluator -> rkey we claimed
        self._waiting: dict[str, _Wait] = {}
        # the lease renewer reads the owned keys from its own thread
        self._lock = threading.Lock()

    # -- what this search holds ----------------------------------------------------
    @property
    def riders(self) -> int:
        """Tasks riding on another task's evaluation within this search."""
        return sum(len(v) - 1 for v in self._followers.values())

    @property
    def waiting(self) -> int:
        """Tasks waiting on another search's claim."""
        return sum(len(w.tasks) for w in self._waiting.values())

    @property
    def next_check(self) -> float | None:
        """Monotonic time of the next due check on a waited-for key (None: nothing waited for)."""
        return min((w.next_check for w in self._waiting.values()), default=None)

    def owned_keys(self) -> list[str]:
        """Fitness keys this search holds claims on (thread-safe)."""
        with self._lock:
            return list(set(self._owned.values()))

    # -- the protocol --------------------------------------------------------------
    def route(self, tasks: Sequence[Task]) -> dict[str, list[Task]]:
        """Attach tasks for keys already in hand; the rest grouped by fitness key, to look up."""
        groups: dict[str, list[Task]] = {}
        for t in tasks:
            rkey = self.rkey(t)
            if rkey in self._followers:          # already being evaluated by this search
                self._followers[rkey].append(t)
            elif rkey in self._waiting:          # already waiting on another search
                self._waiting[rkey].tasks.append(t)
            else:
                groups.setdefault(rkey, []).append(t)
        return groups

    def lookup(self, groups: dict[str, list[Task]]) -> Lookup:
        """One MGET for the groups, then one claim pipeline for the misses.

        Raises:
            redis.RedisError: Redis failed; nothing was recorded.
        """
        rkeys = list(groups)
        found = self.cache.get_many(rkeys)
        misses = [k for k, f in zip(rkeys, found) if f is None]
        claims = self.cache.claim_many(misses)
        out = Lookup()
        for rkey, fit in zip(rkeys, found):
            if fit is not None:
                out.answered.extend(Outcome(t, fit, "hit") for t in groups[rkey])
        now = time.monotonic()
        for rkey, mine in zip(misses, claims):
            if mine:
                out.to_evaluate.append(self._own(rkey, groups[rkey]))
            else:
                self._waiting[rkey] = _Wait(list(groups[rkey]), now + FIRST_WAIT_S)
        return out

    def check_waiting(self) -> Lookup:
        """Check the waited-for keys that are due: value, live claim, or a claim to take over.

        Raises:
            redis.RedisError: Redis failed; the waits stay as they were.
        """
        now = time.monotonic()
        due = [k for k, w in self._waiting.items() if w.next_check <= now]
        out = Lookup()
        if not due:
            return out
        found = self.cache.get_many(due)
        pending = [k for k, f in zip(due, found) if f is None]
        alive = dict(zip(pending, self.cache.claimed(pending)))
        orphans = [k for k in pending if not alive[k]]
        taken = dict(zip(orphans, self.cache.claim_many(orphans)))
        for rkey, fit in zip(due, found):
            w = self._waiting[rkey]
            if fit is not None:
                del self._waiting[rkey]
                out.answered.extend(Outcome(t, fit, "waited") for t in w.tasks)
            elif taken.get(rkey):
                del self._waiting[rkey]
                out.takeovers += 1
                out.to_evaluate.append(self._own(rkey, w.tasks))
            else:
                w.delay = min(w.delay * 2, self.max_wait_delay_s)
                w.next_check = now + w.delay
        return out

    def settle(self, task: Task) -> tuple[str | None, list[Task]]:
        """An evaluated task is back: its claimed key (None if not claimed) and its riders."""
        with self._lock:
            rkey = self._owned.pop(task.ordinal, None)
            riders = self._followers.pop(rkey, [task]) if rkey else [task]
        return rkey, riders[1:]

    def abandon_waiting(self) -> list[Task]:
        """Stop waiting on other searches (Redis is gone); the tasks, to evaluate here instead."""
        waiting, self._waiting = self._waiting, {}
        return [t for w in waiting.values() for t in w.tasks]

    def _own(self, rkey: str, tasks: list[Task]) -> Task:
        with self._lock:
            self._followers[rkey] = list(tasks)
            self._owned[tasks[0].ordinal] = rkey
        return tasks[0]
