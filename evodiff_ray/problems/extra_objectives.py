"""ExtraObjectives: a problem with more objectives than its evaluations measure.

Some objectives come from outside a candidate's evaluation, e.g. ``rating`` from users of
the served models (:mod:`evodiff_ray.evaluation.rating`). Their values are added by an
evaluator wrapper after the problem's own evaluation; the strategy, the ledger and the
front still need to count them. :class:`ExtraObjectives` is the problem as the search
sees it: the inner problem's objective names with the extra names appended, and a pymoo
``Problem`` with ``n_obj`` grown to match. Everything else (keys, JSON, operators, space,
settings, evaluation) is the inner problem's (:class:`~evodiff_ray.problems.view.ProblemView`),
so the cache key, the evaluator actors and the multi-fidelity rungs keep using the inner
problem and never see the extra names.
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np

from evodiff_ray.problems.base import SearchProblem
from evodiff_ray.problems.view import ProblemView


class ExtraObjectives(ProblemView):
    """``inner`` with ``names`` appended to its objectives (values supplied by a wrapper).

    Args:
        inner: the problem whose candidates are searched and evaluated.
        names: the extra objective names, all minimised, after the inner ones.
        reference: the hypervolume reference value of each extra objective; used only when
            the inner problem has a fixed reference point (else one is derived from the
            first front, as for the inner problem).

    Raises:
        ValueError: no extra names, a name the inner problem already has, or a reference of
            the wrong length.
    """

    def __init__(self, inner: SearchProblem, names: Sequence[str], reference: Sequence[float] | None = None):
        names = tuple(names)
        if not names:
            raise ValueError("ExtraObjectives needs at least one extra objective name")
        clash = sorted(set(names) & set(inner.objective_names))
        if clash:
            raise ValueError(f"problem {inner.name!r} already has objective {clash[0]!r}")
        if reference is not None and len(reference) != len(names):
            raise ValueError(f"reference has {len(reference)} values for {len(names)} extra objectives")
        super().__init__(inner)
        self.extra = names
        self.objective_names = tuple(inner.objective_names) + names
        self._reference = None if reference is None else [float(v) for v in reference]

    def pymoo_problem(self):
        """The inner pymoo ``Problem``, copied, with ``n_obj`` counting the extra objectives
        (described only: values arrive through ask/tell)."""
        base = self.inner.pymoo_problem()
        wrapped = copy.copy(base)
        wrapped.n_obj = int(base.n_obj) + len(self.extra)
        return wrapped

    def reference_point(self) -> np.ndarray | None:
        """The inner fixed reference point with the extra objectives' reference values; None
        when the inner problem has none or no reference values were given."""
        ref = self.inner.reference_point()
        if ref is None or self._reference is None:
            return None
        return np.concatenate([np.asarray(ref, dtype=float), np.asarray(self._reference, dtype=float)])
