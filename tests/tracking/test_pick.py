"""``promote --pick``: the knee, weights over the normalised objectives, an index, a key prefix."""

import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.tracking.registry import knee_index, parse_weights, pick_point, weighted_index

NAMES = ["quality_fd", "latency_ms"]
#: a front in different units: FD 10..30, latency 2..200 ms
POINTS = [
    {"key": "aaa1", "objectives": {"quality_fd": 10.0, "latency_ms": 200.0}},
    {"key": "bbb2", "objectives": {"quality_fd": 14.0, "latency_ms": 40.0}},
    {"key": "ccc3", "objectives": {"quality_fd": 22.0, "latency_ms": 10.0}},
    {"key": "ddd4", "objectives": {"quality_fd": 30.0, "latency_ms": 2.0}},
]
FRONT = {"objectives": NAMES, "points": POINTS}


@pytest.mark.parametrize("pick, key", [
    ("weights:quality_fd=1", "aaa1"),                     # unnamed objectives weigh 0: the best quality
    ("weights:latency_ms=1", "ddd4"),
    ("weights:quality_fd=1,latency_ms=1", "bbb2"),        # 0.2 + 0.2/1.98 beats ccc3's 0.6 + 0.04
    ("weights:quality_fd=1,latency_ms=8", "ccc3"),
    ("weights:quality_fd=0,latency_ms=1", "ddd4"),
    ("weights:latency_ms = 2.5", "ddd4"),
    ("knee", "bbb2"),
    ("2", "ccc3"),
    ("ddd", "ddd4"),
])
def test_pick_point(pick, key):
    assert pick_point(FRONT, pick)["key"] == key


def test_weights_compare_normalised_objectives_and_scale_freely():
    # multiplying every weight by a constant picks the same member; units do not matter
    a = weighted_index(POINTS, NAMES, {"quality_fd": 2, "latency_ms": 1})
    assert a == weighted_index(POINTS, NAMES, {"quality_fd": 20, "latency_ms": 10})
    scaled = [{"key": p["key"], "objectives": {"quality_fd": p["objectives"]["quality_fd"],
                                               "latency_ms": p["objectives"]["latency_ms"] / 1000}} for p in POINTS]
    assert weighted_index(scaled, NAMES, {"quality_fd": 2, "latency_ms": 1}) == a
    # an objective equal over the front counts 0; ties go to the earlier point
    flat = [{"key": str(i), "objectives": {"quality_fd": 1.0, "latency_ms": 1.0}} for i in range(3)]
    assert weighted_index(flat, NAMES, {"quality_fd": 1}) == 0 == knee_index(flat, NAMES)


@pytest.mark.parametrize("spec, message", [
    ("", "expected NAME=WEIGHT pairs"),
    ("quality_fd", "expected NAME=WEIGHT pairs"),
    ("quality_fd=1,", "expected NAME=WEIGHT pairs"),
    ("quality_fd=much", "the weight of 'quality_fd' is not a number"),
    ("quality_fd=-1", "weights must be finite and >= 0"),
    ("quality_fd=inf", "weights must be finite and >= 0"),
    ("quality_fd=0,latency_ms=0", "every weight is 0"),
    ("quality_fd=1,quality_fd=2", "'quality_fd' is given twice"),
    ("fid=1", "the front has no objective 'fid'; weigh some of quality_fd, latency_ms"),
])
def test_bad_weights_are_one_line_usage_errors(spec, message):
    with pytest.raises(UsageError) as e:
        pick_point(FRONT, "weights:" + spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_weights_parse_without_the_front_and_an_empty_front_has_no_pick():
    assert parse_weights("quality_fd=2, latency_ms=1") == {"quality_fd": 2.0, "latency_ms": 1.0}
    assert parse_weights("anything=1") == {"anything": 1.0}          # names are checked once the front is read
    with pytest.raises(UsageError, match="the front is empty"):
        pick_point({"objectives": NAMES, "points": []}, "weights:quality_fd=1")
    with pytest.raises(UsageError, match="'weights:NAME=W,...'"):
        pick_point(FRONT, "zzz")
