"""Datasets: digits, image folders, .npz arrays, their errors and digests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evodiff_ray.data import DatasetError, load_dataset
from evodiff_ray.core.errors import UsageError

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


def test_digits_shape_range_split_and_digest():
    ds = load_dataset("digits")
    assert ds.train.shape[1:] == (1, 8, 8) and ds.heldout.shape[1:] == (1, 8, 8)
    assert ds.train.shape[0] + ds.heldout.shape[0] == 1797
    assert ds.heldout.shape[0] == round(1797 * 0.2)
    assert ds.train.min() >= -1 and ds.train.max() <= 1 and ds.train.min() == -1
    assert ds.num_classes == 10
    again = load_dataset("digits")
    assert again.digest == ds.digest and torch.equal(again.heldout, ds.heldout)
    other = load_dataset("digits", split_seed=1)
    assert other.digest != ds.digest
    assert ds.suits_levels(4) and not load_dataset("digits", resolution=6).suits_levels(3)


def _png(path, size=(8, 8), mode="L", value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=value if mode == "L" else (value, 0, 255 - value)).save(path)


def test_image_folder_unlabelled_and_labelled(tmp_path):
    for i in range(10):
        _png(tmp_path / "flat" / f"{i}.png", value=i * 20)
    ds = load_dataset(tmp_path / "flat")
    assert ds.train.shape[1:] == (1, 8, 8) and ds.train_labels is None
    assert ds.train.min() >= -1 and ds.train.max() <= 1
    for c in ("cats", "dogs"):
        for i in range(5):
            _png(tmp_path / "cls" / c / f"{i}.png", size=(16, 16), mode="RGB", value=i * 40)
    ds = load_dataset(tmp_path / "cls", resolution=8)
    assert ds.train.shape[1:] == (3, 8, 8) and ds.num_classes == 2
    assert ds.description["source"]["classes"] == ["cats", "dogs"]


def test_mixed_grey_and_colour_become_rgb(tmp_path):
    for i in range(4):
        _png(tmp_path / f"g{i}.png", mode="L")
        _png(tmp_path / f"c{i}.jpg", mode="RGB")
    assert load_dataset(tmp_path).channels == 3


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        load_dataset(tmp_path / "empty")
    bad = tmp_path / "bad"
    for i in range(4):
        _png(bad / f"{i}.png")
    (bad / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(DatasetError, match="broken.png: unreadable image"):
        load_dataset(bad)
    mixed = tmp_path / "mixed"
    for i in range(4):
        _png(mixed / f"a{i}.png", size=(8, 8))
        _png(mixed / f"b{i}.png", size=(12, 12))
    with pytest.raises(DatasetError, match="differ in size.*resolution"):
        load_dataset(mixed)
    assert load_dataset(mixed, resolution=8).train.shape[1:] == (1, 8, 8)
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(tmp_path / "missing")
    assert issubclass(DatasetError, UsageError)


def test_npz_arrays(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "u8.npz", x=rng.integers(0, 256, (20, 16, 16), dtype=np.uint8), y=np.arange(20) % 3)
    ds = load_dataset(tmp_path / "u8.npz")
    assert ds.train.shape[1:] == (1, 16, 16) and ds.num_classes == 3
    np.savez(tmp_path / "f.npz", images=rng.random((20, 8, 8, 3)).astype(np.float32))
    ds = load_dataset(tmp_path / "f.npz", resolution=4)
    assert ds.train.shape[1:] == (3, 4, 4) and ds.train_labels is None
    np.savez(tmp_path / "pm1.npz", rng.uniform(-1, 1, (20, 8, 8)))
    assert load_dataset(tmp_path / "pm1.npz").train.min() >= -1


@pytest.mark.parametrize("array, message", [
    (np.zeros((10, 8)), "expected \\(N, H, W\\)"),
    (np.zeros((10, 3, 8, 8)), "channels must be last"),
    (np.full((10, 8, 8), 16.0), "scale them to"),
    (np.full((10, 8, 8), np.nan), "NaN or inf"),
])
def test_npz_errors(tmp_path, array, message):
    np.savez(tmp_path / "d.npz", x=array)
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path / "d.npz")


def test_npz_unreadable_and_ambiguous(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="unreadable .npz"):
        load_dataset(tmp_path / "junk.npz")
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 8, 8)), b=np.zeros((4, 8, 8)))
    with pytest.raises(DatasetError, match="name it 'x'"):
        load_dataset(tmp_path / "two.npz")
    np.savez(tmp_path / "lbl.npz", x=np.zeros((10, 8, 8)), y=np.zeros(3, dtype=int))
    with pytest.raises(DatasetError, match="labels"):
        load_dataset(tmp_path / "lbl.npz")
