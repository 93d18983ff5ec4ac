"""The read-only search views of the HTTP API: the known searches and each one's front.

Served from the run dirs and the Redis the gateway already uses, so a client of the
service needs neither Redis access nor the run dirs. A front is the front JSON of
DESIGN section 4, exactly as ``evodiff-ray front --format json`` prints it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def list_searches(runs_dir: str, redis_url: str | None = None) -> list[dict[str, Any]]:
    """Searches in the run dirs and in Redis, most recently updated first."""
    rows: dict[str, dict[str, Any]] = {}
    for p in sorted(Path(runs_dir).glob("*/front.json")):
        try:
            f = json.loads(p.read_text())
            rows[f["search_id"]] = {"search_id": f["search_id"], "status": f.get("status"),
                                    "generation": f.get("generation"), "evaluations": f.get("evaluations"),
                                    "front_size": len(f.get("points", [])), "updated_at": p.stat().st_mtime}
        except (ValueError, KeyError, TypeError, OSError):
            continue
    if redis_url:
        import redis

        from evodiff_ray.cache.front_store import RedisFrontStore

        try:
            for rec in RedisFrontStore(redis_url).searches():
                rows[rec["search_id"]] = {**rows.get(rec["search_id"], {}), **rec}
        except redis.RedisError:
            pass  # the run dirs still answer
    return sorted(rows.values(), key=lambda r: -(r.get("updated_at") or 0))


def front_of_search(search_id: str, runs_dir: str, redis_url: str | None = None) -> dict[str, Any]:
    """The front document of ``search_id`` (Redis first, then its run dir).

    Raises:
        UsageError: unknown search or unreadable front (the gateway answers 404).
    """
    from evodiff_ray.cache.front_store import read_front
    from evodiff_ray.core.errors import UsageError

    if not search_id or "/" in search_id or search_id.startswith("."):
        raise UsageError(f"no search {search_id!r}")
    return read_front(search_id, runs_dir, redis_url)
