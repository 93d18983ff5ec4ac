"""Evaluation keys: where a candidate's key meets the evaluation settings and code version.

A fitness depends on the candidate *and* on how it was evaluated (problem, fidelity and
training budget, dataset digest, the device and processor that measure, evaluation
target, code). A problem states all of that in one frozen settings object
(:meth:`SearchProblem.evaluation_settings`); its :meth:`~EvaluationSettings.key_dict` is
the only thing, besides the candidate's key and the code version, that the fitness
cache's :func:`cache_key` hashes.
"""

from __future__ import annotations

import hashlib
import json
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

#: Bump when a code change alters fitness values for the same candidate and settings
#: (any problem's: the diffusion machinery, a metric, a reference problem's formula).
EVALUATION_CODE_VERSION = 1
#: Bump when the cache value's JSON layout changes (also in the key: ``v<schema>``).
CACHE_SCHEMA = 1


@runtime_checkable
class EvaluationSettings(Protocol):
    """Everything besides the candidate that changes its fitness, as one frozen object.

    Attributes:
        dataset_digest: sha256 of the data candidates are evaluated on (None: no data);
            trackers log it as the run's input.
    """

    dataset_digest: str | None

    def key_dict(self) -> dict[str, Any]:
        """The settings as JSON data: the whole of what joins the cache key."""
        ...


@dataclass(frozen=True)
class ProblemSettings:
    """The evaluation settings of a problem that needs only its name and its options.

    Args:
        problem: the problem's registry name.
        options: the options that change fitness (JSON data), e.g. ``{"n_var": 30}``.
        dataset_digest: digest of the problem's data, if it has any (joins the key).
    """

    problem: str
    options: Mapping[str, Any] = field(default_factory=dict)
    dataset_digest: str | None = None

    def __post_init__(self):
        # a read-only copy: the caller's dict may change, the settings must not
        object.__setattr__(self, "options", types.MappingProxyType(dict(self.options)))

    def __reduce__(self):
        # the read-only view does not pickle; rebuild it from a plain copy
        return (ProblemSettings, (self.problem, dict(self.options), self.dataset_digest))

    def key_dict(self) -> dict[str, Any]:
        out = {"problem": self.problem, **self.options}
        if self.dataset_digest is not None:
            out["dataset"] = self.dataset_digest
        return out


def evaluation_key(candidate_key: str, settings: EvaluationSettings) -> str:
    """sha256 hex over the candidate key, the settings' :meth:`key_dict` and the code version.

    Args:
        candidate_key: ``SearchProblem.key(x)`` (for genomes: ``Genome.key()``).
        settings: ``SearchProblem.evaluation_settings()`` (anything with ``key_dict()``).

    Raises:
        TypeError: ``settings`` is not an evaluation-settings object (e.g. a bare dict).
    """
    return evaluation_key_function(settings)(candidate_key)


def evaluation_key_function(settings: EvaluationSettings) -> Callable[[str], str]:
    """:func:`evaluation_key` with the settings bound and serialised once (a search's hot path).

    The bytes hashed are those of ``json.dumps({"candidate", "code", "settings"},
    sort_keys=True, separators=(",", ":"))``, assembled around the settings' JSON.
    """
    if not isinstance(settings, EvaluationSettings):
        raise TypeError(f"evaluation settings must be an object with key_dict() (see core/key.py), "
                        f"not {type(settings).__name__}")
    blob = json.dumps(settings.key_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
    code = json.dumps(EVALUATION_CODE_VERSION)

    def key(candidate_key: str) -> str:
        text = f'{{"candidate":{json.dumps(candidate_key)},"code":{code},"settings":{blob}}}'
        return hashlib.sha256(text.encode()).hexdigest()

    return key


def cache_key(candidate_key: str, settings: EvaluationSettings) -> str:
    """The Redis key of a fitness: ``evodiff:fit:v<schema>:<sha256>``."""
    return cache_key_function(settings)(candidate_key)


def cache_key_function(settings: EvaluationSettings) -> Callable[[str], str]:
    """:func:`cache_key` with the settings bound and serialised once."""
    key = evaluation_key_function(settings)
    return lambda candidate_key: f"evodiff:fit:v{CACHE_SCHEMA}:{key(candidate_key)}"
