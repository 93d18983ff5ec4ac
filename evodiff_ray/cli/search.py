"""``evodiff-ray search``: parse flags, build the config, call ``search``, print the front."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from evodiff_ray.cli import Command
from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.tracker import Tracker


class ProgressPrinter(Tracker):
    """Progress of a search: evaluations as they finish, and one line per told batch.

    On a terminal a live bar (tqdm) shows evaluations done and in flight for the current
    generation (async: for the budget), the best value of each objective, the cache hits,
    and the elapsed time and ETA. Without a terminal (a Ray job's log, CI) a finished
    evaluation prints one plain line, at most one every ``line_every_s`` seconds, so that a
    log shows the search is alive long before a generation ends. The per-batch line comes
    after every generation (async: at most one per ``every_s`` seconds).

    Args:
        mode: the search mode (``generational`` or ``async``).
        every_s: async mode's least interval between per-batch lines.
        out: where to write (default stdout).
        live: draw a live bar; None: when ``out`` is a terminal.
        line_every_s: least interval between plain per-evaluation lines.
    """

    def __init__(self, mode: str, every_s: float = 1.0, out=None, live: bool | None = None,
                 line_every_s: float = 10.0):
        self.mode = mode
        self._async_every_s = every_s
        self.every_s = every_s if mode == "async" else 0.0
        self.out = out or sys.stdout
        isatty = getattr(self.out, "isatty", None)
        self.live = bool(isatty and isatty()) if live is None else live
        self.line_every_s = line_every_s
        self._last = 0.0
        self._last_line = -math.inf
        self._generation = 0
        self._best: dict[str, float] = {}
        self._hits = 0
        self._batch_t0 = time.monotonic()
        self._bar = None

    def on_start(self, config, run_dir, resumed) -> None:
        self.mode = config.mode            # the resolved search's (a preset or file may set it)
        self.every_s = self._async_every_s if config.mode == "async" else 0.0
        what = "resuming" if resumed else "starting"
        stops = " or ".join(f"{k}={_number(v)}" for k, v in config.budgets().items())
        self._print(f"{what} search {config.search_id}: problem {config.problem}, mode {config.mode}, "
                    f"pop {config.pop_size}, seed {config.seed}; stops at {stops} (first reached); "
                    f"run dir {run_dir}")
        self._batch_t0 = time.monotonic()

    def note(self, message: str) -> None:
        """A one-off line about the set-up (where the cache and tracking live)."""
        self._print(message)

    def on_evaluated(self, outcome, done, in_flight, total) -> None:
        if outcome["source"] != "evaluated":
            self._hits += 1
        if outcome["feasible"]:
            for k, v in outcome["objectives"].items():
                if math.isfinite(v) and v < self._best.get(k, math.inf):
                    self._best[k] = v
        if self.live:
            self._advance_bar(done, in_flight, total)
            return
        now = time.monotonic()
        if now - self._last_line < self.line_every_s:
            return
        self._last_line = now
        self._print(self.evaluation_line(outcome, done, in_flight, total, now - self._batch_t0))

    def evaluation_line(self, outcome, done: int, in_flight: int, total: int | None, elapsed: float) -> str:
        """``  [gen 2] 5/20 done, 2 in flight | 1a2b3c4d evaluated in 3.1 s | best ... | 12 s, ETA 36 s``."""
        where = f"gen {self._generation + 1}" if self.mode == "generational" else "async"
        of = f"/{total}" if total else ""
        what = outcome["source"] if outcome["feasible"] else f"infeasible ({(outcome['reason'] or '')[:60]})"
        eta = ""
        if total and done:
            eta = f", ETA {_seconds(elapsed / done * max(0, total - done))}"
        return (f"  [{where}] {done}{of} done, {in_flight} in flight | {outcome['key'][:8]} {what} in "
                f"{outcome['seconds']:.1f} s | best {self._best_text()} | {self._hits} cache hits | "
                f"{_seconds(elapsed)}{eta}")

    def on_generation(self, stats: dict[str, Any], front) -> None:
        self._generation = stats["generation"]
        self._best.update({k: v for k, v in stats.get("best", {}).items() if v is not None})
        if self.mode == "generational":
            self._close_bar()
            self._batch_t0 = time.monotonic()
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        self._print(progress_line(stats))

    def on_finish(self, result) -> None:
        self._close_bar()

    def _best_text(self) -> str:
        return " ".join(f"{k}={v:.4g}" for k, v in self._best.items()) or "-"

    def _advance_bar(self, done: int, in_flight: int, total: int | None) -> None:
        if self._bar is None:
            from tqdm import tqdm

            where = f"gen {self._generation + 1}" if self.mode == "generational" else "search"
            self._bar = tqdm(total=total, desc=where, unit="eval", file=self.out, dynamic_ncols=True,
                             leave=False, initial=done - 1)
        self._bar.update(done - self._bar.n)
        self._bar.set_postfix_str(f"{in_flight} in flight | best {self._best_text()} | {self._hits} hits",
                                  refresh=True)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _print(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.out)
            return
        self.out.write(line + "\n")
        self.out.flush()


def _seconds(s: float) -> str:
    """``42 s``, ``3m05s``, ``1h02m``."""
    if s < 60:
        return f"{s:.0f} s"
    m, sec = divmod(int(s), 60)
    return f"{m}m{sec:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


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


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _metavar(flag) -> str | None:
    """``--pop N``, ``--redis-url REDIS_URL``; a flag with choices shows them instead."""
    if flag.metavar or flag.choices:
        return flag.metavar
    return "N" if flag.kind is int else flag.names[0].lstrip("-").upper().replace("-", "_")


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


class SearchCommand(Command):
    """Run (or resume) a multi-objective architecture search."""

    help = "run or resume an evolutionary search"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        from evodiff_ray.config import GROUPS, cli_flags
        from evodiff_ray.problems import problem_names

        a = parser.add_argument
        a("--config", metavar="FILE.toml", help="TOML config (top-level fields, [actor], [problem_options])")
        a("--preset", help="the problem's starting point (quick or standard) that the config and flags override")
        a("--resume", action="store_true", help="continue the run's checkpoint (saved config is used)")
        a("--quiet", action="store_true", help="no progress lines")
        # every other flag is generated from the config fields' metadata (evodiff_ray.config)
        groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
        for flag in cli_flags():
            kwargs: dict[str, Any] = {"dest": flag.key,
                                      "help": flag.help.replace("{problems}", ", ".join(problem_names()))}
            if flag.kind is bool:
                kwargs.update(action="store_true", default=None)
            elif flag.kind is dict:
                kwargs.update(action="append", type=_key_value, default=[], metavar=flag.metavar or "KEY=VALUE")
            elif flag.kind is list:
                kwargs.update(action="append", type=flag.values, default=[], metavar=_metavar(flag))
            else:
                kwargs.update(type=flag.kind, choices=flag.choices, metavar=_metavar(flag))
            groups[flag.group].add_argument(*flag.names, **kwargs)

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.search import search

        config = build_config(args)
        trackers = [] if args.quiet else [ProgressPrinter(config.mode)]
        result = search(config, resume=args.resume, trackers=trackers)
        from evodiff_ray.cli.front import format_front

        print(format_front(result.front, "table"))
        hv = result.hypervolume
        print(f"{stopped_line(result.stop_reason, config.budgets())}; "
              f"hypervolume {'-' if hv is None else f'{hv:.6g}'}")
        c = result.front.get("cache", {})
        svc = (result.history[-1].get("cache_service") if result.history else None) or {}
        print(f"evaluations: {result.front.get('evaluations')} ({c.get('misses', 0)} evaluated, "
              f"{c.get('hits', 0)} cache hits, {c.get('waited', 0)} waited for other searches"
              + (f", {svc['stale_takeovers']} stale claims taken over" if svc.get("stale_takeovers") else "")
              + f"); utilisation {_pct(result.front.get('utilization'))}")
        ref = result.reference
        if ref:
            what = ("  ".join(f"{k}={v:.4g}" for k, v in ref["objectives"].items()) if ref.get("feasible")
                    else f"infeasible ({ref.get('reason')})")
            print(f"reference ({'cache hit' if ref.get('source') != 'evaluated' else 'evaluated'}): {what}")
        print(f"results: {result.run_dir}/ (front.json, history.json, config.json, checkpoint/); "
              f"'evodiff-ray front {result.search_id}' prints the front again")
        if result.front_sheet is not None:
            print(f"samples: {result.front_sheet} (one row per front member); "
                  f"'evodiff-ray show {result.search_id} KEY' gives a member's grid")
        from evodiff_ray.cli.ui import run_link

        link = run_link(result.run_dir)
        if link:
            print(f"MLflow: 'evodiff-ray ui {result.search_id} --runs-dir {config.runs_dir}', then open {link}")
        return 0


def stopped_line(reason: str, budgets: dict[str, Any]) -> str:
    """Which budget ended the search, in words (pure).

    ``"max_seconds=2400.0"`` with budgets ``{"generations": 10, "max_seconds": 2400.0}`` gives
    ``"stopped: max_seconds=2400 reached (first of generations=10, max_seconds=2400)"``; a
    reason that is not a budget (the population converged, an interruption) is shown as is.
    """
    name, sep, rest = (reason or "").partition("=")
    if not sep or name not in budgets:
        return f"stopped: {reason or 'unknown'}"
    value, _, note = rest.partition(" ")
    line = f"stopped: {name}={_number(value)} reached" + (f" {note}" if note else "")
    if len(budgets) > 1:
        line += f" (first of {', '.join(f'{k}={_number(v)}' for k, v in budgets.items())})"
    return line


def _number(value: Any) -> str:
    """``2400.0`` -> ``2400``; anything else as written."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def check_service_flags(args: argparse.Namespace) -> None:
    """The address flags given on the command line, checked before anything connects.

    Raises:
        UsageError: a malformed ``--address``, ``--redis-url`` or ``--tracking-uri``.
    """
    from evodiff_ray.core.urls import check_ray_address, check_redis_url, check_tracking_uri

    for dest, flag, check in (("address", "--address", check_ray_address),
                              ("redis_url", "--redis-url", check_redis_url),
                              ("tracking_uri", "--tracking-uri", check_tracking_uri)):
        value = getattr(args, dest, None)
        if value is not None:
            check(value, flag)


def build_config(args: argparse.Namespace):
    """The SearchConfig from parsed flags (a resume starts from the run's saved config)."""
    from evodiff_ray.config import cli_flags, load_config, resume_config

    check_service_flags(args)
    overrides: dict[str, Any] = {}
    for flag in cli_flags():
        value = getattr(args, flag.key)
        if flag.kind is dict:
            # str-valued tables (node labels) keep the text as given; others take JSON values
            value = {k: (text if flag.values is str else _json_or_text(text)) for k, text in value} or None
        elif flag.kind is list:
            value = list(value) or None    # not given: the file's list (or the default) stands
        overrides[flag.key] = value
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
