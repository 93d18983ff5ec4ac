"""The pure kernels of multi-fidelity: promotion order, promotion, and the cheap-objective rule."""

from __future__ import annotations

import numpy as np

from evodiff_ray.evaluation.rungs import not_worth_training, promoted, promotion_order


def test_promotion_order_ranks_fronts_first_then_crowding():
    F = np.array([
        [1.0, 5.0],   # front 0, extreme
        [5.0, 1.0],   # front 0, extreme
        [3.0, 3.0],   # front 0, middle (least crowding among >2)
        [4.0, 4.0],   # front 1
        [6.0, 6.0],   # front 2
    ])
    order = promotion_order(F).tolist()
    assert set(order[:3]) == {0, 1, 2} and order[2] == 2
    assert order[3:] == [3, 4]


def test_promoted_keeps_the_top_share_only():
    F = np.array([[float(i), float(i)] for i in range(9)])  # a chain: row i dominates row i+1
    assert promoted(F, list(range(9)), eta=3) == [0, 1, 2]
    assert promoted(F, [4, 0, 8], eta=3) == [0]
    assert promoted(F[:1], [0], eta=3) == [0]             # the first result always goes on
    assert promoted(F[:4], [3], eta=2) == []


def test_not_worth_training():
    finished = np.array([
        # quality, latency, memory
        [100.0, 50.0, 2.0],   # the best quality, also fast and small
        [300.0, 10.0, 0.5],   # poor quality, tiny
    ])
    # slower and bigger than the best-quality model: it would have to beat quality 100
    assert not_worth_training([60.0, 3.0], finished, margin=0.1)
    # faster than everything: cheap objectives cannot rule it out
    assert not not_worth_training([5.0, 3.0], finished, margin=0.1)
    # dominated only by the poor-quality model: a quality under 300 makes it non-dominated
    assert not not_worth_training([20.0, 1.0], finished, margin=0.1)
    # equal on both cheap objectives is not dominance
    assert not not_worth_training([50.0, 2.0], finished, margin=0.1)
    assert not not_worth_training([60.0, 3.0], np.zeros((0, 3)), margin=0.1)
    # a looser margin counts near-best dominators too
    finished2 = np.array([[100.0, 50.0, 9.0], [105.0, 40.0, 2.0]])
    assert not not_worth_training([45.0, 3.0], finished2, margin=0.01)
    assert not_worth_training([45.0, 3.0], finished2, margin=0.1)
