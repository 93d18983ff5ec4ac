"""Sample quality: Fréchet distance in the feature space of a small per-dataset classifier.

The feature network is a small CNN trained once per dataset (keyed by the dataset
digest) on the training split, then cached on disk as a ``state_dict`` (loaded with
``torch.load(weights_only=True)``: no arbitrary unpickling). Labelled data trains it
to classify; unlabelled data trains it to predict which of four rotations was
applied, a self-supervised task that needs no labels.

Features are the pre-activation outputs of a 64-unit layer: no ReLU, hence no dead
units, and a small enough dimension for a few hundred samples to estimate the
covariance. The distance adds ``eps * I`` to both covariances and takes the matrix
square root through symmetric eigendecompositions, never ``scipy.linalg.sqrtm``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from evodiff_ray.data import Dataset

FEATURE_DIM = 64
#: bump when the feature network or its training changes (it joins the cache file name)
FEATURE_NET_VERSION = 1
CACHE_ENV = "EVODIFF_CACHE_DIR"


class FeatureNet(nn.Module):
    """A small CNN: ``(B, C, H, W) -> (B, FEATURE_DIM)`` features, plus a class head.

    Args:
        in_channels: image channels.
        num_classes: classes of the training task.
    """

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.feature = nn.Linear(64 * 16, FEATURE_DIM)
        self.classify = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation features ``(B, FEATURE_DIM)``."""
        return self.feature(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(F.relu(self.features(x)))


@dataclass(frozen=True)
class FeatureStats:
    """Mean ``(D,)`` and covariance ``(D, D)`` of features, float64."""

    mu: np.ndarray
    sigma: np.ndarray


def cache_dir() -> Path:
    """``$EVODIFF_CACHE_DIR`` or ``~/.cache/evodiff-ray``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "evodiff-ray")


def _task(ds: Dataset, split: str, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Inputs, targets and class count of the feature net's task on one split."""
    x = ds.train if split == "train" else ds.heldout
    if ds.train_labels is not None:
        y = ds.train_labels if split == "train" else ds.heldout_labels
        return x, y, ds.num_classes
    # unlabelled: predict the rotation (0, 90, 180, 270 degrees)
    k = torch.randint(0, 4, (x.shape[0],), generator=gen or torch.Generator().manual_seed(0))
    xr = torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k)])
    return xr, k, 4


def train_feature_net(ds: Dataset, seed: int = 0, epochs: int = 15, batch_size: int = 128) -> tuple[FeatureNet, float]:
    """Train the feature network on the training split (CPU, seeded).

    Returns:
        The network (eval mode) and its accuracy on the held-out split.
    """
    gen = torch.Generator().manual_seed(seed)
    num_classes = ds.num_classes if ds.train_labels is not None else 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(ds.channels, num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        x, y, _ = _task(ds, "train", gen)
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    x, y, _ = _task(ds, "heldout", torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        acc = float((net(x).argmax(1) == y).float().mean())
    return net, acc


def load_feature_net(ds: Dataset, directory: Path | None = None, seed: int = 0, progress=None) -> FeatureNet:
    """The dataset's feature network: from the disk cache, or trained and cached.

    The file is ``<dir>/feature-net-v<version>-<digest[:16]>-s<seed>.pt`` holding a
    ``state_dict``; it is written to a temporary file and renamed (atomic).
    """
    directory = Path(directory) if directory is not None else cache_dir()
    path = directory / f"feature-net-v{FEATURE_NET_VERSION}-{ds.digest[:16]}-s{seed}.pt"
    num_classes = ds.num_classes if ds.train_labels is not None else 4
    net = FeatureNet(ds.channels, num_classes)
    if path.is_file():
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return net.eval()
        except Exception:  # noqa: BLE001 - stale, truncated or foreign: retrain and overwrite
            pass
    if progress:
        progress(f"training the feature network for dataset {ds.digest[:12]} (once; cached in {directory})")
    net, acc = train_feature_net(ds, seed)
    if progress:
        progress(f"feature network held-out accuracy {acc:.3f}")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(net.state_dict(), f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return net


@torch.no_grad()
def feature_stats(net: FeatureNet, images: torch.Tensor, batch_size: int = 500) -> FeatureStats:
    """Feature mean and covariance of ``(N, C, H, W)`` images in ``[-1, 1]`` (CPU, float64)."""
    feats = torch.cat([net.features(images[i : i + batch_size].cpu().float()) for i in range(0, images.shape[0], batch_size)])
    f = feats.double().numpy()                                            # (N, D)
    return FeatureStats(mu=f.mean(axis=0), sigma=np.cov(f, rowvar=False))


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: FeatureStats, b: FeatureStats, eps: float = 1e-6) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with ``eps * I`` regularisation.

    ``tr((S_a S_b)^(1/2)) = tr((S_a^(1/2) S_b S_a^(1/2))^(1/2))``, a symmetric PSD
    matrix, so two eigendecompositions give it stably.
    """
    d = a.mu.shape[0]
    sa = a.sigma + eps * np.eye(d)
    sb = b.sigma + eps * np.eye(d)
    ra = _sqrt_psd(sa)
    m = ra @ sb @ ra
    tr_cross = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum())
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(sa) + np.trace(sb) - 2.0 * tr_cross)

