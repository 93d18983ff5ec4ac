"""EvaluatorPool on a shared local Ray runtime: exactly-once evaluation, deaths, placement errors."""

import os
import signal
import time

import numpy as np
import pytest

from evodiff_ray.core.errors import RuntimeFailure, UsageError
from evodiff_ray.core.evaluator import Task
from evodiff_ray.evaluation.pool import ACTOR_NAME, EvaluatorPool, check_placeable, fit_workers
from evodiff_ray.problems import make_problem


def tasks(n, n_var=10, seed=0):
    p = make_problem("synthetic", {"n_var": n_var})
    X = np.random.default_rng(seed).random((n, n_var))
    return [Task(i, p.key(x), p.to_json(x)) for i, x in enumerate(X)]


def drain(pool, n, on_poll=None):
    out = []
    while len(out) < n:
        out.extend(pool.poll(timeout=1.0))
        if on_poll:
            on_poll(out)
    return out


def test_fit_workers_and_placeability_are_pure():
    assert fit_workers({"CPU": 1.0}, {"CPU": 2.0}) == 2
    assert fit_workers({"CPU": 0.5, "apple_silicon": 1}, {"CPU": 8.0, "apple_silicon": 3.0}) == 3
    assert fit_workers({}, {"CPU": 4.0}) == 4
    with pytest.raises(UsageError, match="'apple_silicon'"):
        check_placeable({"apple_silicon": 1.0}, {}, {"CPU": 2.0}, [{}])
    with pytest.raises(UsageError, match="chip=m4"):
        check_placeable({}, {"chip": "m4"}, {}, [{"chip": "m1"}])
    check_placeable({"CPU": 1.0}, {"chip": "m4"}, {"CPU": 2.0}, [{"chip": "m4"}])


@pytest.mark.ray
def test_named_warm_actors_evaluate_every_task_once(ray_runtime):
    with EvaluatorPool("synthetic", {}, workers=2, batch_size=3, search_id="t1",
                       objective_names=("f1", "f2")) as pool:
        assert pool.workers == 2 and pool.capacity == 6
        assert ray_runtime.get_actor(ACTOR_NAME.format(1), namespace=pool.namespace)
        ts = tasks(25)
        pool.submit(ts)
        out = drain(pool, 25)
        assert sorted(o.task.ordinal for o in out) == list(range(25))
        assert all(o.fitness.feasible for o in out)
        assert pool.in_flight == 0 and pool.poll(timeout=0.1) == []
        assert pool.stats()["evaluated"] == 25


@pytest.mark.ray
def test_bad_candidate_is_infeasible_and_actor_survives(ray_runtime):
    with EvaluatorPool("synthetic", {}, workers=1, search_id="t2", objective_names=("f1", "f2")) as pool:
        good = tasks(2)
        pool.submit([Task(99, "ff" * 32, [5.0] * 10), *good])
        out = {o.task.ordinal: o for o in drain(pool, 3)}
        assert not out[99].fitness.feasible and "[0, 1]" in out[99].fitness.reason
        assert out[0].fitness.feasible and out[1].fitness.feasible
        assert pool.stats()["deaths"] == 0


@pytest.mark.ray
def test_killed_actor_loses_and_repeats_nothing(ray_runtime):
    """SIGKILL an actor's process mid-run: its genomes are resubmitted, each result arrives once."""
    with EvaluatorPool("synthetic", {"mean_ms": 50}, workers=2, search_id="t3",
                       objective_names=("f1", "f2")) as pool:
        ts = tasks(30)
        pool.submit(ts)
        killed = []

        def kill_once(out):
            if not killed and len(out) >= 4:
                pid = pool.actor_info()[0]["pid"]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        out = drain(pool, 30, kill_once)
        time.sleep(0.2)
        out += pool.poll(timeout=0.2)
        assert killed and pool.stats()["deaths"] >= 1
        ordinals = [o.task.ordinal for o in out]
        assert sorted(ordinals) == list(range(30))          # none lost, none repeated
        assert all(o.fitness.feasible for o in out)         # nothing given up
        assert pool.in_flight == 0


@pytest.mark.ray
def test_missing_resource_fails_fast_naming_it(ray_runtime):
    with pytest.raises(UsageError, match="resource 'apple_silicon'"):
        EvaluatorPool("synthetic", {}, workers=1, resources={"apple_silicon": 1})
    with pytest.raises(UsageError, match="labels chip=m4"):
        EvaluatorPool("synthetic", {}, workers=1, label_selector={"chip": "m4"})


@pytest.mark.ray
def test_genome_whose_actor_keeps_dying_is_a_transient_failure_with_the_real_names(ray_runtime):
    """SIGKILL the actor mid-evaluation with no retries left: an infrastructure failure, never cached."""
    with EvaluatorPool("synthetic", {"mean_ms": 5000}, workers=1, max_attempts=1, search_id="t5") as pool:
        # no names given: the pool takes them from what its actors' problem reports
        assert pool.objective_names == ("f1", "f2") and pool.constraint_names == ()
        pool.submit(tasks(1))
        time.sleep(0.3)
        os.kill(pool.actor_info()[0]["pid"], signal.SIGKILL)
        (out,) = drain(pool, 1)
        fit = out.fitness
        assert not fit.feasible and fit.transient and fit.failure == "transient" and not fit.cacheable
        assert fit.reason.startswith("evaluator actor died 1 times")
        assert set(fit.objectives) == {"f1", "f2"}
        assert pool.stats()["gave_up"] == 1 and pool.stats()["deaths"] == 1


@pytest.mark.ray
def test_candidate_failures_stay_permanent(ray_runtime):
    with EvaluatorPool("synthetic", {"failure_rate": 1.0}, workers=1, search_id="t6") as pool:
        (out,) = pool.evaluate(tasks(1), poll_s=0.2)
        assert out.fitness.failure == "permanent" and out.fitness.cacheable


@pytest.mark.ray
def test_objective_names_that_contradict_the_actors_problem_fail_the_start(ray_runtime):
    with pytest.raises(RuntimeFailure, match=r"reports objectives \['f1', 'f2'\]"):
        EvaluatorPool("synthetic", {}, workers=1, search_id="t7", objective_names=("quality_fd",))
