"""``evodiff-ray rollback MODEL``: end a canary, or return to the previous production version."""

from __future__ import annotations

import argparse
import json

from evodiff_ray.cli import Command, redis_url_arg
from evodiff_ray.cli.deploy import add_connection_arguments


class RollbackCommand(Command):
    """Roll back by hand: the challenger gets 0%, or the previous production returns (alias moves back)."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", metavar="MODEL", help="registered model name")
        add_connection_arguments(parser)
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.serving.connect import open_controller

        controller, server = open_controller(args.model, redis_url=redis_url_arg(args.redis_url),
                                             runs_dir=args.runs_dir, tracking_uri=args.tracking_uri)
        try:
            out = controller.manual_rollback()
        finally:
            controller.client.close()
            if server is not None:
                server.stop()
        if args.format == "json":
            print(json.dumps({"model": args.model, **out}, indent=2))
        else:
            print(f"{args.model}: rolled back version {out['rolled_back']}; production is version {out['production']}")
        return 0
