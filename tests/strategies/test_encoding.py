"""Flat encodings: every genome the random strategy draws encodes and decodes to itself."""

import numpy as np
import pytest

from evodiff_ray.genome import Genome
from evodiff_ray.problems import make_problem
from evodiff_ray.strategies.encoding import BoxEncoding, GenomeEncoding, encoding_for
from evodiff_ray.strategies.random import RandomStrategy


@pytest.fixture(scope="module")
def diffusion():
    return make_problem("diffusion", {})


def test_random_genomes_round_trip(diffusion):
    enc = encoding_for(diffusion, "optuna")
    assert isinstance(enc, GenomeEncoding)
    genomes = RandomStrategy(diffusion, pop_size=500, seed=11).ask()
    assert len(genomes) == 500
    sizes = set()
    for c in genomes:
        values = enc.encode(c.x)
        assert enc.decode_values(values).key() == c.x.key()
        sizes.add((c.x.levels, c.x.depth))
    assert len(sizes) > 15  # the draws really span the space


def test_any_values_decode_to_a_valid_genome_inside_the_space(diffusion):
    enc = encoding_for(diffusion, "optuna")
    rng = np.random.default_rng(4)

    def suggest(p):
        if p.kind == "int":
            return int(rng.integers(p.low, p.high + 1))
        return p.choices[int(rng.integers(len(p.choices)))]

    for _ in range(300):
        g = enc.decode(suggest, generation=3)
        assert Genome.from_dict(g.to_dict()) == g and g.generation == 3
        assert g.depth <= diffusion.space.max_depth and g.levels <= diffusion.space.max_levels
        assert enc.decode_values(enc.encode(g)).key() == g.key()


def test_genome_outside_the_encoded_space_is_rejected(diffusion):
    enc = encoding_for(diffusion, "optuna")
    g = RandomStrategy(diffusion, pop_size=1, seed=2).ask()[0].x
    d = g.to_dict()
    d["parameters"]["sampler_steps"] = 7   # not one of the space's choices
    with pytest.raises(ValueError, match="sampler_steps=7"):
        enc.encode(Genome.from_dict(d))


def test_box_round_trip():
    p = make_problem("zdt1", {"n_var": 4})
    enc = encoding_for(p, "optuna")
    assert isinstance(enc, BoxEncoding) and [q.name for q in enc.params] == ["x0", "x1", "x2", "x3"]
    x = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(enc.decode_values(enc.encode(x)), x)
