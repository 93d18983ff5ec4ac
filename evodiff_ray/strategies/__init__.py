"""Strategy registry: ``make_strategy(name, problem, ...)`` builds an ask/tell optimiser.

Like the problems registry, an explicit dict of ``"module:factory"`` strings, imported
lazily (naming ``nsga2`` never imports Optuna). A name that is not registered but looks
like ``package.module:factory`` loads a user's own strategy: a callable
``factory(problem, *, pop_size, n_offsprings, seed, **options)`` returning a
:class:`~evodiff_ray.strategies.base.Strategy`. Strategies run in the driver only.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Sequence

from evodiff_ray.core.errors import UsageError
from evodiff_ray.strategies.base import Candidate, Strategy

__all__ = ["STRATEGIES", "Candidate", "Strategy", "is_known_strategy", "make_strategy", "strategy_names"]

#: strategy name -> "module:factory". Explicit, never discovered.
STRATEGIES: dict[str, str] = {
    "nsga2": "evodiff_ray.strategies.nsga2:NSGA2Strategy",
    # uniform draws from the problem's space: the baseline
    "random": "evodiff_ray.strategies.random:RandomStrategy",
    # Optuna's NSGA-II or TPE sampler (optional extra: pip install 'evodiff-ray[optuna]')
    "optuna": "evodiff_ray.strategies.optuna:OptunaStrategy",
}


def strategy_names() -> list[str]:
    """Registered strategy names, sorted."""
    return sorted(STRATEGIES)


def is_known_strategy(name: str) -> bool:
    """True for a registered name or a ``module:factory`` reference (not yet imported)."""
    return name in STRATEGIES or _looks_like_reference(name)


def unknown_strategy_message(name: str) -> str:
    """The one-line error for a strategy name that is neither registered nor a reference."""
    return (f"unknown strategy {name!r}; choose one of {', '.join(strategy_names())} "
            "or give your own as 'package.module:factory'")


def resolve_factory(name: str) -> Callable[..., Strategy]:
    """The factory behind a strategy name or a ``module:factory`` reference.

    Raises:
        UsageError: unknown name, a module that is not installed, or no such callable.
    """
    if name in STRATEGIES:
        ref = STRATEGIES[name]
    elif _looks_like_reference(name):
        ref = name
    else:
        raise UsageError(unknown_strategy_message(name))
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise UsageError(f"strategy {name!r}: module {module_name!r} is not installed in this "
                             "environment") from None
        raise
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise UsageError(f"strategy {name!r}: module {module_name!r} has no callable {attr!r}")
    return factory


def make_strategy(name: str, problem, *, pop_size: int, n_offsprings: int | None, seed: int,
                  options: dict[str, Any] | None = None, initial: Sequence[Any] = ()) -> Strategy:
    """Build a strategy for ``problem``.

    Args:
        name: a key of :data:`STRATEGIES`, or ``"package.module:factory"``.
        problem: the driver's :class:`~evodiff_ray.problems.base.SearchProblem`.
        pop_size: the first ask's size.
        n_offsprings: later asks' size (None: ``pop_size``).
        seed: the strategy's random state.
        options: the strategy's own keyword arguments (``[strategy_options]`` in TOML).
        initial: warm-start candidates for the first ask (``--seed-from``), passed to the
            factory as ``initial=`` only when there are any; the first ask holds them first
            (up to ``pop_size``), then the strategy's own draws.

    Raises:
        UsageError: unknown strategy or option, a missing optional dependency, a strategy
            that does not fit the problem, or a factory that returns something else.
    """
    factory = resolve_factory(name)
    options = dict(options or {})
    kwargs = dict(pop_size=pop_size, n_offsprings=n_offsprings, seed=seed, **options)
    if initial:
        try:
            inspect.signature(factory).bind(problem, initial=initial, **kwargs)
        except TypeError:
            raise UsageError(f"strategy {name!r} cannot be warm-started (its factory takes no 'initial'); "
                             "drop --seed-from or use nsga2, random or optuna") from None
        except ValueError:
            pass
        kwargs["initial"] = list(initial)
    try:
        inspect.signature(factory).bind(problem, **kwargs)
    except TypeError as e:
        raise UsageError(f"strategy {name!r}: bad strategy_options ({e})") from None
    except ValueError:  # builtins without a signature: let the call decide
        pass
    strategy = factory(problem, **kwargs)
    if not isinstance(strategy, Strategy):
        raise UsageError(f"strategy {name!r}: factory returned {type(strategy).__name__}, not a Strategy")
    return strategy


def _looks_like_reference(name: str) -> bool:
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr and attr.isidentifier()
                and all(p.isidentifier() for p in module.split(".")))
