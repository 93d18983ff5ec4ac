"""Lineage: every record names the edit that made it; ``lineage KEY`` walks back to the
initial population, across a warm start, and draws the graph. Real in-process diffusion
searches at smoke fidelity (a few seconds each)."""

import json

import numpy as np
import pytest

from evodiff_ray.adapt.lineage import ancestry, format_ancestry
from evodiff_ray.cli import main
from evodiff_ray.config import load_config
from evodiff_ray.genome import Genome
from evodiff_ray.operators import crossover, mutate
from evodiff_ray.operators.sampling import sample_genome
from evodiff_ray.search import search
from evodiff_ray.space import SearchSpace

TINY_SPACE = {"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4,
              "sampler_steps": [2, 4], "time_emb_dims": [16], "heads": [1, 2]}


def tiny_search(runs_dir, search_id, **overrides):
    return search(load_config(overrides={
        "problem": "diffusion", "pop_size": 4, "generations": 3, "seed": 2, "backend": "local",
        "search_id": search_id, "runs_dir": str(runs_dir), "no_cache": True, "no_tracking": True,
        "fidelity": "smoke",
        "problem_options": {"fd_samples": 32, "latency_batch": 2, "latency_repeats": 1, "space": TINY_SPACE,
                            "threads": 1},
        **overrides}))


def test_operators_name_the_edit_and_it_stays_outside_the_key():
    space = SearchSpace()
    rng = np.random.default_rng(0)
    a, b = sample_genome(space, rng), sample_genome(space, rng)
    assert a.origin == "sample"
    c, _ = crossover(a, b, space, rng)
    assert c.origin == "crossover" and set(c.parents) == {a.key(), b.key()}
    m = mutate(c, space, rng, generation=c.generation, parents=c.parents, origin=c.origin)
    assert m.origin.startswith("crossover+mutation:") and len(m.origin) > len("crossover+mutation:")
    plain = mutate(a, space, rng)
    assert plain.origin.startswith("mutation:")
    # lineage round-trips through JSON and never changes the key
    again = Genome.from_dict(json.loads(m.to_json()))
    assert again.origin == m.origin and again.key() == m.key()
    assert m.with_lineage(0, (), origin="seed:x").key() == m.key()
    with pytest.raises(Exception, match="origin"):
        Genome.from_dict({**a.to_dict(), "origin": 3})


@pytest.mark.slow
def test_records_and_front_carry_the_edit_and_lineage_reaches_the_initial_population(runs_dir, capsys):
    r = tiny_search(runs_dir, "a")
    first_gen = r.records[0]["generation"]
    for rec in r.records:
        if rec["generation"] == first_gen:
            assert rec["origin"] == "sample" and rec["parents"] == []
        else:
            assert rec["origin"] in ("crossover",) or "mutation:" in rec["origin"]
            assert rec["parents"], rec
    assert all(p["origin"] for p in r.points)            # the front JSON carries it too
    on_disk = json.loads((r.run_dir / "front.json").read_text())
    assert [p["origin"] for p in on_disk["points"]] == [p["origin"] for p in r.points]

    late = max(r.records, key=lambda rec: rec["generation"])
    nodes = ancestry(late["key"][:10], runs_dir=runs_dir)
    assert nodes[0].key == late["key"] and nodes[0].origin == late["origin"]
    assert {n.generation for n in nodes} >= {first_gen, late["generation"]}
    assert all(not n.missing for n in nodes)
    # every path ends in the initial population, whose records were sampled
    assert all(n.origin == "sample" for n in nodes if not n.parents)

    png = runs_dir / "g.png"
    assert main(["lineage", late["key"][:10], "--runs-dir", str(runs_dir), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert late["key"][:12] in out and "sample" in out and png.stat().st_size > 5000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_key_or_search_is_a_one_line_usage_error(runs_dir, capsys):
    assert main(["lineage", "feedbeef", "--runs-dir", str(runs_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no candidate with key 'feedbeef'" in err and "\n" not in err
    assert main(["lineage", "feedbeef", "--search-id", "nope", "--runs-dir", str(runs_dir)]) == 2
    assert "no search 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_lineage_runs_back_across_a_warm_start(runs_dir, capsys):
    src = tiny_search(runs_dir, "src")
    late = max(src.points, key=lambda p: p["generation"])
    warm = tiny_search(runs_dir, "warm", seed_from="src", generations=2, seed=7)
    seeded = [rec for rec in warm.records if rec["origin"] == "seed:search:src"]
    assert {rec["key"] for rec in seeded} == {p["key"] for p in src.points}
    # a child of a seed in the warm search: its ancestry crosses into the source search
    child = next((rec for rec in warm.records if set(rec["parents"]) & {late["key"]}), None)
    start = child or next(rec for rec in seeded if rec["key"] == late["key"])
    nodes = ancestry(start["key"], search_id="warm", runs_dir=runs_dir)
    assert {n.search_id for n in nodes} == {"warm", "src"}
    crossing = next(n for n in nodes if n.search_id == "warm" and n.origin == "seed:search:src")
    assert crossing.parents and crossing.parents[0][0] == "src"
    assert any(n.search_id == "src" and n.origin == "sample" for n in nodes)
    text = format_ancestry(nodes)
    assert "[src]" in text and "[warm]" in text
    assert main(["lineage", start["key"], "--search-id", "warm", "--runs-dir", str(runs_dir)]) == 0
    assert "2 search(es)" in capsys.readouterr().out
    assert (runs_dir / "warm" / f"lineage-{start['key'][:12]}.png").is_file()
