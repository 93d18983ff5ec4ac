"""Successive halving after a resume: the told records give back the rankings and the finished rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from evodiff_ray.core.evaluator import Evaluator, Task
from evodiff_ray.evaluation.local import LocalEvaluator
from evodiff_ray.evaluation.rungs import SuccessiveHalving
from evodiff_ray.evaluation.samples import SampleGrids

sys.path.insert(0, str(Path(__file__).parent))
from rung_problem import RungProblem  # noqa: E402


def _tasks(problem, xs, first=0):
    return [Task(first + i, problem.key(x), problem.to_json(x)) for i, x in enumerate(xs)]


def _rungs(outcomes):
    return {o.task.ordinal: o.fitness.extras.get("rung") for o in outcomes}


def test_a_restored_halving_decides_like_the_uninterrupted_one(tmp_path):
    problem = RungProblem(str(tmp_path / "log"))

    def halving():
        return SuccessiveHalving(LocalEvaluator(problem), rungs=3, objective_names=problem.objective_names,
                                 eta=3, margin=0.1)

    told = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.1], [0.5, 0.5, 0.2]]
    # worse on quality than every told one; the last is also slower and bigger than them
    later = [[0.5, 0.5, 0.8], [0.5, 0.5, 0.9], [0.9, 0.9, 0.5]]
    whole = halving()
    before = whole.evaluate(_tasks(problem, told))
    after = _rungs(whole.evaluate(_tasks(problem, later, first=3)))
    assert after == {3: 0, 4: 0, 5: -1}            # ranked against the told rows; the last skipped

    # a resume: the records as the ledger keeps them (through JSON, as in the checkpoint)
    records = json.loads(json.dumps([{"ordinal": o.task.ordinal, "fitness": o.fitness.to_dict()}
                                     for o in before], allow_nan=False))
    assert [r["fitness"]["extras"]["rung_quality"] for r in records][0] == [
        before[0].fitness.extras["rung_quality"][r] for r in range(3)]
    resumed = halving()
    # through the outer wrapper, as the search stacks them (the restore hook is passed on)
    SampleGrids(resumed, tmp_path / "run").restore(records)
    assert _rungs(resumed.evaluate(_tasks(problem, later, first=3))) == after
    assert resumed.stats()["rungs"] == whole.stats()["rungs"]    # the counters cover the whole search

    # without the records, the later batch would be ranked only against itself
    forgetful = _rungs(halving().evaluate(_tasks(problem, later, first=3)))
    assert forgetful != after and forgetful[3] >= 1 and forgetful[5] >= 0


class _Sorted(Evaluator):
    """Evaluates all that was submitted at each poll and returns it sorted by ordinal, up or down."""

    def __init__(self, inner, descending: bool):
        self.inner, self.descending = inner, descending

    capacity = property(lambda self: self.inner.capacity)
    in_flight = property(lambda self: self.inner.in_flight)

    def submit(self, tasks):
        self.inner.submit(tasks)

    def poll(self, timeout=None):
        out = []
        while self.inner.in_flight:
            out += self.inner.poll(timeout)
        return sorted(out, key=lambda o: o.task.ordinal, reverse=self.descending)


def test_promotion_does_not_depend_on_arrival_order(tmp_path):
    """Rows are ranked in ask order: the same results arriving in opposite orders, the same decision."""
    problem = RungProblem(str(tmp_path / "log"))
    xs = [[0.5, 0.5, 0.3], [0.5, 0.5, 0.3]]     # tied on every objective: only the order can decide
    promoted_ = []
    for descending in (False, True):
        sh = SuccessiveHalving(_Sorted(LocalEvaluator(problem), descending), rungs=2,
                               objective_names=problem.objective_names, eta=2, margin=None)
        rungs = _rungs(sh.evaluate(_tasks(problem, xs)))
        promoted_.append([o for o, r in rungs.items() if r == 1])
    assert promoted_ == [[0], [0]]


def test_asynchronous_halving_promotes_each_candidate_as_its_result_comes_in(tmp_path):
    """ASHA: the first candidate is promoted on its own rung-0 result, before the second's is in;
    synchronous halving decides the two together and promotes only the better one."""
    problem = RungProblem(str(tmp_path / "log"))
    xs = [[0.5, 0.5, 0.6], [0.5, 0.5, 0.2]]          # the second is better on quality
    reached = {}
    for asynchronous in (False, True):
        sh = SuccessiveHalving(LocalEvaluator(problem), rungs=2, objective_names=problem.objective_names,
                               eta=2, margin=None, asynchronous=asynchronous)
        reached[asynchronous] = _rungs(sh.evaluate(_tasks(problem, xs)))
    assert reached[False] == {0: 0, 1: 1}
    assert reached[True] == {0: 1, 1: 1}
