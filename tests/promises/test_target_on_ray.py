"""Promise: ``search --target m2-max`` on a Ray cluster pins the evaluators to the Mac with that chip,
and the chip's memory budget decides feasibility.

The cluster is simulated on this machine (``ray.cluster_utils.Cluster``): a head with one CPU and
no Apple resources, and one node advertising ``apple_silicon`` / ``apple_m2_max`` and the chip's
labels, as ``cluster/join-mac-worker.sh`` makes a real Mac do. The search is the real diffusion
problem at the ``smoke`` fidelity (40 training steps per candidate), planned by ``search()``
itself; the problem only adds the Ray node id to ``measured_on`` (simulated nodes share a
hostname). The memory budget is made small (``memory_fraction``) so that the candidates fall on
both sides of it; on a real Mac the budget is Metal's recommended working set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evodiff_ray.config import load_config
from evodiff_ray.hardware.targets import ACCELERATOR_LABEL, CHIP_LABEL

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HERE = str(Path(__file__).resolve().parent)
MAC_RESOURCES = {"apple_silicon": 1, "apple_m2_max": 1}
MAC_LABELS = {ACCELERATOR_LABEL: "apple-silicon", CHIP_LABEL: "m2-max"}
#: the smallest M2 Max has 32 GB; this share of it is 1 MiB, between the small and the large candidates
FRACTION = 1 / (32 * 1024)


@pytest.fixture(scope="module")
def cluster():
    """A head (1 CPU, nothing Apple) plus one m2-max node (1 CPU); yields (ray, mac_node_id, head_node_id)."""
    import ray
    from ray.cluster_utils import Cluster

    had_session_runtime = ray.is_initialized()
    ray.shutdown()  # a Cluster needs its own runtime, not the session's
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    mac = c.add_node(num_cpus=1, resources=MAC_RESOURCES, labels=MAC_LABELS)
    c.wait_for_nodes()
    # node_problem lives next to this file: the workers import it through PYTHONPATH
    ray.init(address=c.address, logging_level="WARNING", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": HERE}})
    try:
        yield ray, c.address, mac.node_id, c.head_node.node_id
    finally:
        ray.shutdown()
        c.shutdown()
        if had_session_runtime:  # put back what tests/conftest.py's ray_runtime fixture started
            ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)


def test_target_chip_pins_evaluators_and_applies_its_memory_budget(cluster, runs_dir, monkeypatch):
    ray, address, mac_id, head_id = cluster
    from evodiff_ray.hardware.budget import memory_budget_mb
    from evodiff_ray.search import search

    monkeypatch.syspath_prepend(HERE)
    config = load_config(overrides={
        "problem": "node_problem:DiffusionOnNode", "target": "m2-max", "fidelity": "smoke",
        "problem_options": {"memory_fraction": FRACTION, "latency_repeats": 1, "fd_samples": 100, "threads": 1},
        "pop_size": 6, "generations": 1, "seed": 2, "address": address, "runs_dir": str(runs_dir),
        "search_id": "m2", "no_cache": True, "no_tracking": True, "actor.start_timeout_s": 120.0,
    })
    assert config.actor.resources == {}          # nothing pinned by hand: planning must do it
    result = search(config)

    plan = json.loads((runs_dir / "m2" / "target_plan.json").read_text())
    assert plan["mode"] == "measure" and plan["nodes"] == [mac_id]
    assert plan["resources"] == {"apple_m2_max": 1.0} and plan["label_selector"] == {CHIP_LABEL: "m2-max"}
    records = result.records
    assert len(records) == 6
    # every candidate was evaluated on the Mac node, none on the head (which had a free CPU)
    assert {r["fitness"]["measured_on"]["ray_node_id"] for r in records} == {mac_id} != {head_id}
    assert all(r["fitness"]["measured_on"]["predicted"] == [] for r in records)   # measured, not predicted
    # the chip's budget: memory_mb over 1 MiB is infeasible through memory_budget, the rest is not
    budget = memory_budget_mb("m2-max", FRACTION)
    assert budget == pytest.approx(1.0)
    trained = [r["fitness"] for r in records if r["fitness"]["measured_on"].get("device")]
    over = [f for f in trained if f["objectives"]["memory_mb"] > budget]
    under = [f for f in trained if f["objectives"]["memory_mb"] <= budget]
    assert over and under, [f["objectives"]["memory_mb"] for f in trained]   # the seed puts some on each side
    for f in over:
        assert not f["feasible"] and float(f["constraints"]["memory_budget"]) > 0   # JSON holds inf as "inf"
        assert "memory" in f["reason"] and "m2-max" in f["reason"]
    for f in under:
        assert f["feasible"], f["reason"]
        assert f["constraints"]["memory_budget"] == pytest.approx(f["objectives"]["memory_mb"] / budget - 1)
    front_keys = {p["key"] for p in result.points}
    assert front_keys and front_keys <= {r["key"] for r in records if r["fitness"]["feasible"]}
