"""SearchConfig: the one typed configuration of a search, loaded from TOML and CLI flags.

Resolution order: field defaults < preset < TOML file < CLI overrides; a termination given in
the file or on the command line replaces the preset's, and with none anywhere the search
stops after 10 generations. The resolved form
(:meth:`SearchConfig.to_dict`) is written to the run dir as ``config.json`` and is what a
``--resume`` reads back. Every mistake is a one-line :class:`UsageError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import secrets
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evodiff_ray.core.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MODES = ("generational", "async")
TERMINATIONS = ("generations", "max_evaluations", "max_seconds")
#: the termination when none is given anywhere
DEFAULT_GENERATIONS = 10
BACKENDS = ("ray", "local")

#: named starting points; a TOML file and CLI flags override them field by field
PRESETS: dict[str, dict[str, Any]] = {
    # a smoke run: seconds on a laptop
    "quick": {"pop_size": 16, "generations": 5},
    # a real search: NSGA-II's usual population, enough generations to converge on ZDT
    "standard": {"pop_size": 64, "generations": 50},
}

#: what a preset means for the diffusion problem, whose evaluations train networks:
#: quick = 6 + 2 x 6 = 18 candidates at the quick fidelity (about 4 minutes on 2 cores);
#: standard = 24 + 9 x 24 = 240 candidates (tens of minutes on 2 cores).
DIFFUSION_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"pop_size": 6, "generations": 3, "fidelity": "quick"},
    "standard": {"pop_size": 24, "generations": 10, "fidelity": "quick"},
}

#: fields a resume may change; the rest define the search and must match the saved config
RESUMABLE_OVERRIDES = frozenset({
    "generations", "max_evaluations", "max_seconds", "workers", "actor", "batch_size",
    "address", "redis_url", "no_cache", "tracking_uri", "no_tracking", "backend", "checkpoint_interval_s",
})


@dataclass
class ActorConfig:
    """Resources each evaluator actor requests."""

    num_cpus: float = 1.0                                        # CPUs per actor; torch threads follow it
    resources: dict[str, float] = field(default_factory=dict)    # custom resources, e.g. {"apple_silicon": 1}
    label_selector: dict[str, str] = field(default_factory=dict)  # node labels the actor must land on
    start_timeout_s: float = 60.0                                # how long actors may take to be placed


@dataclass
class SearchConfig:
    """Everything that defines and runs one search."""

    search_id: str = ""                                   # run dir name; generated when empty
    problem: str = "diffusion"                            # registry name or "package.module:factory"
    problem_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the problem
    mode: str = "generational"                            # "generational" (NSGA-II) or "async" (no barrier)
    pop_size: int = 20                                    # NSGA-II population
    n_offsprings: int | None = None                       # offspring per ask; async default: workers
    generations: int | None = None                        # termination: generations (async: pop_size * this evaluations)
    max_evaluations: int | None = None                    # termination: evaluations
    max_seconds: float | None = None                      # termination: wall time of the search loop
    seed: int = 1                                         # seeds the algorithm's random state
    backend: str = "ray"                                  # "ray" (actor pool) or "local" (in-process, serial)
    workers: int | None = None                            # evaluator actors; None = as many as resources allow
    batch_size: int = 1                                   # genomes per actor call
    actor: ActorConfig = field(default_factory=ActorConfig)
    address: str | None = None                            # Ray cluster: "auto", "ray://host:10001"; None = local
    redis_url: str | None = None                          # fitness cache / front store (consumed by the cache)
    no_cache: bool = False                                # disable the fitness cache
    tracking_uri: str | None = None                       # MLflow tracking URI; None = sqlite in runs_dir
    no_tracking: bool = False                             # do not record the search in MLflow
    experiment: str | None = None                         # MLflow experiment; None = evodiff-<problem>[-<dataset>]
    runs_dir: str = "evodiff-runs"                        # run dirs live in <runs_dir>/<search_id>/
    target: str | None = None                             # hardware target (chip profile) for the diffusion problem
    fidelity: str | None = None                           # training-budget level for the diffusion problem
    checkpoint_interval_s: float = 1.0                    # async mode: least seconds between fsyncs and front publishes

    @property
    def run_dir(self) -> Path:
        """``<runs_dir>/<search_id>``."""
        return Path(self.runs_dir) / self.search_id

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as JSON data."""
        return dataclasses.asdict(self)

    def write(self, path: Path) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        from evodiff_ray.core.front import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def load_config(
    path: str | Path | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> SearchConfig:
    """Build and validate a config: defaults < preset < TOML file < overrides.

    Args:
        path: a TOML file (top-level keys are fields; ``[actor]`` and ``[problem_options]`` tables).
        preset: ``"quick"`` or ``"standard"``; a file may also name one with ``preset = "..."``.
        overrides: field -> value from the CLI; ``None`` values are ignored. Dotted
            keys (``"actor.num_cpus"``) reach nested fields.

    Returns:
        A validated :class:`SearchConfig` with ``search_id`` filled in.

    Raises:
        UsageError: unreadable file, unknown key, wrong type, bad value, unknown problem.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(Path(path))
    preset = preset or data.pop("preset", None)
    data.pop("preset", None)
    given = _undot({k: v for k, v in (overrides or {}).items() if v is not None})
    merged: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        problem = given.get("problem", data.get("problem", SearchConfig.problem))
        chosen = dict((DIFFUSION_PRESETS if problem == "diffusion" else PRESETS)[preset])
        if problem == "diffusion" and ("fidelity" in given or "fidelity" in data
                                       or "fidelity" in (data.get("problem_options") or {})
                                       or "fidelity" in (given.get("problem_options") or {})):
            chosen.pop("fidelity")
        if any(k in data or k in given for k in TERMINATIONS):  # an explicit stop replaces the preset's
            chosen = {k: v for k, v in chosen.items() if k not in TERMINATIONS}
        _merge(merged, chosen)
    _merge(merged, data)
    _merge(merged, given)
    config = from_dict(merged, where=str(path) if path else "config")
    return finalize(config)


def from_dict(data: dict[str, Any], where: str = "config") -> SearchConfig:
    """Build a :class:`SearchConfig` from JSON/TOML data, checking keys and types.

    Raises:
        UsageError: unknown key or wrong type, naming the key.
    """
    return _build(SearchConfig, data, where, prefix="")


def finalize(config: SearchConfig) -> SearchConfig:
    """Validate values and fill in the generated ``search_id``.

    Raises:
        UsageError: the first bad value found.
    """
    from evodiff_ray.problems import is_known_problem, problem_names

    if config.mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, got {config.mode!r}")
    if config.backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    if not is_known_problem(config.problem):
        raise UsageError(
            f"unknown problem {config.problem!r}; choose one of {', '.join(problem_names())} "
            "or give 'package.module:factory'"
        )
    for name in ("pop_size", "batch_size", "n_offsprings", "generations", "max_evaluations", "workers"):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be > 0, got {value}")
    if config.pop_size < 2:
        raise UsageError(f"pop_size must be at least 2, got {config.pop_size}")
    for name in ("max_seconds", "checkpoint_interval_s"):
        value = getattr(config, name)
        if value is not None and (value < 0 or not math.isfinite(value)):
            raise UsageError(f"{name} must be a finite number >= 0, got {value}")
    if config.max_seconds == 0:
        raise UsageError("max_seconds must be > 0")
    if config.generations is None and config.max_evaluations is None and config.max_seconds is None:
        config.generations = DEFAULT_GENERATIONS
    if config.actor.num_cpus < 0 or not math.isfinite(config.actor.num_cpus):
        raise UsageError(f"actor.num_cpus must be >= 0, got {config.actor.num_cpus}")
    if config.actor.start_timeout_s <= 0:
        raise UsageError(f"actor.start_timeout_s must be > 0, got {config.actor.start_timeout_s}")
    for rname, amount in config.actor.resources.items():
        if amount <= 0:
            raise UsageError(f"actor.resources.{rname} must be > 0, got {amount}")
    if not config.runs_dir:
        raise UsageError("runs_dir must not be empty")
    _problem_settings(config)
    if not config.search_id:
        config.search_id = new_search_id(config.problem)
    elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", config.search_id):
        raise UsageError(
            f"search_id {config.search_id!r} may hold only letters, digits, '.', '_' and '-'"
        )
    return config


def _problem_settings(config: SearchConfig) -> None:
    """Carry ``fidelity`` and ``target`` into the diffusion problem's options (validated)."""
    if config.target is not None:
        from evodiff_ray.hardware.targets import parse_targets

        targets = parse_targets(config.target)
        if len(targets) > 1:
            raise UsageError(f"target {config.target!r} names several chips; run one search per chip with a "
                             "shared --redis-url (see cluster/README.md)")
    if config.problem != "diffusion":
        if config.fidelity is not None:
            raise UsageError(f"--fidelity applies to the diffusion problem, not {config.problem!r}; drop it")
        return
    for name in ("fidelity", "target"):
        value = getattr(config, name)
        if value is not None:
            given = config.problem_options.get(name)
            if given is not None and given != value:
                raise UsageError(f"{name} is given twice ({value!r} and problem_options.{name}={given!r}); keep one")
            config.problem_options[name] = value


def new_search_id(problem: str) -> str:
    """``<problem>-<yyyymmdd-hhmmss>-<4 hex>``; unique enough for a runs dir."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", problem).strip("-") or "search"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def resume_config(saved: dict[str, Any], overrides: dict[str, Any], where: str) -> SearchConfig:
    """The saved config of a run with the overrides a resume may change.

    Raises:
        UsageError: an override changes what defines the search (problem, seed, pop_size, ...).
    """
    config = from_dict(saved, where=where)
    for key, value in _undot({k: v for k, v in overrides.items() if v is not None}).items():
        if key == "search_id" or key == "runs_dir":
            continue
        current = getattr(config, key, None)
        if key not in RESUMABLE_OVERRIDES:
            if _comparable(current) != _comparable(value):
                raise UsageError(
                    f"--resume cannot change {key!r} (saved {current!r}, given {value!r}); "
                    "start a new search instead"
                )
            continue
        merged = config.to_dict()
        _merge(merged, {key: value})
        config = from_dict(merged, where="override")
    return finalize(config)


# ---------------------------------------------------------------------------------------------
# reading and checking


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"config file {str(path)!r} is not valid TOML: {e}") from None
    except OSError as e:
        raise UsageError(f"cannot read config file {str(path)!r}: {e.strerror}") from None


def _build(cls, data: Any, where: str, prefix: str):
    if not isinstance(data, dict):
        raise UsageError(f"{where}: {prefix.rstrip('.') or 'config'} must be a table")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UsageError(
            f"{where}: unknown config key {prefix + unknown[0]!r} (known: {', '.join(names)})"
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, where, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _check(value, hint, f"{prefix}{name}", where)
    return cls(**kwargs)


def _check(value: Any, hint: Any, key: str, where: str) -> Any:
    """Check ``value`` against a type hint (int, float, str, bool, dict[str, X], X | None)."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(value, inner[0], key, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{where}: config key {key!r} must be a table, got {_show(value)}")
        vtype = args[1]
        return {str(k): (v if vtype is Any else _check(v, vtype, f"{key}.{k}", where)) for k, v in value.items()}
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - a field type this checker does not know
        raise TypeError(f"unsupported config field type {hint!r}")
    if not ok:
        raise UsageError(f"{where}: config key {key!r} must be {_type_name(hint)}, got {_show(value)}")
    return value


def _type_name(hint) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict) and k != "problem_options":
            _merge(into[k], v)
        elif isinstance(v, dict) and k == "problem_options" and isinstance(into.get(k), dict):
            into[k] = {**into[k], **v}
        else:
            into[k] = v


def _undot(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in flat.items():
        parts = k.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out


def _comparable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))
