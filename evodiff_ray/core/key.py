"""Evaluation keys: where a candidate's key meets the evaluation settings and code version.

A fitness depends on the candidate *and* on how it was evaluated (problem, fidelity and
training budget, dataset digest, evaluation target, code). This is the one place where
those join; the fitness cache stores values under :func:`cache_key`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

#: Bump when a code change alters fitness values for the same genome and settings.
EVALUATION_CODE_VERSION = 1
#: Bump when the cache value's JSON layout changes (also in the key: ``v<schema>``).
CACHE_SCHEMA = 1


def evaluation_key(candidate_key: str, settings: dict[str, Any]) -> str:
    """sha256 hex over the candidate key, the evaluation settings and the code version.

    Args:
        candidate_key: ``SearchProblem.key(x)`` (for genomes: ``Genome.key()``).
        settings: ``SearchProblem.evaluation_settings()`` plus anything else that changes
            the result (e.g. the evaluation target). Must be JSON data.
    """
    return evaluation_key_function(settings)(candidate_key)


def evaluation_key_function(settings: dict[str, Any]) -> Callable[[str], str]:
    """:func:`evaluation_key` with the settings bound and serialised once (a search's hot path).

    The bytes hashed are those of ``json.dumps({"candidate", "code", "settings"},
    sort_keys=True, separators=(",", ":"))``, assembled around the settings' JSON.
    """
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=False)
    code = json.dumps(EVALUATION_CODE_VERSION)

    def key(candidate_key: str) -> str:
        text = f'{{"candidate":{json.dumps(candidate_key)},"code":{code},"settings":{blob}}}'
        return hashlib.sha256(text.encode()).hexdigest()

    return key


def cache_key(candidate_key: str, settings: dict[str, Any]) -> str:
    """The Redis key of a fitness: ``evodiff:fit:v<schema>:<sha256>``."""
    return cache_key_function(settings)(candidate_key)


def cache_key_function(settings: dict[str, Any]) -> Callable[[str], str]:
    """:func:`cache_key` with the settings bound and serialised once."""
    key = evaluation_key_function(settings)
    return lambda candidate_key: f"evodiff:fit:v{CACHE_SCHEMA}:{key(candidate_key)}"
