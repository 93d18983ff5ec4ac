"""Genome: canonical JSON, key, lineage and validation errors."""

import copy
import json

import pytest

from evodiff_ray.genome import Genome, GenomeError

BASE = {
    "parameters": {"base_channels": 32, "channel_mults": [1, 2], "time_emb_dim": 64, "sampler_steps": 20,
                   "norm_groups": 8},
    "layers": [
        {"kind": "residual", "side": "down", "level": 0},
        {"kind": "conv", "side": "down", "level": 1, "kernel": 3},
        {"kind": "attention", "side": "mid", "level": 1, "heads": 2},
        {"kind": "residual", "side": "up", "level": 1},
        {"kind": "activation", "side": "up", "level": 0, "fn": "silu"},
        {"kind": "residual", "side": "up", "level": 0},
    ],
    "connections": [[0, 5], [1, 3]],
}


def test_key_ignores_connection_order_duplicates_and_explicit_defaults():
    a = Genome.from_dict(BASE)
    d = copy.deepcopy(BASE)
    d["connections"] = [[1, 3], [0, 5], [1, 3]]
    d["layers"][0].update(kernel=3, dropout=0.0)           # the defaults, written out
    d["parameters"]["base_channels"] = 32.0                # integral float
    d["layers"] = [dict(reversed(list(x.items()))) for x in d["layers"]]  # key order
    b = Genome.from_dict(d)
    assert a.key() == b.key()
    assert a.canonical_json() == b.canonical_json()
    assert a == b and hash(a) == hash(b)


def test_key_ignores_lineage_but_to_dict_keeps_it():
    a = Genome.from_dict(BASE)
    b = Genome.from_dict({**BASE, "generation": 7, "parents": ["ab" * 32]})
    assert a.key() == b.key()
    assert b.to_dict()["generation"] == 7 and b.to_dict()["parents"] == ["ab" * 32]
    c = a.with_lineage(3, ["cd" * 32])
    assert c.key() == a.key() and c.generation == 3


@pytest.mark.parametrize("edit", [
    lambda d: d["parameters"].update(base_channels=16),
    lambda d: d["parameters"].update(sampler_steps=10),
    lambda d: d["layers"][2].update(heads=4),
    lambda d: d["layers"][1].update(kernel=5),
    lambda d: d["layers"][0].update(dropout=0.1),
    lambda d: d.update(connections=[[0, 5]]),
    lambda d: d["layers"].pop(4) and d.update(connections=[[0, 4], [1, 3]]),
])
def test_different_architectures_have_different_keys(edit):
    d = copy.deepcopy(BASE)
    edit(d)
    assert Genome.from_dict(d).key() != Genome.from_dict(BASE).key()


def test_round_trip_json():
    g = Genome.from_dict(BASE)
    assert Genome.from_json(g.to_json()).key() == g.key()
    assert json.loads(g.canonical_json())["connections"] == [[0, 5], [1, 3]]
    assert Genome.from_json(g.to_json(indent=2)).to_dict() == g.to_dict()


def _bad(edit):
    d = copy.deepcopy(BASE)
    edit(d)
    return d


@pytest.mark.parametrize("edit, field, hint", [
    (lambda d: d["layers"][1].update(kind="lstm"), "layers[1].kind", "use one of"),
    (lambda d: d["layers"][0].pop("level"), "layers[0].level", "missing"),
    (lambda d: d.pop("parameters"), "genome.parameters", "missing"),
    (lambda d: d["parameters"].pop("base_channels"), "parameters.base_channels", "missing"),
    (lambda d: d["parameters"].update(base_channels=1000), "parameters.base_channels", "out of range"),
    (lambda d: d["parameters"].update(sampler_steps=0), "parameters.sampler_steps", "out of range"),
    (lambda d: d["parameters"].update(time_emb_dim=63), "parameters.time_emb_dim", "even"),
    (lambda d: d["layers"][2].update(heads=3), "layers[2].heads", "divisor of 64"),
    (lambda d: d["parameters"].update(norm_groups=5), "parameters.norm_groups", "divisor"),
    (lambda d: d["layers"][4].update(kind="norm", groups=7) or d["layers"][4].pop("fn"), "layers[4].groups",
     "divisor of 32"),
    (lambda d: d["layers"][3].update(level=5), "layers[3].level", "out of range"),
    (lambda d: d["layers"][2].update(level=0), "layers[2].level", "lowest resolution"),
    (lambda d: d["layers"][1].update(side="up"), "layers[2].side", "order layers"),
    (lambda d: d.update(connections=[[0, 9]]), "connections[0]", "does not exist"),
    (lambda d: d.update(connections=[[0, 3]]), "connections[0]", "same resolution level"),
    (lambda d: d.update(connections=[[5, 0]]), "connections[0]", "down layer to an up layer"),
    (lambda d: d["layers"][1].update(kernel=4), "layers[1].kernel", "use one of"),
    (lambda d: d["layers"][0].update(dropout=0.9), "layers[0].dropout", "[0, 0.5]"),
    (lambda d: d["layers"][0].update(colour="red"), "layers[0]", "unknown field 'colour'"),
    (lambda d: d.update(extra=1), "genome", "unknown field 'extra'"),
    (lambda d: d["parameters"].update(base_channels=True), "parameters.base_channels", "not an integer"),
])
def test_invalid_genomes_name_the_field_and_the_fix(edit, field, hint):
    with pytest.raises(GenomeError) as e:
        Genome.from_dict(_bad(edit))
    msg = str(e.value)
    assert field in msg and hint in msg
    assert "\n" not in msg


def test_load_errors_are_user_errors(tmp_path):
    p = tmp_path / "g.json"
    p.write_text("{not json")
    with pytest.raises(GenomeError, match="not valid JSON"):
        Genome.load(p)
    with pytest.raises(GenomeError, match="cannot read"):
        Genome.load(tmp_path / "missing.json")


def test_no_silent_repair_on_load():
    d = _bad(lambda d: d.update(connections=[[0, 3]]))
    with pytest.raises(GenomeError):
        Genome.from_dict(d)
