"""DiffusionProblem: the plug-in the engine searches (pymoo view, JSON, settings, evaluation)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from evodiff_ray.diffusion.fidelity import Fidelity
from evodiff_ray.core.errors import UsageError
from evodiff_ray.genome import Genome
from evodiff_ray.problems import make_problem
from evodiff_ray.problems.diffusion import DiffusionProblem, baseline_genome

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


def test_evaluation_settings_name_everything_that_changes_fitness():
    a = DiffusionProblem(fidelity="quick").evaluation_settings()
    b = DiffusionProblem(fidelity="standard").evaluation_settings()
    assert a["problem"] == "diffusion" and a["fidelity"]["name"] == "quick"
    assert a["fidelity"]["train_steps"] < b["fidelity"]["train_steps"]
    assert len(a["dataset"]) == 64 and a["dataset"] == b["dataset"]
    assert a["device_class"] in ("cpu", "cuda", "mps") and a["code_version"]
    assert DiffusionProblem(seed=1).evaluation_settings() != DiffusionProblem(seed=2).evaluation_settings()


def test_operators_drive_nsga2_ask_over_genomes():
    from evodiff_ray.search.algorithm import make_algorithm

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
    clone = pickle.loads(pickle.dumps(p))
    assert clone._evaluator is None and clone.fidelity == p.fidelity
    fail = p.evaluate(baseline_genome().with_lineage(1, []))  # same genome: still evaluates
    assert fail.feasible
    boom = DiffusionProblem(fidelity=Fidelity("boom", 50, 16, 1e12, 0.0, 0.0, 0.0), fd_samples=100,
                            cache_dir=str(tmp_path_factory.getbasetemp() / "evodiff-cache"))
    bad = boom.evaluate(baseline_genome())
    assert not bad.feasible and all(math.isinf(v) for v in bad.constraints.values())
