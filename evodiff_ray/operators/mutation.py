"""Mutation: structural and parameter edits of a genome (kernels) and pymoo's adapter.

Each edit is a pure function ``edit(draft, space, rng) -> bool`` (True when it changed
something). :func:`mutate` applies each edit with its rate, and with probability
``analysis`` first applies a cost-aware edit aimed at the block that dominates the
analytic cost (see :func:`evodiff_ray.cost.dominant_layer`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
from pymoo.core.mutation import Mutation

from evodiff_ray.cost import dominant_layer
from evodiff_ray.core.errors import UsageError
from evodiff_ray.genome import Genome
from evodiff_ray.operators.repair import repair, to_draft
from evodiff_ray.operators.sampling import choice, random_kind, random_layer
from evodiff_ray.space import Limits, SearchSpace

def _new_id(draft) -> str:
    """A layer id not yet used in the draft (ids only need to be unique within it)."""
    used = {layer["_id"] for layer in draft["layers"]}
    n = len(used)
    while f"m{n}" in used:
        n += 1
    return f"m{n}"


@dataclass(frozen=True)
class MutationRates:
    """Probability of each edit per mutation (each drawn independently).

    When none fires, one edit is chosen in proportion to the rates, so a mutation
    always changes something. ``analysis`` is the chance of a cost-aware edit on
    the dominant block; 0 switches analysis-driven mutation off.
    """

    change_kind: float = 0.2
    add_layer: float = 0.2
    remove_layer: float = 0.15
    change_attention: float = 0.15
    rewire: float = 0.2
    change_parameter: float = 0.3
    analysis: float = 0.2

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MutationRates":
        names = set(asdict(cls()))
        for k, v in d.items():
            if k not in names:
                raise UsageError(f"mutation.{k}: unknown rate; allowed: {', '.join(sorted(names))}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise UsageError(f"mutation.{k}: {v!r} is not a probability; use a number in [0, 1]")
        return cls(**{k: float(v) for k, v in d.items()})


def _widths(draft) -> list[int]:
    p = draft["parameters"]
    return [p["base_channels"] * m for m in p["channel_mults"]]


def _stage_index(draft, side: str, level: int) -> int:
    """Where a new layer of (side, level) goes so that the order stays legal."""
    rank = {"down": 0, "mid": 1, "up": 2}
    for i, layer in enumerate(draft["layers"]):
        r, lv = rank[layer["side"]], layer["level"]
        if r > rank[side] or (r == rank[side] and ((side == "down" and lv > level) or (side == "up" and lv < level))):
            return i
    return len(draft["layers"])


def change_kind(draft, space: SearchSpace, rng: np.random.Generator) -> bool:
    """Replace one layer with a layer of another kind at the same place."""
    layers = draft["layers"]
    i = int(rng.integers(len(layers)))
    old = layers[i]
    kinds = [k for k in space.kinds() if k != old["kind"]]
    if not kinds:
        return False
    kind = random_kind(space, rng)
    if kind == old["kind"]:
        kind = str(choice(rng, kinds))
    new = random_layer(kind, old["side"], old["level"], _widths(draft)[old["level"]], space, rng)
    new["_id"] = old["_id"]
    layers[i] = new
    return True


def add_layer(draft, space: SearchSpace, rng: np.random.Generator) -> bool:
    """Insert a random layer at a random stage."""
    L = len(draft["parameters"]["channel_mults"])
    side = str(choice(rng, ["down", "mid", "up"]))
    level = L - 1 if side == "mid" else int(rng.integers(L))
    layer = random_layer(random_kind(space, rng), side, level, _widths(draft)[level], space, rng)
    layer["_id"] = _new_id(draft)
    draft["layers"].insert(_stage_index(draft, side, level), layer)
    return True


def remove_layer(draft, space: SearchSpace, rng: np.random.Generator, index: int | None = None) -> bool:
    """Remove one layer (and the connections that touch it)."""
    layers = draft["layers"]
    if len(layers) <= 1:
        return False
    i = int(rng.integers(len(layers))) if index is None else index
    gone = layers.pop(i)["_id"]
    draft["connections"] = [(a, b) for a, b in draft["connections"] if gone not in (a, b)]
    return True


def change_attention(draft, space: SearchSpace, rng: np.random.Generator) -> bool:
    """Change heads of an attention layer, or switch attention on or off at a level."""
    layers = draft["layers"]
    att = [i for i, x in enumerate(layers) if x["kind"] == "attention"]
    L = len(draft["parameters"]["channel_mults"])
    roll = rng.random()
    if att and roll < 0.4:
        i = int(choice(rng, att))
        w = _widths(draft)[layers[i]["level"]]
        ok = [h for h in space.heads if w % h == 0 and h != layers[i]["heads"]]
        if ok:
            layers[i]["heads"] = int(choice(rng, ok))
            return True
    if att and roll < 0.7:  # off: remove one attention layer
        return remove_layer(draft, space, rng, index=int(choice(rng, att)))
    # on: attention at a random level
    side = str(choice(rng, ["down", "mid", "up"]))
    level = L - 1 if side == "mid" else int(rng.integers(L))
    layer = random_layer("attention", side, level, _widths(draft)[level], space, rng)
    layer["_id"] = _new_id(draft)
    draft["layers"].insert(_stage_index(draft, side, level), layer)
    return True


def rewire(draft, space: SearchSpace, rng: np.random.Generator) -> bool:
    """Add, remove or move one skip connection."""
    layers = draft["layers"]
    pairs = [
        (a["_id"], b["_id"])
        for a in layers if a["side"] == "down"
        for b in layers if b["side"] == "up" and b["level"] == a["level"]
    ]
    current = list(draft["connections"])
    free = [p for p in pairs if p not in current]
    if current and (not free or rng.random() < 0.4):
        current.pop(int(rng.integers(len(current))))
        if free and rng.random() < 0.5:  # move = remove + add
            current.append(free[int(rng.integers(len(free)))])
    elif free:
        current.append(free[int(rng.integers(len(free)))])
    else:
        return False
    draft["connections"] = current
    return True


def change_parameter(draft, space: SearchSpace, rng: np.random.Generator) -> bool:
    """Change one global gene: width, a level multiplier, levels, time embedding or steps."""
    p = draft["parameters"]
    gene = str(choice(rng, ["base_channels", "channel_mults", "levels", "time_emb_dim", "sampler_steps"]))
    if gene == "base_channels":
        i = space.base_channels.index(p["base_channels"]) if p["base_channels"] in space.base_channels else 0
        j = min(max(i + choice(rng, (-1, 1)), 0), len(space.base_channels) - 1)
        p["base_channels"] = space.base_channels[j]
    elif gene == "channel_mults":
        lvl = int(rng.integers(len(p["channel_mults"])))
        p["channel_mults"][lvl] = int(choice(rng, space.channel_mults))
    elif gene == "levels":
        L = len(p["channel_mults"])
        if L < space.max_levels and (L == 1 or rng.random() < 0.5):
            p["channel_mults"].append(int(choice(rng, [m for m in space.channel_mults if m >= p["channel_mults"][-1]])))
        elif L > 1:
            p["channel_mults"].pop()
    elif gene == "time_emb_dim":
        p["time_emb_dim"] = int(choice(rng, space.time_emb_dims))
    else:
        p["sampler_steps"] = int(choice(rng, space.sampler_steps))
    # norm groups follow the widths; repair picks a divisor when they no longer fit
    return True


def reduce_cost(draft, space: SearchSpace, rng: np.random.Generator, genome: Genome) -> bool:
    """Cost-aware edit of the block that dominates the analytic cost.

    Attention at high resolution moves one level down (or loses heads, or goes);
    a wide kernel narrows; anything else is removed.
    """
    i = dominant_layer(genome, resolution=space.resolution, batch=space.eval_batch, in_channels=space.in_channels)
    if i is None:
        return False
    layer = draft["layers"][i]
    L = len(draft["parameters"]["channel_mults"])
    if layer["kind"] == "attention":
        if layer["level"] < L - 1 and layer["side"] != "mid":
            moved = dict(layer, level=layer["level"] + 1)
            remove_layer(draft, space, rng, index=i)
            draft["layers"].insert(_stage_index(draft, moved["side"], moved["level"]), moved)
            return True
        if layer["heads"] > min(space.heads):
            layer["heads"] = max(h for h in space.heads if h < layer["heads"])
            return True
    if layer["kind"] in ("conv", "residual") and layer["kernel"] > min(space.kernels):
        layer["kernel"] = max(k for k in space.kernels if k < layer["kernel"])
        return True
    return remove_layer(draft, space, rng, index=i)


EDITS: dict[str, Callable] = {
    "change_kind": change_kind,
    "add_layer": add_layer,
    "remove_layer": remove_layer,
    "change_attention": change_attention,
    "rewire": rewire,
    "change_parameter": change_parameter,
}


def _one_by_weight(rates: MutationRates, rng: np.random.Generator) -> list[str]:
    weights = [(n, getattr(rates, n)) for n in EDITS]
    u = rng.random() * sum(w for _, w in weights)
    for name, w in weights:
        u -= w
        if u < 0:
            return [name]
    return []


def mutate(genome: Genome, space: SearchSpace, rng: np.random.Generator,
           rates: MutationRates = MutationRates(), limits: Limits | None = None,
           generation: int | None = None, parents: tuple[str, ...] | None = None,
           origin: str | None = None) -> Genome:
    """Mutate a genome; the result is valid and (almost always) differs from the input.

    Args:
        genome: the parent.
        space: the search space.
        rng: numpy random generator (the only randomness).
        rates: per-edit probabilities.
        limits: complexity-schedule limits (default: the full space).
        generation: lineage of the child (default: the parent's).
        parents: lineage of the child (default: the parent's parents).
        origin: what made the genome before this mutation (``"crossover"`` for a crossover
            child); the child's origin is ``"[origin+]mutation:<edit>[+<edit>]"``, naming the
            edits that fired (``reduce_cost`` for the cost-aware one).
    """
    gen = genome.generation if generation is None else generation
    par = genome.parents if parents is None else parents
    for _ in range(8):
        draft = to_draft(genome)
        changed = False
        if rates.analysis > 0 and rng.random() < rates.analysis:
            changed = reduce_cost(draft, space, rng, genome)
        edits = ["reduce_cost"] if changed else []
        fired = [name for name, fn in EDITS.items() if rng.random() < getattr(rates, name)]
        if not fired and not changed:
            fired = _one_by_weight(rates, rng)
        for name in fired:
            if EDITS[name](draft, space, rng):
                changed = True
                edits.append(name)
        label = "mutation:" + ("+".join(edits) or "repair")
        child = repair(draft, space, limits, gen, par, f"{origin}+{label}" if origin else label)
        if child.key() != genome.key():
            return child
    return child


class GenomeMutation(Mutation):
    """pymoo adapter; records lineage (the pre-mutation key) for copied parents."""

    def __init__(self, space: SearchSpace, rates: MutationRates = MutationRates(), prob: float = 1.0):
        super().__init__(prob=prob)
        self.space, self.rates = space, rates

    def _do(self, problem, X, random_state=None, algorithm=None, **kwargs):
        rng = random_state if random_state is not None else np.random.default_rng()
        gen = int(getattr(algorithm, "n_gen", None) or 0)
        limits = self.space.limits(gen)
        out = np.empty_like(X)
        for i, g in enumerate(X[:, 0]):
            # a crossover child already carries this generation's lineage
            crossed = g.generation == gen and bool(g.parents)
            parents = g.parents if crossed else (g.key(),)
            out[i, 0] = mutate(g, self.space, rng, self.rates, limits, gen, tuple(parents),
                               g.origin if crossed else None)
        return out
