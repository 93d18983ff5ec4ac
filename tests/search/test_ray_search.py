"""The engine on Ray (2 evaluator actors): both modes, actor deaths, and NSGA-II correctness."""

import os
import signal
import statistics

import numpy as np
import pytest
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.indicators.igd import IGD
from pymoo.optimize import minimize

from evodiff_ray.config import load_config
from evodiff_ray.evaluation.pool import EvaluatorPool
from evodiff_ray.problems import make_problem
from evodiff_ray.search import CallbackTracker, search

pytestmark = pytest.mark.ray


def cfg(runs_dir, **kw):
    base = {"problem": "synthetic", "pop_size": 10, "generations": 4, "seed": 1, "workers": 2,
            "runs_dir": str(runs_dir), "no_cache": True, "no_tracking": True}
    base.update(kw)
    return load_config(overrides=base)


@pytest.mark.parametrize("mode", ["generational", "async"])
def test_both_modes_complete_on_synthetic(ray_runtime, runs_dir, mode):
    c = cfg(runs_dir, mode=mode, problem_options={"mean_ms": 10, "time": "lognormal",
                                                  "failure_rate": 0.1})
    r = search(c)
    assert len(r.records) == 40 and len({x["ordinal"] for x in r.records}) == 40
    assert r.front["status"] == "finished" and r.points
    assert r.history[-1]["failures"] == sum(not x["fitness"]["feasible"] for x in r.records)
    assert r.history[-1]["utilization"] > 0


def test_actor_killed_mid_search_neither_loses_nor_repeats(ray_runtime, runs_dir):
    c = cfg(runs_dir, mode="async", generations=None, max_evaluations=40, problem_options={"mean_ms": 40})
    pool = EvaluatorPool.from_config(c, objective_names=("f1", "f2"))
    killed = []

    def kill_once(stats, front):
        if not killed and stats["evaluations"] >= 6 and stats["in_flight"] > 0:
            pid = pool.actor_info()[1]["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        r = search(c, evaluator=pool, trackers=[CallbackTracker(kill_once)])
        deaths = pool.stats()["deaths"]
    finally:
        pool.close()
    assert killed and deaths >= 1
    ordinals = [x["ordinal"] for x in r.records]
    assert len(ordinals) == 40 and len(set(ordinals)) == 40
    assert all(x["fitness"]["feasible"] for x in r.records)


def test_engine_reaches_pymoo_igd_on_zdt1(ray_runtime, runs_dir):
    """NSGA-II through our engine (Ray, 2 workers) vs pymoo's serial minimize: median IGD of 3 seeds."""
    problem = make_problem("zdt1", {})
    pf = problem.pareto_front()
    ours, ours_pop, theirs = [], [], []
    for seed in (1, 2, 3):
        r = search(load_config(overrides={"problem": "zdt1", "pop_size": 40, "generations": 40, "seed": seed,
                                          "workers": 2, "batch_size": 10, "runs_dir": str(runs_dir), "no_cache": True, "no_tracking": True}))
        ours.append(IGD(pf)(r.front_array()))               # the archive a user gets
        ours_pop.append(IGD(pf)(r.population_front_array()))  # like for like with minimize().F
        res = minimize(problem.pymoo_problem(), NSGA2(pop_size=40), ("n_gen", 40), seed=seed)
        theirs.append(IGD(pf)(res.F))
    assert statistics.median(ours_pop) <= 1.10 * statistics.median(theirs)
    assert statistics.median(ours) <= 1.10 * statistics.median(theirs)
    assert np.isfinite(ours).all() and len(r.population) == 40
