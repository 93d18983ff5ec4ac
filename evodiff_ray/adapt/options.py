"""How one ``adapt`` controller runs (:class:`AdaptOptions`), and the search config of a cycle."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evodiff_ray.adapt.cycle import LAST_SOURCE, PRODUCTION_SOURCE
from evodiff_ray.adapt.triggers import TriggerPolicy
from evodiff_ray.core.errors import UsageError

#: where a controller keeps its state by default: ``<runs_dir>/.adapt/<model>/``
ADAPT_DIR = ".adapt"
#: what a cycle's search is, unless the options say otherwise: small and quick
DEFAULT_SEARCH = {"pop_size": 6, "generations": 3, "fidelity": "quick"}


@dataclass
class AdaptOptions:
    """One controller of one served model.

    Attributes:
        model: the registered (and served) model it adapts.
        tracking_uri: the MLflow tracking and registry URI.
        redis_url: the served model's Redis (routing state, metrics, events); also the
            searches' fitness cache unless the search options say ``no_cache``.
        runs_dir: run dirs of the cycles' searches.
        state_dir: the controller's state (default ``<runs_dir>/.adapt/<model>``).
        watch: an image folder or ``.npz`` to watch; it is also the searches' dataset.
        triggers: the trigger thresholds and schedule.
        search_file: a search TOML (as ``search --config``) each cycle starts from.
        preset: the problem's preset each cycle starts from (default :data:`DEFAULT_SEARCH`
            when neither this nor ``search_file`` is given).
        search_overrides: search config fields (dotted keys, as ``search`` flags set them).
        seed_from: the warm-start sources: ``production`` (``models:/<model>@production``),
            ``last`` (the last cycle's search), or any ``--seed-from`` source.
        canary_share: the canary's share of the traffic, in percent.
        canary_policy: the canary policy (``CanaryPolicy`` fields; empty: its defaults).
        decision_timeout_s: how long a canary may take to be decided; then it is rolled back.
        poll_s: seconds between looks at the triggers.
        max_cycles: stop after this many cycles (None: run until stopped).
        cycle_now: run one cycle at once (trigger ``manual``), then watch.
        stage_retries: attempts of a failing stage (other than a usage error) before the
            cycle is given up as ``failed``.
    """

    model: str
    tracking_uri: str
    redis_url: str | None = None
    runs_dir: str = "evodiff-runs"
    state_dir: str | None = None
    watch: str | None = None
    triggers: TriggerPolicy = field(default_factory=TriggerPolicy)
    search_file: str | None = None
    preset: str | None = None
    search_overrides: dict[str, Any] = field(default_factory=dict)
    seed_from: tuple[str, ...] = (PRODUCTION_SOURCE, LAST_SOURCE)
    canary_share: float = 10.0
    canary_policy: dict[str, Any] = field(default_factory=dict)
    decision_timeout_s: float = 24 * 3600.0
    poll_s: float = 30.0
    max_cycles: int | None = None
    cycle_now: bool = False
    stage_retries: int = 3

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir) if self.state_dir else Path(self.runs_dir) / ADAPT_DIR / self.model

    @property
    def experiment(self) -> str:
        """The MLflow experiment of the cycles."""
        return f"evodiff-adapt-{self.model}"


def cycle_config(options: AdaptOptions, search_id: str, cycle: int, seed_from: str | None):
    """The resolved :class:`~evodiff_ray.config.SearchConfig` of one cycle's search.

    The options' search file, preset and overrides, then what adapting needs: the cycle's
    search id, the runs dir and services of the controller, the warm start, at least the knee
    registered, the watched dataset, and a seed that differs per cycle (``seed + cycle - 1``).

    Raises:
        UsageError: a bad search option (one line), or one adapting cannot work with.
    """
    from evodiff_ray.config import load_config

    flat = copy.deepcopy(dict(options.search_overrides))
    if flat.get("no_tracking"):
        raise UsageError("a cycle's search registers its knee in MLflow: drop no_tracking from the search options")
    if flat.get("register_top") == 0:
        raise UsageError("a cycle hands its search's knee to the canary: register_top must be at least 1")
    defaults = dict(DEFAULT_SEARCH) if options.search_file is None and options.preset is None else {}
    if defaults:
        from evodiff_ray.problems import is_known_problem, problem_class

        problem = flat.get("problem", "diffusion")
        if not (isinstance(problem, str) and is_known_problem(problem)
                and "fidelity" in problem_class(problem).config_options):
            defaults.pop("fidelity")          # a problem without training budgets
    given = {**defaults, **flat}
    given.update(search_id=search_id, runs_dir=options.runs_dir, seed_from=seed_from,
                 tracking_uri=options.tracking_uri)
    if not given.get("no_cache") and not given.get("redis_url") and options.redis_url:
        given["redis_url"] = options.redis_url
    if options.watch:
        given["problem_options.dataset"] = str(Path(options.watch).resolve())
    config = load_config(options.search_file, options.preset, given)
    config.seed += cycle - 1      # each cycle explores afresh (a resume reads the saved config)
    return config


__all__ = ["ADAPT_DIR", "AdaptOptions", "DEFAULT_SEARCH", "cycle_config"]
