"""Per-version metrics of a served model, kept in Redis so they outlive replicas and restarts.

Every request the gateway answers writes, in one pipelined round trip:

- its record (``...:req:<id>``: version, deployment, time; kept ``REQUEST_TTL_S``), which
  feedback looks up, so feedback credits the version that served the request;
- counters and the latency sample of its version *in the current deployment*
  (``...:dep:<deployment>:v:<version>``, ``:lat``), which the canary policy reads in
  arrival order;
- counters and the latency sample of its version in the current time window
  (``...:win:<version>:<bucket>``), for ``GET /models`` and the MLflow time series.

Values are plain numbers and JSON (never pickles). Redis persists them with AOF, so a
replica restart loses nothing and a Redis restart loses at most the last second.
"""

from __future__ import annotations

import json
import time
from typing import Any

from evodiff_ray.serving.policy import ArmStats, percentile
from evodiff_ray.serving.state import prefix

#: how long a request can still be rated
REQUEST_TTL_S = 7 * 24 * 3600
#: length of a metrics window
WINDOW_S = 60
#: how long windows are kept
WINDOW_TTL_S = 14 * 24 * 3600
#: samples kept per arm of a deployment (the policy's last look is far below)
ARM_CAP = 20_000
#: latency samples kept per window (percentiles of a busier window are over its first ones)
WINDOW_CAP = 10_000


class Keys:
    """The Redis keys of one model."""

    def __init__(self, model: str):
        self.p = prefix(model)

    def request(self, request_id: str) -> str:
        return f"{self.p}:req:{request_id}"

    def rated(self, request_id: str) -> str:
        return f"{self.p}:rated:{request_id}"

    def arm(self, deployment: str, version: str) -> str:
        return f"{self.p}:dep:{deployment}:v:{version}"

    def window(self, version: str, bucket: int) -> str:
        return f"{self.p}:win:{version}:{bucket}"

    def windows(self, version: str) -> str:
        return f"{self.p}:windows:{version}"

    def samples(self, version: str) -> str:
        return f"{self.p}:samples:{version}"

    def fd(self, version: str) -> str:
        return f"{self.p}:fd:{version}"


def bucket_of(t: float, window_s: int = WINDOW_S) -> int:
    return int(t // window_s)


def record_request(pipe, keys: Keys, *, request_id: str, version: str, deployment: str, latency_ms: float | None,
                   ok: bool, meta: dict[str, Any] | None = None, now: float | None = None) -> None:
    """Queue the writes of one answered (``ok``) or failed request on a Redis pipeline (sync or async).

    A failed request has no record (it cannot be rated) and no latency sample.
    """
    now = time.time() if now is None else now
    arm, win = keys.arm(deployment, version), keys.window(version, bucket_of(now))
    pipe.hincrby(arm, "requests", 1)
    pipe.hincrby(win, "requests", 1)
    if ok:
        record = {"version": version, "deployment": deployment, "at": now, **(meta or {})}
        # NX: a client that reuses an id (Serve takes a client's X-Request-Id) cannot
        # re-credit an earlier request to another version
        pipe.set(keys.request(request_id), json.dumps(record), ex=REQUEST_TTL_S, nx=True)
        pipe.rpush(arm + ":lat", f"{latency_ms:.3f}")
        pipe.ltrim(arm + ":lat", 0, ARM_CAP - 1)
        pipe.rpush(win + ":lat", f"{latency_ms:.3f}")
        pipe.ltrim(win + ":lat", 0, WINDOW_CAP - 1)
    else:
        pipe.hincrby(arm, "errors", 1)
        pipe.hincrby(win, "errors", 1)
    for k in (win, win + ":lat"):
        pipe.expire(k, WINDOW_TTL_S)
    pipe.zadd(keys.windows(version), {str(bucket_of(now)): bucket_of(now)})


def record_rating(pipe, keys: Keys, record: dict[str, Any], rating: int, now: float | None = None) -> None:
    """Queue a rating of a request whose ``record`` was looked up (credited to its version)."""
    now = time.time() if now is None else now
    arm = keys.arm(record["deployment"], record["version"])
    win = keys.window(record["version"], bucket_of(now))
    pipe.rpush(arm + ":ratings", int(rating))
    pipe.ltrim(arm + ":ratings", 0, ARM_CAP - 1)
    pipe.hincrby(win, "ratings", 1)
    pipe.hincrby(win, "rating_sum", int(rating))
    pipe.expire(win, WINDOW_TTL_S)
    pipe.zadd(keys.windows(record["version"]), {str(bucket_of(now)): bucket_of(now)})


def record_preference(pipe, keys: Keys, winner: dict[str, Any], loser: dict[str, Any]) -> bool:
    """Queue a pairwise preference; True when it is evidence (two versions of one deployment)."""
    if winner["version"] == loser["version"] or winner["deployment"] != loser["deployment"]:
        return False
    pipe.rpush(keys.arm(winner["deployment"], winner["version"]) + ":pairs", 1)
    pipe.rpush(keys.arm(loser["deployment"], loser["version"]) + ":pairs", 0)
    return True


def arm_stats(client, keys: Keys, deployment: str, version: str) -> ArmStats:
    """What ``version`` gathered in ``deployment`` (a sync client), samples in arrival order."""
    arm = keys.arm(deployment, version)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(arm)
    pipe.lrange(arm + ":lat", 0, -1)
    pipe.lrange(arm + ":ratings", 0, -1)
    pipe.lrange(arm + ":pairs", 0, -1)
    counts, lat, ratings, pairs = pipe.execute()
    counts = {k.decode(): int(v) for k, v in counts.items()}
    return ArmStats(version, requests=counts.get("requests", 0), errors=counts.get("errors", 0),
                    latencies_ms=[float(x) for x in lat], ratings=[int(x) for x in ratings],
                    pairs=[int(x) for x in pairs])


def window_series(client, keys: Keys, version: str, last: int = 10, window_s: int = WINDOW_S) -> list[dict[str, Any]]:
    """The last ``last`` windows of ``version``: requests, errors, p50/p90 latency, ratings."""
    buckets = [int(b) for b in client.zrevrange(keys.windows(version), 0, last - 1)][::-1]
    pipe = client.pipeline(transaction=False)
    for b in buckets:
        pipe.hgetall(keys.window(version, b))
        pipe.lrange(keys.window(version, b) + ":lat", 0, -1)
    got = pipe.execute()
    out = []
    for i, b in enumerate(buckets):
        counts = {k.decode(): int(v) for k, v in got[2 * i].items()}
        lat = [float(x) for x in got[2 * i + 1]]
        n_rat = counts.get("ratings", 0)
        out.append({"window_start": b * window_s, "requests": counts.get("requests", 0),
                    "errors": counts.get("errors", 0), "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90),
                    "ratings": n_rat, "mean_rating": counts.get("rating_sum", 0) / n_rat if n_rat else None})
    return out
