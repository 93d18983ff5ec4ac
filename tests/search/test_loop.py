"""The search driver, in-process (backend "local"): loops, hooks, resume equivalence."""

import json

import numpy as np
import pytest

from evodiff_ray.config import load_config
from evodiff_ray.core.errors import RuntimeFailure, UsageError
from evodiff_ray.core.evaluator import Evaluator
from evodiff_ray.evaluation.local import LocalEvaluator
from evodiff_ray.problems import make_problem
from evodiff_ray.search import CallbackTracker, search
from evodiff_ray.search.loop import DETERMINISTIC_STATS


def cfg(runs_dir, **kw):
    base = {"problem": "zdt1", "pop_size": 12, "generations": 6, "seed": 2, "backend": "local",
            "runs_dir": str(runs_dir), "no_cache": True, "no_tracking": True}
    base.update(kw)
    return load_config(overrides=base)


def same_run(a, b):
    assert [p["key"] for p in a.points] == [p["key"] for p in b.points]
    assert [p["objectives"] for p in a.points] == [p["objectives"] for p in b.points]
    assert [{k: h[k] for k in DETERMINISTIC_STATS} for h in a.history] == \
        [{k: h[k] for k in DETERMINISTIC_STATS} for h in b.history]
    assert [r["key"] for r in a.records] == [r["key"] for r in b.records]


def test_generational_run_writes_its_run_dir(runs_dir):
    seen = []
    r = search(cfg(runs_dir, search_id="g"), trackers=[CallbackTracker(lambda s, f: seen.append(s["generation"]))])
    assert seen == [1, 2, 3, 4, 5, 6] and len(r.records) == 72
    run_dir = runs_dir / "g"
    front = json.loads((run_dir / "front.json").read_text())
    assert front["status"] == "finished" and front["evaluations"] == 72
    assert front["cache"] == {"hits": 0, "misses": 72, "waited": 0}
    assert json.loads((run_dir / "config.json").read_text())["search_id"] == "g"
    assert len(json.loads((run_dir / "history.json").read_text())) == 6
    assert r.to_pandas().shape == (len(r.points), 4)
    F = r.front_array()
    assert len(F) and all(not np.all(F[j] <= F[i]) or i == j for i in range(len(F)) for j in range(len(F)))


def test_async_spends_exactly_the_budget(runs_dir):
    r = search(cfg(runs_dir, mode="async", generations=None, max_evaluations=50))
    assert len(r.records) == 50 and len({r_["ordinal"] for r_ in r.records}) == 50
    assert r.stop_reason == "max_evaluations=50"


def test_resume_equals_uninterrupted(runs_dir):
    full = search(cfg(runs_dir, search_id="full", generations=8))
    search(cfg(runs_dir, search_id="part", generations=3))
    resumed = search(cfg(runs_dir, search_id="part", generations=8), resume=True)
    same_run(full, resumed)


def test_resume_in_async_mode_completes_the_budget(runs_dir):
    search(cfg(runs_dir, search_id="a", mode="async", generations=None, max_evaluations=30))
    r = search(cfg(runs_dir, search_id="a", mode="async", generations=None, max_evaluations=60), resume=True)
    assert len(r.records) == 60 and len({x["ordinal"] for x in r.records}) == 60


def test_resume_guards(runs_dir):
    with pytest.raises(UsageError, match="nothing to resume"):
        search(cfg(runs_dir, search_id="r"), resume=True)
    search(cfg(runs_dir, search_id="r", generations=2))
    with pytest.raises(UsageError, match="already holds search 'r'"):
        search(cfg(runs_dir, search_id="r"))
    with pytest.raises(UsageError, match="seed"):
        search(cfg(runs_dir, search_id="r", seed=99), resume=True)


def test_replay_divergence_is_detected(runs_dir):
    search(cfg(runs_dir, search_id="t", generations=2))
    seg = sorted((runs_dir / "t" / "checkpoint").glob("seg-*.json"))[0]
    data = json.loads(seg.read_text())
    data["events"][0]["keys"][0] = "0" * 64
    seg.write_text(json.dumps(data))
    with pytest.raises(RuntimeFailure, match="replay diverged"):
        search(cfg(runs_dir, search_id="t", generations=4), resume=True)


def test_failures_are_recorded_never_on_the_front(runs_dir):
    r = search(cfg(runs_dir, problem="synthetic", problem_options={"failure_rate": 0.3}, generations=4))
    failed = [x for x in r.records if not x["fitness"]["feasible"]]
    assert failed and r.history[-1]["failures"] == len(failed)
    assert {p["key"] for p in r.points}.isdisjoint({x["key"] for x in failed})
    assert all(x["fitness"]["reason"] for x in failed)


def test_wrapped_evaluator_sees_every_task(runs_dir):
    """A cache-like wrapper with the same interface sits on the evaluation path."""

    class Counting(Evaluator):
        def __init__(self, inner):
            self.inner, self.tasks = inner, []

        capacity = property(lambda self: self.inner.capacity)
        in_flight = property(lambda self: self.inner.in_flight)

        def submit(self, tasks):
            self.tasks.extend(tasks)
            self.inner.submit(tasks)

        def poll(self, timeout=None):
            out = self.inner.poll(timeout)
            for o in out:
                o.source = "hit" if o.task.ordinal % 2 else "evaluated"
            return out

    holder = {}

    def wrap(inner):
        holder["w"] = Counting(inner)
        return holder["w"]

    r = search(cfg(runs_dir, generations=3), wrap_evaluator=wrap)
    assert len(holder["w"].tasks) == 36
    assert r.front["cache"] == {"hits": 18, "misses": 18, "waited": 0}


def test_given_evaluator_is_used_and_left_open(runs_dir):
    ev = LocalEvaluator(make_problem("zdt1", {}))
    search(cfg(runs_dir, generations=2), evaluator=ev)
    assert ev.stats()["evaluated"] == 24


def test_max_seconds_stops_the_search(runs_dir):
    r = search(cfg(runs_dir, problem="synthetic", problem_options={"mean_ms": 20}, generations=None,
                   max_seconds=0.5))
    assert r.stop_reason == "max_seconds=0.5" and 0 < len(r.records) < 1000
