"""SearchConfig: the one typed configuration of a search, loaded from TOML and CLI flags.

Each field is described once, in its ``dataclasses.field`` metadata: its help text, its
flag, whether a resume may change it, the check its value must pass, whether it is a
budget, a service address or an option carried to the problem. The ``search`` command's
flags (:func:`cli_flags`), the resumable set (:data:`RESUMABLE_OVERRIDES`) and the checks
of :func:`finalize` are all generated from it.

Resolution order: field defaults < preset < TOML file < CLI overrides, field by field. The
preset is the problem's own (``SearchProblem.presets``). Budgets combine: every budget given
anywhere (preset, file, flags) applies and the first one reached stops the search, while the
same budget given later overrides an earlier one; with none anywhere the search stops after
10 generations. The resolved form (:meth:`SearchConfig.to_dict`) is written to the run dir
as ``config.json`` and is what a ``--resume`` reads back. Every mistake is a one-line
:class:`UsageError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.urls import check_ray_address, check_redis_url, check_tracking_uri

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MODES = ("generational", "async")
BACKENDS = ("ray", "local")
#: the budget when none is given anywhere
DEFAULT_GENERATIONS = 10

#: validators of the service-address fields, by the ``url`` metadata kind
URL_CHECKS = {"redis": check_redis_url, "tracking": check_tracking_uri, "ray": check_ray_address}

#: flag groups in ``evodiff-ray search --help``, in order
GROUPS = {
    "search": "what to search",
    "budget": "budgets (every one given applies; the first reached stops the search)",
    "workers": "evaluators",
    "services": "cluster, cache and tracking",
    "run": "run dir",
}


def option(default: Any = dataclasses.MISSING, *, help: str, factory: Any = dataclasses.MISSING,
           **meta: Any) -> Any:
    """A config field with its description (the only place a field is described).

    Args:
        default: the default value (or ``factory`` for a mutable one).
        help: one line for ``--help`` and the docs (``{problems}`` stands for the registered
            problems' names).
        meta: what else generic code needs to know about the field:
            ``flag`` (default ``--<name-with-dashes>``; False: no flag), ``short``,
            ``metavar``, ``choices``, ``group`` (a :data:`GROUPS` key), ``resumable``
            (a resume may change it), ``locates_run`` (names the run a resume continues),
            ``check`` (``"positive"`` or ``"non_negative"``; numbers must also be finite),
            ``budget`` (a termination), ``url`` (a :data:`URL_CHECKS` kind) with ``env``
            (the environment variable used when the field is unset) and ``unless`` (a
            bool field that turns the service off), ``to_problem`` (carried into
            ``problem_options`` when the problem lists it in ``config_options``) and
            ``problem_only`` (an error for a problem that does not take it).
    """
    return dataclasses.field(default=default, default_factory=factory, metadata={"help": help, **meta})


@dataclass
class ActorConfig:
    """Resources each evaluator actor requests."""

    num_cpus: float = option(1.0, help="CPUs per evaluator actor; torch threads follow it",
                             check="non_negative", group="workers")
    resources: dict[str, float] = option(
        factory=dict, help="custom Ray resource per actor, e.g. apple_silicon=1; repeatable",
        flag="--resource", metavar="NAME=AMOUNT", check="positive", group="workers")
    label_selector: dict[str, str] = option(
        factory=dict, help="node label an actor must land on; repeatable",
        flag="--label", metavar="KEY=VALUE", group="workers")
    start_timeout_s: float = option(60.0, help="seconds the actors may take to be placed",
                                    flag="--start-timeout", check="positive", group="workers")


@dataclass
class SearchConfig:
    """Everything that defines and runs one search (each field's help is in its metadata)."""

    search_id: str = option(
        "", help="run id (default: generated); with --resume, the run to continue",
        locates_run=True, group="run")
    problem: str = option(
        "diffusion", help="a registered problem ({problems}) or package.module:factory",
        group="search")
    problem_options: dict[str, Any] = option(
        factory=dict, help="a problem option (value parsed as JSON when it can be); repeatable",
        flag="--problem-option", short="-O", metavar="KEY=VALUE", group="search")
    mode: str = option("generational", help="generation barrier (NSGA-II), or none (async)",
                       choices=MODES, group="search")
    pop_size: int = option(20, help="population size", flag="--pop", check="positive", group="search")
    n_offsprings: int | None = option(None, help="offspring per ask (async default: workers)",
                                      flag="--offspring", check="positive", group="search")
    generations: int | None = option(
        None, help="stop after this many generations (async: pop x generations evaluations)",
        check="positive", budget=True, resumable=True, group="budget")
    max_evaluations: int | None = option(
        None, help="stop after this many evaluations", flag="--evaluations",
        check="positive", budget=True, resumable=True, group="budget")
    max_seconds: float | None = option(
        None, help="stop starting new work after this many seconds of the search loop",
        check="positive", budget=True, resumable=True, group="budget")
    seed: int = option(1, help="random seed of the algorithm", group="search")
    strategy: str = option(
        "nsga2", help="ask/tell optimiser: nsga2, random, optuna, or package.module:factory",
        group="search")
    strategy_options: dict[str, Any] = option(
        factory=dict, help="a strategy option, e.g. sampler=tpe for optuna (value parsed as JSON when "
                           "it can be); repeatable",
        flag="--strategy-option", metavar="KEY=VALUE", group="search")
    seed_from: str | None = option(
        None, help="warm start: put SEARCH_ID's front, the genomes of FILE.json, or the genome of "
                   "models:/NAME@ALIAS into the initial population", metavar="SOURCE", group="search")
    rating_from: str | None = option(
        None, help="add the objective 'rating' = 5 - mean user rating (minimised) from the ratings the serving "
                   "loop stored for registered model MODEL_NAME's versions (in --redis-url's Redis), joined to their "
                   "genomes; unrated candidates get a Gaussian-process prediction with its std",
        metavar="MODEL_NAME", group="search")
    constraints: list[str] = option(
        factory=list, help="keep only results that meet OBJECTIVE<=LIMIT or OBJECTIVE>=LIMIT, e.g. latency_ms<=20: "
                           "an inequality constraint on an objective as this search measures or predicts it (with "
                           "--target m2, latency_ms is the m2 latency; no chip in the constraint); candidates that "
                           "violate it rank behind those that meet it and never reach the front; repeatable (TOML: "
                           "constraints = [...]; flags replace the file's list)",
        flag="--constraint", metavar="OBJECTIVE<=LIMIT", group="search")
    register_top: int = option(
        1, help="at the end, register the front's top K (knee first, then by crowding) in MLflow's "
                "model registry, for problems whose candidates are models; 0: none",
        metavar="K", check="non_negative", resumable=True, group="services")
    register_fidelity: str | None = option(
        None, help="training budget of the models --register-top trains where no stored weights "
                   "serve (default: the search's fidelity)", resumable=True, group="services")
    plateau_generations: int | None = option(
        None, help="also stop when the hypervolume has not grown for this many generations "
                   "(async: pop x this many evaluations)",
        flag="--plateau", check="positive", resumable=True, group="budget")
    backend: str = option("ray", help="Ray actor pool (default) or in-process and serial",
                          choices=BACKENDS, resumable=True, group="workers")
    workers: int | None = option(None, help="evaluator actors (default: as many as resources allow)",
                                 check="positive", resumable=True, group="workers")
    batch_size: int = option(1, help="genomes per actor call", check="positive", resumable=True,
                             group="workers")
    actor: ActorConfig = option(factory=ActorConfig, help="resources each evaluator actor requests",
                                flag=False, resumable=True)
    address: str | None = option(
        None, help="Ray cluster: auto, host:port or ray://host:10001 (token auth: export the "
                   "cluster's RAY_AUTH_MODE); default a local Ray",
        url="ray", resumable=True, group="services")
    redis_url: str | None = option(
        None, help="Redis for the fitness cache and live front (default EVODIFF_REDIS_URL, else an "
                   "embedded redis-server)",
        url="redis", env="EVODIFF_REDIS_URL", unless="no_cache", resumable=True, group="services")
    no_cache: bool = option(False, help="do not use the fitness cache (no Redis needed)",
                            resumable=True, group="services")
    tracking_uri: str | None = option(
        None, help="MLflow tracking URI (default MLFLOW_TRACKING_URI, else sqlite in the runs dir)",
        url="tracking", env="MLFLOW_TRACKING_URI", unless="no_tracking", resumable=True, group="services")
    no_tracking: bool = option(False, help="do not record the search in MLflow", resumable=True,
                               group="services")
    no_reference: bool = option(
        False, help="do not evaluate the problem's reference candidate (the reference UNet) at the end "
                    "to show beside the front (it is evaluated once per settings, then a cache hit)",
        resumable=True, group="services")
    experiment: str | None = option(
        None, help="MLflow experiment name (default evodiff-<problem>[-<dataset digest>])", group="services")
    runs_dir: str = option("evodiff-runs", help="directory of run dirs (default ./evodiff-runs)",
                           locates_run=True, group="run")
    target: str | None = option(
        None, help="hardware target (chip profile, apple_silicon or any): pins the evaluators; "
                   "a problem that takes it also plans for it",
        to_problem=True, group="search")
    fidelity: str | None = option(
        None, help="training budget level, for problems that take it (diffusion: quick, standard, full)",
        to_problem=True, problem_only=True, group="search")
    rungs: str | None = option(
        None, help="multi-fidelity: training rungs as multiples of the fidelity's steps, e.g. 0.25,1,4 "
                   "(latency and memory are probed first; the top 1/eta of each rung continue from "
                   "stored weights), for problems that train; 'off': one fidelity (diffusion's standard "
                   "preset turns 0.25,1,4 on)",
        metavar="R1,R2,...|off", to_problem=True, problem_only=True, group="search")
    eta: float = option(
        3.0, help="multi-fidelity: the top 1/eta of each rung go on to the next", check="positive",
        group="search")
    checkpoint_interval_s: float = option(
        1.0, help="async mode: least seconds between checkpoint fsyncs and front publishes",
        flag="--checkpoint-interval",
        check="non_negative", resumable=True, group="run")

    @property
    def run_dir(self) -> Path:
        """``<runs_dir>/<search_id>``."""
        return Path(self.runs_dir) / self.search_id

    def budgets(self) -> dict[str, Any]:
        """The budgets in force (name -> value); the first one reached stops the search."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata.get("budget") and getattr(self, f.name) is not None}

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as JSON data."""
        return dataclasses.asdict(self)

    def write(self, path: Path) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        from evodiff_ray.core.io import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def config_fields(cls: type = SearchConfig, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """Every leaf field of the config, nested ones dotted: ``(key, field, type hint)``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from config_fields(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, hints[f.name]


#: the budget fields (terminations)
TERMINATIONS = tuple(key for key, f, _ in config_fields() if f.metadata.get("budget"))
#: fields a resume may change; the rest define the search and must match the saved config
RESUMABLE_OVERRIDES = frozenset(f.name for f in dataclasses.fields(SearchConfig) if f.metadata.get("resumable"))


@dataclass(frozen=True)
class Flag:
    """One command-line flag of a config field (see :func:`cli_flags`).

    Attributes:
        key: the dotted config key it sets, e.g. ``"actor.num_cpus"``.
        names: the flag and its short form, e.g. ``("--problem-option", "-O")``.
        help: its help line.
        kind: ``bool`` (a switch), ``int``, ``float``, ``str``, ``dict`` (repeatable KEY=VALUE)
            or ``list`` (repeatable VALUE).
        values: a ``dict`` flag's value type (``str`` values are kept as given); a ``list``
            flag's item type.
        choices: the allowed values, or None.
        metavar: how ``--help`` shows its value.
        group: a :data:`GROUPS` key.
    """

    key: str
    names: tuple[str, ...]
    help: str
    kind: type
    values: Any = None
    choices: tuple | None = None
    metavar: str | None = None
    group: str = "search"


def cli_flags() -> list[Flag]:
    """The ``search`` command's flags, one per config field that has one, in field order."""
    out = []
    for key, f, hint in config_fields():
        meta = f.metadata
        if meta.get("flag") is False:
            continue
        name = meta.get("flag") or "--" + key.rsplit(".", 1)[-1].replace("_", "-")
        base, values = _base_type(hint)
        out.append(Flag(key=key, names=(name, *([meta["short"]] if meta.get("short") else [])),
                        help=meta["help"], kind=base, values=values, choices=meta.get("choices"),
                        metavar=meta.get("metavar"), group=meta.get("group", "search")))
    return out


def _base_type(hint: Any) -> tuple[type, Any]:
    """``int | None`` -> ``(int, None)``; ``dict[str, float]`` -> ``(dict, float)``;
    ``list[str]`` -> ``(list, str)``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is dict:
        return dict, typing.get_args(hint)[1]
    if typing.get_origin(hint) is list:
        return list, typing.get_args(hint)[0]
    if args and typing.get_origin(hint) is not None:
        return _base_type(args[0])
    return hint, None


def load_config(
    path: str | Path | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> SearchConfig:
    """Build and validate a config: defaults < preset < TOML file < overrides.

    Args:
        path: a TOML file (top-level keys are fields; ``[actor]`` and ``[problem_options]`` tables).
        preset: a name from the problem's ``presets`` (``"quick"``, ``"standard"``); a file
            may also name one with ``preset = "..."``.
        overrides: field -> value from the CLI; ``None`` values are ignored. Dotted
            keys (``"actor.num_cpus"``) reach nested fields.

    Returns:
        A validated :class:`SearchConfig` with ``search_id`` filled in. Every budget given
        (preset, file, overrides) is kept: the first one reached stops the search.

    Raises:
        UsageError: unreadable file, unknown key, wrong type, bad value, unknown problem or preset.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(Path(path))
    preset = preset or data.pop("preset", None)
    data.pop("preset", None)
    given = _undot({k: v for k, v in (overrides or {}).items() if v is not None})
    merged: dict[str, Any] = {}
    if preset is not None:
        _merge(merged, _preset(preset, data, given))
    _merge(merged, data)
    _merge(merged, given)
    config = from_dict(merged, where=str(path) if path else "config")
    return finalize(config)


def _preset(preset: Any, data: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The fields the problem's preset sets, less any it would set twice."""
    from evodiff_ray.problems import problem_class

    problem = given.get("problem", data.get("problem", SearchConfig.problem))
    if not isinstance(problem, str):
        return {}   # from_dict names the wrong type
    presets = problem_class(problem).presets
    if preset not in presets:
        raise UsageError(f"unknown preset {preset!r} for problem {problem!r}; choose one of {', '.join(presets)}")
    # an option the preset carries to the problem (fidelity) yields to the same option given
    # in problem_options, which would otherwise name it twice
    named = set()
    for source in (data, given):
        if isinstance(source.get("problem_options"), dict):
            named |= set(source["problem_options"])
    return {k: v for k, v in presets[preset].items() if k not in named}


def from_dict(data: dict[str, Any], where: str = "config") -> SearchConfig:
    """Build a :class:`SearchConfig` from JSON/TOML data, checking keys and types.

    Raises:
        UsageError: unknown key or wrong type, naming the key.
    """
    return _build(SearchConfig, data, where, prefix="")


def finalize(config: SearchConfig) -> SearchConfig:
    """Validate values (as each field's metadata asks) and fill in the generated ``search_id``.

    Raises:
        UsageError: the first bad value found.
    """
    from evodiff_ray.problems import is_known_problem, problem_names

    for key, f, _ in config_fields():
        _check_value(key, _get(config, key), f.metadata)
    if not is_known_problem(config.problem):
        raise UsageError(
            f"unknown problem {config.problem!r}; choose one of {', '.join(problem_names())} "
            "or give 'package.module:factory'"
        )
    if config.pop_size < 2:
        raise UsageError(f"pop_size must be at least 2, got {config.pop_size}")
    from evodiff_ray.strategies import is_known_strategy, unknown_strategy_message

    if not is_known_strategy(config.strategy):
        raise UsageError(unknown_strategy_message(config.strategy))
    if not config.budgets():
        config.generations = DEFAULT_GENERATIONS
    if config.eta <= 1:
        raise UsageError(f"eta must be > 1 (the top 1/eta of a rung go on), got {config.eta:g}")
    if config.rungs is not None:
        config.rungs = None if str(config.rungs).strip().lower() in ("off", "none") else _rungs(config.rungs)
    if not config.runs_dir:
        raise UsageError("runs_dir must not be empty")
    _check_services(config)
    _problem_settings(config)
    if config.constraints:   # checked and written canonically; the objective names are checked at search start
        from evodiff_ray.evaluation.constraints import parse_constraints

        config.constraints = [c.name for c in parse_constraints(config.constraints)]
    if config.rating_from is not None:
        config.rating_from = config.rating_from.strip()
        if not config.rating_from or "'" in config.rating_from or "\n" in config.rating_from:
            raise UsageError(f"rating_from must name a registered model (no quotes or line breaks), "
                             f"got {config.rating_from!r}")
    if not config.search_id:
        config.search_id = new_search_id(config.problem)
    elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", config.search_id):
        raise UsageError(
            f"search_id {config.search_id!r} may hold only letters, digits, '.', '_' and '-'"
        )
    return config


def _get(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def _check_value(key: str, value: Any, meta: Any) -> None:
    """A field's value against its metadata's ``choices`` and ``check``."""
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise UsageError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    check = meta.get("check")
    if check is None:
        return
    for name, v in (((f"{key}.{k}", x) for k, x in value.items()) if isinstance(value, dict) else [(key, value)]):
        if not math.isfinite(v):
            raise UsageError(f"{name} must be a finite number, got {v}")
        if check == "positive" and v <= 0:
            raise UsageError(f"{name} must be > 0, got {v}")
        if check == "non_negative" and v < 0:
            raise UsageError(f"{name} must be >= 0, got {v}")


def _check_services(config: SearchConfig) -> None:
    """Service addresses must be well formed: the fields, and the environment a field defers to."""
    for f in dataclasses.fields(config):
        kind = f.metadata.get("url")
        if kind is None:
            continue
        value = getattr(config, f.name)
        if value is not None:
            URL_CHECKS[kind](value, f.name)
        elif f.metadata.get("env") and not getattr(config, f.metadata.get("unless", ""), False):
            env = os.environ.get(f.metadata["env"])
            if env:  # an empty variable counts as unset, as where it is read
                URL_CHECKS[kind](env, f.metadata["env"])


def _problem_settings(config: SearchConfig) -> None:
    """Carry the fields the problem takes (its ``config_options``) into its options, validated.

    ``target`` is also generic (it pins the evaluators for any problem), so it is checked
    here and carried only to a problem that takes it; a ``problem_only`` field (``fidelity``)
    set for a problem that does not take it is an error.
    """
    if config.target is not None:
        from evodiff_ray.hardware.targets import parse_targets

        targets = parse_targets(config.target)
        if len(targets) > 1:
            raise UsageError(f"target {config.target!r} names several chips; run one search per chip with a "
                             "shared --redis-url (see cluster/README.md)")
    carried = [f for f in dataclasses.fields(config)
               if f.metadata.get("to_problem") and getattr(config, f.name) is not None]
    if not carried:
        return
    from evodiff_ray.problems import problem_class

    takes = problem_class(config.problem).config_options
    for f in carried:
        value = getattr(config, f.name)
        if f.name not in takes:
            if f.metadata.get("problem_only"):
                raise UsageError(f"{f.name} is not an option of problem {config.problem!r}"
                                 f"{_takers(f.name)}; drop it")
            continue
        given = config.problem_options.get(f.name)
        if given is not None and given != value:
            raise UsageError(f"{f.name} is given twice ({value!r} and problem_options.{f.name}={given!r}); keep one")
        config.problem_options[f.name] = value


def _takers(name: str) -> str:
    """`` (it applies to: diffusion)``: the registered problems that take a config option."""
    from evodiff_ray.problems import problem_class, problem_names

    takers = []
    for p in problem_names():
        try:
            if name in problem_class(p).config_options:
                takers.append(p)
        except UsageError:   # a registered problem whose module is not installed here
            continue
    return f" (it applies to: {', '.join(takers)})" if takers else ""


def _rungs(text: str) -> str:
    """``rungs`` checked: positive, finite, increasing numbers, comma-separated (normalised)."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if (not values or any(not (0 < v < math.inf) for v in values)
            or any(b <= a for a, b in zip(values, values[1:]))):
        raise UsageError(f"rungs must be positive, increasing multiples of the fidelity's steps, e.g. "
                         f"--rungs 0.25,1,4; got {text!r}")
    return ",".join(f"{v:g}" for v in values)


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
    meta = {f.name: f.metadata for f in dataclasses.fields(SearchConfig)}
    for key, value in _undot({k: v for k, v in overrides.items() if v is not None}).items():
        if meta.get(key, {}).get("locates_run"):
            continue
        current = getattr(config, key, None)
        if key not in RESUMABLE_OVERRIDES:
            if _comparable(current) != _comparable(value) and \
                    _comparable(current) != _comparable(_canonical(config, key, value)):
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
    if origin is list:
        if not isinstance(value, list):
            raise UsageError(f"{where}: config key {key!r} must be a list, e.g. [\"...\"], got {_show(value)}")
        return [_check(v, args[0], f"{key}[{i}]", where) for i, v in enumerate(value)]
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


def _canonical(config: SearchConfig, key: str, value: Any) -> Any:
    """``value`` of ``key`` as :func:`finalize` writes it (a constraint's spelling, ``--rungs
    off``), so a resume compares meanings, not spellings; ``value`` itself if it does not check."""
    merged = config.to_dict()
    _merge(merged, {key: value})
    try:
        return getattr(finalize(from_dict(merged, where="override")), key)
    except UsageError:
        return value


def _comparable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))
