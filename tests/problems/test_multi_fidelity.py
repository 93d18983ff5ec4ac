"""Multi-fidelity on the real diffusion problem: probes, rungs continued from stored weights, caching apart."""

from __future__ import annotations

import json

import pytest

from evodiff_ray.cli import main
from evodiff_ray.config import load_config
from evodiff_ray.core.key import cache_key
from evodiff_ray.problems.diffusion import DiffusionProblem, baseline_genome
from evodiff_ray.search import search

TINY_SPACE = {"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4,
              "sampler_steps": [2, 4], "time_emb_dims": [16], "heads": [1, 2]}
OPTIONS = {"fd_samples": 64, "latency_batch": 4, "latency_repeats": 1, "threads": 1, "seed": 3}


@pytest.fixture
def feature_cache(tmp_path):
    """This test's cache dir: its feature net and its trunks."""
    d = tmp_path / "cache"
    d.mkdir()
    return d


def _problem(cache_dir, **kw):
    return DiffusionProblem(fidelity="smoke", rungs=[0.5, 1, 2], cache_dir=str(cache_dir), **{**OPTIONS, **kw})


@pytest.mark.slow
def test_a_continued_rung_equals_training_straight_through(tmp_path, feature_cache):
    g = baseline_genome()
    cont = _problem(feature_cache)
    probe = cont.evaluate_rung(g, -1)
    assert probe.feasible and probe.extras["train_steps"] == 0
    assert probe.objectives["latency_ms"] > 0 and probe.objectives["memory_mb"] > 0
    r0 = cont.evaluate_rung(g, 0)
    r1 = cont.evaluate_rung(g, 1)               # continues from rung 0's stored trunk
    recipe = cont.settings.rung_recipe
    assert r0.extras["continued_from_step"] == 0
    assert r1.extras["continued_from_step"] == recipe.trunk_steps(0)
    assert r1.extras["train_steps"] == recipe.budget(1)
    assert r1.extras["train_steps_spent"] == recipe.budget(1) - recipe.trunk_steps(0)

    # straight through: a store with no trunks in it (another cache dir), same seeds
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    for f in feature_cache.glob("*.pt"):     # the feature net, not the trunks
        (fresh_dir / f.name).write_bytes(f.read_bytes())
    straight = _problem(fresh_dir).evaluate_rung(g, 1)
    assert straight.extras["continued_from_step"] == 0
    assert straight.extras["train_steps_spent"] == recipe.budget(1)
    assert straight.objectives["quality_fd"] == r1.objectives["quality_fd"]
    assert r0.objectives["quality_fd"] != r1.objectives["quality_fd"]


def test_rung_cache_keys_are_apart_from_the_device():
    p = DiffusionProblem(fidelity="smoke", rungs=[0.5, 1], **OPTIONS)
    q = DiffusionProblem(fidelity="smoke", rungs=[0.5, 1], **{**OPTIONS, "latency_repeats": 7})
    k = baseline_genome().key()
    # a trained rung does not depend on how latency is measured or on which device
    assert cache_key(k, p.rung_settings(0)) == cache_key(k, q.rung_settings(0))
    q.adopt_worker_facts({"device_class": "mps", "processor": "Apple M2 Max"})
    assert cache_key(k, p.rung_settings(1)) == cache_key(k, q.rung_settings(1))
    # a probe does
    assert cache_key(k, p.rung_settings(-1)) != cache_key(k, q.rung_settings(-1))
    # and the rungs themselves are part of the quality key
    r = DiffusionProblem(fidelity="smoke", rungs=[0.5, 2], **OPTIONS)
    assert cache_key(k, p.rung_settings(0)) != cache_key(k, r.rung_settings(0))
    assert p.rung_count() == 2 and DiffusionProblem(fidelity="smoke").rung_count() == 0


