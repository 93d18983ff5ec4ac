"""``evodiff-ray front [SEARCH_ID]``: the live or final Pareto front of a search."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from evodiff_ray.cli import Command, redis_url_arg
from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.table import format_table

FORMATS = ("table", "json", "csv")


def format_front(front: dict[str, Any], fmt: str = "table") -> str:
    """Render a front document as a table, JSON or CSV (pure).

    Args:
        front: a front document (:func:`~evodiff_ray.core.front.front_json`).
        fmt: ``table``, ``json`` or ``csv``.
    """
    names = front["objectives"]
    points = sorted(front["points"], key=lambda p: [p["objectives"][n] for n in names])
    if fmt == "json":
        return json.dumps(front, indent=1)
    if fmt == "csv":
        from evodiff_ray.core.front import front_csv

        return front_csv({**front, "points": points}).rstrip("\n")
    header = (f"search {front['search_id']} ({front['status']}): generation {front['generation']}, "
              f"{front['evaluations']} evaluations, {len(points)} points on the front"
              + (f" (constraints: {', '.join(front['constraints'])})" if front.get("constraints") else ""))
    head = ["key", "gen", *names]
    rows = [[p["key"][:12], p["generation"], *[f"{p['objectives'][n]:.6g}" for n in names]] for p in points]
    if any(p.get("rung") is not None for p in points):   # multi-fidelity: say where quality was measured
        head += ["rung", "steps"]
        rows = [[*row, p.get("rung"), p.get("train_steps")] for row, p in zip(rows, points)]
    if any("rating" in p for p in points):   # --rating-from: say which ratings are human and which predicted
        head += ["rated by"]
        rows = [[*row, rated_by(p.get("rating"))] for row, p in zip(rows, points)]
    return header + "\n" + format_table(head, rows)


def rated_by(rating: dict[str, Any] | None) -> str:
    """``human (12, ±0.29)``, ``predicted (±0.61)`` or ``-`` (pure)."""
    if not rating:
        return "-"
    std = rating.get("std")
    spread = f"±{std:.2g}" if isinstance(std, (int, float)) else "±?"
    if rating.get("source") == "human":
        return f"human ({rating.get('n')}, {spread})"
    return f"{rating.get('source')} ({spread})"


class FrontCommand(Command):
    """Print the front of a search (the most recent one when no id is given)."""

    help = "show the live or final Pareto front of a search"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("search_id", nargs="?", help="search id (default: the most recently updated)")
        parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="directory holding run dirs")
        parser.add_argument("--redis-url",
                            help="read the live front from this Redis (any machine that reaches it); "
                                 "default EVODIFF_REDIS_URL, else the run dir")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.cache.front_store import read_front
        from evodiff_ray.core.front import FileFrontStore

        redis_url = redis_url_arg(args.redis_url)
        search_id = args.search_id
        if search_id is None and redis_url:
            search_id = _latest_in_redis(redis_url)
        search_id = search_id or FileFrontStore(args.runs_dir).latest()
        if search_id is None:
            raise UsageError(f"no search fronts under {args.runs_dir!r}; run 'evodiff-ray search' first")
        front = read_front(search_id, args.runs_dir, redis_url)
        sys.stdout.write(format_front(front, args.format) + "\n")
        return 0


def _latest_in_redis(url: str) -> str | None:
    import redis

    from evodiff_ray.cache.front_store import RedisFrontStore
    from evodiff_ray.core.urls import redact

    try:
        return RedisFrontStore(url).latest()
    except redis.RedisError as e:
        raise UsageError(f"cannot read from Redis at {redact(url)} ({type(e).__name__}); check --redis-url") from None
