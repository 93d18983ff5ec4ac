"""Population diversity: a pure function for tracking how spread the genomes are."""

from __future__ import annotations

import itertools
from collections import Counter

from evodiff_ray.genome import Genome


def _features(g: Genome) -> Counter:
    """A bag of architecture tokens: per-stage layer kinds, globals and skips."""
    c: Counter = Counter()
    for layer in g.layers:
        c[("layer", layer["side"], layer["level"], layer["kind"])] += 1
    for k, v in g.parameters.items():
        c[("param", k, str(v))] += 1
    for a, b in g.connections:
        c[("skip", g.layers[a]["level"])] += 1
    return c


def genome_distance(a: Genome, b: Genome) -> float:
    """Jaccard distance of the two genomes' token bags, in [0, 1] (0 = same architecture)."""
    return _jaccard(_features(a), _features(b))


def _jaccard(fa: Counter, fb: Counter) -> float:
    inter = sum((fa & fb).values())
    union = sum((fa | fb).values())
    return 0.0 if union == 0 else 1.0 - inter / union


def diversity(genomes: list[Genome], max_pairs: int = 2000) -> float:
    """Mean pairwise genome distance (0 when all are equal or fewer than 2).

    Over ``max_pairs`` pairs, a deterministic stride through all pairs keeps the cost
    bounded for large populations.
    """
    pairs = list(itertools.combinations(range(len(genomes)), 2))
    if not pairs:
        return 0.0
    step = max(1, len(pairs) // max_pairs)
    chosen = pairs[::step]
    feats = [_features(g) for g in genomes]
    return sum(_jaccard(feats[i], feats[j]) for i, j in chosen) / len(chosen)
