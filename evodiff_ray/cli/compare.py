"""``evodiff-ray compare A B ...``: searches side by side, and an overlay plot of their fronts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evodiff_ray.cli import Command
from evodiff_ray.errors import UsageError


def read_front(search_id: str, runs_dir: str, redis_url: str | None = None) -> dict:
    """A search's front from Redis (when a URL is given) or from its run dir.

    Raises:
        UsageError: the search is unknown or its front unreadable, naming where it looked.
    """
    from evodiff_ray.search.front import FileFrontStore, validate_front

    if redis_url:
        import redis

        from evodiff_ray.cache.front_store import RedisFrontStore
        from evodiff_ray.cache.redis_cache import redact

        try:
            front = RedisFrontStore(redis_url).read(search_id)
        except redis.RedisError as e:
            raise UsageError(f"cannot read from Redis at {redact(redis_url)} ({type(e).__name__}); "
                             "check --redis-url") from None
        except ValueError as e:
            raise UsageError(f"search {search_id!r} has a malformed front in Redis ({e})") from None
        if front is not None:
            return front
    try:
        front = FileFrontStore(runs_dir).read(search_id)
    except (ValueError, OSError) as e:
        raise UsageError(f"search {search_id!r}: unreadable front.json ({e})") from None
    if front is None:
        raise UsageError(f"no search {search_id!r} in {runs_dir}/" + (" (nor in Redis)" if redis_url else "") + "; "
                         "list them with 'evodiff-ray searches' or pass --runs-dir")
    return validate_front(front)


class CompareCommand(Command):
    """Print evaluations, hypervolume (common reference), front size and bests per search."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("search_ids", nargs="+", metavar="SEARCH_ID", help="searches to compare")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="where run dirs live (default evodiff-runs)")
        parser.add_argument("--redis-url", default=None, help="read live fronts from this Redis")
        parser.add_argument("--plot", default=None,
                            help="overlay PNG path (default <runs-dir>/compare-<ids>.png)")
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.tracking.compare import compare_fronts, format_comparison, overlay_plot

        fronts = {sid: read_front(sid, args.runs_dir, args.redis_url) for sid in args.search_ids}
        cmp = compare_fronts(fronts)
        plot = Path(args.plot or Path(args.runs_dir) / f"compare-{'-'.join(args.search_ids)[:80]}.png")
        overlay_plot(plot, fronts)
        cmp["plot"] = str(plot)
        if args.format == "json":
            print(json.dumps(cmp, indent=2))
        else:
            print(format_comparison(cmp))
            print(f"overlay plot: {plot}")
        return 0
