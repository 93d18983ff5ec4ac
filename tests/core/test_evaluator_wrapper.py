"""EvaluatorWrapper passes every declared hook on, so no wrapper can forget one."""

from __future__ import annotations

import ast
from pathlib import Path

from evodiff_ray.core.evaluator import Evaluator, EvaluatorWrapper, Outcome, Task
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.tracker import Tracker

PACKAGE = Path(__file__).resolve().parents[2] / "evodiff_ray"


class _Inner(Evaluator):
    def __init__(self):
        self.calls: list[str] = []
        self.tracker = Tracker()
        self.queued: list[Task] = []

    @property
    def capacity(self):
        return 7

    @property
    def in_flight(self):
        return len(self.queued)

    def submit(self, tasks):
        self.queued += list(tasks)

    def poll(self, timeout=None):
        out = [Outcome(t, Fitness(objectives={"f": float(t.ordinal)})) for t in self.queued]
        self.queued = []
        return out

    def stats(self):
        return {"inner": True}

    def close(self):
        self.calls.append("close")

    def release(self):
        self.calls.append("release")

    def worker_facts(self):
        return {"device_class": "cpu"}

    def metrics_tracker(self):
        return self.tracker


class _Doubling(EvaluatorWrapper):
    """Overrides poll only."""

    def poll(self, timeout=None):
        return [Outcome(o.task, Fitness(objectives={"f": 2 * o.fitness.objectives["f"]}))
                for o in self.inner.poll(timeout)]


def test_a_wrapper_that_overrides_one_method_forwards_every_hook():
    inner = _Inner()
    w = _Doubling(_Doubling(inner))          # nested, as the search stacks them
    assert w.capacity == 7
    w.submit([Task(1, "a", {}), Task(2, "b", {})])
    assert w.in_flight == 2
    assert [o.fitness.objectives["f"] for o in w.evaluate([])] == []
    assert sorted(o.fitness.objectives["f"] for o in w.poll()) == [4.0, 8.0]
    assert w.stats() == {"inner": True}
    assert w.worker_facts() == {"device_class": "cpu"}
    assert w.metrics_tracker() is inner.tracker
    w.release()
    w.close()
    assert inner.calls == ["release", "close"]


def test_every_evaluator_that_wraps_another_derives_from_the_wrapper():
    """An Evaluator subclass holding ``self.inner`` must be an EvaluatorWrapper."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in cls.bases}
            if "Evaluator" not in bases or cls.name == "EvaluatorWrapper":
                continue
            holds_inner = any(isinstance(t, ast.Attribute) and t.attr == "inner"
                              and isinstance(t.value, ast.Name) and t.value.id == "self"
                              for n in ast.walk(cls) if isinstance(n, ast.Assign) for t in n.targets)
            if holds_inner:
                offenders.append(f"{path.relative_to(PACKAGE)}:{cls.name}")
    assert offenders == [], f"derive these from EvaluatorWrapper: {offenders}"
