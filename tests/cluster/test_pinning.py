"""Pinning on a multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``).

Head (1 CPU) + "mac" nodes advertising ``apple_silicon`` / ``apple_m2_max`` resources and
labels, as ``cluster/join-mac-worker.sh`` does on a real Mac. The module owns its cluster
(starting one takes ~17 s on 2 cores): a session runtime (``ray_runtime`` in
tests/conftest.py) is shut down first and started again afterwards, and the cluster's
processes are stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evodiff_ray.core.tracker import Tracker
from evodiff_ray.hardware.targets import ACCELERATOR_LABEL, CHIP_LABEL

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


def _config(c, tmp_path, search_id, **kw):
    """A search config that names a target and leaves the pinning to ``search()``'s planning."""
    from evodiff_ray.config import load_config

    base = {"problem": "pinning_problem:vector", "pop_size": 6, "generations": 2, "seed": 1,
            "address": c.address, "runs_dir": str(tmp_path),
            "search_id": search_id, "actor.start_timeout_s": 120.0, "no_cache": True, "no_tracking": True}
    base.update(kw)
    config = load_config(overrides=base)
    assert config.actor.resources == {} and config.actor.label_selector == {}   # nothing pinned by hand
    return config


def _plan(tmp_path, search_id):
    return json.loads((tmp_path / search_id / "target_plan.json").read_text())


class RemoveNodeOnce(Tracker):
    """Removes the node that evaluated the latest record, once ``after`` evaluations are told."""

    def __init__(self, cluster, after: int):
        self.cluster, self.after = cluster, after
        self.latest: list = []
        self.removed: list[str] = []

    def on_records(self, records):
        self.latest = records

    def on_generation(self, stats, front):
        if not self.removed and stats["evaluations"] >= self.after:
            victim = self.latest[-1]["fitness"]["measured_on"]["node_id"]   # where the single actor runs
            self.cluster.remove_node(next(n for n in self.cluster.list_all_nodes() if n.node_id == victim))
            self.removed.append(victim)


def test_evaluators_for_a_present_chip_land_only_on_its_node(cluster, tmp_path):
    ray, c, mac_id = cluster
    from evodiff_ray.search import search

    head_id = c.head_node.node_id
    result = search(_config(c, tmp_path, "present", target="m2-max"))
    plan = _plan(tmp_path, "present")
    assert plan["mode"] == "measure" and plan["nodes"] == [mac_id]
    assert plan["resources"] == {"apple_m2_max": 1.0} and plan["label_selector"] == {CHIP_LABEL: "m2-max"}
    assert len(result.records) == 12
    # the head has a free CPU and a session's only actor lands there unless pinned (checked by hand)
    assert {r["fitness"]["measured_on"]["node_id"] for r in result.records} == {mac_id} != {head_id}


def test_a_chip_no_node_has_is_predicted_and_labelled(cluster, tmp_path):
    """The real diffusion problem (``smoke`` fidelity): no m3-max node, so latency and memory are
    predicted for it, and every record and the front say so."""
    ray, c, mac_id = cluster
    from evodiff_ray.search import search

    config = _config(c, tmp_path, "absent", problem="diffusion", target="m3-max", fidelity="smoke", pop_size=2,
                     generations=1, workers=1,
                     problem_options={"latency_repeats": 1, "fd_samples": 100, "threads": 1})
    result = search(config)
    plan = _plan(tmp_path, "absent")
    assert plan["mode"] == "predict" and plan["resources"] == {} and plan["label_selector"] == {}
    assert plan["chip"] == "m3-max" and plan["predicted"] == ["latency_ms", "memory_mb"]
    saved = json.loads((tmp_path / "absent" / "config.json").read_text())
    assert saved["problem_options"]["target_mode"] == "predict"          # planning told the problem
    trained = [r for r in result.records if r["fitness"]["measured_on"].get("device")]
    assert trained, [r["fitness"]["reason"] for r in result.records]
    for r in trained:
        on = r["fitness"]["measured_on"]
        assert on["predicted"] == ["latency_ms", "memory_mb"] and on["chip"] == "m3-max"
        assert on["measured_chip"] != "m3-max" and "measured_latency_ms" in r["fitness"]["extras"]
    # the front document carries the label through
    assert result.points and all(p["measured_on"]["predicted"] == ["latency_ms", "memory_mb"]
                                 for p in result.points)


def test_removing_the_node_mid_search_loses_no_evaluation(cluster, tmp_path):
    """Two m2-max nodes, one evaluator: kill the node it runs on; the search still gets every evaluation."""
    ray, c, first_id = cluster
    from evodiff_ray.search import search

    second = c.add_node(num_cpus=1, resources=MAC_RESOURCES, labels=MAC_LABELS)
    c.wait_for_nodes()
    remover = RemoveNodeOnce(c, after=6)
    config = _config(c, tmp_path, "removal", target="m2-max", problem_options={"delay_s": 0.05},
                     generations=None, max_evaluations=24, mode="async", workers=1)
    result = search(config, trackers=[remover])
    assert sorted(_plan(tmp_path, "removal")["nodes"]) == sorted([first_id, second.node_id])
    assert len(remover.removed) == 1
    ordinals = [r["ordinal"] for r in result.records]
    assert len(ordinals) == 24 and len(set(ordinals)) == 24
    assert all(r["fitness"]["feasible"] for r in result.records)
    nodes = [r["fitness"]["measured_on"]["node_id"] for r in result.records]
    assert set(nodes) == {first_id, second.node_id}       # moved to the surviving Mac
    assert nodes[-1] != remover.removed[0]
