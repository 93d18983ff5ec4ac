"""``evodiff-ray deploy MODEL --version V``: a canary beside production (``--canary PCT``), or ``--promote``."""

from __future__ import annotations

import argparse
import json

from evodiff_ray.cli import Command, redis_url_arg
from evodiff_ray.core.errors import UsageError


def share(value: str) -> float:
    """A canary share in percent, 0-100."""
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a percentage (0-100)") from None
    if not 0 <= v <= 100:
        raise argparse.ArgumentTypeError(f"{value} is outside 0-100 (a share of the traffic, in percent)")
    return v


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--redis-url``, ``--tracking-uri`` and ``--runs-dir``, as ``serve`` takes them."""
    parser.add_argument("--redis-url", default=None,
                        help="the served model's Redis (default EVODIFF_REDIS_URL, else the embedded server "
                             "of --runs-dir)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow registry URI (default MLFLOW_TRACKING_URI, else sqlite in --runs-dir)")
    parser.add_argument("--runs-dir", default="evodiff-runs", help="where run dirs live (default evodiff-runs)")


class DeployCommand(Command):
    """Canary a registered version beside production, or make it production at once."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        from evodiff_ray.serving.policy import CanaryPolicy

        d = CanaryPolicy()
        parser.add_argument("model", metavar="MODEL", help="registered model name")
        parser.add_argument("--version", required=True, help="registry version to deploy")
        how = parser.add_mutually_exclusive_group()
        how.add_argument("--canary", type=share, default=None, metavar="PCT",
                         help="traffic share of the challenger, in percent (default 10)")
        how.add_argument("--promote", action="store_true",
                         help="make it production now (moves the 'production' alias; no canary)")
        pol = parser.add_argument_group("canary policy (see the README)")
        pol.add_argument("--alpha", type=float, default=d.alpha, help=f"false-alarm rate per decision ({d.alpha})")
        pol.add_argument("--min-ratings", type=int, default=d.min_ratings,
                         help=f"ratings per arm at the first look ({d.min_ratings})")
        pol.add_argument("--max-ratings", type=int, default=d.max_ratings,
                         help=f"ratings per arm at the last look ({d.max_ratings})")
        pol.add_argument("--min-requests", type=int, default=d.min_requests,
                         help=f"requests per arm at the first latency look ({d.min_requests})")
        pol.add_argument("--max-requests", type=int, default=d.max_requests,
                         help=f"requests per arm at the last latency look ({d.max_requests})")
        pol.add_argument("--latency-tolerance", type=float, default=d.latency_tolerance,
                         help=f"how much slower counts as slower, a fraction ({d.latency_tolerance})")
        pol.add_argument("--max-error-rate", type=float, default=d.max_error_rate,
                         help=f"hard SLO: challenger error rate ({d.max_error_rate})")
        pol.add_argument("--max-p90-ms", type=float, default=d.max_p90_ms,
                         help=f"hard SLO: challenger p90 latency in ms ({d.max_p90_ms:g})")
        pol.add_argument("--slo-min-requests", type=int, default=d.slo_min_requests,
                         help=f"challenger requests before the SLO is judged ({d.slo_min_requests})")
        add_connection_arguments(parser)
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.serving.connect import open_controller
        from evodiff_ray.serving.policy import CanaryPolicy
        from evodiff_ray.serving.versions import check_version, registry_client
        from evodiff_ray.tracking.mlflow_tracker import resolve_tracking_uri

        redis_url = redis_url_arg(args.redis_url)
        try:
            policy = CanaryPolicy(alpha=args.alpha, min_ratings=args.min_ratings, max_ratings=args.max_ratings,
                                  min_requests=args.min_requests, max_requests=args.max_requests,
                                  latency_tolerance=args.latency_tolerance, max_error_rate=args.max_error_rate,
                                  max_p90_ms=args.max_p90_ms, slo_min_requests=args.slo_min_requests)
        except ValueError as e:
            raise UsageError(f"canary policy: {e}") from None
        uri = resolve_tracking_uri(args.tracking_uri, args.runs_dir)
        version = check_version(registry_client(uri), args.model, args.version)
        controller, server = open_controller(args.model, redis_url=redis_url, runs_dir=args.runs_dir,
                                             tracking_uri=uri)
        try:
            if args.promote:
                state = controller.set_production(version, "deploy --promote")
                out = {"model": args.model, "production": version, "deployment": state.deployment,
                       "served": controller.serving()}
                text = (f"{args.model}: version {version} is production (alias moved)"
                        + ("" if out["served"] else f"; start serving it with 'evodiff-ray serve {args.model}'"))
            else:
                if not controller.serving():
                    raise UsageError(f"{args.model!r} is not being served; start it with "
                                     f"'evodiff-ray serve {args.model}' (same --runs-dir/--redis-url), then deploy")
                pct = 10.0 if args.canary is None else args.canary
                state = controller.start_canary(version, pct, policy)
                out = {"model": args.model, "challenger": version, "production": state.production, "share": pct,
                       "deployment": state.deployment, "policy": policy.to_dict()}
                text = (f"{args.model}: canary of version {version} at {pct:g}% beside production "
                        f"{state.production} (deployment {state.deployment}); the policy decides, "
                        f"'evodiff-ray deployments {args.model}' shows the outcome")
        finally:
            controller.client.close()
            if server is not None:
                server.stop()
        print(json.dumps(out, indent=2) if args.format == "json" else text)
        return 0
