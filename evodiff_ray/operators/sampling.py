"""Sampling: draw valid, diverse genomes (kernel) and pymoo's ``Sampling`` adapter."""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.core.sampling import Sampling

from evodiff_ray.genome import Genome
from evodiff_ray.operators.repair import repair
from evodiff_ray.space import SearchSpace


def choice(rng: np.random.Generator, options):
    """One element of a sequence (faster than ``rng.choice`` for short Python lists)."""
    return options[int(rng.integers(len(options)))]


def random_layer(kind: str, side: str, level: int, width: int, space: SearchSpace,
                 rng: np.random.Generator) -> dict[str, Any]:
    """A new layer dict of ``kind`` with parameters drawn from the space."""
    layer: dict[str, Any] = {"kind": kind, "side": side, "level": level}
    if kind in ("conv", "residual"):
        layer["kernel"] = int(choice(rng, space.kernels))
    if kind == "residual":
        layer["dropout"] = 0.0
    if kind == "attention":
        ok = [h for h in space.heads if width % h == 0] or [1]
        layer["heads"] = int(choice(rng, ok))
    if kind == "activation":
        layer["fn"] = str(choice(rng, space.activations))
    return layer


def random_kind(space: SearchSpace, rng: np.random.Generator, attention: bool = True) -> str:
    """A layer kind drawn by the space's ``kind_weights``."""
    kinds = [(k, w) for k, w in space.kind_weights if attention or k != "attention"]
    total = sum(w for _, w in kinds)
    if total <= 0:
        return "residual"
    u = rng.random() * total
    for k, w in kinds:
        u -= w
        if u < 0:
            return k
    return kinds[-1][0]


def _pick_by_size(choices: tuple, size: float, rng: np.random.Generator, jitter: float = 0.6):
    idx = size * (len(choices) - 1) + rng.normal(0.0, jitter)
    return choices[int(np.clip(round(idx), 0, len(choices) - 1))]


def sample_genome(space: SearchSpace, rng: np.random.Generator, size: float | None = None,
                  generation: int = 0) -> Genome:
    """Draw one valid genome.

    Args:
        space: the search space.
        rng: numpy random generator (the only source of randomness).
        size: in [0, 1], where this draw should sit between the smallest and largest
            architectures (width, levels, depth); None draws it uniformly. Population
            sampling stratifies it so an initial population spans small to large.
        generation: the complexity schedule's generation (limits depth and width).

    Returns:
        A valid genome inside the space's limits.
    """
    limits = space.limits(generation)
    size = float(rng.random()) if size is None else float(size)
    n_levels = _pick_by_size(tuple(range(1, space.max_levels + 1)), size, rng)
    base = _pick_by_size(limits.base_channels, size, rng)
    mults = [1]
    for _ in range(1, n_levels):
        mults.append(int(choice(rng, [m for m in space.channel_mults if m >= mults[-1]])))
    widths = [base * m for m in mults]
    params = {
        "base_channels": base,
        "channel_mults": mults,
        "time_emb_dim": int(choice(rng, space.time_emb_dims)),
        "sampler_steps": int(choice(rng, space.sampler_steps)),
        "norm_groups": int(choice(rng, space.groups_for(widths))),
    }
    depth = int(np.clip(round(1 + size * (limits.max_depth - 1) + rng.normal(0, 1.5)), 1, limits.max_depth))
    use_attention = bool(rng.random() < 0.5)
    stages = [("down", lvl) for lvl in range(n_levels)] + [("mid", n_levels - 1)] + [
        ("up", lvl) for lvl in range(n_levels - 1, -1, -1)
    ]
    counts = np.zeros(len(stages), dtype=int)
    for _ in range(depth):
        open_ = [i for i in range(len(stages)) if counts[i] < space.max_stage_layers]
        if not open_:
            break
        counts[int(choice(rng, open_))] += 1
    layers, ids = [], []
    for (side, lvl), n in zip(stages, counts):
        for _ in range(int(n)):
            kind = random_kind(space, rng, attention=use_attention)
            layer = random_layer(kind, side, lvl, widths[lvl], space, rng)
            layer["_id"] = f"s{len(layers)}"
            layers.append(layer)
            ids.append((side, lvl, layer["_id"]))
    if use_attention and not any(x["kind"] == "attention" for x in layers):
        lvl = n_levels - 1
        layers.insert(len([x for x in layers if x["side"] == "down"]),
                      dict(random_layer("attention", "mid", lvl, widths[lvl], space, rng), _id="sa"))
    conns = []
    for lvl in range(n_levels):
        downs = [i for s, lv, i in ids if s == "down" and lv == lvl]
        ups = [i for s, lv, i in ids if s == "up" and lv == lvl]
        if downs and ups and rng.random() < 0.8:
            conns.append((downs[-1], ups[int(rng.integers(len(ups)))]))
    draft = {"parameters": params, "layers": layers, "connections": conns}
    return repair(draft, space, limits, generation=generation, origin="sample")


def sample_population(space: SearchSpace, n: int, rng: np.random.Generator, generation: int = 0) -> list[Genome]:
    """Draw ``n`` genomes with sizes stratified over [0, 1] (Latin-hypercube style)."""
    sizes = (rng.permutation(n) + rng.random(n)) / max(n, 1)
    return [sample_genome(space, rng, size=s, generation=generation) for s in sizes]


class GenomeSampling(Sampling):
    """pymoo adapter: an object-typed X column of genomes, with unique keys."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space

    def _do(self, problem, n_samples, random_state=None, **kwargs):
        rng = random_state if random_state is not None else np.random.default_rng()
        out, seen = [], set()
        tries = 0
        while len(out) < n_samples and tries < 50:
            for g in sample_population(self.space, n_samples - len(out), rng):
                if g.key() not in seen:
                    seen.add(g.key())
                    out.append(g)
            tries += 1
        X = np.empty((len(out), 1), dtype=object)
        for i, g in enumerate(out):
            X[i, 0] = g
        return X
