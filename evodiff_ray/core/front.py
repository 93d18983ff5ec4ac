"""The Pareto front: computation, hypervolume, the front JSON and FrontStore.

``FrontStore`` is a two-method base class; :class:`FileFrontStore` writes
``<runs_dir>/<search_id>/front.json`` atomically so that any process can read the live front
while a search runs. A Redis store implements the same interface elsewhere.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from evodiff_ray.core.io import atomic_write_text

FRONT_FILE = "front.json"


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``F`` (minimisation), in row order.

    Args:
        F: shape (n, n_obj).
    """
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    return np.sort(NonDominatedSorting().do(F, only_non_dominated_front=True))


def hypervolume(F: np.ndarray, ref_point: np.ndarray) -> float:
    """Hypervolume of ``F`` with respect to ``ref_point`` (points beyond it add nothing)."""
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return 0.0
    from pymoo.indicators.hv import HV

    return float(HV(ref_point=np.asarray(ref_point, dtype=float))(F))


def derive_reference_point(F: np.ndarray) -> list[float]:
    """A reference point from a first front: its worst value per objective, plus 10% of the range (or 1)."""
    F = np.asarray(F, dtype=float)
    worst, best = F.max(axis=0), F.min(axis=0)
    span = np.where(worst - best > 0, worst - best, np.maximum(np.abs(worst), 1.0))
    return [float(v) for v in worst + 0.1 * span]


def front_of(records: Sequence[dict[str, Any]], objective_names: Sequence[str]) -> list[dict[str, Any]]:
    """Feasible, non-dominated records (first occurrence of each key), in evaluation order.

    A record is on the front only when it is feasible and meets every constraint it carries
    (each value ``<= 0``): a candidate that violates a user's stated constraint
    (``--constraint``) did not fail, yet it is not a result.

    Args:
        records: evaluation records with ``key`` and ``fitness`` (a Fitness dict).
        objective_names: objectives in F-column order.
    """
    seen: set[str] = set()
    feasible = []
    for r in records:
        fit = r["fitness"]
        if not fit["feasible"] or r["key"] in seen or violates(fit):
            continue
        values = [_num(fit["objectives"][n]) for n in objective_names]
        if all(math.isfinite(v) for v in values):
            seen.add(r["key"])
            feasible.append((r, values))
    if not feasible:
        return []
    idx = non_dominated(np.array([v for _, v in feasible]))
    return [feasible[i][0] for i in idx]


def violates(fit: dict[str, Any]) -> bool:
    """Whether a Fitness dict violates one of its constraints (a value above 0, or NaN)."""
    return any(not _num(v) <= 0 for v in (fit.get("constraints") or {}).values())


def front_json(
    *,
    search_id: str,
    status: str,
    generation: int,
    evaluations: int,
    cache: dict[str, int],
    utilization: float | None,
    objective_names: Sequence[str],
    front_records: Sequence[dict[str, Any]],
    constraints: Sequence[str] = (),
) -> dict[str, Any]:
    """The front document, the JSON users and scripts read (the README documents it).

    ``{"search_id", "status": "running|finished", "generation", "evaluations", "cache":
    {"hits", "misses", "waited"}, "utilization", "objectives": [names], "points": [{"key",
    "objectives": {name: value}, "genome", "generation", "parents": [keys], "origin", "rung",
    "train_steps", "measured_on": {"node", "device", "chip", "predicted": [names]}}]}``.
    ``evaluations`` counts the candidates whose fitness the search obtained;
    ``cache.misses`` those it evaluated. ``rung`` and ``train_steps`` say at which
    multi-fidelity rung and after how many training steps a point's quality was measured
    (null for a single-fidelity search). A search with the ``rating`` objective
    (``--rating-from``) adds ``"rating": {"source": "human"|"predicted", "mean", "std", "n"}``
    to each point: where its rating came from, the mean rating (1-5), its uncertainty (the
    standard error of a human mean, the predictor's std) and how many ratings. A search with
    stated constraints (``--constraint``) adds ``"constraints": ["latency_ms<=20", ...]``, the
    constraints in force: every point meets them.
    """
    points = []
    for r in front_records:
        fit = r["fitness"]
        m = fit.get("measured_on", {})
        rating = rating_of(fit.get("extras", {}))
        points.append({
            "key": r["key"],
            "objectives": {n: _num(fit["objectives"][n]) for n in objective_names},
            "genome": r["x"],
            "generation": r["generation"],
            "parents": list(r.get("parents", [])),
            # lineage: the edit that made it ("sample", "crossover+mutation:rewire", "seed:...")
            "origin": r.get("origin"),
            # at which multi-fidelity rung, after how many training steps, quality was measured
            "rung": fit.get("extras", {}).get("rung"),
            "train_steps": fit.get("extras", {}).get("train_steps"),
            "measured_on": {
                "node": m.get("node"),
                "device": m.get("device"),
                "chip": m.get("chip"),
                "predicted": list(m.get("predicted", [])),
            },
            **({"rating": rating} if rating is not None else {}),
        })
    return {
        "search_id": search_id,
        "status": status,
        "generation": generation,
        "evaluations": evaluations,
        "cache": {k: int(cache.get(k, 0)) for k in ("hits", "misses", "waited")},
        "utilization": utilization,
        "objectives": list(objective_names),
        **({"constraints": list(constraints)} if constraints else {}),
        "points": points,
    }


