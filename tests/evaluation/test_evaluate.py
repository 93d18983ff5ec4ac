"""DiffusionBench: real training on digits, reproducible objectives, failures as reasons."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from evodiff_ray.diffusion.fidelity import Fidelity
from evodiff_ray.core.errors import UsageError
from evodiff_ray.problems.diffusion import OBJECTIVES, DiffusionSettings
from evodiff_ray.problems.diffusion.bench import DiffusionBench
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.genome import Genome
from evodiff_ray.hardware.detect import processor_name

#: a short real budget: enough for a 16-wide UNet to beat an untrained one clearly
#: (FD ~340 vs ~580 on digits), ~7 s on one idle core
GOOD = Fidelity("test", train_steps=400, batch_size=32, lr=4e-3, ema_decay=0.95)
#: shorter still, for reproducibility and failure tests
SHORT = Fidelity("short", train_steps=60, batch_size=32, lr=4e-3, ema_decay=0.9)
UNTRAINED = Fidelity("untrained", train_steps=0, batch_size=32, lr=4e-3, ema_decay=0.0)


def tiny(levels: int = 2, steps: int = 5, width: int = 8) -> Genome:
    return Genome.from_dict({
        "parameters": {"base_channels": width, "channel_mults": [1, 2, 2][:levels], "time_emb_dim": 16,
                       "sampler_steps": steps, "norm_groups": 4},
        "layers": [{"kind": "residual", "side": "down", "level": 0},
                   {"kind": "residual", "side": "mid", "level": levels - 1},
                   {"kind": "residual", "side": "up", "level": 0}],
        "connections": [[0, 2]],
    })


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    torch.set_num_threads(1)
    return DiffusionBench(DiffusionSettings(latency_batch=8, latency_repeats=2, fd_samples=300),
                          cache_dir=tmp_path_factory.getbasetemp() / "evodiff-cache")


@pytest.fixture(scope="module")
def trained(evaluator):
    return evaluator.evaluate(tiny(steps=10, width=16), GOOD)


def test_trained_model_beats_untrained_and_record_is_complete(evaluator, trained):
    assert trained.feasible, trained.reason
    untrained = evaluator.evaluate(tiny(steps=10, width=16), UNTRAINED)
    assert untrained.feasible, untrained.reason
    assert trained.objectives["quality_fd"] < 0.8 * untrained.objectives["quality_fd"]
    assert trained.extras["heldout_loss"] < untrained.extras["heldout_loss"]
    assert set(trained.objectives) == set(OBJECTIVES)
    assert all(v > 0 and math.isfinite(v) for v in trained.objectives.values())
    on = trained.measured_on
    assert on["device"] == "cpu" and on["predicted"] == [] and on["torch"] == torch.__version__
    assert on["node"] and on["chip"] == processor_name("cpu")   # the processor the cache key names
    for k in ("params", "heldout_loss", "train_loss", "latency_p90_ms", "memory_method", "fd_samples", "dataset"):
        assert k in trained.extras, k
    assert trained.extras["latency_p90_ms"] >= trained.objectives["latency_ms"]
    assert trained.seconds > 0
    again = Fitness.from_dict(json.loads(json.dumps(trained.to_dict())))
    assert again.objectives == trained.objectives


def test_same_seed_same_quality_and_other_seed_differs(evaluator):
    first = evaluator.evaluate(tiny(), SHORT)
    repeat = evaluator.evaluate(tiny(), SHORT)
    assert repeat.objectives["quality_fd"] == pytest.approx(first.objectives["quality_fd"], rel=1e-6)
    assert repeat.extras["heldout_loss"] == pytest.approx(first.extras["heldout_loss"], rel=1e-6)
    other = evaluator.evaluate(tiny(), SHORT, seed=1)
    assert other.objectives["quality_fd"] != pytest.approx(first.objectives["quality_fd"], rel=1e-6)


def test_non_finite_loss_is_infeasible(evaluator):
    boom = Fidelity("boom", train_steps=200, batch_size=16, lr=1e12, warmup_fraction=0.0, grad_clip=0.0, ema_decay=0.0)
    fit = evaluator.evaluate(tiny(), boom)
    assert not fit.feasible and fit.reason.startswith("non-finite loss")
    assert all(math.isinf(v) for v in fit.objectives.values())


class Boom(Exception):
    pass


@pytest.mark.parametrize("stage, error, reason", [
    ("train", torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory during train"),
    ("sample", MemoryError(), "out of memory during sample"),
    ("sample", Boom("kaput"), "exception during sample: Boom: kaput"),
    ("memory", RuntimeError("weird"), "exception during memory: RuntimeError: weird"),
])
def test_failures_become_infeasible_with_their_reason(evaluator, stage, error, reason):
    def hook(s):
        if s == stage:
            raise error

    evaluator.fault_hook = hook
    try:
        fit = evaluator.evaluate(tiny(), SHORT)
    finally:
        evaluator.fault_hook = None
    assert not fit.feasible and fit.reason.startswith(reason), fit.reason
    assert set(fit.objectives) == set(OBJECTIVES)
    # the evaluator survives: the next candidate is fine
    assert evaluator.evaluate(tiny(), UNTRAINED).feasible


def test_time_limit_gives_infeasible_timeout(evaluator):
    fit = evaluator.evaluate(tiny(), SHORT, time_limit_s=1e-6)
    assert not fit.feasible and fit.reason.startswith("timeout: exceeded the 1e-06 s limit during")


def test_unsuitable_resolution_is_infeasible(evaluator, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "six.npz", x=rng.integers(0, 256, (40, 6, 6), dtype=np.uint8))
    ev = DiffusionBench(DiffusionSettings(dataset=str(tmp_path / "six.npz"), latency_repeats=1), cache_dir=tmp_path)
    fit = ev.evaluate(tiny(levels=3), UNTRAINED)
    assert not fit.feasible and fit.reason.startswith("unsuitable: resolution 6")
    assert ev.evaluate(tiny(levels=2), UNTRAINED).feasible  # 6 halves once


def test_bad_settings_are_usage_errors(evaluator):
    with pytest.raises(UsageError, match="fd_samples"):
        DiffusionBench(DiffusionSettings(fd_samples=10**6), dataset=evaluator.dataset)
    with pytest.raises(UsageError, match="unknown fidelity"):
        evaluator.evaluate(tiny(), "ludicrous")
    with pytest.raises(UsageError, match="unknown fidelity"):
        DiffusionSettings(fidelity="ludicrous")
    with pytest.raises(UsageError, match="device 'tpu'"):
        DiffusionBench(DiffusionSettings(device="tpu"), dataset=evaluator.dataset)
    with pytest.raises(UsageError, match="latency_repeats"):
        DiffusionSettings(latency_repeats=0)
    with pytest.raises(ValueError, match="loaded dataset"):   # a warm dataset must be the one named
        DiffusionBench(DiffusionSettings(dataset="elsewhere.npz"), dataset=evaluator.dataset)
