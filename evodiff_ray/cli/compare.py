"""``evodiff-ray compare A B ...``: searches side by side, and an overlay plot of their fronts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evodiff_ray.cli import Command, redis_url_arg


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
        from evodiff_ray.cache.front_store import read_front
        from evodiff_ray.tracking.compare import compare_fronts, format_comparison, overlay_plot

        redis_url = redis_url_arg(args.redis_url, env=None)
        fronts = {sid: read_front(sid, args.runs_dir, redis_url) for sid in args.search_ids}
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
