"""``evodiff-ray search``: parse flags, build the config, call ``search``, print the front."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from evodiff_ray.cli import Command
from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.tracker import Tracker


class ProgressPrinter(Tracker):
    """One line per generation (async: at most one per ``every_s`` seconds)."""

    def __init__(self, mode: str, every_s: float = 1.0, out=None):
        self.every_s = every_s if mode == "async" else 0.0
        self.out = out or sys.stdout
        self._last = 0.0

    def on_start(self, config, run_dir, resumed) -> None:
        what = "resuming" if resumed else "starting"
        self._print(f"{what} search {config.search_id}: problem {config.problem}, mode {config.mode}, "
                    f"pop {config.pop_size}, seed {config.seed}; run dir {run_dir}")

    def note(self, message: str) -> None:
        """A one-off line about the set-up (where the cache and tracking live)."""
        self._print(message)

    def on_generation(self, stats: dict[str, Any], front) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        self._print(progress_line(stats))

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def progress_line(stats: dict[str, Any]) -> str:
    """``[gen 3] evals 60 | in flight 2 | failures 0 | hv 0.42 | best f1=0.01 f2=0.3 | util 93%``."""
    best = " ".join(f"{k}={v:.4g}" for k, v in stats.get("best", {}).items()) or "-"
    util = stats.get("utilization")
    c = stats.get("cache") or {}
    cache = f"cache {c.get('hits', 0)} hit/{c.get('misses', 0)} miss/{c.get('waited', 0)} waited"
    svc = stats.get("cache_service") or {}
    if svc.get("stale_takeovers"):
        cache += f"/{svc['stale_takeovers']} taken over"
    if svc.get("redis") == "down":
        cache += " (Redis down: uncached)"
    return (f"[gen {stats['generation']}] evals {stats['evaluations']} | in flight {stats['in_flight']} | "
            f"failures {stats['failures']} | hv {stats['hypervolume']:.4g} | best {best} | {cache} | "
            f"util {'-' if util is None else f'{100 * util:.0f}%'} | {stats['elapsed_s']:.1f} s")


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


class SearchCommand(Command):
    """Run (or resume) a multi-objective architecture search."""

    help = "run or resume an evolutionary search"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        a = parser.add_argument
        a("--config", metavar="FILE.toml", help="TOML config (top-level fields, [actor], [problem_options])")
        a("--preset", choices=("quick", "standard"), help="starting point the config and flags override")
        a("--problem", help="zdt1, zdt2, zdt3, dtlz2, synthetic, diffusion, or package.module:factory")
        a("--problem-option", "-O", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
          help="a problem option (value parsed as JSON when it can be); repeatable")
        a("--pop", type=int, dest="pop_size", help="population size")
        a("--offspring", type=int, dest="n_offsprings", help="offspring per ask (async default: workers)")
        a("--generations", type=int, help="stop after this many generations")
        a("--evaluations", type=int, dest="max_evaluations", help="stop after this many evaluations")
        a("--max-seconds", type=float, help="stop starting new work after this many seconds")
        a("--mode", choices=("generational", "async"), help="generation barrier, or none")
        a("--seed", type=int, help="random seed of the algorithm")
        a("--backend", choices=("ray", "local"), help="Ray actor pool (default) or in-process")
        a("--workers", type=int, help="evaluator actors (default: as many as resources allow)")
        a("--batch-size", type=int, help="genomes per actor call")
        a("--num-cpus", type=float, dest="actor.num_cpus", help="CPUs per evaluator actor")
        a("--resource", action="append", type=_key_value, default=[], metavar="NAME=AMOUNT",
          help="custom Ray resource per actor, e.g. apple_silicon=1; repeatable")
        a("--label", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
          help="node label an actor must land on; repeatable")
        a("--address", help="Ray cluster: auto, host:port or ray://host:10001 (token auth: export the "
                            "cluster's RAY_AUTH_MODE)")
        a("--redis-url", help="Redis for the fitness cache and live front")
        a("--no-cache", action="store_true", default=None,
          help="do not use the fitness cache (no Redis needed)")
        a("--tracking-uri", help="MLflow tracking URI (default: sqlite in the runs dir, or MLFLOW_TRACKING_URI)")
        a("--no-tracking", action="store_true", default=None, help="do not record the search in MLflow")
        a("--experiment", help="MLflow experiment name (default evodiff-<problem>[-<dataset digest>])")
        a("--search-id", help="run id (default: generated); with --resume, the run to continue")
        a("--resume", action="store_true", help="continue the run's checkpoint (saved config is used)")
        a("--target", help="hardware target (chip profile)")
        a("--fidelity", help="training budget level")
        a("--runs-dir", help="directory of run dirs (default ./evodiff-runs)")
        a("--quiet", action="store_true", help="no progress lines")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.search import search

        config = build_config(args)
        trackers = [] if args.quiet else [ProgressPrinter(config.mode)]
        result = search(config, resume=args.resume, trackers=trackers)
        from evodiff_ray.cli.front import format_front

        print(format_front(result.front, "table"))
        print(f"stopped: {result.stop_reason}; hypervolume {result.hypervolume:.6g}")
        c = result.front.get("cache", {})
        svc = (result.history[-1].get("cache_service") if result.history else None) or {}
        print(f"evaluations: {result.front.get('evaluations')} ({c.get('misses', 0)} evaluated, "
              f"{c.get('hits', 0)} cache hits, {c.get('waited', 0)} waited for other searches"
              + (f", {svc['stale_takeovers']} stale claims taken over" if svc.get("stale_takeovers") else "")
              + f"); utilisation {_pct(result.front.get('utilization'))}")
        print(f"results: {result.run_dir}/ (front.json, history.json, config.json, checkpoint/); "
              f"'evodiff-ray front {result.search_id}' prints the front again")
        return 0


def build_config(args: argparse.Namespace):
    """The SearchConfig from parsed flags (a resume starts from the run's saved config)."""
    from evodiff_ray.config import load_config, resume_config

    overrides: dict[str, Any] = {
        k: getattr(args, k) for k in (
            "problem", "pop_size", "n_offsprings", "generations", "max_evaluations", "max_seconds",
            "mode", "seed", "backend", "workers", "batch_size", "actor.num_cpus", "address",
            "redis_url", "no_cache", "tracking_uri", "no_tracking", "experiment", "search_id", "target",
            "fidelity", "runs_dir",
        )
    }
    if args.problem_option:
        overrides["problem_options"] = dict(args.problem_option)
    if args.resource:
        overrides["actor.resources"] = dict(args.resource)
    if args.label:
        overrides["actor.label_selector"] = {k: str(v) for k, v in args.label}
    if not args.resume:
        return load_config(args.config, args.preset, overrides)
    if args.config or args.preset:
        raise UsageError("--resume reads the run's saved config.json; drop --config and --preset")
    if not args.search_id:
        raise UsageError("--resume needs --search-id (the run to continue)")
    path = Path(args.runs_dir or "evodiff-runs") / args.search_id / "config.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"nothing to resume: {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{path} is not valid JSON") from None
    return resume_config(saved, overrides, where=str(path))
