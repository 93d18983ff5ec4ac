"""Compare searches: evaluations, hypervolume on a common reference point, front size, bests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.front import hypervolume
from evodiff_ray.core.table import format_table


def _points(front: dict[str, Any], names: Sequence[str]) -> list[list[float]]:
    out = []
    for p in front.get("points", []):
        v = [float(p["objectives"][n]) for n in names]
        if all(math.isfinite(x) for x in v):
            out.append(v)
    return out


def common_reference_point(fronts: Sequence[dict[str, Any]], names: Sequence[str]) -> list[float]:
    """Worst value per objective over all fronts, plus 10% of the range (or of its size)."""
    pts = [p for f in fronts for p in _points(f, names)]
    if not pts:
        return [1.0] * len(names)
    worst = [max(p[i] for p in pts) for i in range(len(names))]
    best = [min(p[i] for p in pts) for i in range(len(names))]
    return [w + 0.1 * ((w - b) if w > b else max(abs(w), 1.0)) for w, b in zip(worst, best)]


def compare_fronts(fronts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rows of the comparison, one per search, on a shared reference point.

    Args:
        fronts: search id -> front document (:func:`~evodiff_ray.core.front.front_json`).

    Raises:
        UsageError: when the searches have different objectives.
    """
    if not fronts:
        raise UsageError("compare needs at least one search id")
    names_set = {tuple(f["objectives"]) for f in fronts.values()}
    if len(names_set) != 1:
        raise UsageError("these searches optimise different objectives; compare searches of one problem")
    names = list(names_set.pop())
    ref = common_reference_point(list(fronts.values()), names)
    rows = []
    for sid, f in fronts.items():
        pts = _points(f, names)
        rows.append({
            "search_id": sid,
            "status": f.get("status"),
            "evaluations": f.get("evaluations"),
            "hypervolume": hypervolume(pts, ref) if pts else 0.0,
            "front_size": len(pts),
            "best": {n: min((p[i] for p in pts), default=None) for i, n in enumerate(names)},
        })
    return {"objectives": names, "reference_point": ref, "rows": rows}


def format_comparison(cmp: dict[str, Any]) -> str:
    """A plain-text table of :func:`compare_fronts`."""
    names = cmp["objectives"]
    head = ["search", "status", "evals", "hypervolume", "front", *[f"best {n}" for n in names]]
    body = [[r["search_id"], str(r["status"]), str(r["evaluations"]), f"{r['hypervolume']:.6g}",
             str(r["front_size"]), *[("-" if r["best"][n] is None else f"{r['best'][n]:.5g}") for n in names]]
            for r in cmp["rows"]]
    lines = [format_table(head, body)]
    lines.append("hypervolume reference point: " + ", ".join(f"{n}={v:.5g}" for n, v in zip(names, cmp["reference_point"])))
    return "\n".join(lines)


def overlay_plot(path: str | Path, fronts: dict[str, dict[str, Any]]) -> Path:
    """Write the fronts' overlay PNG."""
    from evodiff_ray.tracking.plots import front_overlay

    names = next(iter(fronts.values()))["objectives"]
    return front_overlay(path, names, {sid: f.get("points", []) for sid, f in fronts.items()})
