"""Duplicate elimination by genome key: O(n) hashing instead of pairwise comparison."""

from __future__ import annotations

from pymoo.core.duplicate import HashDuplicateElimination


def genome_key_of(item) -> str:
    """The genome key of a pymoo individual; a key passes through unchanged.

    pymoo's ``HashDuplicateElimination`` applies its function twice
    (``func(func(individual))``), so it must be idempotent on its own output.
    """
    if isinstance(item, str):
        return item
    return item.X[0].key()


class GenomeDuplicateElimination(HashDuplicateElimination):
    """Drops offspring whose architecture key is already in the population or batch."""

    def __init__(self):
        super().__init__(func=genome_key_of)
