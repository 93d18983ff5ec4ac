"""Genetic operators for genomes: pure kernels ``f(genome(s), space, rng)`` and pymoo adapters."""

from evodiff_ray.operators.crossover import GenomeCrossover, crossover
from evodiff_ray.operators.diversity import diversity, genome_distance
from evodiff_ray.operators.duplicates import GenomeDuplicateElimination
from evodiff_ray.operators.mutation import GenomeMutation, MutationRates, mutate
from evodiff_ray.operators.repair import GenomeRepair, repair, to_draft
from evodiff_ray.operators.sampling import GenomeSampling, sample_genome, sample_population


def genome_operators(space, rates: MutationRates | None = None) -> dict:
    """Keyword arguments for pymoo's ``NSGA2`` that search over genomes in ``space``."""
    return {
        "sampling": GenomeSampling(space),
        "crossover": GenomeCrossover(space),
        "mutation": GenomeMutation(space, rates or MutationRates()),
        "repair": GenomeRepair(space),
        "eliminate_duplicates": GenomeDuplicateElimination(),
    }


__all__ = [
    "GenomeCrossover", "GenomeDuplicateElimination", "GenomeMutation", "GenomeRepair", "GenomeSampling",
    "MutationRates", "crossover", "diversity", "genome_distance", "genome_operators", "mutate", "repair",
    "sample_genome", "sample_population", "to_draft",
]
