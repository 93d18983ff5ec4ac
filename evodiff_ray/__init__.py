"""evodiff-ray: Ray-distributed multi-objective evolutionary architecture search for diffusion denoisers.

The public API, as the README shows it::

    import evodiff_ray

    config = evodiff_ray.load_config(preset="quick", overrides={"problem": "zdt1"})
    result = evodiff_ray.search(config)          # -> SearchResult

The names are exported lazily (module ``__getattr__``), so ``import evodiff_ray`` and
``evodiff-ray --help`` import neither Ray, MLflow nor torch.

``evodiff_ray.search`` is also the engine's subpackage, and Python binds a package's
attribute to its imported subpackage, so the name cannot be a plain function. Instead the
subpackage's module object is made callable: calling it calls
:func:`evodiff_ray.search.search`. ``from evodiff_ray.search import search`` keeps working.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "search", "load_config", "SearchResult"]

#: exported name -> (module, attribute); resolved on first use
_LAZY = {
    "load_config": ("evodiff_ray.config", "load_config"),
    "SearchResult": ("evodiff_ray.search.result", "SearchResult"),
}


class _CallableModule(types.ModuleType):
    """The ``evodiff_ray.search`` subpackage, callable as its ``search`` function."""

    def __call__(self, *args: Any, **kwargs: Any):
        """``evodiff_ray.search(config, ...)`` is ``evodiff_ray.search.search(config, ...)``."""
        return self.search(*args, **kwargs)


class _Package(types.ModuleType):
    """This package's module type: it makes the ``search`` subpackage callable when it is bound.

    The import system binds every imported subpackage with ``setattr`` on its parent, whoever
    imports it first (``import evodiff_ray.search``, ``from evodiff_ray.search import ...``,
    or this package's ``__getattr__``), so the hook sees it in every case.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "search" and isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.search":
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name == "search":
        return importlib.import_module(f"{__name__}.search")   # bound (and made callable) on import
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
