"""Results are keyed by the hardware of the actors that measure them, never the driver's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from evodiff_ray.config import load_config
from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.key import ProblemSettings, cache_key
from evodiff_ray.evaluation.pool import EvaluatorPool
from evodiff_ray.search import search

HERE = str(Path(__file__).parent)
sys.path.insert(0, HERE)
from hardware_problem import HardwareProblem  # noqa: E402


def _env(processor):
    return {"env_vars": {"PYTHONPATH": HERE, "EVODIFF_TEST_PROCESSOR": processor}}


@pytest.mark.ray
@pytest.mark.redis
def test_cache_keys_name_the_actors_processor_not_the_drivers(ray_runtime, tmp_path):
    import redis

    from evodiff_ray.cache import LocalRedis

    assert HardwareProblem().processor == "driver"
    server = LocalRedis(tmp_path / "redis").start()
    try:
        pool = EvaluatorPool("hardware_problem:make", {}, workers=1, search_id="facts", runtime_env=_env("Apple M2 Max"))
        try:
            assert pool.worker_facts() == {"processor": "Apple M2 Max"}
            config = load_config(overrides={"problem": "hardware_problem:make", "pop_size": 4, "generations": 1,
                                            "runs_dir": str(tmp_path / "runs"), "redis_url": server.url,
                                            "no_tracking": True, "search_id": "facts"})
            result = search(config, evaluator=pool)
        finally:
            pool.close()
        keys = {r["key"] for r in result.records}
        stored = set(redis.Redis.from_url(server.url).keys("evodiff:fit:*"))
        mac = {cache_key(k, ProblemSettings("hardware-test", {"processor": "Apple M2 Max"})).encode() for k in keys}
        drv = {cache_key(k, ProblemSettings("hardware-test", {"processor": "driver"})).encode() for k in keys}
        assert stored == mac and not stored & drv
        assert {r["fitness"]["measured_on"]["chip"] for r in result.records} == {"Apple M2 Max"}
    finally:
        server.stop()


@pytest.mark.ray
def test_actors_on_different_hardware_are_refused(ray_runtime):
    pool = EvaluatorPool("hardware_problem:make", {}, workers=2, search_id="mixed", runtime_env=_env("pid"))
    try:
        with pytest.raises(UsageError, match="different hardware"):
            pool.worker_facts()
    finally:
        pool.close()
