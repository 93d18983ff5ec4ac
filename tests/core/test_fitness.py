"""Fitness records: JSON round trips, validation of untrusted data, and the failure taxonomy."""

import json
import math

import pytest

from evodiff_ray.core.fitness import Fitness, FitnessFormatError, overloaded


def _roundtrip(fit: Fitness) -> Fitness:
    return Fitness.from_dict(json.loads(json.dumps(fit.to_dict(), allow_nan=False)))


def test_feasible_and_failed_records_round_trip_through_json():
    ok = Fitness({"f1": 0.5, "f2": 2.0}, constraints={"g": -1.0}, extras={"p90": math.inf})
    back = _roundtrip(ok)
    assert back.objectives == ok.objectives and back.constraints == ok.constraints
    assert back.failure is None and back.cacheable and back.extras["p90"] == "inf"
    for transient in (False, True):
        bad = Fitness.infeasible(("f1", "f2"), "boom", ("g",), transient=transient)
        back = _roundtrip(bad)
        assert back.objectives == {"f1": math.inf, "f2": math.inf} and back.constraints == {"g": math.inf}
        assert back.transient is transient and back.reason == "boom"
        assert back.failure == ("transient" if transient else "permanent")
        assert back.cacheable is not transient


def test_a_record_written_before_the_taxonomy_reads_as_permanent():
    old = Fitness.infeasible(("f1",), "out of memory").to_dict()
    del old["transient"]
    back = Fitness.from_dict(old)
    assert back.failure == "permanent" and back.cacheable


@pytest.mark.parametrize("change, message", [
    ({"transient": "yes"}, "'transient' must be true or false"),
    ({"transient": 1}, "'transient' must be true or false"),
    ({"feasible": True, "transient": True}, "only for infeasible records"),
])
def test_a_malformed_transient_flag_is_rejected(change, message):
    d = Fitness.infeasible(("f1",), "x").to_dict()
    d.update(change)
    with pytest.raises(FitnessFormatError, match=message):
        Fitness.from_dict(d)


def test_a_transient_record_must_be_infeasible_and_name_its_objectives():
    with pytest.raises(ValueError, match="cannot be feasible"):
        Fitness({"f1": 1.0}, transient=True)
    with pytest.raises(ValueError, match="objective names"):
        Fitness.infeasible((), "actor died", transient=True)


def test_overloaded_compares_the_load_with_the_cpus():
    assert overloaded(load1=4.5, cpus=2) and not overloaded(load1=1.9, cpus=2)
    assert not overloaded(load1=2.0, cpus=2)          # fully busy is not overloaded
    assert isinstance(overloaded(), bool)             # measured here and now
