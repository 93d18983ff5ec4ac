"""Transient versus permanent failures against a real redis-server (and Ray for actor deaths).

A transient failure (the infrastructure's: an actor killed, a time limit under overload) is
shown to the search but never cached, and its claim is released, so the genome is evaluated
again by a waiter or a later search. A permanent failure (the genome's: a NaN objective) is
cached like any result.
"""

import json
import time
from pathlib import Path

import pytest

from evodiff_ray.cache import CachedEvaluator, FitnessCache
from evodiff_ray.cache.redis_cache import claim_key
from evodiff_ray.core.evaluator import Task
from evodiff_ray.core.key import ProblemSettings, cache_key
from evodiff_ray.evaluation.local import LocalEvaluator

from flaky_problem import FlakyProblem

pytestmark = pytest.mark.redis
SETTINGS = ProblemSettings("flaky")
HERE = str(Path(__file__).resolve().parent)
VICTIM, OTHER = [0.25, 0.5], [0.75, 0.0]


def _tasks(problem, xs, start=0):
    return [Task(start + i, problem.key(x), problem.to_json(x)) for i, x in enumerate(xs)]


def _cached(url, problem, **kw):
    return CachedEvaluator(LocalEvaluator(problem), FitnessCache(url, **kw), SETTINGS)


def _stored(url, problem, x):
    return FitnessCache(url).get_many([cache_key(problem.key(x), SETTINGS)])[0]


def _claimed(url, problem, x) -> bool:
    return bool(FitnessCache(url).client.exists(claim_key(cache_key(problem.key(x), SETTINGS))))


def test_transient_failure_is_not_cached_and_is_evaluated_again(redis_server, tmp_path):
    p = FlakyProblem(str(tmp_path / "attempts.log"), fail_first=1, mode="transient")
    with _cached(redis_server.url, p) as ev:
        victim, other = ev.evaluate(_tasks(p, [VICTIM, OTHER, VICTIM]))[:2]
        assert victim.source == "evaluated" and not victim.fitness.feasible
        assert victim.fitness.failure == "transient" and "overloaded" in victim.fitness.reason
        assert set(victim.fitness.objectives) == {"f1", "f2"} and set(victim.fitness.constraints) == {"g1"}
        assert other.fitness.feasible
        assert ev.stats()["cache"]["transient"] == 1
    assert _stored(redis_server.url, p, VICTIM) is None          # never written...
    assert not _claimed(redis_server.url, p, VICTIM)              # ...and the claim released
    assert _stored(redis_server.url, p, OTHER).objectives["f1"] == 0.75
    with _cached(redis_server.url, p) as ev:                      # a later search
        again = {o.task.ordinal: o for o in ev.evaluate(_tasks(p, [VICTIM, OTHER], start=10))}
    assert again[10].source == "evaluated" and again[10].fitness.feasible
    assert again[11].source == "hit"
    assert p.attempts().count(p.key(VICTIM)) == 2 and p.attempts().count(p.key(OTHER)) == 1
    assert _stored(redis_server.url, p, VICTIM).feasible          # its real result is cached now


def test_a_waiter_takes_over_when_the_owner_fails_transiently(redis_server, tmp_path):
    p = FlakyProblem(str(tmp_path / "attempts.log"), fail_first=1, mode="transient", delay_s=0.5)
    first, second = _cached(redis_server.url, p), _cached(redis_server.url, p)
    try:
        first.submit(_tasks(p, [VICTIM]))
        second.submit(_tasks(p, [VICTIM], start=5))               # claimed by `first`: waits
        assert second.stats()["cache"]["misses"] == 0
        (mine,) = first.poll(timeout=5)
        assert mine.fitness.failure == "transient"
        got, deadline = [], time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got = second.poll(timeout=0.5)
        # the released claim is taken over at once, not after its TTL (60 s)
        assert got[0].source == "evaluated" and got[0].fitness.feasible
        assert second.stats()["cache"]["stale_takeovers"] == 1
    finally:
        first.close()
        second.close()
    assert p.attempts().count(p.key(VICTIM)) == 2


def test_permanent_failure_is_cached(redis_server, tmp_path):
    p = FlakyProblem(str(tmp_path / "attempts.log"), mode="nan")
    with _cached(redis_server.url, p) as ev:
        (nan,) = ev.evaluate(_tasks(p, [VICTIM]))
    assert nan.fitness.failure == "permanent" and nan.fitness.reason == "objective is NaN"
    stored = _stored(redis_server.url, p, VICTIM)
    assert stored is not None and not stored.feasible and stored.reason == "objective is NaN"
    with _cached(redis_server.url, p) as ev:
        (hit,) = ev.evaluate(_tasks(p, [VICTIM], start=1))
    assert hit.source == "hit" and hit.fitness.failure == "permanent"
    assert p.attempts().count(p.key(VICTIM)) == 1                 # not evaluated again


def _fit_values(url) -> list[dict]:
    client = FitnessCache(url).client
    return [json.loads(client.get(k)) for k in client.scan_iter("evodiff:fit:*")]


@pytest.mark.ray
@pytest.mark.slow
def test_killed_actors_genome_is_not_cached_and_the_next_search_evaluates_it(ray_runtime, redis_server,
                                                                             tmp_path):
    """The headline: the victim's evaluator process dies on its first two attempts."""
    from evodiff_ray.config import load_config
    from evodiff_ray.evaluation.pool import EvaluatorPool
    from evodiff_ray.search import search

    log = str(tmp_path / "attempts.log")
    options = {"log_path": log, "fail_first": 2, "mode": "die"}

    def config(search_id):
        return load_config(overrides={
            "problem": "flaky_problem:make", "problem_options": options, "pop_size": 4, "generations": 1,
            "seed": 5, "workers": 1, "redis_url": redis_server.url, "runs_dir": str(tmp_path / "runs"),
            "search_id": search_id, "no_tracking": True,
        })

    probe = FlakyProblem(log)
    # the pool learns the problem's objective and constraint names from its actors
    pool = EvaluatorPool("flaky_problem:make", options, workers=1, max_attempts=2, search_id="taxonomy",
                         runtime_env={"env_vars": {"PYTHONPATH": HERE}})   # actors import flaky_problem
    try:
        assert pool.objective_names == ("f1", "f2") and pool.constraint_names == ("g1",)
        first = search(config("first"), evaluator=pool)
        assert pool.stats()["deaths"] == 2 and pool.stats()["gave_up"] == 1
        victim = probe.attempts()[0]
        (lost,) = [r for r in first.records if r["key"] == victim]
        fit = lost["fitness"]
        assert fit["feasible"] is False and fit["transient"] is True
        assert fit["reason"].startswith("evaluator actor died 2 times")
        assert set(fit["objectives"]) == {"f1", "f2"} and set(fit["constraints"]) == {"g1"}
        assert all(r["fitness"]["feasible"] for r in first.records if r["key"] != victim)
        stored = _fit_values(redis_server.url)
        assert len(stored) == 3 and all(v["feasible"] for v in stored)     # the victim is not cached
        assert not list(FitnessCache(redis_server.url).client.scan_iter("evodiff:claim:*"))

        second = search(config("second"), evaluator=pool)                   # same seed, same genomes
        assert second.front["cache"]["misses"] == 1 and second.front["cache"]["hits"] == 3
        (again,) = [r for r in second.records if r["key"] == victim]
        assert again["fitness"]["feasible"] is True
        assert probe.attempts().count(victim) == 3                          # 2 deaths, then evaluated
        assert len(_fit_values(redis_server.url)) == 4
    finally:
        pool.close()
