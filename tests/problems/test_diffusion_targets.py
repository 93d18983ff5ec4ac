"""DiffusionProblem with a hardware target: early rejection, memory budget, predicted labels."""

from __future__ import annotations

import pytest

from evodiff_ray.diffusion.fidelity import Fidelity
from evodiff_ray.core.errors import UsageError
from evodiff_ray.genome import Genome
from evodiff_ray.hardware.budget import CONSTRAINT_NAME
from evodiff_ray.problems import make_problem

UNTRAINED = Fidelity("untrained", train_steps=0, batch_size=32, lr=4e-3, ema_decay=0.0)
TINY = Genome.from_dict({"parameters": {"base_channels": 8, "channel_mults": [1], "time_emb_dim": 16,
                                        "sampler_steps": 2, "norm_groups": 4},
                         "layers": [{"kind": "conv", "side": "down", "level": 0, "kernel": 3}]})
WIDE = Genome.from_dict({"parameters": {"base_channels": 256, "channel_mults": [1, 8], "norm_groups": 4},
                         "layers": [{"kind": "residual", "side": "mid", "level": 1, "kernel": 5}] * 3})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem(**kw):
    # no training: these tests are about the target logic
    return make_problem("diffusion", {"fidelity": UNTRAINED, "fd_samples": 64, "latency_batch": 4,
                                      "latency_repeats": 1, **kw})


def test_outside_the_space_is_rejected_without_training():
    p = _problem()
    fit = p.evaluate(WIDE)
    assert not fit.feasible and "outside the search space's limits" in fit.reason and "params" in fit.reason
    assert fit.constraints["params"] > 0 and fit.constraints["depth"] == 0.0
    assert p._evaluator is None            # nothing was loaded or trained


def test_predict_mode_labels_device_objectives_and_keeps_quality():
    p = _problem(target="m2-max", target_mode="predict")
    assert CONSTRAINT_NAME in p.constraint_names
    fit = p.evaluate(TINY)
    assert fit.feasible, fit.reason
    assert sorted(fit.measured_on["predicted"]) == ["latency_ms", "memory_mb"]
    assert fit.measured_on["chip"] == "m2-max"
    assert fit.extras["measured_latency_ms"] > 0 and fit.objectives["latency_ms"] > 0
    assert fit.objectives["latency_ms"] != fit.extras["measured_latency_ms"]
    assert fit.constraints[CONSTRAINT_NAME] < 0
    assert p.evaluation_settings().key_dict()["target_mode"] == "predict"


def test_predicted_memory_over_the_budget_is_rejected_before_training():
    p = _problem(target="m1", target_mode="predict", memory_fraction=1e-6)
    fit = p.evaluate(TINY)
    assert not fit.feasible and "not trained" in fit.reason
    assert fit.constraints[CONSTRAINT_NAME] > 0
    assert p._evaluator is None


def test_measure_mode_applies_the_budget_to_the_measured_peak():
    p = _problem(target="m1", target_mode="measure", memory_fraction=1e-6)
    fit = p.evaluate(TINY)
    assert not fit.feasible and "budget" in fit.reason and "predicted" not in fit.reason
    assert fit.constraints[CONSTRAINT_NAME] > 0
    assert fit.measured_on.get("predicted") == []


def test_bad_target_options():
    with pytest.raises(UsageError, match="target_mode"):
        make_problem("diffusion", {"target": "m1", "target_mode": "guess"})
    with pytest.raises(UsageError, match="chip target"):
        make_problem("diffusion", {"target_mode": "predict"})
