"""Warmup-stable-decay training: a continued rung equals training straight through."""

from __future__ import annotations

import pytest
import torch

from evodiff_ray.data import load_dataset
from evodiff_ray.denoiser import build_denoiser
from evodiff_ray.diffusion.fidelity import Fidelity
from evodiff_ray.diffusion.schedule import linear_schedule
from evodiff_ray.diffusion.wsd import (
    Rungs,
    advance,
    branch,
    decay_lr,
    start,
    state_bytes,
    state_from_bytes,
    trunk_lr,
)
from evodiff_ray.genome import Genome

TINY = {
    "parameters": {"base_channels": 8, "channel_mults": [1, 2], "time_emb_dim": 16, "sampler_steps": 4, "norm_groups": 4},
    "layers": [
        {"kind": "residual", "side": "down", "level": 0},
        {"kind": "residual", "side": "mid", "level": 1},
        {"kind": "residual", "side": "up", "level": 0},
    ],
    "connections": [[0, 2]],
}
RUNGS = Rungs(Fidelity("t", train_steps=24, batch_size=16, lr=4e-3, ema_decay=0.9), factors=(0.5, 1.0, 2.0))


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits").train[:200]


def _net(seed=0):
    torch.manual_seed(seed)
    return build_denoiser(Genome.from_dict(TINY))


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_rung_arithmetic():
    assert [RUNGS.budget(r) for r in range(3)] == [12, 24, 48]
    assert [RUNGS.trunk_steps(r) + RUNGS.decay_steps(r) for r in range(3)] == [12, 24, 48]
    assert RUNGS.trunk_steps(0) < RUNGS.trunk_steps(1) < RUNGS.trunk_steps(2)
    for bad in [(1.0, 1.0), (2.0, 1.0), (0.0, 1.0), ()]:
        with pytest.raises(ValueError):
            Rungs(RUNGS.fidelity, factors=bad)


def test_schedule_shape():
    assert trunk_lr(0, 1.0, 4) == pytest.approx(0.25)
    assert trunk_lr(3, 1.0, 4) == 1.0 and trunk_lr(100, 1.0, 4) == 1.0
    assert [decay_lr(i, 4, 1.0) for i in range(4)] == [1.0, 0.75, 0.5, 0.25]


def test_continued_rung_equals_straight_through(data):
    torch.set_num_threads(1)
    schedule = linear_schedule()
    # straight: trunk to rung 1's branch point, then rung 1's decay
    s = start(_net(), data.shape[0], RUNGS.fidelity, seed=3)
    advance(s, data, schedule, RUNGS, RUNGS.trunk_steps(1))
    straight = _weights(branch(s, data, schedule, RUNGS, 1))

    # continued: rung 0 measured (its branch discarded), stored as bytes, reloaded into a
    # freshly built net, then continued to rung 1
    c = start(_net(), data.shape[0], RUNGS.fidelity, seed=3)
    advance(c, data, schedule, RUNGS, RUNGS.trunk_steps(0))
    rung0 = _weights(branch(c, data, schedule, RUNGS, 0))
    blob = state_bytes(c)
    c2 = state_from_bytes(blob, _net(seed=99), RUNGS.fidelity)   # other init: all of it must come from the blob
    assert c2.step == RUNGS.trunk_steps(0)
    advance(c2, data, schedule, RUNGS, RUNGS.trunk_steps(1))
    continued = _weights(branch(c2, data, schedule, RUNGS, 1))

    assert straight.keys() == continued.keys()
    for k in straight:
        assert torch.equal(straight[k], continued[k]), k
    # the measurement at rung 0 was a real, different model
    assert any(not torch.equal(rung0[k], straight[k]) for k in straight if straight[k].is_floating_point())


def test_branch_leaves_the_trunk_untouched(data):
    schedule = linear_schedule()
    s = start(_net(), data.shape[0], RUNGS.fidelity, seed=1)
    advance(s, data, schedule, RUNGS, RUNGS.trunk_steps(0))
    before = state_bytes(s)
    branch(s, data, schedule, RUNGS, 0)
    after = state_from_bytes(state_bytes(s), _net(), RUNGS.fidelity)
    ref = state_from_bytes(before, _net(), RUNGS.fidelity)
    assert after.step == ref.step and after.pos == ref.pos
    assert torch.equal(after.order_gen.get_state(), ref.order_gen.get_state())
    for k, v in ref.net.state_dict().items():
        assert torch.equal(v, after.net.state_dict()[k])
    with pytest.raises(ValueError, match="branches at"):
        branch(s, data, schedule, RUNGS, 1)


def test_state_bytes_refuse_pickled_objects_and_foreign_nets(tmp_path):
    import io
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    torch.save({"format": 1, "x": Evil()}, buf)
    with pytest.raises(ValueError, match="not a training state"):
        state_from_bytes(buf.getvalue(), _net(), RUNGS.fidelity)
    with pytest.raises(ValueError, match="not a training state"):
        state_from_bytes(pickle.dumps({"format": 1}) + b"junk", _net(), RUNGS.fidelity)
    other = dict(TINY, parameters=dict(TINY["parameters"], base_channels=16))
    s = start(_net(), 200, RUNGS.fidelity, seed=0)
    with pytest.raises(ValueError, match="does not fit"):
        state_from_bytes(state_bytes(s), build_denoiser(Genome.from_dict(other)), RUNGS.fidelity)


def test_trunk_store_round_trip_and_latest(tmp_path):
    from evodiff_ray.diffusion.trunk_store import TrunkStore

    store = TrunkStore(tmp_path / "trunks")
    key = "ab" * 32
    assert store.get(key, 0) is None and store.latest(key, 3) is None
    store.put(key, 0, b"zero")
    store.put(key, 1, b"one")
    assert store.get(key, 1) == b"one"
    assert store.latest(key, 3) == (1, b"one")
    assert store.latest(key, 1) == (0, b"zero")
    assert not list((tmp_path / "trunks").rglob("*.tmp"))
    for bad_key, bad_rung in [("../etc/passwd", 0), ("AB" * 32, 0), (key, -1), (key, True)]:
        with pytest.raises(ValueError):
            store.path(bad_key, bad_rung)
