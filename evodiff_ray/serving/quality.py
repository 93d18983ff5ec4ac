"""The rolling FD of served samples: the quality of what each live version actually served.

The gateway keeps the images of each version's last requests in Redis (float16 bytes
behind a ``n,C,H,W;`` header, never pickles). The ``serve`` process, in the background,
computes their Fréchet distance to the held-out split of the dataset the version was
trained on (the search's dataset, found through the version's ``search_id`` tag; digits
otherwise), in the feature space the search's ``quality_fd`` uses, and stores it in
``...:fd:<version>`` for ``GET /models``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from evodiff_ray.serving.metrics import Keys
from evodiff_ray.serving.state import read_state

#: fewer served images than this give no FD (the covariance would be meaningless)
MIN_SAMPLES = 64


def encode_samples(images: np.ndarray) -> bytes:
    """``(n, C, H, W)`` images as a shape header and float16 bytes."""
    x = np.ascontiguousarray(images, dtype=np.float16)
    return (",".join(str(d) for d in x.shape) + ";").encode() + x.tobytes()


def decode_samples(raw: bytes) -> np.ndarray:
    """The inverse of :func:`encode_samples` (float32).

    Raises:
        ValueError: a malformed entry.
    """
    head, sep, body = raw.partition(b";")
    if not sep:
        raise ValueError("no shape header")
    shape = tuple(int(d) for d in head.decode().split(","))
    if len(shape) != 4 or any(d <= 0 for d in shape) or int(np.prod(shape)) * 2 != len(body):
        raise ValueError(f"shape {shape} does not match {len(body)} bytes")
    return np.frombuffer(body, dtype=np.float16).reshape(shape).astype(np.float32)


def served_images(client, keys: Keys, version: str) -> np.ndarray | None:
    """The images ``version`` served lately, ``(N, C, H, W)``; None when there are none."""
    parts = []
    for raw in client.lrange(keys.samples(version), 0, -1):
        try:
            parts.append(decode_samples(raw))
        except ValueError:
            continue
    shapes = {p.shape[1:] for p in parts}
    if not parts or len(shapes) != 1:
        return None
    return np.concatenate(parts)


def dataset_of(tracking_uri: str, model: str, version: str, runs_dir: str | Path) -> str:
    """The dataset a version was trained on: its search's, else ``digits``."""
    try:
        from mlflow import MlflowClient

        tags = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_model_version(
            model, version).tags
        config = json.loads((Path(runs_dir) / tags["search_id"] / "config.json").read_text())
        return str((config.get("problem_options") or {}).get("dataset") or "digits")
    except Exception:
        return "digits"


def served_fd(images: np.ndarray, dataset: str = "digits") -> float:
    """Fréchet distance of ``images`` to the dataset's held-out split (the search's feature net)."""
    import torch

    from evodiff_ray.data import load_dataset
    from evodiff_ray.metrics.quality import feature_stats, frechet_distance, load_feature_net

    ds = load_dataset(dataset, resolution=int(images.shape[-1]))
    net = load_feature_net(ds)
    real = feature_stats(net, ds.heldout[: min(len(ds.heldout), 2000)])
    return float(frechet_distance(feature_stats(net, torch.from_numpy(images)), real))


def served_fd_pass(client, model: str, tracking_uri: str, runs_dir: str | Path) -> dict[str, Any]:
    """Compute and store the FD of every live version with enough served images."""
    state = read_state(client, model)
    keys = Keys(model)
    out: dict[str, Any] = {}
    for v in sorted(state.live()) if state is not None else []:
        images = served_images(client, keys, v)
        if images is None or len(images) < MIN_SAMPLES:
            continue
        fd = served_fd(images, dataset_of(tracking_uri, model, v, runs_dir))
        out[v] = {"fd": fd, "samples": int(len(images)), "at": time.time()}
        client.set(keys.fd(v), json.dumps(out[v]))
    return out
