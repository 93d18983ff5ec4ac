"""Successive halving over a real evaluator: probes, rungs, promotion, and the cheap-objective rule."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from evodiff_ray.core.evaluator import Task
from evodiff_ray.evaluation.local import LocalEvaluator
from evodiff_ray.evaluation.rungs import PROBE, SuccessiveHalving

sys.path.insert(0, str(Path(__file__).parent))
from rung_problem import STEPS, RungProblem  # noqa: E402


def _log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _tasks(problem, xs, first=0):
    return [Task(first + i, problem.key(x), problem.to_json(x)) for i, x in enumerate(xs)]


def test_halving_promotes_the_top_third_per_rung(tmp_path):
    problem = RungProblem(str(tmp_path / "log"))
    sh = SuccessiveHalving(LocalEvaluator(problem), rungs=3, objective_names=problem.objective_names,
                           eta=3, margin=None)
    # nine candidates on a line: equally fast and small, quality rising with c
    xs = [[0.5, 0.5, i / 10] for i in range(9)]
    outcomes = sh.evaluate(_tasks(problem, xs))
    log = _log(tmp_path / "log")
    by_rung = {r: sorted(e["key"] for e in log if e["rung"] == r) for r in (PROBE, 0, 1, 2)}
    keys = [problem.key(x) for x in xs]
    assert by_rung[PROBE] == sorted(keys) and by_rung[0] == sorted(keys)
    assert by_rung[1] == sorted(keys[:3])            # the best third of rung 0
    assert by_rung[2] == sorted(keys[:1])            # the best third of those
    rungs = {o.task.key: o.fitness.extras["rung"] for o in outcomes}
    assert rungs == {k: (2 if i == 0 else 1 if i < 3 else 0) for i, k in enumerate(keys)}
    best = next(o for o in outcomes if o.task.key == keys[0])
    assert best.fitness.objectives["quality"] == pytest.approx(1.0 * (1 + 2.0 ** -2))
    assert best.fitness.objectives["latency"] == pytest.approx(6.0)   # from the probe
    assert best.fitness.extras["train_steps"] == STEPS[2]
    assert best.fitness.extras["train_steps_spent"] == STEPS[2]       # continued, never restarted
    assert sh.stats()["rungs"] == {"probed": 9, "skipped": 0, "trained": {0: 9, 1: 3, 2: 1}}


def test_promotion_compares_with_earlier_batches(tmp_path):
    problem = RungProblem(str(tmp_path / "log"))
    sh = SuccessiveHalving(LocalEvaluator(problem), rungs=2, objective_names=problem.objective_names,
                           eta=2, margin=None)
    sh.evaluate(_tasks(problem, [[0.5, 0.5, 0.0], [0.5, 0.5, 0.1]]))
    # a later batch of worse candidates: ranked against every rung-0 result so far
    late = [[0.5, 0.5, 0.8], [0.5, 0.5, 0.9]]
    outcomes = sh.evaluate(_tasks(problem, late, first=2))
    assert [o.fitness.extras["rung"] for o in outcomes] == [0, 0]


def test_cheap_objectives_first_skip_training(tmp_path):
    problem = RungProblem(str(tmp_path / "log"))
    sh = SuccessiveHalving(LocalEvaluator(problem), rungs=2, objective_names=problem.objective_names,
                           eta=2, margin=0.1)
    first = sh.evaluate(_tasks(problem, [[0.1, 0.1, 0.0]]))     # fast, small and the best quality
    assert first[0].fitness.feasible
    slow_big = [0.9, 0.9, 0.5]
    out = sh.evaluate(_tasks(problem, [slow_big], first=1))[0]
    assert not out.fitness.feasible and out.fitness.transient
    assert "not trained" in out.fitness.reason
    trained = [e for e in _log(tmp_path / "log") if e["key"] == problem.key(slow_big) and e["rung"] >= 0]
    assert trained == []                                          # probed only
    assert sh.stats()["rungs"]["skipped"] == 1
