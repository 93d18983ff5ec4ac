"""``evodiff-ray deployments [MODEL]``: the deployment history (the Redis event stream)."""

from __future__ import annotations

import argparse
import json
import time

from evodiff_ray.cli import Command, redis_url_arg
from evodiff_ray.cli.deploy import add_connection_arguments
from evodiff_ray.core.table import format_table


class DeploymentsCommand(Command):
    """List every deployment event: serve, deploy, promote, rollback, stop, with reasons."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", metavar="MODEL", nargs="?", help="registered model name (default: all)")
        parser.add_argument("--limit", type=int, default=None, help="only the last N events per model")
        add_connection_arguments(parser)
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.serving.connect import connect_redis
        from evodiff_ray.serving.events import EventLog, all_models
        from evodiff_ray.serving.state import read_state

        client, _, server = connect_redis(redis_url_arg(args.redis_url), args.runs_dir)
        try:
            models = [args.model] if args.model else all_models(client)
            events = [e for m in models for e in EventLog(client, m).history(args.limit)]
            states = {m: read_state(client, m) for m in models}
        finally:
            client.close()
            if server is not None:
                server.stop()
        events.sort(key=lambda e: e.get("at", 0))
        if args.format == "json":
            print(json.dumps({"events": events,
                              "now": {m: (s.__dict__ if s else None) for m, s in states.items()}}, indent=1,
                             default=list))
            return 0
        if not events:
            print(f"no deployments of {args.model!r} recorded" if args.model else "no deployments recorded")
            return 0
        rows = [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("at", 0))), e.get("model", ""),
                 e.get("kind", ""), str(e.get("version") or "-"), str(e.get("production") or "-"),
                 str(e.get("challenger") or "-"), f"{e['share']:g}%" if e.get("challenger") else "-",
                 str(e.get("reason") or "")[:90]] for e in events]
        print(format_table(["time", "model", "event", "version", "production", "challenger", "share", "reason"],
                           rows))
        for m, s in states.items():
            if s is not None:
                now = f"production {s.production}" + (f", canary {s.challenger} at {s.share:g}%" if s.challenger else "")
                print(f"{m} now: {now}")
        return 0
