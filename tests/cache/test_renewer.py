"""LeaseRenewer: keeps claims alive past their TTL while held, and lets them expire after."""

import threading
import time

import pytest

from evodiff_ray.cache.redis_cache import FitnessCache
from evodiff_ray.cache.renewer import LeaseRenewer


@pytest.mark.redis
def test_held_claims_outlive_their_ttl_and_expire_once_renewing_stops(redis_server):
    cache = FitnessCache(redis_server.url, claim_ttl_s=0.3)
    held = ["evodiff:fit:v1:held"]
    assert cache.claim_many(held + ["evodiff:fit:v1:dropped"]) == [True, True]
    renewer = LeaseRenewer(cache.renew, lambda: held, period_s=cache.claim_ttl_ms / 3000).start()
    try:
        time.sleep(0.9)                                   # three TTLs
        assert cache.claimed(held + ["evodiff:fit:v1:dropped"]) == [True, False]
        assert renewer.running
    finally:
        renewer.stop()
    assert renewer.stopped and not renewer.running
    time.sleep(0.45)
    assert cache.claimed(held) == [False]


def test_a_failing_renewal_does_not_stop_the_thread():
    calls = []
    done = threading.Event()

    def renew(keys):
        calls.append(list(keys))
        if len(calls) == 1:
            raise RuntimeError("first renewal fails")
        done.set()

    renewer = LeaseRenewer(renew, lambda: ["k"], period_s=0.05).start()
    try:
        assert done.wait(2.0)
    finally:
        renewer.stop()
    assert calls[:2] == [["k"], ["k"]]


def test_nothing_held_means_no_renewal_calls():
    calls = []
    renewer = LeaseRenewer(calls.append, lambda: [], period_s=0.05).start()
    time.sleep(0.2)
    renewer.stop()
    assert calls == []
