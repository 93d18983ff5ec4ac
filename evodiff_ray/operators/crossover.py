"""Crossover: exchange whole stages (side, level) between two parents, then repair."""

from __future__ import annotations

import numpy as np
from pymoo.core.crossover import Crossover

from evodiff_ray.genome import Genome
from evodiff_ray.operators.repair import repair, to_draft
from evodiff_ray.space import Limits, SearchSpace

_GLOBALS = ("base_channels", "time_emb_dim", "sampler_steps", "norm_groups")


def _stages(draft) -> dict[tuple[str, int], list[dict]]:
    out: dict[tuple[str, int], list[dict]] = {}
    for layer in draft["layers"]:
        key = ("mid", -1) if layer["side"] == "mid" else (layer["side"], layer["level"])
        out.setdefault(key, []).append(layer)
    return out


def crossover(a: Genome, b: Genome, space: SearchSpace, rng: np.random.Generator,
              limits: Limits | None = None, generation: int | None = None) -> tuple[Genome, Genome]:
    """Two complementary children of ``a`` and ``b``; both are valid.

    Global genes are exchanged uniformly; the level structure (``channel_mults``)
    comes whole from one parent; each stage (down/up at a level, or the mid block)
    comes whole from one parent, and a skip connection survives when both its ends
    came from the same parent. Repair then makes the children fit the space.

    Args:
        a, b: parents.
        space: the search space.
        rng: numpy random generator.
        limits: complexity-schedule limits (default: the full space).
        generation: the children's generation (default: one past the older parent's).
    """
    gen = max(a.generation, b.generation) + 1 if generation is None else generation
    parents = (a.key(), b.key())
    da, db = to_draft(a, "a"), to_draft(b, "b")
    sa, sb = _stages(da), _stages(db)
    keys = sorted(set(sa) | set(sb), key=lambda k: (("down", "mid", "up").index(k[0]), k[1]))
    take_a = {k: bool(rng.random() < 0.5) for k in keys}
    glob_a = {g: bool(rng.random() < 0.5) for g in _GLOBALS}
    mults_a = bool(rng.random() < 0.5)
    children = []
    for flip in (False, True):
        params = {}
        for g in _GLOBALS:
            src = da if glob_a[g] != flip else db
            params[g] = src["parameters"][g]
        params["channel_mults"] = list((da if mults_a != flip else db)["parameters"]["channel_mults"])
        layers = []
        for k in keys:
            src = sa if take_a[k] != flip else sb
            layers.extend(dict(x) for x in src.get(k, []))
        conns = [c for c in da["connections"] + db["connections"]]
        draft = {"parameters": params, "layers": layers, "connections": conns}
        children.append(repair(draft, space, limits, gen, parents, "crossover"))
    return children[0], children[1]


class GenomeCrossover(Crossover):
    """pymoo adapter: 2 parents -> 2 children."""

    def __init__(self, space: SearchSpace, prob: float = 0.9):
        super().__init__(2, 2, prob=prob)
        self.space = space

    def _do(self, problem, X, random_state=None, algorithm=None, **kwargs):
        rng = random_state if random_state is not None else np.random.default_rng()
        gen = int(getattr(algorithm, "n_gen", None) or 0)
        limits = self.space.limits(gen)
        _, n_matings, n_var = X.shape
        Y = np.empty((2, n_matings, n_var), dtype=object)
        for k in range(n_matings):
            c1, c2 = crossover(X[0, k, 0], X[1, k, 0], self.space, rng, limits, gen)
            Y[0, k, 0], Y[1, k, 0] = c1, c2
        return Y
