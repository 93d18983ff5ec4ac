"""quality_fd: the Fréchet distance kernel and the cached feature network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evodiff_ray.data import load_dataset
from evodiff_ray.metrics.quality import (
    FEATURE_DIM, FeatureStats, feature_stats, frechet_distance, load_feature_net,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "evodiff-cache"


def test_fd_of_identical_stats_is_zero_and_matches_the_gaussian_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6))
    s = FeatureStats(a.mean(0), np.cov(a, rowvar=False))
    assert frechet_distance(s, s) == pytest.approx(0.0, abs=1e-4)
    # diagonal covariances: FD = |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    s1 = FeatureStats(np.zeros(3), np.diag([1.0, 4.0, 9.0]))
    s2 = FeatureStats(np.ones(3), np.diag([4.0, 4.0, 1.0]))
    assert frechet_distance(s1, s2, eps=0.0) == pytest.approx(3 + 1 + 0 + 4)
    assert frechet_distance(s1, s2) == pytest.approx(frechet_distance(s2, s1))


def test_fd_survives_singular_covariances():
    dead = FeatureStats(np.zeros(4), np.diag([1.0, 0.0, 0.0, 2.0]))
    other = FeatureStats(np.ones(4), np.diag([1.0, 0.0, 3.0, 0.0]))
    d = frechet_distance(dead, other)
    assert np.isfinite(d) and d > 0


def test_feature_net_is_cached_and_separates_real_from_noise(digits, cache):
    net = load_feature_net(digits, cache)
    files = list(cache.glob(f"feature-net-*{digits.digest[:16]}*.pt"))   # the cache dir is shared
    assert len(files) == 1
    again = load_feature_net(digits, cache)  # from disk, weights_only
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    real = feature_stats(net, digits.heldout)
    assert real.mu.shape == (FEATURE_DIM,)
    same = frechet_distance(feature_stats(net, digits.train[: len(digits.heldout)]), real)
    noise = torch.randn(digits.heldout.shape, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    far = frechet_distance(feature_stats(net, noise), real)
    assert same * 5 < far


def test_corrupt_cache_file_is_retrained(digits, cache, tmp_path):
    load_feature_net(digits, cache)
    (good,) = cache.glob(f"feature-net-*{digits.digest[:16]}*.pt")
    path = tmp_path / good.name
    path.write_bytes(b"not a state dict")
    net = load_feature_net(digits, tmp_path)
    assert isinstance(net.state_dict(), dict)
    assert torch.load(path, weights_only=True).keys() == net.state_dict().keys()
