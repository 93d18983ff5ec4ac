"""Problem registry: ``make_problem(name, options)`` builds a :class:`SearchProblem`.

The registry is an explicit dict of ``"module:factory"`` strings, imported lazily so that
naming a problem never imports torch (or anything heavy) for the others. A name that is
not registered but looks like ``package.module:factory`` loads a user's own problem; that
module must also be importable on every Ray worker (install it, or ship it with the job's
``runtime_env``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from evodiff_ray.core.errors import UsageError
from evodiff_ray.problems.base import SearchProblem

__all__ = ["PROBLEMS", "SearchProblem", "make_problem", "problem_class", "problem_names", "resolve_factory"]

#: problem name -> "module:factory". Explicit, never discovered.
PROBLEMS: dict[str, str] = {
    "zdt1": "evodiff_ray.problems.reference:zdt1",
    "zdt2": "evodiff_ray.problems.reference:zdt2",
    "zdt3": "evodiff_ray.problems.reference:zdt3",
    "dtlz2": "evodiff_ray.problems.reference:dtlz2",
    "synthetic": "evodiff_ray.problems.synthetic:SyntheticProblem",
    # the product; written in its own module (imports torch), loaded only when named
    "diffusion": "evodiff_ray.problems.diffusion:DiffusionProblem",
}


def problem_names() -> list[str]:
    """Registered problem names, sorted."""
    return sorted(PROBLEMS)


def is_known_problem(name: str) -> bool:
    """True for a registered name or a ``module:factory`` reference (not yet imported)."""
    return name in PROBLEMS or _looks_like_reference(name)


def resolve_factory(name: str) -> Callable[..., SearchProblem]:
    """The factory behind a problem name or a ``module:factory`` reference.

    Raises:
        UsageError: unknown name, or a module/factory that cannot be imported.
    """
    if name in PROBLEMS:
        ref = PROBLEMS[name]
    elif _looks_like_reference(name):
        ref = name
    else:
        raise UsageError(
            f"unknown problem {name!r}; choose one of {', '.join(problem_names())} "
            "or give your own as 'package.module:factory'"
        )
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise UsageError(
                f"problem {name!r} is not available: module {module_name!r} is not installed "
                "in this environment"
            ) from None
        raise
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise UsageError(f"problem {name!r}: module {module_name!r} has no callable {attr!r}")
    return factory


def problem_class(name: str) -> type[SearchProblem]:
    """The class that describes a problem (presets, config options, target options).

    A factory that is a :class:`SearchProblem` subclass describes itself; a plain function
    factory gets :class:`SearchProblem`'s generic description.

    Raises:
        UsageError: as :func:`resolve_factory`.
    """
    factory = resolve_factory(name)
    if inspect.isclass(factory) and issubclass(factory, SearchProblem):
        return factory
    return SearchProblem


def make_problem(name: str, options: dict[str, Any] | None = None) -> SearchProblem:
    """Build a problem from its registry name (or ``module:factory``) and options.

    Args:
        name: a key of :data:`PROBLEMS`, or ``"package.module:factory"``.
        options: keyword arguments for the factory (``[problem_options]`` in TOML).

    Returns:
        A fresh :class:`SearchProblem` (its :meth:`~SearchProblem.setup` not yet called).

    Raises:
        UsageError: unknown problem, unknown option, or a factory that returns something
            other than a ``SearchProblem``.
    """
    options = dict(options or {})
    factory = resolve_factory(name)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as e:
        raise UsageError(f"problem {name!r}: bad problem_options ({e})") from None
    except ValueError:  # builtins without a signature: let the call decide
        pass
    problem = factory(**options)
    if not isinstance(problem, SearchProblem):
        raise UsageError(f"problem {name!r}: factory returned {type(problem).__name__}, not a SearchProblem")
    return problem


def _looks_like_reference(name: str) -> bool:
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr and attr.isidentifier()
                and all(p.isidentifier() for p in module.split(".")))
