"""Preferences as constraints: parsing, the normalised values, and the evaluator wrapper."""

import math

import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.evaluator import Task
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.evaluation.constraints import (
    ConstraintEvaluator,
    ObjectiveConstraint,
    StatedConstraints,
    constraint_value,
    parse_constraints,
)
from evodiff_ray.evaluation.local import LocalEvaluator
from evodiff_ray.problems import make_problem


@pytest.mark.parametrize("text, objective, op, limit, name", [
    ("latency_ms<=20", "latency_ms", "<=", 20.0, "latency_ms<=20"),
    ("  memory_mb >= 4.5 ", "memory_mb", ">=", 4.5, "memory_mb>=4.5"),
    ("f1≤1e-3", "f1", "<=", 0.001, "f1<=0.001"),
    ("f2=>-2", "f2", ">=", -2.0, "f2>=-2"),
])
def test_constraints_parse_to_a_canonical_name(text, objective, op, limit, name):
    c = ObjectiveConstraint.parse(text)
    assert (c.objective, c.op, c.limit, c.name) == (objective, op, limit, name)
    assert ObjectiveConstraint.parse(c.name) == c                      # the name reads back the same


@pytest.mark.parametrize("text, message", [
    ("latency_ms<20", "use <= or >= (not <)"),
    ("latency_ms==20", "use <= or >= (not ==)"),
    ("latency_ms<=fast", "the limit 'fast' is not a number"),
    ("latency_ms<=20ms", "the limit '20ms' is not a number"),
    ("latency_ms<=inf", "the limit must be a finite number"),
    ("latency_ms>=nan", "the limit must be a finite number"),
    ("latency_ms<=", "is not OBJECTIVE<=LIMIT or OBJECTIVE>=LIMIT"),
    ("<=20", "is not OBJECTIVE<=LIMIT or OBJECTIVE>=LIMIT"),
    ("latency_ms", "is not OBJECTIVE<=LIMIT or OBJECTIVE>=LIMIT"),
    (20, "must be a string"),
])
def test_malformed_constraints_are_one_line_usage_errors(text, message):
    with pytest.raises(UsageError, match="^constraint .*") as e:
        ObjectiveConstraint.parse(text)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_constraint_given_twice_is_refused():
    with pytest.raises(UsageError, match="'f1<=0.5' is given twice"):
        parse_constraints(["f1<=0.5", "f1 <= 0.50"])
    assert [c.name for c in parse_constraints(["f1<=0.5", "f1<=0.4"])] == ["f1<=0.5", "f1<=0.4"]


def test_values_are_normalised_like_the_space_and_memory_constraints():
    assert constraint_value(25.0, "<=", 20.0) == pytest.approx(25 / 20 - 1)     # value/limit - 1
    assert constraint_value(10.0, "<=", 20.0) == pytest.approx(-0.5)
    assert constraint_value(3.0, ">=", 4.0) == pytest.approx(1 - 3 / 4)          # 1 - value/limit
    assert constraint_value(8.0, ">=", 4.0) == pytest.approx(-1.0)
    assert constraint_value(-3.0, "<=", -2.0) == pytest.approx(-0.5)             # by |limit|: still signed right
    assert constraint_value(0.25, "<=", 0.0) == 0.25                             # limit 0: the difference
    assert constraint_value(math.nan, "<=", 1.0) == math.inf
    assert constraint_value(math.inf, "<=", 1.0) == math.inf
    assert constraint_value(20.0, "<=", 20.0) == 0.0                             # on the limit: satisfied


def test_apply_adds_the_values_and_keeps_everything_else():
    stated = StatedConstraints.parse(["latency_ms<=20", "memory_mb<=4"])
    fit = Fitness({"quality_fd": 1.0, "latency_ms": 30.0, "memory_mb": 2.0}, constraints={"params": -0.5},
                  extras={"rung": None})
    out = stated.apply(fit)
    assert out.constraints == {"params": -0.5, "latency_ms<=20": pytest.approx(0.5), "memory_mb<=4": -0.5}
    assert out.feasible and out.objectives == fit.objectives and out.extras == fit.extras
    assert fit.constraints == {"params": -0.5}                                 # the input is not changed
    failed = stated.apply(Fitness.infeasible(("quality_fd", "latency_ms", "memory_mb"), "oom"))
    assert failed.constraints == {"latency_ms<=20": math.inf, "memory_mb<=4": math.inf} and not failed.feasible
    missing = StatedConstraints.parse(["rating<=1"]).apply(fit)                  # an objective the record lacks
    assert missing.constraints["rating<=1"] == math.inf


def test_check_names_the_unknown_objective_and_the_known_ones():
    StatedConstraints.parse(["f1<=0.5"]).check(("f1", "f2"))
    with pytest.raises(UsageError, match=r"^constraint 'lat<=20': problem 'zdt1' has no objective 'lat'; "
                                         r"constrain one of f1, f2$"):
        StatedConstraints.parse(["lat<=20"]).check(("f1", "f2"), "problem 'zdt1'")


def test_the_wrapper_constrains_every_outcome_and_counts_violations():
    problem = make_problem("zdt1", {"n_var": 3})
    stated = StatedConstraints.parse(["f1<=0.5"])
    ev = stated.wrap(LocalEvaluator(problem))
    assert isinstance(ev, ConstraintEvaluator) and ev.capacity == 1
    xs = [[0.2, 0.0, 0.0], [0.8, 0.0, 0.0], [0.5, 0.3, 0.3]]
    outcomes = ev.evaluate([Task(i, f"k{i}", x) for i, x in enumerate(xs)], poll_s=0.01)
    g = [o.fitness.constraints["f1<=0.5"] for o in outcomes]
    assert g == pytest.approx([0.2 / 0.5 - 1, 0.8 / 0.5 - 1, 0.0])
    assert all(o.fitness.feasible for o in outcomes)                          # a violation is not a failure
    assert ev.stats()["constraints"] == {"f1<=0.5": 1}
    # a resumed search counts its told records again: a fresh wrapper restored from them agrees
    records = [{"key": o.task.key, "fitness": o.fitness.to_dict()} for o in outcomes]
    records.append({"key": "failed", "fitness": Fitness.infeasible(("f1", "f2"), "boom", ("f1<=0.5",)).to_dict()})   # inf: a failure, not a violation
    again = stated.wrap(LocalEvaluator(problem))
    again.restore(records)
    assert again.stats()["constraints"] == {"f1<=0.5": 1}
    ev.close()
    again.close()