@pytest.mark.slow
@pytest.mark.redis
def test_multi_fidelity_search_records_rungs_and_a_second_device_reuses_training(runs_dir, redis_server,
                                                                                feature_cache):
    def run(search_id, gens=2, **extra):
        config = load_config(overrides={
            "problem": "diffusion", "pop_size": 6, "generations": gens, "seed": 4, "backend": "local",
            "runs_dir": str(runs_dir), "redis_url": redis_server.url, "no_tracking": True, "fidelity": "smoke",
            "rungs": "0.5,1,2", "search_id": search_id,
            "problem_options": {**OPTIONS, "space": TINY_SPACE, "cache_dir": str(feature_cache), **extra},
        })
        return search(config)

    a = run("mf-a")
    rungs = [r["fitness"]["extras"].get("rung") for r in a.records]
    assert set(rungs) - {None} <= {-1, 0, 1, 2} and 0 in rungs
    trained = [r for r in a.records if r["fitness"]["feasible"]]
    assert trained and all(r["fitness"]["extras"]["rung"] >= 0 for r in trained)
    assert sum(r["fitness"]["extras"]["rung"] == 0 for r in trained) >= sum(
        r["fitness"]["extras"]["rung"] == 2 for r in trained)            # halving: fewer go higher
    stats = a.history[-1]
    assert stats["evaluations"] == 12
    front = json.loads((a.run_dir / "front.json").read_text())
    assert all(p["rung"] is not None and p["train_steps"] > 0 for p in front["points"])
    trunks = list((feature_cache / "trunks").rglob("*.pt"))
    assert trunks, "trunks stored for continuation"

    # a second search measuring latency differently. Its latencies differ, so selection may
    # differ later on; but wherever it measures a genome at the rung A did, the trained rung
    # is a cache hit (quality from training is not keyed by how latency is measured)
    b = run("mf-b", gens=1, latency_repeats=2)   # generation 1: the same genomes as A's
    at_a = {(r["key"], r["fitness"]["extras"].get("rung")): r for r in a.records if r["fitness"]["feasible"]}
    same = [(r, at_a[(r["key"], r["fitness"]["extras"]["rung"])]) for r in b.records
            if r["fitness"]["feasible"] and (r["key"], r["fitness"]["extras"]["rung"]) in at_a]
    assert [r["key"] for r in b.records] == [r["key"] for r in a.records[:6]]
    assert len(same) >= 2
    for rb, ra in same:
        assert rb["fitness"]["objectives"]["quality_fd"] == ra["fitness"]["objectives"]["quality_fd"]
        assert rb["fitness"]["extras"]["train_steps_spent"] == 0, "no training repeated"
    spent = [sum(r["fitness"]["extras"].get("train_steps_spent") or 0 for r in recs)
             for recs in (a.records[:6], b.records)]
    assert spent[1] < spent[0]


@pytest.mark.parametrize("bad", ["1,0.5", "0,1", "a,b", "1,1", "inf"])
def test_bad_rungs_are_one_line_errors(bad, tmp_path, capsys):
    code = main(["search", "--problem", "diffusion", "--rungs", bad, "--runs-dir", str(tmp_path), "--backend",
                 "local", "--no-cache", "--no-tracking"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "rungs" in err and "\n" not in err and "Traceback" not in err


def test_rungs_for_a_problem_that_does_not_train_is_an_error(tmp_path, capsys):
    code = main(["search", "--problem", "zdt1", "--rungs", "0.5,1", "--runs-dir", str(tmp_path), "--backend",
                 "local", "--no-cache", "--no-tracking"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "rungs" in err and "\n" not in err


@pytest.mark.slow
def test_registration_takes_the_measured_model_from_the_trunk_store(tmp_path, feature_cache):
    """train_model(rung=r) hands over the model measured at r: the stored trunk plus its decay
    branch, equal to training straight through; without a stored trunk it trains."""
    import torch

    from evodiff_ray.data import load_dataset
    from evodiff_ray.denoiser import build_denoiser
    from evodiff_ray.diffusion import wsd
    from evodiff_ray.diffusion.schedule import linear_schedule

    g = baseline_genome()
    p = _problem(feature_cache)
    p.evaluate_rung(g, 0)
    p.evaluate_rung(g, 1)
    recipe, seed = p.settings.rung_recipe, p.settings.seed
    said: list[str] = []
    model = p.train_model(g, models_dir=tmp_path / "models", fidelity="smoke", rung=1, progress=said.append)
    assert model.meta["from_trunk"] and model.meta["rung"] == 1
    assert model.meta["fidelity"]["train_steps"] == recipe.budget(1)
    assert any("trunk" in m for m in said)
    got = torch.load(model.artifacts["weights"], map_location="cpu", weights_only=True)

    ds = load_dataset(p.settings.dataset, resolution=p.settings.resolution)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_denoiser(g, ds.channels)
    state = wsd.start(net, ds.train.shape[0], recipe.fidelity, seed)
    wsd.advance(state, ds.train, linear_schedule(), recipe, recipe.trunk_steps(1))
    straight = wsd.branch(state, ds.train, linear_schedule(), recipe, 1).state_dict()
    assert got.keys() == straight.keys()
    assert all(torch.equal(got[k], straight[k]) for k in got)

    # no trunk stored at rung 2: trained at the given fidelity instead
    trained = p.train_model(g, models_dir=tmp_path / "models", fidelity="smoke", rung=2)
    assert not trained.meta.get("from_trunk") and trained.meta["fidelity"]["name"] == "smoke"
