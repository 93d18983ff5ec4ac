"""Pinning on a multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``).

Head (1 CPU) + "mac" nodes advertising ``apple_silicon`` / ``apple_m2_max`` resources and
labels, as ``cluster/join-mac-worker.sh`` does on a real Mac. The module owns its cluster
(starting one takes ~17 s on 2 cores): a session runtime (``ray_runtime`` in
tests/conftest.py) is shut down first and started again afterwards, and the cluster's
processes are stopped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evodiff_ray.hardware.targets import ACCELERATOR_LABEL, CHIP_LABEL, plan_target

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HERE = str(Path(__file__).resolve().parent)
MAC_RESOURCES = {"apple_silicon": 1, "apple_m2_max": 1}
MAC_LABELS = {ACCELERATOR_LABEL: "apple-silicon", CHIP_LABEL: "m2-max"}


@pytest.fixture(scope="module")
def cluster():
    """A head plus one m2-max node, shared by this module (the node-removal test runs last
    and changes it); yields (ray, Cluster, mac_node_id)."""
    import ray
    from ray.cluster_utils import Cluster

    had_session_runtime = ray.is_initialized()
    ray.shutdown()  # a Cluster needs its own runtime, not the session's
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    mac = c.add_node(num_cpus=1, resources=MAC_RESOURCES, labels=MAC_LABELS)
    c.wait_for_nodes()
    # the test problems live next to this file: workers import them through PYTHONPATH
    ray.init(address=c.address, logging_level="WARNING", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": HERE}})
    try:
        yield ray, c, mac.node_id
    finally:
        ray.shutdown()
        c.shutdown()
        if had_session_runtime:  # put back what tests/conftest.py's ray_runtime fixture started
            ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)


def _pool(ray, problem, options, plan, workers=1, **kw):
    from evodiff_ray.evaluation.pool import EvaluatorPool

    return EvaluatorPool(problem, options, workers, num_cpus=1, resources=plan["resources"],
                         label_selector=plan["label_selector"], start_timeout_s=60, **kw)


def _tasks(problem, xs):
    from evodiff_ray.core.evaluator import Task

    return [Task(i, problem.key(x), problem.to_json(x)) for i, x in enumerate(xs)]


def test_evaluators_for_a_present_chip_land_only_on_its_node(cluster):
    ray, c, mac_id = cluster
    import pinning_problem

    plan = plan_target("m2-max", ray.nodes())
    assert plan["mode"] == "measure" and plan["nodes"] == [mac_id]
    assert plan["label_selector"] == {CHIP_LABEL: "m2-max"}
    problem = pinning_problem.vector()
    with _pool(ray, "pinning_problem:vector", {}, plan) as pool:
        outcomes = pool.evaluate(_tasks(problem, [[i / 10, 0.0] for i in range(6)]), poll_s=0.2)
    assert len(outcomes) == 6
    assert {o.fitness.measured_on["node_id"] for o in outcomes} == {mac_id}


def test_a_chip_no_node_has_is_predicted_and_labelled(cluster):
    ray, c, mac_id = cluster
    import pinning_problem

    from evodiff_ray.operators import sample_population
    from evodiff_ray.space import SearchSpace

    plan = plan_target("m3-max", ray.nodes())
    assert plan["mode"] == "predict" and plan["resources"] == {} and plan["label_selector"] == {}
    genomes = sample_population(SearchSpace(), 4, np.random.default_rng(0))
    problem = pinning_problem.genome("m3-max")
    with _pool(ray, "pinning_problem:genome", {"target_chip": plan["chip"]}, plan) as pool:
        outcomes = pool.evaluate(_tasks(problem, genomes), poll_s=0.2)
    for o in outcomes:
        on = o.fitness.measured_on
        assert on["predicted"] == ["latency_ms", "memory_mb"] and on["chip"] == "m3-max"
        assert "measured_latency_ms" in o.fitness.extras
    # the front document (DESIGN section 4) carries the label through
    from evodiff_ray.core.front import front_json

    records = [{"key": o.task.key, "x": o.task.x, "generation": 0, "fitness": o.fitness.to_dict()} for o in outcomes]
    doc = front_json(search_id="t", status="finished", generation=0, evaluations=len(records), cache={},
                     utilization=None, objective_names=problem.objective_names, front_records=records)
    assert all(pt["measured_on"]["predicted"] == ["latency_ms", "memory_mb"] for pt in doc["points"])


def test_removing_the_node_mid_search_loses_no_evaluation(cluster, tmp_path):
    """Two m2-max nodes, one evaluator: kill the node it runs on; the search still gets every evaluation."""
    ray, c, first_id = cluster
    from evodiff_ray.config import load_config
    from evodiff_ray.search import CallbackTracker, search

    second = c.add_node(num_cpus=1, resources=MAC_RESOURCES, labels=MAC_LABELS)
    c.wait_for_nodes()
    plan = plan_target("m2-max", ray.nodes())
    assert sorted(plan["nodes"]) == sorted([first_id, second.node_id])
    config = load_config(overrides={
        "problem": "pinning_problem:vector", "problem_options": {"delay_s": 0.05}, "pop_size": 6,
        "generations": None, "max_evaluations": 24, "mode": "async", "seed": 1, "workers": 1,
        "runs_dir": str(tmp_path), "actor.resources": plan["resources"],
        "actor.label_selector": plan["label_selector"], "actor.start_timeout_s": 120.0,
        "no_cache": True, "no_tracking": True,
    })
    import pinning_problem

    pool = _pool(ray, config.problem, config.problem_options, plan, objective_names=("f1", "f2"), max_attempts=5)
    pool.start_timeout_s = 120.0
    probe = pinning_problem.vector()
    (first,) = pool.evaluate(_tasks(probe, [[0.5, 0.5]]), poll_s=0.2)
    victim = first.fitness.measured_on["node_id"]          # the node the single actor runs on
    removed = []

    def remove_once(stats, front):
        if not removed and stats["evaluations"] >= 6:
            node = next(n for n in c.list_all_nodes() if n.node_id == victim)
            c.remove_node(node)
            removed.append(node.node_id)

    try:
        result = search(config, evaluator=pool, trackers=[CallbackTracker(remove_once)])
    finally:
        pool.close()
    assert removed == [victim]
    ordinals = [r["ordinal"] for r in result.records]
    assert len(ordinals) == 24 and len(set(ordinals)) == 24
    assert all(r["fitness"]["feasible"] for r in result.records)
    nodes = {r["fitness"]["measured_on"]["node_id"] for r in result.records}
    assert nodes <= {first_id, second.node_id} and len(nodes) == 2  # moved to the surviving Mac

