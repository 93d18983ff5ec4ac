"""DiffusionProblem: the plug-in the engine searches (pymoo view, JSON, settings, evaluation)."""

from __future__ import annotations

import dataclasses
import inspect
import math
import pickle

import numpy as np
import pytest

from evodiff_ray.diffusion.fidelity import Fidelity
from evodiff_ray.core.errors import UsageError
from evodiff_ray.genome import Genome
from evodiff_ray.problems import make_problem
from evodiff_ray.problems.diffusion import DiffusionProblem, DiffusionSettings, baseline_genome

UNTRAINED = Fidelity("untrained", train_steps=0, batch_size=32, lr=4e-3, ema_decay=0.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_builds_it_and_rejects_bad_options():
    p = make_problem("diffusion", {"fidelity": "quick", "dataset": "digits", "seed": 3})
    assert isinstance(p, DiffusionProblem) and p.fidelity.name == "quick"
    assert p.objective_names == ("quality_fd", "latency_ms", "memory_mb")
    with pytest.raises(UsageError):
        make_problem("diffusion", {"warp_drive": True})
    with pytest.raises(UsageError, match="unknown fidelity"):
        make_problem("diffusion", {"fidelity": "ludicrous"})
    with pytest.raises(UsageError, match="latency_batch"):
        make_problem("diffusion", {"latency_batch": 0})


def test_pymoo_problem_is_one_object_variable():
    p = DiffusionProblem()
    pp = p.pymoo_problem()
    assert pp.n_var == 1 and pp.n_obj == 3 and pp.n_ieq_constr == len(p.constraint_names) >= 1
    assert pp.vtype is object
    assert "params" in p.constraint_names


def test_json_round_trip_and_key_ignores_lineage():
    p = DiffusionProblem()
    g = baseline_genome()
    data = p.to_json(np.array([g], dtype=object))
    assert p.from_json(data) == g
    child = g.with_lineage(3, ["abc"])
    assert p.key(child) == p.key(g) == g.key()
    with pytest.raises(UsageError):
        p.from_json({"parameters": {}})


def test_one_frozen_settings_object_goes_whole_to_the_bench(tmp_path_factory):
    p = DiffusionProblem(fidelity=UNTRAINED, latency_batch=4, latency_repeats=1, fd_samples=50, seed=3,
                         cache_dir=str(tmp_path_factory.getbasetemp() / "evodiff-cache"))
    assert isinstance(p.settings, DiffusionSettings) and p.fidelity is p.settings.fidelity
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.settings.seed = 4
    p.setup()
    assert p.evaluator.settings is p.settings             # the bench reads the same object
    fit = p.evaluate(baseline_genome())
    assert fit.feasible, fit.reason
    assert fit.extras["latency_batch"] == 4 and fit.extras["fd_samples"] == 50 and fit.extras["seed"] == 3
    assert len(fit.extras["latency_runs_ms"]) == 1
    # the resolved settings (the key) name the digest the bench measured on
    assert p.evaluation_settings().dataset_digest == p.evaluator.dataset.digest == fit.extras["dataset"]


def test_defaults_are_stated_once_in_the_settings():
    defaults = DiffusionSettings()
    for name, param in inspect.signature(DiffusionProblem.__init__).parameters.items():
        if name in {f.name for f in dataclasses.fields(DiffusionSettings)}:
            expected = defaults.fidelity.name if name == "fidelity" else getattr(defaults, name)
            assert param.default == expected, name


def test_evaluation_settings_are_resolved_once():
    p = DiffusionProblem(fidelity="quick")
    a = p.evaluation_settings()
    assert a is p.evaluation_settings()
    d = a.key_dict()
    assert d["problem"] == "diffusion" and d["fidelity"]["name"] == "quick" and len(d["dataset"]) == 64
    assert d["device_class"] in ("cpu", "cuda", "mps") and d["processor"] and d["threads"] >= 1


def test_describes_itself_to_the_generic_layers():
    from evodiff_ray.hardware.calibration import CalibrationTracker

    p = DiffusionProblem(latency_batch=8)
    assert p.baseline() == baseline_genome()
    (tracker,) = p.trackers()
    assert isinstance(tracker, CalibrationTracker) and tracker.options["batch"] == 8
    assert DiffusionProblem.target_options({"mode": "predict"}) == {"target_mode": "predict"}
    assert DiffusionProblem.worker_options(threads=3) == {"threads": 3}
    assert make_problem("diffusion", DiffusionProblem.worker_options(threads=3)).evaluation_settings().threads == 3


def test_operators_drive_nsga2_ask_over_genomes():
    from evodiff_ray.strategies.nsga2 import make_algorithm

    p = DiffusionProblem()
    ops = p.operators()
    assert {"sampling", "crossover", "mutation"} <= set(ops)
    algorithm = make_algorithm(p, pop_size=6, seed=1)
    pop = algorithm.ask()
    genomes = [ind.X[0] for ind in pop]
    assert all(isinstance(g, Genome) for g in genomes)
    assert all(p.from_json(p.to_json(ind.X)) == g for ind, g in zip(pop, genomes))


def test_evaluate_adds_space_constraints_and_survives_pickling(tmp_path_factory):
    p = DiffusionProblem(fidelity=UNTRAINED, latency_repeats=1, fd_samples=100,
                         cache_dir=str(tmp_path_factory.getbasetemp() / "evodiff-cache"))
    p.setup()
    fit = p.evaluate(np.array([baseline_genome()], dtype=object))
    assert fit.feasible, fit.reason
    assert set(fit.constraints) == set(p.constraint_names)
    assert fit.constraints["params"] < 0  # the baseline is well inside max_params
    # a pickled problem (as Ray ships it to an actor) leaves its warm state behind and
    # evaluates to the same fitness: quality and memory are deterministic for a seed
    blob = pickle.dumps(p)
    assert len(blob) < 20_000          # the dataset alone pickles to ~0.5 MB: it was left behind
    clone = pickle.loads(blob)
    assert clone.fidelity == p.fidelity and clone.evaluation_settings() == p.evaluation_settings()
    again = clone.evaluate(np.array([baseline_genome()], dtype=object))
    assert again.feasible, again.reason
    assert again.objectives["quality_fd"] == pytest.approx(fit.objectives["quality_fd"], rel=1e-6)
    assert again.objectives["memory_mb"] == pytest.approx(fit.objectives["memory_mb"], rel=1e-6)
    assert 0 < again.objectives["latency_ms"] < 10 * fit.objectives["latency_ms"]  # timed, so only alike
    assert again.constraints == fit.constraints
    assert {k: again.measured_on[k] for k in ("device", "chip")} == {k: fit.measured_on[k] for k in ("device", "chip")}
    fail = p.evaluate(baseline_genome().with_lineage(1, []))  # same genome: still evaluates
    assert fail.feasible
    boom = DiffusionProblem(fidelity=Fidelity("boom", 50, 16, 1e12, 0.0, 0.0, 0.0), fd_samples=100,
                            cache_dir=str(tmp_path_factory.getbasetemp() / "evodiff-cache"))
    bad = boom.evaluate(baseline_genome())
    assert not bad.feasible and all(math.isinf(v) for v in bad.constraints.values())


@pytest.mark.ray
@pytest.mark.slow
def test_on_ray_the_key_names_the_threads_the_actors_measure_with(runs_dir, ray_runtime, tmp_path):
    import json

    from evodiff_ray.cache import FitnessCache, LocalRedis
    from evodiff_ray.config import load_config
    from evodiff_ray.core.key import cache_key
    from evodiff_ray.search import search

    space = {"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4,
             "sampler_steps": [2], "time_emb_dims": [16], "heads": [1]}
    with LocalRedis(tmp_path / "redis") as server:
        config = load_config(overrides={
            "problem": "diffusion", "pop_size": 4, "max_evaluations": 4, "seed": 1, "workers": 1,
            "runs_dir": str(runs_dir), "redis_url": server.url, "no_tracking": True, "fidelity": "smoke",
            # a stale threads option: the actors run with actor.num_cpus (1) threads, and so must the key
            "problem_options": {"fd_samples": 64, "latency_batch": 4, "latency_repeats": 1, "space": space,
                                "threads": 2},
        })
        r = search(config)
        saved = json.loads((r.run_dir / "config.json").read_text())
        assert saved["problem_options"]["threads"] == 1
        settings = make_problem("diffusion", saved["problem_options"]).evaluation_settings()
        assert settings.key_dict()["threads"] == 1
        fits = FitnessCache(server.url).get_many([cache_key(rec["key"], settings) for rec in r.records])
    assert len(fits) == 4 and all(f is not None for f in fits), "every result is cached under that key"
    assert {f.measured_on["threads"] for f in fits} == {1}
