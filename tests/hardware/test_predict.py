"""The roofline predictor: monotone in what costs time and memory, chip ordering, calibration fits, JSON."""

import math

import numpy as np
import pytest

from evodiff_ray.genome import Genome
from evodiff_ray.hardware.predict import (COMPONENTS, ComponentFit, LogLogFit, Predictor, chip_device_profile,
                                          cpu_device_profile, layer_times, predictor_for)
from evodiff_ray.operators import sample_population
from evodiff_ray.space import SearchSpace


def g(base=16, steps=20, layers=None, mults=(1, 2)):
    layers = layers or [{"kind": "residual", "side": "down", "level": 0},
                        {"kind": "residual", "side": "up", "level": 0}]
    return Genome.from_dict({"parameters": {"base_channels": base, "channel_mults": list(mults), "time_emb_dim": 32,
                                            "sampler_steps": steps, "norm_groups": 4},
                             "layers": layers, "connections": []})


def test_monotone_in_steps_width_depth_and_batch():
    p = predictor_for("cpu", batch=64)
    assert p.latency_ms(g(steps=40)) == pytest.approx(2 * p.latency_ms(g(steps=20)))
    assert p.latency_ms(g(base=32)) > p.latency_ms(g(base=16))
    assert p.memory_mb(g(base=32)) > p.memory_mb(g(base=16))
    deeper = g(layers=[{"kind": "residual", "side": "down", "level": 0}] * 2 + [{"kind": "residual", "side": "up", "level": 0}])
    assert p.latency_ms(deeper) > p.latency_ms(g())
    assert predictor_for("cpu", batch=128).memory_mb(g()) > p.memory_mb(g())
    assert p.memory_mb(g(steps=40)) == p.memory_mb(g(steps=10))  # steps cost time, not memory
    attn = g(layers=[{"kind": "attention", "side": "mid", "level": 1, "heads": 4}])
    assert p.components_ms(attn)["scores"] > 0


def test_faster_chip_predicts_lower_latency():
    genome = g(base=32)
    lat = {c: predictor_for(c).latency_ms(genome) for c in ("m1", "m1-max", "m2-ultra")}
    assert lat["m1"] > lat["m1-max"] > lat["m2-ultra"] > 0
    assert chip_device_profile("m3-max", 30).bandwidth_gbs == 300
    assert [n for n, _ in layer_times(genome, cpu_device_profile(), batch=64)][:2] == ["time_mlp", "stem"]


def test_loglog_fit_recovers_a_power_law():
    raw = [1.0, 2.0, 5.0, 10.0, 50.0]
    fit = LogLogFit.fit(raw, [3.0 * x**0.8 for x in raw])
    assert fit.slope == pytest.approx(0.8) and math.exp(fit.intercept) == pytest.approx(3.0)
    assert fit.rmse_log == pytest.approx(0.0, abs=1e-9) and fit.n == 5
    assert LogLogFit.from_dict(fit.to_dict()) == fit
    assert LogLogFit.fit([2.0], [4.0])(3.0) == pytest.approx(6.0)  # one point: scale only
    with pytest.raises(ValueError):
        LogLogFit.fit([0.0], [1.0])


def test_component_fit_recovers_weights_on_random_genomes():
    genomes = sample_population(SearchSpace(), 20, np.random.default_rng(0))
    p = predictor_for("cpu")
    true = dict(zip(COMPONENTS, (2.0, 0.5, 3.0, 1.5)))
    measured = [sum(true[k] * v for k, v in p.components_ms(x).items()) for x in genomes]
    fitted = p.calibrated(genomes, latency_ms=measured, memory_mb=[p.raw_memory_mb(x) * 1.3 for x in genomes],
                          latency_fit="components")
    for k, w in zip(COMPONENTS, fitted.latency_fit.weights):
        if any(p.components_ms(x)[k] > 0 for x in genomes):
            assert w == pytest.approx(true[k], rel=1e-3)
    assert fitted.latency_fit.rmse_log < 1e-6
    assert fitted.memory_mb(genomes[0]) == pytest.approx(1.3 * p.raw_memory_mb(genomes[0]))
    again = Predictor.from_dict(fitted.to_dict())
    assert again.predict(genomes[3]) == pytest.approx(fitted.predict(genomes[3]))
    assert ComponentFit.from_dict(ComponentFit().to_dict()) == ComponentFit()
    loglog = p.calibrated(genomes, latency_ms=[2 * p.roofline_ms(x) for x in genomes])
    assert isinstance(loglog.latency_fit, LogLogFit)
    assert loglog.latency_ms(genomes[0]) == pytest.approx(2 * p.roofline_ms(genomes[0]))
    assert Predictor.from_dict(loglog.to_dict()).latency_fit == loglog.latency_fit


def test_regimes_small_batches_are_launch_bound_on_a_gpu():
    """8x8 images at batch 64 are dispatch-bound on an M2 Max; at batch 8192 the roofline terms take over."""
    genome = g(base=32)
    small = predictor_for("m2-max", batch=64).components_ms(genome)
    big = predictor_for("m2-max", batch=8192).components_ms(genome)
    assert small["launch"] > small["compute"] + small["memory"]
    assert big["launch"] < big["compute"] + big["memory"]
