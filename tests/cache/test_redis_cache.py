"""FitnessCache and LocalRedis against a real redis-server."""

import json
import logging
import time

import pytest
import redis

from evodiff_ray.cache.local_redis import LocalRedis
from evodiff_ray.cache.redis_cache import FitnessCache, claim_key
from evodiff_ray.core.urls import redact
from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.fitness import Fitness

pytestmark = pytest.mark.redis


def _fit(v=1.0):
    return Fitness(objectives={"a": v, "b": 2 * v}, measured_on={"device": "cpu"}, seconds=0.1)


def test_hit_and_miss(redis_server):
    c = FitnessCache(redis_server.url)
    assert c.get_many(["evodiff:fit:v1:x", "evodiff:fit:v1:y"]) == [None, None]
    c.put("evodiff:fit:v1:x", _fit(3.0))
    got = c.get_many(["evodiff:fit:v1:x", "evodiff:fit:v1:y"])
    assert got[0].objectives == {"a": 3.0, "b": 6.0} and got[1] is None
    raw = json.loads(c.client.get("evodiff:fit:v1:x"))
    assert raw["schema"] == 1 and raw["feasible"] is True  # stored as JSON, never pickled


def test_corrupt_and_foreign_entries_are_misses_logged_once(redis_server, caplog):
    c = FitnessCache(redis_server.url)
    c.client.set("evodiff:fit:v1:bad", b"\x80\x04pickle?")
    c.client.set("evodiff:fit:v1:old", json.dumps({**_fit().to_dict(), "schema": 0}))
    with caplog.at_level(logging.WARNING):
        assert c.get_many(["evodiff:fit:v1:bad", "evodiff:fit:v1:old"]) == [None, None]
        assert c.get_many(["evodiff:fit:v1:bad"]) == [None]
    warnings = [r for r in caplog.records if "corrupt cache entry" in r.getMessage()]
    assert len(warnings) == 2
    c.put("evodiff:fit:v1:bad", _fit())  # a fresh evaluation overwrites it
    assert c.get_many(["evodiff:fit:v1:bad"])[0] is not None


def test_claims_are_exclusive_renewable_and_expire(redis_server):
    a = FitnessCache(redis_server.url, claim_ttl_s=0.3, owner="a")
    b = FitnessCache(redis_server.url, claim_ttl_s=0.3, owner="b")
    k = "evodiff:fit:v1:k"
    assert a.claim_many([k]) == [True]
    assert b.claim_many([k]) == [False]
    assert b.renew([k]) == 0 and a.renew([k]) == 1
    assert b.claimed([k]) == [True]
    time.sleep(0.5)
    assert b.claimed([k]) == [False]
    assert b.claim_many([k]) == [True]
    a.put(k, _fit())           # a's late put stores the value but must not drop b's claim
    assert b.client.get(claim_key(k)) == b"b"
    b.put(k, _fit())
    assert b.client.get(claim_key(k)) is None


def test_aof_persistence_across_clean_restart_and_crash(tmp_path):
    d = tmp_path / "redis"
    s = LocalRedis(d).start(reuse=False)
    FitnessCache(s.url).put("evodiff:fit:v1:p", _fit(5.0))
    s.stop(force=True)
    s2 = LocalRedis(d).start(reuse=False)
    try:
        assert FitnessCache(s2.url).get_many(["evodiff:fit:v1:p"])[0].objectives["a"] == 5.0
        FitnessCache(s2.url).put("evodiff:fit:v1:q", _fit(7.0))
        time.sleep(1.5)  # appendfsync everysec
        s2.kill()
    finally:
        s2.kill()
    s3 = LocalRedis(d).start(reuse=False)
    try:
        assert FitnessCache(s3.url).get_many(["evodiff:fit:v1:q"])[0].objectives["a"] == 7.0
    finally:
        s3.stop(force=True)


def test_running_server_is_reused_and_not_stopped_while_in_use(tmp_path):
    d = tmp_path / "redis"
    first = LocalRedis(d).start()
    try:
        second = LocalRedis(d).start()
        assert second.port == first.port and not second.owned
        user = redis.Redis.from_url(first.url)
        user.ping()
        first.stop()                       # another client is connected: keep serving
        assert user.ping()
        user.close()
        second.stop()                      # the last user out stops it, even if it did not start it
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(first.url, socket_connect_timeout=0.5).ping()
        assert not (d / "server.json").exists()
    finally:
        first.kill()


def test_password_protected_server_through_its_url(tmp_path):
    with LocalRedis(tmp_path / "r", password="s3cret") as s:
        assert "s3cret" in s.url
        FitnessCache(s.url).put("evodiff:fit:v1:z", _fit())
        assert FitnessCache(s.url).get_many(["evodiff:fit:v1:z"])[0] is not None
        no_pw = s.url.replace(":s3cret@", "")
        with pytest.raises(redis.AuthenticationError):
            FitnessCache(no_pw).get_many(["evodiff:fit:v1:z"])
        assert "s3cret" not in redact(s.url)


def test_missing_redis_server_names_the_install_and_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVODIFF_REDIS_SERVER", str(tmp_path / "nope"))
    with pytest.raises(UsageError) as e:
        LocalRedis(tmp_path / "r").start()
    msg = str(e.value)
    assert "apt-get install redis-server" in msg and "brew install redis" in msg and "--no-cache" in msg


def test_put_refuses_a_transient_failure_and_release_many_drops_only_ours(redis_server):
    c = FitnessCache(redis_server.url, owner="me")
    with pytest.raises(ValueError, match="transient"):
        c.put("evodiff:fit:v1:t", Fitness.infeasible(("a", "b"), "actor died", transient=True))
    assert c.client.get("evodiff:fit:v1:t") is None
    c.put("evodiff:fit:v1:p", Fitness.infeasible(("a", "b"), "objective is NaN"))   # permanent: cached
    assert c.get_many(["evodiff:fit:v1:p"])[0].failure == "permanent"
    assert c.claim_many(["evodiff:fit:v1:m", "evodiff:fit:v1:n"]) == [True, True]
    FitnessCache(redis_server.url, owner="other").claim_many(["evodiff:fit:v1:o"])
    c.release_many(["evodiff:fit:v1:m", "evodiff:fit:v1:n", "evodiff:fit:v1:o"])
    assert c.claimed(["evodiff:fit:v1:m", "evodiff:fit:v1:n", "evodiff:fit:v1:o"]) == [False, False, True]
