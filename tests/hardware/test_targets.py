"""--target parsing, plan_target's measure-or-predict decision, and retargeted Fitness records."""

import math

import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.genome import Genome
from evodiff_ray.hardware.budget import memory_budget_mb
from evodiff_ray.hardware.predict import predictor_for
from evodiff_ray.hardware.retarget import apply_memory_budget, precheck_memory, retarget_fitness
from evodiff_ray.hardware.targets import CHIP_LABEL, Target, parse_target, parse_targets, plan_target

HEAD = {"NodeID": "head", "Alive": True, "Resources": {"CPU": 2.0}, "Labels": {}}
MAC = {"NodeID": "mac1", "Alive": True, "Resources": {"CPU": 8.0, "apple_silicon": 1.0, "apple_m2_max": 1.0},
       "Labels": {"evodiff.io/accelerator": "apple-silicon", CHIP_LABEL: "m2-max"}}


def test_parse_target():
    assert parse_target(None) == Target("any") == parse_target("any")
    assert parse_target("apple_silicon").resources() == {"apple_silicon": 1.0}
    t = parse_target("M2 Max")
    assert t.name == "m2-max" and t.resources() == {"apple_m2_max": 1.0} and t.label_selector() == {CHIP_LABEL: "m2-max"}
    assert parse_target("apple_m2_max") == t
    assert [x.name for x in parse_targets("m1, m2-max,m1")] == ["m1", "m2-max"]
    with pytest.raises(UsageError, match="use any, apple_silicon, or a chip"):
        parse_target("m2-maxx")
    with pytest.raises(UsageError, match="cannot be combined"):
        parse_targets("any,m1")


def test_plan_measures_on_a_node_with_the_chip():
    plan = plan_target("m2-max", [HEAD, MAC])
    assert plan["mode"] == "measure" and plan["nodes"] == ["mac1"] and plan["predicted"] == []
    assert plan["resources"] == {"apple_m2_max": 1.0} and plan["label_selector"] == {CHIP_LABEL: "m2-max"}
    assert plan_target("apple_silicon", [HEAD, MAC])["resources"] == {"apple_silicon": 1.0}
    unlabelled = dict(MAC, Labels={})
    assert plan_target("m2-max", [HEAD, unlabelled])["label_selector"] == {}  # resource pin only
    assert plan_target("any", [HEAD, MAC]) | {} == plan_target(None, [HEAD, MAC])


def test_plan_predicts_for_a_chip_no_node_has():
    plan = plan_target("m3-max", [HEAD, MAC, dict(MAC, NodeID="dead", Alive=False, Resources={"apple_m3_max": 1})])
    assert plan["mode"] == "predict" and plan["chip"] == "m3-max"
    assert plan["predicted"] == ["latency_ms", "memory_mb"] and plan["resources"] == {} and plan["label_selector"] == {}
    with pytest.raises(UsageError, match="join-mac-worker"):
        plan_target("apple_silicon", [HEAD])


def genome(base=16):
    return Genome.from_dict({"parameters": {"base_channels": base, "channel_mults": [1], "sampler_steps": 10},
                             "layers": [{"kind": "conv", "side": "down", "level": 0}], "connections": []})


def test_retarget_labels_predictions_and_applies_the_budget():
    measured = Fitness({"quality_fd": 30.0, "latency_ms": 99.0, "memory_mb": 3.0},
                       measured_on={"node": "n", "device": "cpu", "chip": "AMD EPYC", "predicted": []})
    p = predictor_for("m3-max")
    out = retarget_fitness(measured, genome(), p, chip="m3-max", budget_mb=memory_budget_mb("m3-max"))
    assert out.objectives["quality_fd"] == 30.0
    assert out.objectives["latency_ms"] == pytest.approx(p.latency_ms(genome()))
    assert out.extras["measured_latency_ms"] == 99.0 and out.measured_on["measured_chip"] == "AMD EPYC"
    assert out.measured_on["chip"] == "m3-max" and out.measured_on["predicted"] == ["latency_ms", "memory_mb"]
    assert out.feasible and out.constraints["memory_budget"] < 0
    assert measured.objectives["latency_ms"] == 99.0  # the input is not modified
    Fitness.from_dict(out.to_dict())  # still a valid record


def test_over_budget_is_infeasible_before_and_after():
    p = predictor_for("m1")
    assert precheck_memory(genome(), p, 1e6) is None
    assert precheck_memory(genome(), p, 1e-6, chip="m1").startswith("memory budget: predicted peak")
    fit = Fitness({"quality_fd": 1.0, "latency_ms": 1.0, "memory_mb": 900.0})
    out = apply_memory_budget(fit, 600.0, chip="m1")
    assert not out.feasible and out.constraints["memory_budget"] == pytest.approx(0.5)
    assert "measured peak 900.0" in out.reason
    bad = apply_memory_budget(Fitness.infeasible(("memory_mb",), "boom"), 600.0)
    assert bad.constraints["memory_budget"] == math.inf and bad.reason == "boom"
