"""ClaimBook, the claim protocol, against a real redis-server."""

import time

import pytest

from evodiff_ray.cache.claims import ClaimBook
from evodiff_ray.cache.redis_cache import FitnessCache, claim_key
from evodiff_ray.core.evaluator import Task
from evodiff_ray.core.fitness import Fitness

pytestmark = pytest.mark.redis


def _rkey(key: str) -> str:
    return f"evodiff:fit:v1:{key}"


def _task_rkey(task) -> str:
    return _rkey(task.cache_key)


def test_hits_claims_waits_riders_and_takeover(redis_server):
    cache = FitnessCache(redis_server.url, owner="me")
    cache.put(_rkey("stored"), Fitness({"f1": 1.0}))
    other = FitnessCache(redis_server.url, owner="other")
    other.claim_many([_rkey("foreign")])
    book = ClaimBook(cache, _task_rkey, max_wait_delay_s=0.1)

    tasks = [Task(0, "stored", 0), Task(1, "new", 1), Task(2, "new", 1), Task(3, "foreign", 3)]
    groups = book.route(tasks)
    assert {k: [t.ordinal for t in ts] for k, ts in groups.items()} == {
        _rkey("stored"): [0], _rkey("new"): [1, 2], _rkey("foreign"): [3]}
    found = book.lookup(groups)
    assert [(o.task.ordinal, o.source) for o in found.answered] == [(0, "hit")]
    assert [t.ordinal for t in found.to_evaluate] == [1]          # one evaluation for both copies
    assert book.owned_keys() == [_rkey("new")] and book.riders == 1 and book.waiting == 1
    assert book.route([Task(4, "new", 1), Task(5, "foreign", 3)]) == {}    # attached, not looked up again
    assert book.riders == 2 and book.waiting == 2

    rkey, riders = book.settle(Task(1, "new", 1))
    assert rkey == _rkey("new") and [t.ordinal for t in riders] == [2, 4]
    assert book.owned_keys() == []

    assert book.check_waiting().to_evaluate == []                 # the other owner is alive
    other.release(_rkey("foreign"))                              # ...and gives up without a value
    time.sleep(0.15)
    taken = book.check_waiting()
    assert taken.takeovers == 1 and [t.ordinal for t in taken.to_evaluate] == [3]
    assert cache.client.get(claim_key(_rkey("foreign"))) == b"me"
    assert book.waiting == 0 and book.riders == 1                # task 5 rides on task 3


def test_abandon_waiting_hands_the_tasks_back(redis_server):
    FitnessCache(redis_server.url, owner="other").claim_many([_rkey("x")])
    book = ClaimBook(FitnessCache(redis_server.url), _task_rkey)
    book.lookup(book.route([Task(0, "x", 0), Task(1, "x", 0)]))
    assert book.waiting == 2 and book.next_check is not None
    assert [t.ordinal for t in book.abandon_waiting()] == [0, 1]
    assert book.waiting == 0 and book.next_check is None
