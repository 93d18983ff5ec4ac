"""A tiny real diffusion search on Ray, in both modes: genomes trained, sampled and measured."""

import json

import pytest

from evodiff_ray.config import load_config
from evodiff_ray.genome import Genome
from evodiff_ray.search import search

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY_SPACE = {"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4,
              "sampler_steps": [2, 4], "time_emb_dims": [16], "heads": [1, 2]}


@pytest.mark.parametrize("mode", ["generational", "async"])
def test_tiny_diffusion_search_completes(runs_dir, ray_runtime, mode):
    config = load_config(overrides={
        "problem": "diffusion", "mode": mode, "pop_size": 4, "max_evaluations": 8, "seed": 5, "workers": 2,
        "runs_dir": str(runs_dir), "no_cache": True, "no_tracking": True, "fidelity": "smoke",
        "problem_options": {"fd_samples": 64, "latency_batch": 4, "latency_repeats": 2, "space": TINY_SPACE,
                            "threads": 1},
    })
    r = search(config)
    assert r.front["evaluations"] == 8 and r.front["status"] == "finished"
    assert r.points, "a feasible front"
    for p in r.points:
        g = Genome.from_dict(p["genome"])
        assert g.parameters["base_channels"] in (4, 8)
        assert p["objectives"]["quality_fd"] > 0 and p["objectives"]["latency_ms"] > 0
        assert p["objectives"]["memory_mb"] > 0
        assert p["measured_on"]["device"] == "cpu" and p["measured_on"]["predicted"] == []
    assert {rec["fitness"]["measured_on"].get("node") for rec in r.records} - {None}
    cal = json.loads((r.run_dir / "predictor_calibration.json").read_text())   # stored with the run
    assert cal["device"] == "cpu" and cal["candidates"] >= 4


def test_target_no_node_has_is_predicted_and_labelled_end_to_end(runs_dir):
    config = load_config(overrides={
        "problem": "diffusion", "pop_size": 4, "max_evaluations": 4, "seed": 2, "backend": "local",
        "runs_dir": str(runs_dir), "no_cache": True, "no_tracking": True, "fidelity": "smoke",
        "target": "m3-max",
        "problem_options": {"fd_samples": 64, "latency_batch": 4, "latency_repeats": 1, "space": TINY_SPACE,
                            "threads": 1},
    })
    r = search(config)
    plan = json.loads((r.run_dir / "target_plan.json").read_text())
    assert plan["mode"] == "predict" and plan["chip"] == "m3-max"
    saved = json.loads((r.run_dir / "config.json").read_text())
    assert saved["problem_options"]["target_mode"] == "predict"        # recorded for --resume
    assert r.points
    for p in r.points:
        assert sorted(p["measured_on"]["predicted"]) == ["latency_ms", "memory_mb"]
        assert p["measured_on"]["chip"] == "m3-max"
