"""``evodiff-ray promote SEARCH_ID``: train a front member at full fidelity and register it."""

from __future__ import annotations

import argparse
import json
import sys

from evodiff_ray.cli import Command, redis_url_arg


class PromoteCommand(Command):
    """Pick (knee, weights, index or key), train at full fidelity, log and register with an alias."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("search_id", metavar="SEARCH_ID", help="the search whose front to promote from")
        parser.add_argument("--pick", default="knee",
                            help="'knee' (nearest the ideal point after normalising each objective to [0, 1] "
                                 "over the front); 'weights:NAME=W,...', e.g. weights:quality_fd=2,latency_ms=1 "
                                 "(the member with the least weighted sum of the normalised objectives; weights "
                                 ">= 0, objectives not named weigh 0); an index into the front; or a genome key "
                                 "prefix (default knee)")
        parser.add_argument("--alias", default="candidate", help="registry alias to point at it (default candidate)")
        parser.add_argument("--model-name", default=None, help="registered model name (default evodiff-<search>)")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="where run dirs live (default evodiff-runs)")
        parser.add_argument("--tracking-uri", default=None,
                            help="MLflow URI (default: the search's, MLFLOW_TRACKING_URI, or sqlite in the runs dir)")
        parser.add_argument("--redis-url", default=None, help="read the front from this Redis")
        parser.add_argument("--fidelity", default="full",
                            help="training budget for the registered weights (default full)")
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.core.urls import check_tracking_uri
        from evodiff_ray.tracking.registry import WEIGHTS_PREFIX, parse_weights

        if args.pick.startswith(WEIGHTS_PREFIX):   # malformed weights fail before anything is read
            parse_weights(args.pick[len(WEIGHTS_PREFIX):])
        redis_url = redis_url_arg(args.redis_url, env=None)
        if args.tracking_uri is not None:
            check_tracking_uri(args.tracking_uri, "--tracking-uri")
        from evodiff_ray.tracking.registry import promote

        out = promote(args.search_id, runs_dir=args.runs_dir, pick=args.pick, alias=args.alias,
                      model_name=args.model_name, tracking_uri=args.tracking_uri, redis_url=redis_url,
                      fidelity=args.fidelity,
                      progress=lambda m: print(m, file=sys.stderr, flush=True))
        if args.format == "json":
            print(json.dumps(out, indent=2))
        else:
            print(f"registered {out['model_name']} version {out['version']} (alias @{out['alias']})")
            print(f"genome {out['key'][:16]}  " + "  ".join(f"{k}={v:.4g}" for k, v in out["objectives"].items()))
            print(f"load it: mlflow.pyfunc.load_model('{out['model_uri']}')  with tracking URI {out['tracking_uri']}")
        return 0
