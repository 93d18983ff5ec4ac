"""ResilientConnection against a real redis-server: transient results never stored, outages, write-back."""

import logging
import time

import pytest

from evodiff_ray.cache.connection import ResilientConnection
from evodiff_ray.cache.local_redis import LocalRedis
from evodiff_ray.cache.redis_cache import FitnessCache
from evodiff_ray.core.fitness import Fitness

pytestmark = pytest.mark.redis


def _ok(v):
    return Fitness({"f1": v, "f2": 1.0 - v})


def _transient():
    return Fitness.infeasible(("f1", "f2"), "evaluator actor died 3 times", transient=True)


def test_store_keeps_results_and_only_releases_the_claim_of_a_transient_one(redis_server):
    cache = FitnessCache(redis_server.url)
    conn = ResilientConnection(cache)
    assert cache.claim_many(["evodiff:fit:v1:a", "evodiff:fit:v1:t"]) == [True, True]
    conn.store("evodiff:fit:v1:a", _ok(0.5))
    conn.store("evodiff:fit:v1:t", _transient())
    a, t = cache.get_many(["evodiff:fit:v1:a", "evodiff:fit:v1:t"])
    assert a.objectives["f1"] == 0.5 and t is None
    assert cache.claimed(["evodiff:fit:v1:a", "evodiff:fit:v1:t"]) == [False, False]


def test_outage_keeps_results_and_writes_them_back_but_never_a_transient_one(tmp_path, caplog):
    server = LocalRedis(tmp_path / "redis").start(reuse=False)
    port = server.port
    downs = []
    conn = ResilientConnection(FitnessCache(server.url, socket_timeout_s=0.5), reconnect_max_s=0.4,
                               on_down=lambda: downs.append(1), backlog_limit=3)
    try:
        server.kill()
        with caplog.at_level(logging.WARNING):
            conn.store("evodiff:fit:v1:a", _ok(0.1))      # fails: goes down, kept for later
            assert conn.down and downs == [1] and conn.backlog == 1
            conn.store("evodiff:fit:v1:t", _transient())   # down: not even a release is tried
            for i in range(4):
                conn.keep(f"evodiff:fit:v1:k{i}", _ok(i / 10))
            conn.keep("evodiff:fit:v1:t2", _transient())
            assert conn.backlog == 3                        # bounded; transient never kept
            assert not conn.maybe_reconnect()               # still down (and not due yet)
            server2 = LocalRedis(tmp_path / "redis", port=port).start(reuse=False)
            try:
                deadline = time.monotonic() + 5
                while not conn.maybe_reconnect() and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert not conn.down and conn.backlog == 0
                got = FitnessCache(server2.url).get_many(
                    ["evodiff:fit:v1:a", "evodiff:fit:v1:k0", "evodiff:fit:v1:k1", "evodiff:fit:v1:t",
                     "evodiff:fit:v1:t2"])
                assert [g is not None for g in got] == [True, True, True, False, False]
            finally:
                server2.stop(force=True)
    finally:
        server.kill()
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1
    assert sum("is back" in r.getMessage() for r in caplog.records) == 1
