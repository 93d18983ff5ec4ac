"""Deployment events: a durable Redis stream, mirrored into MLflow.

Every decision and version change (``serve``, ``deploy``, ``promote``, ``rollback``,
``set_production``, ``stop``) is one entry of the stream ``evodiff:serve:<model>:events``
(a JSON document; the embedded redis-server persists it with AOF), and is mirrored into
MLflow: one run per deployment (its parameters, metrics over time and ``events.jsonl``)
and tags on the registry versions (``deployed_at``, ``promoted_at``, ``rolled_back``,
``reason``). MLflow trouble is warned about once and never stops serving: the stream
has everything.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from evodiff_ray.serving.state import prefix

log = logging.getLogger(__name__)

EXPERIMENT = "evodiff-deployments"


def events_key(model: str) -> str:
    return f"{prefix(model)}:events"


class EventLog:
    """The event stream of one model (a sync Redis client)."""

    def __init__(self, client, model: str):
        self.client = client
        self.model = model

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event; returns it (with its stream id)."""
        event = {"kind": kind, "model": self.model, "at": time.time(), **fields}
        event["id"] = self.client.xadd(events_key(self.model), {"event": json.dumps(event, default=str)}).decode()
        return event

    def history(self, count: int | None = None, after: str | None = None) -> list[dict[str, Any]]:
        """Events, oldest first: the last ``count`` when given; only those newer than the event
        id ``after`` when given (a reader's cursor: each poll reads only what is new)."""
        if after is not None:
            rows = self.client.xrange(events_key(self.model), min=f"({after}")
            rows = rows[-count:] if count is not None else rows
        elif count is None:
            rows = self.client.xrange(events_key(self.model))
        else:
            rows = self.client.xrevrange(events_key(self.model), count=count)[::-1]
        out = []
        for sid, fields in rows:
            try:
                event = json.loads(fields[b"event"])
            except (KeyError, ValueError):
                continue  # not ours: never fail a listing on one odd entry
            event["id"] = sid.decode()
            out.append(event)
        return out


def all_models(client) -> list[str]:
    """Models with an event stream in this Redis."""
    out = []
    for key in client.scan_iter(match="evodiff:serve:*:events", count=500):
        out.append(key.decode()[len("evodiff:serve:"):-len(":events")])
    return sorted(out)


class DeploymentRecorder:
    """MLflow side of the events: a run per deployment, version tags, the ``production`` alias.

    Args:
        tracking_uri: the registry's MLflow URI.
        model: the registered model name.
        runs_dir: where a sqlite store keeps artifacts (see ``tracking.mlflow_tracker``).
    """

    def __init__(self, tracking_uri: str, model: str, runs_dir: str = "evodiff-runs"):
        self.tracking_uri = tracking_uri
        self.model = model
        self.runs_dir = runs_dir
        self._client = None
        self._warned = False
        self._events: dict[str, list[str]] = {}

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def _safe(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # MLflow down or failing must never stop serving
            if not self._warned:
                self._warned = True
                log.warning("MLflow: cannot %s (%s: %s); the Redis event stream still has everything",
                            what, type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
            return None

    def start_run(self, deployment: str, params: dict[str, Any]) -> str | None:
        """A run for one deployment; returns its id (None when MLflow failed)."""
        def go():
            from evodiff_ray.tracking.mlflow_tracker import experiment_id

            exp = experiment_id(self.client, EXPERIMENT, self.tracking_uri, self.runs_dir)
            run = self.client.create_run(exp, run_name=f"{self.model}-{deployment}",
                                         tags={"model": self.model, "deployment": deployment})
            for k, v in params.items():
                self.client.log_param(run.info.run_id, k, str(v)[:500])
            return run.info.run_id
        return self._safe("start a deployment run", go)

    def log_metrics(self, run_id: str | None, metrics: dict[str, float], step: int) -> None:
        """Metrics over time of a deployment (None values are skipped)."""
        if not run_id:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        if rows:
            self._safe("log deployment metrics", self.client.log_batch, run_id, metrics=rows)

    def event(self, run_id: str | None, event: dict[str, Any]) -> None:
        """Append an event to the run's ``events.jsonl``."""
        if not run_id:
            return
        lines = self._events.setdefault(run_id, [])
        lines.append(json.dumps(event, default=str))
        self._safe("log an event", self.client.log_text, run_id, "\n".join(lines) + "\n", "events.jsonl")

    def end_run(self, run_id: str | None, decision: str, reason: str) -> None:
        if not run_id:
            return
        def go():
            self.client.set_tag(run_id, "decision", decision)
            self.client.set_tag(run_id, "reason", reason[:5000])
            self.client.set_terminated(run_id)
        self._safe("end a deployment run", go)

    def tag_version(self, version: str, tags: dict[str, Any]) -> None:
        """Tags on a registry version (``deployed_at``, ``rolled_back``, ``reason``, ...)."""
        def go():
            for k, v in tags.items():
                self.client.set_model_version_tag(self.model, version, k, str(v)[:5000])
        self._safe("tag a model version", go)

    def move_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``: here it must work (the alias is the contract)."""
        self.client.set_registered_model_alias(self.model, alias, version)
