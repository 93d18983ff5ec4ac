"""Repair: turn an edited draft into a valid genome inside the space (operators only).

Operators edit a *draft*: the genome's data with a stable ``_id`` on every layer and
connections written as ``(_id, _id)`` pairs, so that inserting or removing layers
never breaks an edge by accident. :func:`repair` then sorts, clamps and prunes the
draft into a valid :class:`~evodiff_ray.genome.Genome`. Loading a genome never
repairs it; only operators do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.core.repair import Repair

from evodiff_ray.genome import LAYER_DEFAULTS, Genome
from evodiff_ray.space import Limits, SearchSpace

_SIDE_RANK = {"down": 0, "mid": 1, "up": 2}


def to_draft(genome: Genome, tag: str = "") -> dict[str, Any]:
    """An editable deep copy of a genome with layer ids ``f"{tag}{i}"``."""
    layers = [dict(layer, _id=f"{tag}{i}") for i, layer in enumerate(genome.layers)]
    params = {k: list(v) if isinstance(v, list) else v for k, v in genome.parameters.items()}
    return {
        "parameters": params,
        "layers": layers,
        "connections": [(f"{tag}{a}", f"{tag}{b}") for a, b in genome.connections],
    }


def _nearest(value: int, choices: tuple[int, ...]) -> int:
    if value in choices:
        return value
    return min(choices, key=lambda c: (abs(c - value), c))


def _largest_divisor(n: int, choices: tuple[int, ...]) -> int:
    ok = [c for c in choices if n % c == 0]
    return max(ok) if ok else 1


def repair(draft: dict[str, Any], space: SearchSpace, limits: Limits | None = None,
           generation: int = 0, parents: tuple[str, ...] = (), origin: str = "") -> Genome:
    """Make a draft valid and inside the space's limits. Deterministic.

    Args:
        draft: see module docstring; it is not modified.
        space: the search space.
        limits: the complexity-schedule limits to respect (default: the full space).
        generation: lineage of the result.
        parents: lineage of the result.
        origin: lineage of the result (the edit that made it).

    Returns:
        A valid genome.
    """
    limits = limits or space.limits(10**9)
    p = dict(draft["parameters"])
    # -- globals ----------------------------------------------------------------
    mults = [int(m) for m in p.get("channel_mults", [1])][: space.max_levels] or [1]
    mults = [_nearest(m, space.channel_mults) for m in mults]
    for i in range(1, len(mults)):  # widths never shrink toward low resolution
        mults[i] = max(mults[i], mults[i - 1])
    p["channel_mults"] = mults
    p["base_channels"] = _nearest(int(p.get("base_channels", limits.base_channels[0])), limits.base_channels)
    p["time_emb_dim"] = _nearest(int(p.get("time_emb_dim", space.time_emb_dims[0])), space.time_emb_dims)
    p["sampler_steps"] = _nearest(int(p.get("sampler_steps", space.sampler_steps[0])), space.sampler_steps)
    widths = [p["base_channels"] * m for m in mults]
    groups = space.groups_for(widths)
    g = int(p.get("norm_groups", groups[-1]))
    p["norm_groups"] = g if g in groups else max([x for x in groups if x <= g] or [groups[0]])
    L = len(mults)
    # -- layers -------------------------------------------------------------------
    layers = []
    for layer in draft["layers"]:
        layer = dict(layer)
        lvl = min(max(int(layer["level"]), 0), L - 1)
        if layer["side"] == "mid":
            lvl = L - 1
        layer["level"] = lvl
        c = widths[lvl]
        if layer["kind"] == "attention":
            layer["heads"] = _largest_divisor(c, tuple(h for h in space.heads if h <= layer.get("heads", 1))
                                              or space.heads[:1])
        elif layer["kind"] == "norm":
            g = layer.get("groups") or p["norm_groups"]
            layer["groups"] = g if c % g == 0 else p["norm_groups"]
        layers.append(_explicit(layer))
    # stable sort into down (level up), mid, up (level down)
    layers.sort(key=lambda x: (_SIDE_RANK[x["side"]], -x["level"] if x["side"] == "up" else x["level"]))
    # per-stage cap, then depth cap: drop from the end of the largest stage first
    stages: dict[tuple[str, int], list[dict]] = {}
    for layer in layers:
        stages.setdefault((layer["side"], layer["level"]), []).append(layer)
    for key, members in stages.items():
        del members[space.max_stage_layers:]
    while sum(len(m) for m in stages.values()) > limits.max_depth:
        biggest = max(stages, key=lambda k: (len(stages[k]), _SIDE_RANK[k[0]], k[1]))
        stages[biggest].pop()
    keep = {id(layer) for m in stages.values() for layer in m}
    layers = [layer for layer in layers if id(layer) in keep]
    if not layers:
        layers = [{"kind": "residual", "side": "down", "level": 0, "kernel": 3, "dropout": 0.0, "_id": "repair0"}]
    # -- connections ----------------------------------------------------------------
    pos = {}
    for i, layer in enumerate(layers):
        pos.setdefault(layer["_id"] if layer["_id"] is not None else f"_anon{i}", i)
    conns = set()
    for a, b in draft["connections"]:
        if a in pos and b in pos:
            la, lb = layers[pos[a]], layers[pos[b]]
            if la["side"] == "down" and lb["side"] == "up" and la["level"] == lb["level"]:
                conns.add((pos[a], pos[b]))
    clean = []
    for layer in layers:
        del layer["_id"]
        clean.append(layer)
    params = {k: p[k] for k in ("base_channels", "channel_mults", "time_emb_dim", "sampler_steps", "norm_groups")}
    # Every field is explicit and in range here, so the genome is built without the
    # loader's checks (the operators' hot path); the tests re-validate every output.
    return Genome.trusted(params, clean, sorted(conns), int(generation), tuple(parents), origin)


def _explicit(layer: dict[str, Any]) -> dict[str, Any]:
    """The layer with exactly its kind's fields, defaults filled, floats normalised."""
    out = {"kind": layer["kind"], "side": layer["side"], "level": layer["level"], "_id": layer.get("_id")}
    for name, default in LAYER_DEFAULTS[layer["kind"]].items():
        v = layer.get(name, default)
        out[name] = round(float(v), 6) + 0.0 if name == "dropout" else v
    return out


class GenomeRepair(Repair):
    """pymoo adapter: re-applies the complexity schedule of the current generation."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space

    def _do(self, problem, X, algorithm=None, **kwargs):
        gen = getattr(algorithm, "n_gen", None) or 0
        limits = self.space.limits(gen)
        out = np.empty_like(X)
        for i, x in enumerate(X[:, 0]):
            if x.origin.startswith("seed:"):   # a warm-start seed fits the full space already (checked);
                out[i, 0] = x                  # the schedule's early limits must not shrink it
                continue
            out[i, 0] = repair(to_draft(x), self.space, limits, x.generation, x.parents, x.origin)
        return out
