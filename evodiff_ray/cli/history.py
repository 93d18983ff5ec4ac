"""``evodiff-ray history``: the long-term view of one MLflow experiment's searches over time."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evodiff_ray.cli import Command, redis_url_arg


class HistoryCommand(Command):
    """Best per objective and hypervolume (common reference) across an experiment's searches."""

    help = "best per objective and hypervolume across every search of an experiment, over time"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--experiment", help="MLflow experiment (default: that of the newest tracked run dir)")
        parser.add_argument("--tracking-uri", help="MLflow tracking URI (default MLFLOW_TRACKING_URI, else sqlite "
                                                   "in the runs dir)")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="directory holding run dirs")
        parser.add_argument("--redis-url", help="read live fronts from this Redis")
        parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
        parser.add_argument("--plot", help="PNG path (default <runs-dir>/history-<experiment>.png)")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.adapt.history import experiment_history, format_history, history_plot
        from evodiff_ray.core.urls import check_tracking_uri
        from evodiff_ray.tracking.mlflow_tracker import resolve_tracking_uri

        if args.tracking_uri:
            check_tracking_uri(args.tracking_uri, "--tracking-uri")
        uri = resolve_tracking_uri(args.tracking_uri, args.runs_dir)
        h = experiment_history(uri, args.experiment, runs_dir=args.runs_dir,
                               redis_url=redis_url_arg(args.redis_url, env=None))
        plot = Path(args.plot or Path(args.runs_dir) / f"history-{h['experiment'][:80]}.png")
        history_plot(plot, h)
        h["plot"] = str(plot)
        if args.format == "json":
            print(json.dumps(h, indent=1))
        else:
            print(format_history(h))
            print(f"plot: {plot}")
        return 0
