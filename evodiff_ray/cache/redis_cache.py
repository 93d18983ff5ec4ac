"""FitnessCache: Fitness records in Redis as JSON, with in-flight claims.

Values live under ``evodiff:fit:v<schema>:<sha256>`` (see :mod:`evodiff_ray.core.key`)
and are validated on read; a corrupt or foreign-schema entry is logged once and treated
as a miss, so a fresh evaluation overwrites it. Nothing is ever unpickled.

A miss is *claimed* with ``SET NX PX`` under ``evodiff:claim:v<schema>:<sha256>``; the
owner renews the claim while it evaluates and deletes it when it stores the value. A
claim whose owner died expires and can be taken over.

Only what a genome will get again is stored: a transient failure of the infrastructure
(:attr:`Fitness.transient`) is refused by :meth:`FitnessCache.put`.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Sequence

from evodiff_ray.core.fitness import Fitness, FitnessFormatError

log = logging.getLogger(__name__)

_RENEW = """
local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then
    redis.call('PEXPIRE', k, ARGV[2]); n = n + 1
  end
end
return n
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def claim_key(rkey: str) -> str:
    """The claim key that goes with a fitness key."""
    return rkey.replace("evodiff:fit:", "evodiff:claim:", 1)


class FitnessCache:
    """Batched get/claim/put of Fitness records in one Redis database.

    Args:
        url: ``redis://`` or ``rediss://`` URL, password in the URL if any.
        claim_ttl_s: lifetime of an in-flight claim; renewed while the owner evaluates.
        owner: this process's claim token (random by default).
        socket_timeout_s: per-command timeout, so a dead server fails fast.
    """

    def __init__(self, url: str, claim_ttl_s: float = 60.0, owner: str | None = None,
                 socket_timeout_s: float = 2.0):
        import redis

        self.url = url
        self.claim_ttl_ms = int(claim_ttl_s * 1000)
        self.owner = owner or uuid.uuid4().hex
        self.client = redis.Redis.from_url(url, socket_timeout=socket_timeout_s,
                                           socket_connect_timeout=socket_timeout_s)
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)
        self._warned: set[str] = set()

    def ping(self) -> bool:
        """True when the server answers (raises redis errors otherwise)."""
        return bool(self.client.ping())

    def get_many(self, rkeys: Sequence[str]) -> list[Fitness | None]:
        """One MGET; a corrupt or foreign entry is logged once and returned as None."""
        if not rkeys:
            return []
        out: list[Fitness | None] = []
        for rkey, raw in zip(rkeys, self.client.mget(list(rkeys))):
            out.append(None if raw is None else self._decode(rkey, raw))
        return out

    def _decode(self, rkey: str, raw: bytes) -> Fitness | None:
        try:
            return Fitness.from_dict(json.loads(raw))
        except (ValueError, UnicodeDecodeError, FitnessFormatError) as e:
            if rkey not in self._warned:
                self._warned.add(rkey)
                log.warning("ignoring corrupt cache entry %s (%s); it will be re-evaluated", rkey, e)
            return None

    def claim_many(self, rkeys: Sequence[str]) -> list[bool]:
        """Try to claim each key (``SET NX PX``) in one pipeline; True where we got it."""
        if not rkeys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for k in rkeys:
            pipe.set(claim_key(k), self.owner, nx=True, px=self.claim_ttl_ms)
        return [bool(r) for r in pipe.execute()]

    def claimed(self, rkeys: Sequence[str]) -> list[bool]:
        """Whether each key currently has a live claim (anyone's)."""
        if not rkeys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for k in rkeys:
            pipe.exists(claim_key(k))
        return [bool(r) for r in pipe.execute()]

    def renew(self, rkeys: Sequence[str]) -> int:
        """Extend our claims on these keys; returns how many were still ours."""
        if not rkeys:
            return 0
        return int(self._renew(keys=[claim_key(k) for k in rkeys], args=[self.owner, self.claim_ttl_ms]))

    def release(self, rkey: str) -> None:
        """Drop our claim without storing a value (the evaluation was abandoned)."""
        self._release(keys=[claim_key(rkey)], args=[self.owner])

    def release_many(self, rkeys: Sequence[str]) -> None:
        """Drop our claims on these keys in one round trip."""
        if not rkeys:
            return
        pipe = self.client.pipeline(transaction=False)
        for k in rkeys:
            self._release(keys=[claim_key(k)], args=[self.owner], client=pipe)
        pipe.execute()

    def put(self, rkey: str, fitness: Fitness) -> None:
        """Store a fitness and release our claim on it.

        Raises:
            ValueError: ``fitness`` is a transient failure, which is never cached.
        """
        if not fitness.cacheable:
            raise ValueError(f"refusing to cache a transient failure under {rkey} ({fitness.reason})")
        blob = json.dumps(fitness.to_dict(), sort_keys=True, allow_nan=False)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(rkey, blob)
        pipe.execute()
        self._release(keys=[claim_key(rkey)], args=[self.owner])

    def close(self) -> None:
        self.client.close()
