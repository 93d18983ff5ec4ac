"""The front keeps only records that meet their constraints; the front JSON states them."""

import json
import math

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.front import front_json, front_of, validate_front, violates


def rec(key, f1, f2, g=None):
    fit = Fitness({"f1": f1, "f2": f2}, constraints={} if g is None else {"f1<=0.5": g})
    return {"key": key, "x": [f1], "generation": 1, "parents": [], "fitness": fit.to_dict()}


def test_a_record_that_violates_a_constraint_is_not_on_the_front():
    records = [rec("a", 0.1, 1.0, -0.8), rec("b", 0.9, 0.0, 0.8), rec("c", 0.5, 0.5, 0.0)]
    assert [r["key"] for r in front_of(records, ("f1", "f2"))] == ["a", "c"]   # b dominates nothing it needs to
    # b would be on the front without the constraint
    assert "b" in [r["key"] for r in front_of([rec("a", 0.1, 1.0), rec("b", 0.9, 0.0)], ("f1", "f2"))]
    # and a violator never shadows a point that meets the constraint
    assert [r["key"] for r in front_of([rec("d", 0.6, 0.6, 0.2), rec("e", 0.7, 0.7, -0.1)], ("f1", "f2"))] == ["e"]


def test_violates_reads_fitness_dicts():
    assert not violates(rec("a", 0, 0, 0.0)["fitness"]) and not violates(rec("a", 0, 0)["fitness"])
    assert violates(rec("a", 0, 0, 1e-9)["fitness"])
    assert violates(rec("a", 0, 0, math.nan)["fitness"]) and violates(rec("a", 0, 0, math.inf)["fitness"])


def test_the_front_json_states_the_constraints_in_force():
    kw = dict(search_id="s", status="finished", generation=1, evaluations=2, cache={}, utilization=None,
              objective_names=("f1", "f2"), front_records=[rec("a", 0.1, 1.0, -0.8)])
    doc = front_json(**kw, constraints=["f1<=0.5"])
    assert doc["constraints"] == ["f1<=0.5"]
    assert validate_front(json.loads(json.dumps(doc))) == doc
    assert "constraints" not in front_json(**kw)          # unconstrained: the documented fields only
