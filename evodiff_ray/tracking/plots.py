"""Plots people would rather look at than read: the Pareto front, hypervolume, overlays.

Pure functions from records to PNG files (matplotlib's Agg backend, no display needed).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Sequence

#: axis labels with units for the diffusion objectives; others are shown by name
UNITS = {
    "quality_fd": "quality: Fréchet distance (lower is better)",
    "latency_ms": "sampling latency (ms)",
    "memory_mb": "peak sampling memory (MiB)",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    """Lay out, write the PNG (creating its folder) and free the figure."""
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def label(name: str) -> str:
    """Axis label with unit for an objective name."""
    return UNITS.get(name, name)


def _objs(records: Sequence[dict[str, Any]], names: Sequence[str]) -> list[list[float]]:
    out = []
    for r in records:
        obj = r["fitness"]["objectives"] if "fitness" in r else r["objectives"]
        v = [float(obj[n]) for n in names]
        if all(math.isfinite(x) for x in v):
            out.append(v)
    return out


def pareto_scatter(path: str | Path, objective_names: Sequence[str], evaluated: Sequence[dict[str, Any]],
                   front: Sequence[dict[str, Any]], baseline: dict[str, float] | None = None,
                   title: str = "") -> Path:
    """Pairwise projections of the objectives: all feasible evaluations, the front highlighted.

    Args:
        path: PNG to write.
        objective_names: the objectives, in order.
        evaluated: records (``{"fitness": {...}}`` or ``{"objectives": {...}}``) of all candidates.
        front: the non-dominated records.
        baseline: objective values of the reference UNet, marked with a star when given.
        title: figure title.
    """
    plt = _plt()
    pairs = list(itertools.combinations(range(len(objective_names)), 2)) or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), squeeze=False)
    all_pts, front_pts = _objs(evaluated, objective_names), _objs(front, objective_names)
    for ax, (i, j) in zip(axes[0], pairs):
        if all_pts:
            ax.scatter([p[i] for p in all_pts], [p[j] for p in all_pts], s=14, c="#9aa5b1", alpha=0.6,
                       label=f"evaluated ({len(all_pts)})")
        if front_pts:
            fp = sorted(front_pts, key=lambda p: p[i])
            ax.scatter([p[i] for p in fp], [p[j] for p in fp], s=42, c="#d1495b", edgecolors="black",
                       linewidths=0.6, zorder=3, label=f"Pareto front ({len(fp)}; all {len(objective_names)} objectives)")
        if baseline and all(n in baseline for n in (objective_names[i], objective_names[j])):
            ax.scatter([baseline[objective_names[i]]], [baseline[objective_names[j]]], marker="*", s=220,
                       c="#edae49", edgecolors="black", zorder=4, label="reference UNet")
        ax.set_xlabel(label(objective_names[i]))
        ax.set_ylabel(label(objective_names[j]))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def hypervolume_plot(path: str | Path, history: Sequence[dict[str, Any]], title: str = "") -> Path:
    """Hypervolume against evaluations, from the search history."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs = [h["evaluations"] for h in history if h.get("hypervolume") is not None]
    ys = [h["hypervolume"] for h in history if h.get("hypervolume") is not None]
    ax.plot(xs, ys, marker="o", ms=3, color="#00798c", label="hypervolume of the front")
    ref = next((h.get("reference_point") for h in reversed(history) if h.get("reference_point")), None)
    ax.set_xlabel("evaluations (candidates whose fitness the search obtained)")
    ax.set_ylabel("hypervolume (objective units, higher is better)")
    if ref:
        ax.set_title((title + "\n" if title else "") + "reference point " + ", ".join(f"{v:.4g}" for v in ref),
                     fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def front_overlay(path: str | Path, objective_names: Sequence[str], fronts: dict[str, Sequence[dict[str, Any]]],
                  title: str = "fronts compared") -> Path:
    """The fronts of several searches on the same axes (pairwise projections)."""
    plt = _plt()
    pairs = list(itertools.combinations(range(len(objective_names)), 2)) or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), squeeze=False)
    markers = itertools.cycle("os^Dv<>P")
    styles = [(name, next(markers)) for name in fronts]
    for ax, (i, j) in zip(axes[0], pairs):
        for name, m in styles:
            pts = sorted(_objs(fronts[name], objective_names), key=lambda p: p[i])
            ax.plot([p[i] for p in pts], [p[j] for p in pts], marker=m, ms=6, lw=1, alpha=0.85,
                    label=f"{name} ({len(pts)})")
        ax.set_xlabel(label(objective_names[i]))
        ax.set_ylabel(label(objective_names[j]))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(plt, fig, path)
