"""Memory budget of a chip and the constraint it makes."""

import math

import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.hardware.budget import (DEFAULT_USABLE_FRACTION, memory_budget_mb, memory_constraint,
                                         over_budget_reason)


def test_budget_is_smallest_memory_times_fraction():
    assert memory_budget_mb("m2-max") == 32 * 1024 * DEFAULT_USABLE_FRACTION
    assert memory_budget_mb("m2-max", 0.5, memory_gb=96) == 96 * 1024 * 0.5
    assert memory_budget_mb("m1", recommended_max_bytes=5 * 2**30) == 5 * 1024   # a real Mac's own figure wins
    assert memory_budget_mb("m1", 0.5, recommended_max_bytes=5 * 2**30) == 8 * 1024 * 0.5  # explicit fraction wins


def test_budget_rejects_bad_input():
    with pytest.raises(UsageError, match="32, 64, 96"):
        memory_budget_mb("m2-max", memory_gb=48)
    with pytest.raises(UsageError, match="usable_fraction"):
        memory_budget_mb("m2-max", 1.5)


def test_constraint_sign_and_reason():
    assert memory_constraint(50, 100) == -0.5
    assert memory_constraint(150, 100) == 0.5
    assert memory_constraint(math.nan, 100) == math.inf
    assert over_budget_reason(50, 100, predicted=True) is None
    r = over_budget_reason(150, 100, predicted=True, chip="m1")
    assert r.startswith("memory budget: predicted peak 150.0 MiB") and "m1" in r
