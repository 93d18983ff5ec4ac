"""Serving: the registry's models on Ray Serve, canary and A/B tests, feedback, promote or roll back.

Modules, one concept each: ``app`` (the Ray Serve deployments and HTTP routes), ``state``
(who takes traffic), ``policy`` (the canary decision, pure), ``metrics`` (per-version
metrics in Redis), ``feedback``, ``events`` (Redis stream + MLflow), ``controller``
(version changes), ``server`` (the ``serve`` process), ``quality`` (FD of served samples),
``codec`` (HTTP bodies), ``searches`` (read-only search views), ``versions`` (registry
look-ups). Ray Serve is imported only by ``app`` and ``server``.
"""

from evodiff_ray.serving.policy import ArmStats, CanaryPolicy, Decision, decide

__all__ = ["ArmStats", "CanaryPolicy", "Decision", "decide"]
