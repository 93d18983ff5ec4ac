"""Front computation, hypervolume, the front document and the file FrontStore."""

import json

import numpy as np
import pytest

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.core.front import (
    FileFrontStore,
    atomic_write_text,
    derive_reference_point,
    front_json,
    front_of,
    hypervolume,
    non_dominated,
    validate_front,
)


def rec(key, f1, f2, feasible=True, gen=1):
    fit = Fitness({"f1": f1, "f2": f2}) if feasible else Fitness.infeasible(("f1", "f2"), "x")
    return {"key": key, "x": [f1], "generation": gen, "parents": [], "fitness": fit.to_dict()}


def test_non_dominated_and_hypervolume_known_values():
    F = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    assert non_dominated(F).tolist() == [0, 1, 2]
    assert hypervolume(F[:2], [2.0, 2.0]) == pytest.approx(3.0)
    assert hypervolume(F[:3], [2.0, 2.0]) == pytest.approx(3.25)
    assert hypervolume(np.array([[3.0, 3.0]]), [2.0, 2.0]) == 0.0


def test_front_of_skips_infeasible_and_duplicates():
    records = [rec("a", 0, 1), rec("b", 1, 0), rec("c", 0.2, 0.2, feasible=False),
               rec("a", 0, 1), rec("d", 2, 2)]
    assert [r["key"] for r in front_of(records, ("f1", "f2"))] == ["a", "b"]
    assert front_of([rec("c", 0, 0, feasible=False)], ("f1", "f2")) == []


def test_reference_point_lies_beyond_the_front():
    ref = derive_reference_point(np.array([[0.0, 4.0], [2.0, 1.0]]))
    assert ref == pytest.approx([2.2, 4.3])


def test_front_json_has_exactly_the_documented_fields():
    doc = front_json(search_id="s", status="running", generation=3, evaluations=30,
                     cache={"hits": 1, "misses": 29}, utilization=0.9,
                     objective_names=("f1", "f2"), front_records=[rec("a", 0.0, 1.0)])
    assert set(doc) == {"search_id", "status", "generation", "evaluations", "cache", "utilization",
                        "objectives", "points"}
    assert doc["cache"] == {"hits": 1, "misses": 29, "waited": 0}
    (p,) = doc["points"]
    assert set(p) == {"key", "objectives", "genome", "generation", "parents", "origin", "rung", "train_steps",
                      "measured_on"}
    assert p["rung"] is None and p["train_steps"] is None          # single fidelity
    assert set(p["measured_on"]) == {"node", "device", "chip", "predicted"}
    assert validate_front(json.loads(json.dumps(doc))) == doc


def test_file_store_publish_read_latest(tmp_path):
    store = FileFrontStore(tmp_path)
    assert store.read("x") is None and store.latest() is None
    for sid in ("one", "two"):
        store.publish(sid, front_json(search_id=sid, status="finished", generation=1, evaluations=1,
                                      cache={}, utilization=None, objective_names=("f1", "f2"),
                                      front_records=[rec("a", 0.0, 1.0)]))
    assert store.read("one")["search_id"] == "one"
    assert store.latest() == "two"
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["front.json"]  # no temp files left


def test_validate_front_rejects_junk():
    for junk in ([], {"search_id": "s"}, {"search_id": "s", "status": "x", "generation": 1, "evaluations": 1,
                                           "objectives": [], "cache": {}, "points": [1]}):
        with pytest.raises(ValueError):
            validate_front(junk)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "f.json"
    atomic_write_text(path, "old")

    with pytest.raises(TypeError):
        atomic_write_text(path, 123)  # a failure mid-write
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
