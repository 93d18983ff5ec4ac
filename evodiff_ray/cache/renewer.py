"""LeaseRenewer: a daemon thread that keeps a search's in-flight claims alive.

A claim carries a TTL so that a dead owner's claim expires; a live owner renews its claims
every third of the TTL while it evaluates, however long an evaluation takes.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

log = logging.getLogger(__name__)


class LeaseRenewer:
    """Calls ``renew(keys())`` every ``period_s`` seconds on its own thread until stopped.

    Args:
        renew: extends the leases on the given keys (must not raise for an outage; see
            :meth:`~evodiff_ray.cache.connection.ResilientConnection.safely`).
        keys: the keys currently held (called on the renewer's thread: make it thread-safe).
        period_s: pause between renewals; a third of the lease's TTL.
        name: the thread's name.
    """

    def __init__(self, renew: Callable[[Sequence[str]], object], keys: Callable[[], Sequence[str]],
                 period_s: float, name: str = "evodiff-claim-renewer"):
        self.renew = renew
        self.keys = keys
        self.period_s = max(0.05, float(period_s))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._thread.is_alive() and not self._stop.is_set()

    @property
    def stopped(self) -> bool:
        """:meth:`stop` has been called."""
        return self._stop.is_set()

    def start(self) -> "LeaseRenewer":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop renewing and wait for the thread (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            keys = list(self.keys())
            if not keys:
                continue
            try:
                self.renew(keys)
            except Exception:  # noqa: BLE001 - a renewal bug must not kill the thread silently
                log.exception("renewing %d claim(s) failed; they may expire and be taken over", len(keys))
