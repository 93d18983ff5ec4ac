"""SearchResult: the front, the history and every evaluation of a finished search."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SearchResult:
    """What :func:`evodiff_ray.search.search` returns.

    Attributes:
        search_id: the run's id.
        run_dir: where ``config.json``, ``front.json``, ``history.json`` and the checkpoint are.
        front: the final front document (:func:`~evodiff_ray.core.front.front_json`).
        history: one stats dict per told batch (see ``Tracker.on_generation``).
        records: every evaluation, in tell order: ``ordinal``, ``key``, ``x``, ``generation``,
            ``parents``, ``source`` and ``fitness`` (a Fitness dict).
        objective_names: objectives in column order.
        reference_point: the fixed hypervolume reference point.
        stop_reason: which termination fired.
        population: keys of the strategy's final population (NSGA-II's survivors), in
            population order; empty for a strategy that keeps none (random, optuna).
        reference: the problem's reference candidate as evaluated for this search
            (``key``, ``source``, ``objectives``, ``feasible``, ``reason``, ``samples``), or None.
        title: what the search's pictures are titled with (id, budget spent, fidelity).
        front_sheet: ``front.png`` in the run dir, when candidates kept sample grids.
    """

    search_id: str
    run_dir: Path
    front: dict[str, Any]
    history: list[dict[str, Any]]
    records: list[dict[str, Any]] = field(default_factory=list)
    objective_names: tuple[str, ...] = ()
    reference_point: list[float] | None = None
    stop_reason: str = ""
    population: list[str] = field(default_factory=list)
    reference: dict[str, Any] | None = None
    title: str = ""
    front_sheet: Path | None = None

    @property
    def points(self) -> list[dict[str, Any]]:
        """The front's points."""
        return self.front["points"]

    @property
    def hypervolume(self) -> float | None:
        """Hypervolume of the final front (from the last history entry)."""
        return self.history[-1]["hypervolume"] if self.history else None

    def front_array(self):
        """The front's objective values as a numpy array, shape (n_points, n_obj)."""
        import numpy as np

        return np.array([[p["objectives"][n] for n in self.objective_names] for p in self.points])

    def population_front_array(self):
        """Objective values of the feasible, non-dominated members of the final population.

        This is what pymoo's ``minimize(...).F`` holds; :meth:`front_array` is the archive
        over every evaluation, which can only be as good or better.
        """
        import numpy as np

        from evodiff_ray.core.front import front_of

        by_key = {r["key"]: r for r in self.records}
        members = [by_key[k] for k in self.population if k in by_key]
        front = front_of(members, self.objective_names)
        return np.array([[float(r["fitness"]["objectives"][n]) for n in self.objective_names] for r in front])

    def to_pandas(self):
        """The front as a ``pandas.DataFrame``: key, generation, one column per objective.

        Raises:
            ImportError: pandas is not installed.
        """
        import pandas as pd

        rows = [{"key": p["key"], "generation": p["generation"], **p["objectives"]} for p in self.points]
        return pd.DataFrame(rows, columns=["key", "generation", *self.objective_names])

    def history_frame(self):
        """The history as a ``pandas.DataFrame`` (one row per told batch)."""
        import pandas as pd

        flat = []
        for h in self.history:
            row = {k: v for k, v in h.items() if not isinstance(v, (dict, list))}
            row.update({f"best_{k}": v for k, v in (h.get("best") or {}).items()})
            flat.append(row)
        return pd.DataFrame(flat)
