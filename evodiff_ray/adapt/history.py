"""Long-term progress: every search of one MLflow experiment over time, on one scale.

Each search's own hypervolume uses its own reference point, so those numbers do not
compare across searches. :func:`experiment_history` takes the searches of an experiment
in start order (MLflow's runs tagged ``search_id``), reads their fronts from the run dirs,
and measures every front, and the union of all fronts so far, against one common
reference point; it also keeps the best value per objective, per search and so far.
:func:`history_plot` draws the cumulative hypervolume and bests over time.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.front import hypervolume, non_dominated
from evodiff_ray.core.table import format_table

__all__ = ["experiment_history", "experiment_searches", "format_history", "history_plot"]


def experiment_searches(tracking_uri: str, experiment: str | None, runs_dir: str | Path) -> tuple[str, list[dict]]:
    """The experiment's name and its searches (``search_id``, ``started`` in ms, ``status``), oldest first.

    ``experiment`` None: the experiment of the newest run dir that MLflow recorded.

    Raises:
        UsageError: no such experiment, or nothing to default to.
    """
    from mlflow import MlflowClient

    from evodiff_ray.tracking.mlflow_tracker import RUN_FILE

    client = MlflowClient(tracking_uri=tracking_uri)
    if experiment is None:
        recorded = sorted(Path(runs_dir).glob(f"*/{RUN_FILE}"), key=lambda p: p.stat().st_mtime)
        if not recorded:
            raise UsageError(f"no tracked search under {runs_dir}/; pass --experiment NAME (or --runs-dir)")
        exp_id = json.loads(recorded[-1].read_text()).get("experiment_id")
        exp = client.get_experiment(exp_id) if exp_id else None
    else:
        exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = ", ".join(e.name for e in client.search_experiments() if e.name.startswith("evodiff-"))
        raise UsageError(f"no MLflow experiment {experiment!r} at this tracking URI"
                         + (f"; known: {names}" if names else "") + " (pass --experiment or --tracking-uri)")
    runs = client.search_runs([exp.experiment_id], max_results=5000, order_by=["attributes.start_time ASC"])
    out = []
    for r in runs:
        tags = r.data.tags
        if "search_id" not in tags or "mlflow.parentRunId" in tags:   # a search's own run only
            continue
        out.append({"search_id": tags["search_id"], "started": int(r.info.start_time or 0),
                    "status": r.info.status, "metrics": dict(r.data.metrics)})
    return exp.name, out


def experiment_history(tracking_uri: str, experiment: str | None = None, *,
                       runs_dir: str | Path = "evodiff-runs", redis_url: str | None = None) -> dict[str, Any]:
    """One row per search of the experiment, oldest first, on a common reference point.

    Returns:
        ``{"experiment", "objectives", "reference_point", "rows": [{"search_id", "started"
        (ISO time), "evaluations", "hypervolume", "hypervolume_so_far", "best": {name: v},
        "best_so_far": {name: v}, "front": bool}]}``. A search whose front is not in the run
        dirs keeps MLflow's final ``best_*`` metrics and no hypervolume.

    Raises:
        UsageError: see :func:`experiment_searches`; no searches; mixed objectives.
    """
    from evodiff_ray.cache.front_store import read_front
    from evodiff_ray.tracking.compare import common_reference_point

    name, searches = experiment_searches(tracking_uri, experiment, runs_dir)
    if not searches:
        raise UsageError(f"experiment {name!r} holds no searches yet")
    fronts: dict[str, dict] = {}
    for s in searches:
        try:
            fronts[s["search_id"]] = read_front(s["search_id"], str(runs_dir), redis_url)
        except UsageError:
            pass   # its run dir is elsewhere: fall back to the metrics MLflow kept
    objective_sets = {tuple(f["objectives"]) for f in fronts.values()}
    if len(objective_sets) > 1:
        raise UsageError(f"experiment {name!r} mixes searches of different objectives; pass one --experiment per problem")
    names = list(objective_sets.pop()) if objective_sets else sorted(
        {k[len("best_"):] for s in searches for k in s["metrics"] if k.startswith("best_")})
    ref = common_reference_point(list(fronts.values()), names) if fronts else None
    so_far: list[list[float]] = []
    best_so_far: dict[str, float] = {}
    rows = []
    for s in searches:
        front = fronts.get(s["search_id"])
        pts = _finite_points(front, names) if front else []
        if front:
            best = {n: min((p[i] for p in pts), default=None) for i, n in enumerate(names)}
        else:
            best = {n: s["metrics"].get(f"best_{n}") for n in names}
        for n, v in best.items():
            if v is not None and (n not in best_so_far or v < best_so_far[n]):
                best_so_far[n] = v
        so_far.extend(pts)
        if so_far:
            import numpy as np

            F = np.asarray(so_far)
            so_far = F[non_dominated(F)].tolist()
        rows.append({
            "search_id": s["search_id"],
            "started": datetime.fromtimestamp(s["started"] / 1000, tz=timezone.utc).isoformat(timespec="seconds"),
            "status": (front or {}).get("status") or s["status"].lower(),
            "evaluations": (front or {}).get("evaluations", s["metrics"].get("evaluations")),
            "hypervolume": hypervolume(pts, ref) if pts and ref else None,
            "hypervolume_so_far": hypervolume(so_far, ref) if so_far and ref else None,
            "best": best,
            "best_so_far": dict(best_so_far),
            "front": front is not None,
        })
    return {"experiment": name, "objectives": names, "reference_point": ref, "rows": rows}


def _finite_points(front: dict[str, Any], names: list[str]) -> list[list[float]]:
    out = []
    for p in front.get("points", []):
        v = [float(p["objectives"][n]) for n in names]
        if all(math.isfinite(x) for x in v):
            out.append(v)
    return out


def format_history(h: dict[str, Any]) -> str:
    """The history as a plain-text table (pure)."""
    names = h["objectives"]

    def num(v):
        return "-" if v is None else f"{v:.5g}"

    head = ["started", "search", "evals", "hypervolume", "hv so far", *[f"best {n} so far" for n in names]]
    body = [[r["started"].replace("+00:00", "Z"), r["search_id"], str(r["evaluations"]), num(r["hypervolume"]),
             num(r["hypervolume_so_far"]), *[num(r["best_so_far"].get(n)) for n in names]] for r in h["rows"]]
    lines = [f"experiment {h['experiment']}: {len(h['rows'])} searches", format_table(head, body)]
    if h["reference_point"]:
        lines.append("hypervolume reference point (common to all): "
                     + ", ".join(f"{n}={v:.5g}" for n, v in zip(names, h["reference_point"])))
    if not all(r["front"] for r in h["rows"]):
        lines.append("searches without a front in the run dirs show MLflow's final bests and no hypervolume")
    return "\n".join(lines)


def history_plot(path: str | Path, h: dict[str, Any]) -> Path:
    """The hypervolume (each search, and all so far) and the best per objective so far, over time."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = h["objectives"]
    times = [datetime.fromisoformat(r["started"]) for r in h["rows"]]
    fig, axes = plt.subplots(1 + len(names), 1, figsize=(7, 2.2 * (1 + len(names))), sharex=True, squeeze=False)
    ax = axes[0][0]
    hv = [(t, r["hypervolume"]) for t, r in zip(times, h["rows"]) if r["hypervolume"] is not None]
    so = [(t, r["hypervolume_so_far"]) for t, r in zip(times, h["rows"]) if r["hypervolume_so_far"] is not None]
    if hv:
        ax.plot(*zip(*hv), "o", label="this search")
    if so:
        ax.step(*zip(*so), where="post", label="all searches so far")
    ax.set_ylabel("hypervolume")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"experiment {h['experiment']}: {len(h['rows'])} searches (common reference point)", fontsize=9)
    for i, n in enumerate(names):
        a = axes[i + 1][0]
        each = [(t, r["best"].get(n)) for t, r in zip(times, h["rows"]) if r["best"].get(n) is not None]
        best = [(t, r["best_so_far"].get(n)) for t, r in zip(times, h["rows"]) if r["best_so_far"].get(n) is not None]
        if each:
            a.plot(*zip(*each), "o", alpha=0.6)
        if best:
            a.step(*zip(*best), where="post")
        a.set_ylabel(f"best {n}", fontsize=8)
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    axes[-1][0].xaxis.set_major_locator(locator)
    axes[-1][0].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
