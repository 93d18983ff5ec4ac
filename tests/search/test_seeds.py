"""Warm starts (``--seed-from``): the source's candidates are the first in generation 0, for
every strategy; bad sources are one-line usage errors (exit 2)."""

import json

import pytest

from evodiff_ray.cli import main
from evodiff_ray.config import load_config
from evodiff_ray.search import search

BASE = {"problem": "zdt1", "pop_size": 8, "generations": 3, "backend": "local", "no_cache": True,
        "no_tracking": True}
TINY_SPACE = {"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4,
              "sampler_steps": [2, 4], "time_emb_dims": [16], "heads": [1, 2]}


def run(runs_dir, search_id, **kw):
    return search(load_config(overrides={**BASE, "runs_dir": str(runs_dir), "search_id": search_id, **kw}))


@pytest.mark.parametrize("strategy", ["nsga2", "random", "optuna"])
def test_seed_from_a_search_puts_its_front_into_the_first_population(runs_dir, strategy):
    src = run(runs_dir, "src", seed=3)
    front_keys = [p["key"] for p in src.points]
    pop = len(front_keys) + 3
    warm = run(runs_dir, f"warm-{strategy}", seed=4, strategy=strategy, seed_from="src", generations=2, pop_size=pop)
    first = [r for r in warm.records if r["generation"] == warm.records[0]["generation"]]
    assert len(first) == pop
    # the seeds come first, in the source front's order, then the strategy's own draws
    assert [r["key"] for r in first][:len(front_keys)] == front_keys
    saved = json.loads((warm.run_dir / "seeds.json").read_text())
    assert saved["source"] == "src" and len(saved["candidates"]) == len(front_keys)


def test_more_seeds_than_the_population_keeps_the_first_and_says_so(runs_dir):
    from evodiff_ray.core.tracker import Tracker

    class Notes(Tracker):
        def __init__(self):
            self.notes = []

        def note(self, message):
            self.notes.append(message)

    src = run(runs_dir, "src", seed=3)
    notes = Notes()
    warm = search(load_config(overrides={**BASE, "runs_dir": str(runs_dir), "search_id": "w", "seed": 4,
                                         "seed_from": "src", "pop_size": 2, "generations": 1}), trackers=[notes])
    assert [r["key"] for r in warm.records[:2]] == [p["key"] for p in src.points[:2]]
    assert any("warm start" in n and f"{len(src.points)} seeds" in n for n in notes.notes), notes.notes


def test_warm_start_resume_replays_from_the_stored_seeds(runs_dir):
    run(runs_dir, "src", seed=3)
    whole = run(runs_dir, "w1", seed=4, seed_from="src", generations=3)
    part = run(runs_dir, "w2", seed=4, seed_from="src", generations=1)
    # the source changes meanwhile (a newer search under the same id would too): the resume must not care
    (runs_dir / "src" / "front.json").write_text(json.dumps({**json.loads((runs_dir / "src" / "front.json").read_text()),
                                                             "points": []}))
    config = load_config(overrides={**BASE, "runs_dir": str(runs_dir), "search_id": "w2", "seed": 4,
                                    "seed_from": "src", "generations": 3})
    resumed = search(config, resume=True)
    assert part.records and [r["key"] for r in resumed.records] == [r["key"] for r in whole.records]


def test_seed_from_a_genome_file_fills_generation_zero_of_a_diffusion_search(runs_dir, tmp_path):
    from evodiff_ray.genome import Genome

    g = {"parameters": {"base_channels": 8, "channel_mults": [1, 2], "time_emb_dim": 16, "sampler_steps": 2,
                        "norm_groups": 4},
         "layers": [{"kind": "residual", "side": "down", "level": 0}, {"kind": "conv", "side": "mid", "level": 1},
                    {"kind": "residual", "side": "up", "level": 0}],
         "connections": [[0, 2]]}
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps([g]))
    r = search(load_config(overrides={
        "problem": "diffusion", "pop_size": 3, "max_evaluations": 3, "seed": 2, "backend": "local",
        "search_id": "d", "runs_dir": str(runs_dir), "no_cache": True, "no_tracking": True, "fidelity": "smoke",
        "seed_from": str(path),
        "problem_options": {"fd_samples": 32, "latency_batch": 2, "latency_repeats": 1, "space": TINY_SPACE,
                            "threads": 1}}))
    assert r.records[0]["key"] == Genome.from_dict(g).key()
    assert r.records[0]["origin"] == "seed:file:seeds.json" and r.records[0]["x"]["generation"] == 0


def _search_cli(runs_dir, *extra):
    return main(["search", "--problem", "diffusion", "--backend", "local", "--no-cache", "--no-tracking",
                 "--pop", "2", "--evaluations", "2", "--runs-dir", str(runs_dir), "--fidelity", "smoke",
                 "--problem-option", f"space={json.dumps(TINY_SPACE)}", *extra])


def test_bad_sources_are_one_line_errors(runs_dir, tmp_path, capsys):
    assert _search_cli(runs_dir, "--seed-from", "no-such-search") == 2
    err = capsys.readouterr().err.strip()
    assert "--seed-from 'no-such-search': not a search" in err and "\n" not in err

    big = {"parameters": {"base_channels": 64, "channel_mults": [1, 2], "time_emb_dim": 16, "sampler_steps": 2,
                          "norm_groups": 4},
           "layers": [{"kind": "residual", "side": "down", "level": 0},
                      {"kind": "residual", "side": "up", "level": 0}]}
    f = tmp_path / "big.json"
    f.write_text(json.dumps(big))
    assert _search_cli(runs_dir, "--seed-from", str(f)) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit this search's space" in err and "base_channels" in err and "\n" not in err

    f.write_text(json.dumps({"parameters": {}, "layers": "x"}))
    assert _search_cli(runs_dir, "--seed-from", str(f)) == 2
    assert "candidate 0" in capsys.readouterr().err

    assert _search_cli(runs_dir, "--seed-from", str(tmp_path / "missing.json")) == 2
    assert "no such file" in capsys.readouterr().err

    assert _search_cli(runs_dir, "--seed-from", "models:/nothing@prod",
                       "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]   # (MLflow logs creating a fresh database first)
    assert err.startswith("evodiff-ray: error: --seed-from models:/nothing@prod: registered model 'nothing' "
                          "has no alias 'prod'")
    assert _search_cli(runs_dir, "--seed-from", "models:/nothing") == 2
    assert "models:/NAME@ALIAS" in capsys.readouterr().err
