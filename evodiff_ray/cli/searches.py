"""``evodiff-ray searches``: the known searches, from Redis and from the run dirs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from evodiff_ray.cli import Command, redis_url_arg
from evodiff_ray.core.table import format_table


def embedded_redis_url(runs_dir: str) -> str | None:
    """URL of the embedded redis-server recorded under ``<runs_dir>/.redis`` if it still answers."""
    from evodiff_ray.cache.local_redis import LocalRedis

    server = LocalRedis.running(Path(runs_dir) / ".redis")
    return server.url if server is not None else None


class SearchesCommand(Command):
    """List searches: id, status, generation, evaluations, front size, last update."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--redis-url",
                            help="Redis holding live fronts (default EVODIFF_REDIS_URL, else the embedded server)")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="where run dirs live (default evodiff-runs)")
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def run(self, args: argparse.Namespace) -> int:
        rows: dict[str, dict] = {}
        for p in sorted(Path(args.runs_dir).glob("*/front.json")):
            try:
                f = json.loads(p.read_text())
                rows[f["search_id"]] = {"search_id": f["search_id"], "status": f.get("status"),
                                        "generation": f.get("generation"), "evaluations": f.get("evaluations"),
                                        "front_size": len(f.get("points", [])), "updated_at": p.stat().st_mtime,
                                        "where": "run dir"}
            except (ValueError, KeyError, TypeError, OSError):
                continue
        url = redis_url_arg(args.redis_url) or embedded_redis_url(args.runs_dir)
        if url:
            import redis

            from evodiff_ray.cache.front_store import RedisFrontStore

            try:
                for rec in RedisFrontStore(url).searches():
                    rec["where"] = "redis" + (" + run dir" if rec["search_id"] in rows else "")
                    rows[rec["search_id"]] = {**rows.get(rec["search_id"], {}), **rec}
            except redis.RedisError as e:
                print(f"evodiff-ray: warning: Redis unreachable ({type(e).__name__}); showing run dirs only")
        ordered = sorted(rows.values(), key=lambda r: -(r.get("updated_at") or 0))
        if args.format == "json":
            print(json.dumps(ordered, indent=2))
            return 0
        if not ordered:
            print(f"no searches found in {args.runs_dir}/" + (" or Redis" if url else ""))
            return 0
        head = ["search", "status", "gen", "evals", "front", "updated", "where"]
        body = [[str(r.get("search_id")), str(r.get("status")), str(r.get("generation")), str(r.get("evaluations")),
                 str(r.get("front_size")),
                 time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["updated_at"])) if r.get("updated_at") else "-",
                 r.get("where", "")] for r in ordered]
        print(format_table(head, body))
        return 0
