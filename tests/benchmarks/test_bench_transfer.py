"""The transfer benchmark's own parts: its dataset loads as a user's folder, its front and
reach computations are right (the search runs themselves are the benchmark, not a test)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_transfer as bt  # noqa: E402


def test_shapes_are_deterministic_and_differ_by_kind():
    a = [bt.draw_shape(k, np.random.default_rng(3)) for k in bt.SHAPES]
    b = [bt.draw_shape(k, np.random.default_rng(3)) for k in bt.SHAPES]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(x.shape == (16, 16) and x.dtype == np.uint8 for x in a)
    # same draws, different shapes: the masks differ
    assert len({x.tobytes() for x in a}) == len(bt.SHAPES)


def test_the_shapes_folder_loads_as_a_labelled_16x16_dataset(tmp_path):
    from evodiff_ray.data import load_dataset

    root = bt.make_shapes(tmp_path / "shapes", per_class=10)
    ds = load_dataset(str(root))
    assert ds.resolution == 16 and ds.channels == 1 and ds.num_classes == len(bt.SHAPES)
    assert len(ds.train) + len(ds.heldout) == 10 * len(bt.SHAPES)
    assert bt.make_shapes(root, per_class=99) == root            # written once: a rerun keeps it
    assert len(list((root / "disk").glob("*.png"))) == 10


def _row(key, fd, lat, mem, feasible=True):
    return {"key": key, "feasible": feasible, "genome": {"k": key},
            "objectives": {"quality_fd": fd, "latency_ms": lat, "memory_mb": mem}}


def test_pareto_genomes_keeps_the_feasible_non_dominated_lowest_fd_first():
    rows = [_row("a", 10, 5, 1), _row("b", 5, 9, 1), _row("c", 11, 6, 2),     # c dominated by a
            _row("d", 1, 1, 1, feasible=False), _row("b", 5, 9, 1)]           # infeasible; a repeat
    assert [g["k"] for g in bt.pareto_genomes(rows)] == ["b", "a"]


def test_evaluations_to_reach_is_one_based_and_none_when_never():
    curve = np.array([0.1, 0.2, 0.2, 0.5])
    assert bt.evaluations_to_reach(curve, 0.2) == 2
    assert bt.evaluations_to_reach(curve, 0.5) == 4
    assert bt.evaluations_to_reach(curve, 0.6) is None


def test_spread_keeps_both_ends_and_spaces_the_rest_evenly():
    assert bt.spread(list(range(5)), 9) == [0, 1, 2, 3, 4]
    assert bt.spread(list(range(31)), 16)[0] == 0 and bt.spread(list(range(31)), 16)[-1] == 30
    assert bt.spread(list(range(31)), 8) == [0, 4, 9, 13, 17, 21, 26, 30]
