"""latency_ms and memory_mb on the CPU: positive, and larger for a clearly larger model."""

from __future__ import annotations

import pytest
import torch

from evodiff_ray.denoiser import build_denoiser
from evodiff_ray.diffusion.sampler import ddim_sample, sample_noise
from evodiff_ray.diffusion.schedule import linear_schedule
from evodiff_ray.genome import Genome
from evodiff_ray.metrics.latency import measure_latency
from evodiff_ray.metrics.memory import MIB, measure_peak_memory, model_bytes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def genome(width: int) -> Genome:
    return Genome.from_dict({
        "parameters": {"base_channels": width, "channel_mults": [1, 2], "time_emb_dim": 16,
                       "sampler_steps": 4, "norm_groups": 4},
        "layers": [{"kind": "residual", "side": "down", "level": 0},
                   {"kind": "residual", "side": "mid", "level": 1},
                   {"kind": "residual", "side": "up", "level": 0}],
        "connections": [[0, 2]],
    })


def sampler(width: int, batch: int = 16):
    torch.manual_seed(0)
    net = build_denoiser(genome(width)).eval()
    noise = sample_noise((batch, 1, 8, 8), 0)
    return net, (lambda: ddim_sample(net, linear_schedule(), noise, 4))


def test_latency_is_positive_and_grows_with_the_model():
    cpu = torch.device("cpu")
    _, small = sampler(4)
    _, large = sampler(128)
    s = measure_latency(small, cpu, warmup=1, repeats=3)
    big = measure_latency(large, cpu, warmup=1, repeats=3)
    assert 0 < s.median_ms <= s.p90_ms and len(s.runs_ms) == 3
    assert big.median_ms > s.median_ms  # ~600x the FLOPs


def test_memory_counts_weights_and_activations_and_grows_with_the_model():
    cpu = torch.device("cpu")
    net_s, small = sampler(4)
    net_l, large = sampler(128)
    ms = measure_peak_memory(small, net_s, cpu)
    ml = measure_peak_memory(large, net_l, cpu)
    assert ms.method == "cpu-profiler-allocations"
    assert ms.model_mb == pytest.approx(model_bytes(net_s) / MIB)
    assert ms.activation_mb > 0  # activations of a batch of 16 at least
    assert ms.peak_mb == pytest.approx(ms.model_mb + ms.activation_mb)
    assert ml.peak_mb > ms.peak_mb and ml.activation_mb > ms.activation_mb
    # activations: at least one (16, 128, 8, 8) float32 tensor live at once
    assert ml.activation_mb >= 16 * 128 * 64 * 4 / MIB


def test_memory_grows_with_the_batch():
    cpu = torch.device("cpu")
    net, one = sampler(32, batch=1)
    _, many = sampler(32, batch=64)
    assert measure_peak_memory(many, net, cpu).activation_mb > measure_peak_memory(one, net, cpu).activation_mb
