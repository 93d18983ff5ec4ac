"""Evaluation keys: where a candidate's key meets the evaluation settings and code version.

A fitness depends on the candidate *and* on how it was evaluated (problem, fidelity and
training budget, dataset digest, evaluation target, code). This is the one place where
those join; the fitness cache stores values under :func:`cache_key`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

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
    blob = json.dumps({"candidate": candidate_key, "settings": settings, "code": EVALUATION_CODE_VERSION},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_key(candidate_key: str, settings: dict[str, Any]) -> str:
    """The Redis key of a fitness: ``evodiff:fit:v<schema>:<sha256>``."""
    return f"evodiff:fit:v{CACHE_SCHEMA}:{evaluation_key(candidate_key, settings)}"
