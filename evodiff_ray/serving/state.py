"""The routing state of a served model: which versions take traffic, in what shares.

One JSON document per model in Redis (``evodiff:serve:<model>:state``), written by the
controller (the ``serve`` process and the ``deploy``/``rollback`` commands) and read by
every gateway replica, which caches it for a fraction of a second. Changing it is how
traffic moves: no Serve application is redeployed, so switching drops no request.

A version takes traffic only once it is in ``ready`` (its Serve application is up). While a
new production version starts, the one it replaces (``fallback``) keeps taking the traffic.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable


def prefix(model: str) -> str:
    """The Redis key prefix of everything the serving loop keeps for ``model``."""
    return f"evodiff:serve:{model}"


def state_key(model: str) -> str:
    return f"{prefix(model)}:state"


@dataclass(frozen=True)
class RoutingState:
    """Who serves ``model``.

    Attributes:
        model: the registered model name.
        deployment: id of the current deployment (a canary, or a production rollout).
        production: the version the ``production`` alias points at.
        challenger: the canary's version, or None.
        share: the challenger's share of the traffic, in percent.
        ready: versions whose Serve application is up.
        fallback: the former production, serving until ``production`` is ready.
        policy: the canary policy (``CanaryPolicy.to_dict()``) of the current canary.
        run_id: the MLflow run of the current deployment (None: not tracked).
        started_at: when the deployment began (epoch seconds).
        history: earlier production versions, most recent last (for ``rollback``).
    """

    model: str
    deployment: str
    production: str
    challenger: str | None = None
    share: float = 0.0
    ready: tuple[str, ...] = ()
    fallback: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    started_at: float = field(default_factory=time.time)
    history: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "RoutingState":
        d = json.loads(raw)
        d["ready"] = tuple(d.get("ready") or ())
        d["history"] = tuple(d.get("history") or ())
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def live(self) -> set[str]:
        """Versions that need a running Serve application now."""
        out = {self.production}
        if self.challenger is not None:
            out.add(self.challenger)
        if self.fallback is not None and self.production not in self.ready:
            out.add(self.fallback)
        return out

    def with_ready(self, version: str, up: bool = True) -> "RoutingState":
        ready = set(self.ready) | {version} if up else set(self.ready) - {version}
        fallback = None if (self.production in ready) else self.fallback
        return replace(self, ready=tuple(sorted(ready, key=_vkey)), fallback=fallback)


def _vkey(v: str):
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


def routes(state: RoutingState) -> list[tuple[str, float]]:
    """The versions taking traffic and their weights in percent (pure; sums to 100)."""
    ready = set(state.ready)
    main = state.production if state.production in ready else state.fallback
    if main is None or main not in ready:
        return []
    if state.challenger is not None and state.challenger in ready and state.challenger != main and state.share > 0:
        share = min(100.0, state.share)
        return [(main, 100.0 - share), (state.challenger, share)] if share < 100 else [(state.challenger, 100.0)]
    return [(main, 100.0)]


def pick(state: RoutingState, u: float) -> str | None:
    """The version a request goes to, for a uniform draw ``u`` in [0, 1) (pure)."""
    acc = 0.0
    table = routes(state)
    for version, weight in table:
        acc += weight / 100.0
        if u < acc:
            return version
    return table[-1][0] if table else None


def read_state(client, model: str) -> RoutingState | None:
    """The stored state of ``model`` (a sync Redis client), or None."""
    raw = client.get(state_key(model))
    return RoutingState.from_json(raw) if raw is not None else None


def update_state(client, model: str, change: Callable[[RoutingState | None], RoutingState | None],
                 attempts: int = 50) -> RoutingState | None:
    """Read-modify-write the state atomically (``WATCH``/``MULTI``; retried on a conflict).

    Args:
        client: a sync Redis client.
        model: the model.
        change: old state (or None) -> new state; returning None leaves it unchanged.

    Returns:
        The state now stored.
    """
    import redis

    key = state_key(model)
    for _ in range(attempts):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                raw = pipe.get(key)
                old = RoutingState.from_json(raw) if raw is not None else None
                new = change(old)
                if new is None:
                    pipe.unwatch()
                    return old
                pipe.multi()
                pipe.set(key, new.to_json())
                pipe.execute()
                return new
            except redis.WatchError:
                continue
    raise RuntimeError(f"routing state of {model!r} kept changing under {attempts} attempts")
