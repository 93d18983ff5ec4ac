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
    "rating": "rating gap: 5 - mean user rating (lower is better)",
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


def search_title(search_id: str, evaluations: int, elapsed_s: float, fidelity: str | None) -> str:
    """``search s1 · 120 evaluations in 14m02s · fidelity quick`` (for every plot of a search)."""
    m, s = divmod(int(elapsed_s), 60)
    spent = f"{m}m{s:02d}s" if m else f"{s} s"
    return (f"search {search_id} · {evaluations} evaluations in {spent}"
            + (f" · fidelity {fidelity}" if fidelity else ""))


def fidelity_name(settings, rungs: int = 0) -> str | None:
    """The fidelity named in a problem's evaluation settings (``quick``; ``quick, 3 rungs``), or None."""
    try:
        fid = settings.key_dict().get("fidelity") if settings is not None else None
    except (ValueError, AttributeError):
        fid = None
    name = fid.get("name") if isinstance(fid, dict) else fid
    if name is None:
        return None
    return f"{name}, {rungs} rungs" if rungs else str(name)


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
    if ref or title:
        ax.set_title((title + "\n" if title else "")
                     + ("reference point " + ", ".join(f"{v:.4g}" for v in ref) if ref else ""), fontsize=9)
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


def front_sheet(path: str | Path, rows: Sequence[tuple[str, str | Path]], title: str = "") -> Path:
    """One row per candidate: its label on the left, its sample grid (a PNG file) on the right.

    Args:
        path: PNG to write.
        rows: ``(label, grid PNG path)`` in display order (the reference first, then the
            front sorted by latency); the label holds the objective values.
        title: figure title (search id, budget spent, fidelity).
    """
    import matplotlib.image as mpimg

    plt = _plt()
    images = [mpimg.imread(str(p)) for _, p in rows]
    aspect = max((im.shape[1] / im.shape[0] for im in images), default=1.0)
    h, text_w = 1.7, 3.4           # inches: a row, the label column
    fig, axes = plt.subplots(len(rows), 2, figsize=(text_w + h * aspect, h * len(rows) + (0.5 if title else 0)),
                             squeeze=False, gridspec_kw={"width_ratios": [text_w, h * aspect]})
    for (text, _), im, (tax, iax) in zip(rows, images, axes):
        tax.axis("off")
        tax.text(0.0, 0.5, text, va="center", ha="left", fontsize=8, family="monospace",
                 transform=tax.transAxes)
        iax.imshow(im, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        iax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(plt, fig, path)
