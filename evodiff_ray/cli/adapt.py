"""``evodiff-ray adapt MODEL``: on new data, degradation or a schedule, search again and canary the knee."""

from __future__ import annotations

import argparse
import json
from typing import Any

from evodiff_ray.cli import Command, redis_url_arg
from evodiff_ray.core.errors import UsageError


def _duration(value: str) -> float:
    from evodiff_ray.adapt.triggers import parse_duration

    try:
        return parse_duration(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _positive_int(value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return v


class AdaptCommand(Command):
    """Watch a served model's data, quality and clock; on a trigger, run a warm-started search,
    register its knee and hand it to the canary; every cycle is an MLflow run."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        from evodiff_ray.cli.deploy import add_connection_arguments, share

        parser.add_argument("model", metavar="MODEL", help="registered model name, served by 'evodiff-ray serve'")
        trig = parser.add_argument_group("triggers (any that fires starts a cycle)")
        trig.add_argument("--watch", metavar="DIR", default=None,
                          help="an image folder (or .npz) to watch: a change of its digest starts a cycle, and it is "
                               "the cycles' dataset")
        trig.add_argument("--every", type=_duration, default=None, metavar="DURATION",
                          help="a cycle when this long has passed since the last one began (e.g. 6h, 30m, 1d)")
        trig.add_argument("--fd-above", type=float, default=None, metavar="FD",
                          help="degradation: production's served-sample FD (GET /models) above this")
        trig.add_argument("--rating-below", type=float, default=None, metavar="R",
                          help="degradation: production's mean rating in the current deployment below this (1-5)")
        trig.add_argument("--degraded-min-ratings", type=_positive_int, default=20, metavar="N",
                          help="ratings needed before --rating-below is judged (default 20)")
        trig.add_argument("--cooldown", type=_duration, default=600.0, metavar="DURATION",
                          help="after a decision, degradation waits this long before it can fire again (default 10m)")
        trig.add_argument("--cycle-now", action="store_true", help="run one cycle at once, then watch")
        srch = parser.add_argument_group("the cycles' search (default: pop 6, 3 generations, quick fidelity)")
        srch.add_argument("--search-config", metavar="FILE.toml", default=None,
                          help="a search config (as 'search --config') each cycle starts from")
        srch.add_argument("--preset", default=None, help="the problem's preset each cycle starts from")
        srch.add_argument("--pop", type=_positive_int, default=None, metavar="N", help="population size")
        srch.add_argument("--generations", type=_positive_int, default=None, metavar="N", help="generations per cycle")
        srch.add_argument("--evaluations", type=_positive_int, default=None, metavar="N", help="evaluations per cycle")
        srch.add_argument("--fidelity", default=None, help="training budget (smoke, quick, standard, full)")
        srch.add_argument("-S", "--search-option", dest="search_options", action="append", type=_key_value,
                          default=[], metavar="KEY=VALUE",
                          help="any search config field, dotted for nested ones (value parsed as JSON when it "
                               "can be), e.g. -S backend=local -S problem_options.fd_samples=64; repeatable")
        srch.add_argument("--seed-from", dest="seed_from", action="append", default=None, metavar="SOURCE",
                          help="warm start: 'production' (models:/MODEL@production), 'last' (the last cycle's "
                               "search), a SEARCH_ID, FILE.json or models:/NAME@ALIAS; repeatable "
                               "(default: production and last)")
        can = parser.add_argument_group("the canary")
        can.add_argument("--canary", type=share, default=10.0, metavar="PCT",
                         help="the knee's share of the traffic, in percent (default 10)")
        can.add_argument("--policy", dest="policy", action="append", type=_key_value, default=[],
                         metavar="KEY=VALUE",
                         help="a canary policy field, as 'deploy' takes it (alpha, min_ratings, max_ratings, "
                              "min_requests, max_requests, latency_tolerance, max_error_rate, max_p90_ms, "
                              "slo_min_requests); repeatable")
        can.add_argument("--decision-timeout", type=_duration, default=24 * 3600.0, metavar="DURATION",
                         help="a canary still undecided this long after it started is rolled back (default 24h)")
        run = parser.add_argument_group("the controller")
        run.add_argument("--state-dir", default=None,
                         help="where the controller's state lives (default <runs-dir>/.adapt/MODEL)")
        run.add_argument("--poll", type=_duration, default=30.0, metavar="DURATION",
                         help="how often the triggers are looked at (default 30s)")
        run.add_argument("--max-cycles", type=_positive_int, default=None, metavar="N",
                         help="stop after N cycles (default: run until stopped)")
        run.add_argument("--quiet", action="store_true", help="no search progress lines")
        add_connection_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.adapt.controller import adapt_forever

        options = build_options(args)

        def trackers():   # fresh progress lines for each cycle's search
            if args.quiet:
                return []
            from evodiff_ray.cli.search import ProgressPrinter

            return [ProgressPrinter("generational")]   # it takes the search's mode when the search starts

        state = adapt_forever(options, say=lambda m: print(m, flush=True), trackers=trackers)
        print(f"{options.model}: {state.cycle} cycle(s); the last: {state.decision or '-'}"
              + (f" ({state.reason})" if state.reason else "") + f"; state in {options.state_path}")
        return 0


def build_options(args: argparse.Namespace):
    """The :class:`~evodiff_ray.adapt.options.AdaptOptions` of parsed flags.

    Raises:
        UsageError: no trigger at all, a bad threshold, a bad canary policy or address.
    """
    from evodiff_ray.adapt.options import AdaptOptions
    from evodiff_ray.adapt.triggers import TriggerPolicy
    from evodiff_ray.core.urls import check_tracking_uri
    from evodiff_ray.serving.policy import CanaryPolicy
    from evodiff_ray.tracking.mlflow_tracker import resolve_tracking_uri

    if not (args.watch or args.every or args.fd_above is not None or args.rating_below is not None
            or args.cycle_now):
        raise UsageError("nothing to watch: give --watch DIR, --every DURATION, --fd-above FD or --rating-below R "
                         "(or --cycle-now)")
    try:
        triggers = TriggerPolicy(every_s=args.every, fd_above=args.fd_above, rating_below=args.rating_below,
                                 min_ratings=args.degraded_min_ratings, cooldown_s=args.cooldown)
    except ValueError as e:
        raise UsageError(f"triggers: {e}") from None
    policy = dict(args.policy)
    try:
        CanaryPolicy.from_dict(policy)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--policy: {e}") from None
    unknown = sorted(set(policy) - set(CanaryPolicy.__dataclass_fields__))
    if unknown:
        raise UsageError(f"--policy: unknown field {unknown[0]!r}; choose from "
                         f"{', '.join(CanaryPolicy.__dataclass_fields__)}")
    if args.tracking_uri is not None:
        check_tracking_uri(args.tracking_uri, "--tracking-uri")
    overrides = dict(args.search_options)
    for dest, key in (("pop", "pop_size"), ("generations", "generations"), ("evaluations", "max_evaluations"),
                      ("fidelity", "fidelity")):
        if getattr(args, dest) is not None:
            overrides[key] = getattr(args, dest)
    return AdaptOptions(
        model=args.model, tracking_uri=resolve_tracking_uri(args.tracking_uri, args.runs_dir),
        redis_url=redis_url_arg(args.redis_url), runs_dir=args.runs_dir, state_dir=args.state_dir, watch=args.watch,
        triggers=triggers, search_file=args.search_config, preset=args.preset, search_overrides=overrides,
        seed_from=tuple(args.seed_from or ("production", "last")), canary_share=args.canary,
        canary_policy=policy, decision_timeout_s=args.decision_timeout, poll_s=args.poll,
        max_cycles=args.max_cycles, cycle_now=args.cycle_now)