#: the extras a rated record carries (``evaluation.rating`` writes them, the front reads them)
RATING_SOURCE, RATING_MEAN, RATING_STD, RATING_COUNT = "rating_source", "rating_mean", "rating_std", "rating_n"


def rating_of(extras: dict[str, Any]) -> dict[str, Any] | None:
    """A record's rating provenance (``evaluation.rating`` writes these extras), or None."""
    if RATING_SOURCE not in extras:
        return None
    return {"source": extras[RATING_SOURCE], "mean": extras.get(RATING_MEAN),
            "std": extras.get(RATING_STD), "n": extras.get(RATING_COUNT)}


def front_csv(front: dict[str, Any]) -> str:
    """The front's points as CSV: key, generation, one column per objective, rung, training
    steps (multi-fidelity; empty otherwise), node, device; with a ``rating`` objective also
    ``rating_source`` and ``rating_std``.

    Which objectives were predicted is in the front JSON's ``measured_on``."""
    import csv
    import io

    names = front.get("objectives", [])
    rated = any("rating" in p for p in front.get("points", []))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "generation", *names, "rung", "train_steps", "node", "device",
                *([RATING_SOURCE, RATING_STD] if rated else [])])
    for p in front.get("points", []):
        m = p.get("measured_on") or {}
        rating = p.get("rating") or {}
        w.writerow([p["key"], p.get("generation", ""), *[repr(p["objectives"].get(n)) for n in names],
                    _blank(p.get("rung")), _blank(p.get("train_steps")), m.get("node"), m.get("device"),
                    *([_blank(rating.get("source")), _blank(rating.get("std"))] if rated else [])])
    return buf.getvalue()


class FrontStore(ABC):
    """Where the live front of each search is published and read."""

    @abstractmethod
    def publish(self, search_id: str, front: dict[str, Any]) -> None:
        """Replace the published front of ``search_id``."""

    @abstractmethod
    def read(self, search_id: str) -> dict[str, Any] | None:
        """The published front of ``search_id``, or None when there is none."""


class FileFrontStore(FrontStore):
    """``<runs_dir>/<search_id>/front.json``, replaced atomically on every publish.

    Args:
        runs_dir: the directory holding run dirs.
    """

    def __init__(self, runs_dir: str | Path = "evodiff-runs"):
        self.runs_dir = Path(runs_dir)

    def path(self, search_id: str) -> Path:
        return self.runs_dir / search_id / FRONT_FILE

    def publish(self, search_id: str, front: dict[str, Any]) -> None:
        atomic_write_text(self.path(search_id), json.dumps(front, indent=1, allow_nan=False) + "\n",
                          durable=False)

    def read(self, search_id: str) -> dict[str, Any] | None:
        try:
            text = self.path(search_id).read_text()
        except FileNotFoundError:
            return None
        return validate_front(json.loads(text))

    def latest(self) -> str | None:
        """The search id whose front was written last, or None."""
        if not self.runs_dir.is_dir():
            return None
        fronts = [p for p in self.runs_dir.glob(f"*/{FRONT_FILE}") if p.is_file()]
        if not fronts:
            return None
        return max(fronts, key=lambda p: p.stat().st_mtime).parent.name


def validate_front(data: Any) -> dict[str, Any]:
    """Check the shape of a front document read from a file or the network.

    Raises:
        ValueError: naming the field that is wrong.
    """
    if not isinstance(data, dict):
        raise ValueError("front must be a JSON object")
    for k, t in (("search_id", str), ("status", str), ("generation", int), ("evaluations", int),
                 ("objectives", list), ("points", list), ("cache", dict)):
        if not isinstance(data.get(k), t):
            raise ValueError(f"front field {k!r} is missing or not a {t.__name__}")
    for p in data["points"]:
        if not isinstance(p, dict) or not isinstance(p.get("objectives"), dict) or not isinstance(p.get("key"), str):
            raise ValueError("front points must be objects with 'key' and 'objectives'")
    return data


def _num(v: Any) -> float:
    return float(v)  # Fitness.to_dict writes non-finite values as "inf"/"nan", which float() reads


def _blank(v: Any) -> Any:
    return "" if v is None else v
