"""ExtraConstraints: a problem with more constraints than its evaluations compute.

A user's preference stated as a constraint on an objective (``--constraint latency_ms<=20``,
:mod:`evodiff_ray.evaluation.constraints`) is computed by an evaluator wrapper from the
told fitness, outside the fitness cache. The strategy still has to count it:
:class:`ExtraConstraints` is the problem as the search sees it, the inner problem's
constraint names with the extra names appended and a pymoo ``Problem`` with
``n_ieq_constr`` grown to match. Everything else is the inner problem's
(:class:`~evodiff_ray.problems.view.ProblemView`), so the cache key and the evaluators
never see the extra constraints.
"""

from __future__ import annotations

import copy
from typing import Sequence

from evodiff_ray.problems.base import SearchProblem
from evodiff_ray.problems.view import ProblemView


class ExtraConstraints(ProblemView):
    """``inner`` with ``names`` appended to its constraints (``<= 0`` satisfied; values
    supplied by a wrapper).

    Args:
        inner: the problem whose candidates are searched and evaluated (it may itself be a
            view, e.g. with the ``rating`` objective).
        names: the extra constraint names, after the inner ones.

    Raises:
        ValueError: no extra names, a repeated name, or a name the inner problem already has.
    """

    def __init__(self, inner: SearchProblem, names: Sequence[str]):
        names = tuple(names)
        if not names:
            raise ValueError("ExtraConstraints needs at least one extra constraint name")
        if len(set(names)) != len(names):
            raise ValueError(f"extra constraint names repeat: {', '.join(names)}")
        clash = sorted(set(names) & set(inner.constraint_names))
        if clash:
            raise ValueError(f"problem {inner.name!r} already has constraint {clash[0]!r}")
        super().__init__(inner)
        self.extra = names
        self.constraint_names = tuple(inner.constraint_names) + names

    def pymoo_problem(self):
        """The inner pymoo ``Problem``, copied, with ``n_ieq_constr`` counting the extra
        constraints (described only: values arrive through ask/tell)."""
        base = self.inner.pymoo_problem()
        wrapped = copy.copy(base)
        wrapped.n_ieq_constr = int(base.n_ieq_constr) + len(self.extra)
        return wrapped
