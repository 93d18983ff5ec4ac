"""What a finished search shows: the reference candidate beside the front, and the front sheet.

The problem's baseline (for the diffusion problem, the reference UNet) is evaluated once
at the end through the search's own evaluator stack, so it is measured like the
candidates and is a cache hit for every later search with the same settings
(``no_reference`` skips it). ``front.png`` is one row per front member that kept a
sample grid, sorted by latency, each labelled with its objectives, the reference's row on
top.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

from evodiff_ray.core.evaluator import Task
from evodiff_ray.evaluation.samples import grid_path

log = logging.getLogger(__name__)

#: the run dir's sheet of the front's samples
FRONT_SHEET = "front.png"
#: the run dir's record of the reference as evaluated for the search
REFERENCE_FILE = "reference.json"
#: the ordinal of the reference's task (never one of the search's own)
REFERENCE_ORDINAL = -1


def evaluate_reference(run, problem, timeout_s: float = 3600.0) -> dict[str, Any] | None:
    """The problem's baseline evaluated through ``run``'s evaluator (cached, rungs, grids).

    Returns:
        ``{"key", "source", "objectives", "feasible", "reason", "samples"}``, or None when the
        problem has no baseline or the evaluation did not finish in ``timeout_s``.
    """
    x = problem.baseline()
    if x is None:
        return None
    task = Task(REFERENCE_ORDINAL, problem.key(x), problem.to_json(x))
    evaluator = run.evaluator
    evaluator.submit([task])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for o in evaluator.poll(timeout=1.0):
            if o.task.ordinal == REFERENCE_ORDINAL:
                f = o.fitness
                return {"key": task.key, "source": o.source, "objectives": dict(f.objectives),
                        "feasible": f.feasible, "reason": f.reason, "samples": f.extras.get("samples")}
    log.warning("the reference candidate was not evaluated within %.0f s; the front is shown without it", timeout_s)
    return None


def sort_objective(names: Sequence[str]) -> str:
    """The objective the sheet's rows are sorted by: a latency when there is one, else the first."""
    return next((n for n in names if n.startswith("latency")), names[0])


def sheet_rows(run_dir: str | Path, points: Sequence[dict[str, Any]], names: Sequence[str],
               reference: dict[str, Any] | None) -> list[tuple[str, Path]]:
    """``(label, grid path)`` for the reference and each front member that kept a grid, in sheet order."""
    by = sort_objective(names)
    rows: list[tuple[str, Path]] = []
    if reference and reference.get("feasible"):
        path = grid_path(run_dir, reference["key"])
        if path.exists():
            rows.append((f"reference\n{_values(reference['objectives'], names)}", path))
    ordered = sorted(points, key=lambda p: _float(p["objectives"].get(by)))
    for i, p in enumerate(ordered, 1):
        path = grid_path(run_dir, p["key"])
        if path.exists():
            rows.append((f"#{i} {p['key'][:10]} gen {p.get('generation')}\n{_values(p['objectives'], names)}", path))
    return rows


def write_front_sheet(run_dir: str | Path, front: dict[str, Any], reference: dict[str, Any] | None,
                      title: str) -> Path | None:
    """``<run_dir>/front.png``; None when no front member kept a grid (a problem without images)."""
    names = list(front.get("objectives") or [])
    if not names:
        return None
    rows = sheet_rows(run_dir, front.get("points", []), names, reference)
    if not any(not label.startswith("reference") for label, _ in rows):
        return None
    from evodiff_ray.tracking.plots import front_sheet

    return front_sheet(Path(run_dir) / FRONT_SHEET, rows, title=title)


def _values(objectives: dict[str, Any], names: Sequence[str]) -> str:
    return "  ".join(f"{n}={_float(objectives.get(n)):.4g}" for n in names)


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.inf
