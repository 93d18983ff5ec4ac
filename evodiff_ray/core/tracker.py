"""Tracker: the hook that receives a search's notes, start, records, per-batch statistics and result.

The engine calls every tracker it was given; MLflow logging, Ray metrics and the CLI's
progress lines are all trackers. Every method is declared here as a no-op, so a tracker
overrides only what it needs and the engine calls each one unconditionally. A tracker
must not raise for a logging failure it can survive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Tracker:
    """Receives a search's life cycle. All methods are optional (no-ops here)."""

    def note(self, message: str) -> None:
        """A one-line notice from the engine before the search starts (which cache, which
        tracking URI); a progress printer shows it, most trackers ignore it."""

    def on_start(self, config, run_dir: Path, resumed: bool) -> None:
        """Called once before the first ask (after a resume's replay, ``resumed=True``)."""

    def on_records(self, records: list[dict[str, Any]]) -> None:
        """Called with the records of every live tell (never for a resume's replayed ones),
        before :meth:`on_generation`.

        Args:
            records: ``ordinal``, ``key``, ``x``, ``generation``, ``parents``, ``source`` and
                ``fitness`` (a Fitness dict) of each candidate just told.
        """

    def on_evaluated(self, outcome: dict[str, Any], done: int, in_flight: int, total: int | None) -> None:
        """Called as each evaluation finishes, before it is told (progress inside a generation).

        It changes nothing that is told or checkpointed; a resume's replayed candidates do
        not pass here.

        Args:
            outcome: ``ordinal``, ``key``, ``source`` (evaluated, hit or waited),
                ``feasible``, ``objectives``, ``reason`` and ``seconds`` of the candidate.
            done: evaluations finished of ``total`` (generational: of this generation's
                batch; async: of the search's evaluation budget, this run's share included).
            in_flight: evaluations submitted and not yet finished.
            total: what ``done`` counts towards; None when no budget counts evaluations.
        """

    def on_generation(self, stats: dict[str, Any], front: dict[str, Any]) -> None:
        """Called after every told batch (a generation in generational mode).

        Args:
            stats: the history entry: ``generation``, ``evaluations``, ``failures``,
                ``in_flight``, ``hypervolume``, ``reference_point``, ``best`` (objective ->
                min), ``front_size``, ``utilization``, ``cache`` and ``elapsed_s``.
            front: the front document (:func:`~evodiff_ray.core.front.front_json`) at this point.
        """

    def on_finish(self, result) -> None:
        """Called once with the :class:`~evodiff_ray.search.result.SearchResult`."""


class CallbackTracker(Tracker):
    """A tracker from a plain function ``fn(stats, front)`` called after every told batch."""

    def __init__(self, fn):
        self.fn = fn

    def on_generation(self, stats, front) -> None:
        self.fn(stats, front)
