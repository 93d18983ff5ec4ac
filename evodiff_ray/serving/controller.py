"""The deployment controller: version changes and canary decisions, each recorded as an event.

Every change goes through here, whoever makes it (the ``serve`` process checking the
policy, or ``deploy`` / ``rollback`` from any shell): it updates the routing state
atomically, moves the registry alias when production changes, and records an event in the
Redis stream and in MLflow. The Serve applications follow the state (see ``server.py``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from evodiff_ray.core.errors import UsageError
from evodiff_ray.serving.events import DeploymentRecorder, EventLog
from evodiff_ray.serving.metrics import Keys, arm_stats
from evodiff_ray.serving.policy import PROMOTE, ROLLBACK, WAIT, CanaryPolicy, Decision, decide
from evodiff_ray.serving.state import RoutingState, prefix, read_state, update_state
from evodiff_ray.serving.versions import PRODUCTION

#: a ``serve`` process refreshes this key; ``deploy --canary`` needs one alive
HEARTBEAT_TTL_S = 15


def new_deployment_id() -> str:
    return time.strftime("d%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def heartbeat_key(model: str) -> str:
    return f"{prefix(model)}:heartbeat"


class Controller:
    """Changes what serves ``model``.

    Args:
        client: a sync Redis client.
        model: the registered model name.
        recorder: the MLflow side (None: Redis events only).
    """

    def __init__(self, client, model: str, recorder: DeploymentRecorder | None = None):
        self.client = client
        self.model = model
        self.recorder = recorder
        self.events = EventLog(client, model)
        self.keys = Keys(model)
        self._steps: dict[str, int] = {}

    # -- reading -----------------------------------------------------------------------
    def state(self) -> RoutingState | None:
        return read_state(self.client, self.model)

    def serving(self) -> bool:
        """Whether a ``serve`` process is alive for this model (its heartbeat is fresh)."""
        return bool(self.client.exists(heartbeat_key(self.model)))

    def beat(self, info: dict[str, Any] | None = None) -> None:
        import json

        self.client.set(heartbeat_key(self.model), json.dumps(info or {}), ex=HEARTBEAT_TTL_S)

    def _emit(self, kind: str, state: RoutingState | None, run_id: str | None = None, **fields) -> dict[str, Any]:
        base = {"deployment": state.deployment, "production": state.production, "challenger": state.challenger,
                "share": state.share} if state is not None else {}
        event = self.events.emit(kind, **{**base, **fields})
        if self.recorder is not None:
            self.recorder.event(run_id or (state.run_id if state else None), event)
        return event

    # -- changes -----------------------------------------------------------------------
    def start_serving(self, production: str) -> RoutingState:
        """On ``serve``: production is what the alias names; a canary of the same production resumes."""
        def change(old):
            if old is not None and old.production == production:
                return replace(old, ready=(), fallback=None)
            return RoutingState(self.model, new_deployment_id(), production,
                                history=old.history if old is not None else ())
        state = update_state(self.client, self.model, change)
        self._emit("serve", state, version=production)
        return state

    def set_production(self, version: str, reason: str, kind: str = "set_production",
                       pop_history: bool = False) -> RoutingState:
        """Make ``version`` production at once (alias moves, 100%); a canary in progress ends."""
        old = self.state()
        if self.recorder is not None:
            self.recorder.move_alias(PRODUCTION, version)
        if old is not None and old.challenger is not None:
            self._end_canary(old, "superseded", reason)
        def change(cur):
            if cur is None:
                return RoutingState(self.model, new_deployment_id(), version)
            history = cur.history[:-1] if pop_history else cur.history + (cur.production,)
            return RoutingState(self.model, new_deployment_id(), version, ready=cur.ready,
                                fallback=cur.production if cur.production != version else None,
                                history=history)
        state = update_state(self.client, self.model, change)
        if self.recorder is not None:
            self.recorder.tag_version(version, {"deployed_at": _now(), "promoted_at": _now(), "reason": reason})
        self._emit(kind, state, version=version, previous=old.production if old else None, reason=reason)
        return state

    def start_canary(self, version: str, share: float, policy: CanaryPolicy) -> RoutingState:
        """Put ``version`` beside production with ``share`` percent of the traffic.

        Raises:
            UsageError: nothing served, or ``version`` is production already.
        """
        old = self.state()
        if old is None:
            raise UsageError(f"{self.model!r} is not being served; start it with 'evodiff-ray serve {self.model}'")
        if version == old.production:
            raise UsageError(f"version {version} is production already; deploy another version as the canary")
        if old.challenger is not None and old.challenger != version:
            self._end_canary(old, "superseded", f"replaced by a canary of version {version}")
        deployment = new_deployment_id()
        run_id = None
        if self.recorder is not None:
            run_id = self.recorder.start_run(deployment, {"model": self.model, "production": old.production,
                                                          "challenger": version, "share": share,
                                                          **{f"policy.{k}": v for k, v in policy.to_dict().items()}})
        def change(cur):
            return replace(cur, deployment=deployment, challenger=version, share=float(share),
                           policy=policy.to_dict(), run_id=run_id, started_at=time.time())
        state = update_state(self.client, self.model, change)
        if self.recorder is not None:
            self.recorder.tag_version(version, {"deployed_at": _now(), "canary_share": share})
        self._emit("deploy", state, version=version)
        return state

    def set_share(self, share: float) -> RoutingState:
        state = update_state(self.client, self.model, lambda cur: replace(cur, share=float(share)))
        self._emit("share", state, version=state.challenger)
        return state

    def promote(self, decision: Decision) -> RoutingState:
        """The challenger becomes production: the alias moves and it takes all the traffic."""
        old = self.state()
        if old is None or old.challenger is None:
            raise UsageError(f"{self.model!r} has no canary to promote")
        if self.recorder is not None:
            self.recorder.move_alias(PRODUCTION, old.challenger)
        def change(cur):
            return replace(cur, deployment=new_deployment_id(), production=cur.challenger, challenger=None,
                           share=0.0, run_id=None, started_at=time.time(), history=cur.history + (cur.production,))
        state = update_state(self.client, self.model, change)
        # the event right after the state (Redis, durable); MLflow's slower writes after it
        self._emit("promote", old, version=old.challenger, previous=old.production, reason=decision.reason,
                   details=decision.details)
        if self.recorder is not None:
            self.recorder.tag_version(old.challenger, {"promoted_at": _now(), "reason": decision.reason})
            self.recorder.tag_version(old.production, {"retired_at": _now(), "replaced_by": old.challenger})
            self.recorder.end_run(old.run_id, PROMOTE, decision.reason)
        return state

    def rollback(self, decision: Decision, kind: str = "rollback") -> RoutingState:
        """The challenger gets 0% and leaves; the alias is unchanged."""
        old = self.state()
        if old is None or old.challenger is None:
            raise UsageError(f"{self.model!r} has no canary to roll back")
        self._end_canary(old, ROLLBACK, decision.reason, details=decision.details, kind=kind)
        return self.state()

    def _end_canary(self, old: RoutingState, outcome: str, reason: str, details: dict | None = None,
                    kind: str = "rollback") -> None:
        def change(cur):
            return replace(cur, deployment=new_deployment_id(), challenger=None, share=0.0, run_id=None,
                           started_at=time.time())
        update_state(self.client, self.model, change)
        # the event right after the state (Redis, durable); MLflow's slower writes after it
        self._emit(kind, old, version=old.challenger, reason=reason, details=details or {})
        if self.recorder is not None:
            self.recorder.tag_version(old.challenger, {"rolled_back": "true", "rolled_back_at": _now(),
                                                       "reason": reason})
            self.recorder.end_run(old.run_id, outcome, reason)

    def manual_rollback(self) -> dict[str, Any]:
        """``evodiff-ray rollback``: end a canary, else return to the previous production version.

        Raises:
            UsageError: nothing to roll back to.
        """
        state = self.state()
        if state is None:
            raise UsageError(f"{self.model!r} has no deployment history in this Redis; nothing to roll back")
        if state.challenger is not None:
            chal = state.challenger
            self.rollback(Decision(ROLLBACK, "manual rollback"), kind="rollback")
            return {"rolled_back": chal, "production": state.production}
        if not state.history:
            raise UsageError(f"{self.model!r} has no earlier production version to return to")
        previous = state.history[-1]
        self.set_production(previous, "manual rollback", kind="rollback", pop_history=True)
        if self.recorder is not None:
            self.recorder.tag_version(state.production, {"rolled_back": "true", "rolled_back_at": _now(),
                                                         "reason": "manual rollback"})
        return {"rolled_back": state.production, "production": previous}

    # -- the policy --------------------------------------------------------------------
    def check(self) -> Decision | None:
        """Judge the canary once (both arms ready); act on promote or roll back. None: no canary."""
        state = self.state()
        if state is None or state.challenger is None or not {state.production, state.challenger} <= set(state.ready):
            return None
        policy = CanaryPolicy.from_dict(state.policy)
        prod = arm_stats(self.client, self.keys, state.deployment, state.production)
        chal = arm_stats(self.client, self.keys, state.deployment, state.challenger)
        decision = decide(prod, chal, policy)
        if self.recorder is not None and state.run_id:
            step = self._steps[state.run_id] = self._steps.get(state.run_id, -1) + 1
            metrics = {}
            for role, arm in (("production", prod), ("challenger", chal)):
                for k, v in arm.summary().items():
                    if k != "version" and v is not None:
                        metrics[f"{role}.{k}"] = v
            self.recorder.log_metrics(state.run_id, metrics, step)
        if decision.action == PROMOTE:
            self.promote(decision)
        elif decision.action == ROLLBACK:
            self.rollback(decision)
        return decision


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


__all__ = ["Controller", "HEARTBEAT_TTL_S", "WAIT", "heartbeat_key", "new_deployment_id"]
