"""Datasets: the offline default (scikit-learn's 8x8 digits) and user data, with a digest.

Every dataset ends up as float32 tensors ``(N, C, H, W)`` in ``[-1, 1]``, split into a
training part and a held-out part by a fixed seed. The digest (sha256 over the array
bytes and the preprocessing description) identifies a dataset in cache keys and MLflow.

User data:

* a folder of images (``.png``, ``.jpg``, ``.jpeg``; read with Pillow, which
  matplotlib already depends on). Sub-folders, if there are at least two, are classes
  (their sorted names give the labels); otherwise the images are unlabelled.
* an ``.npz`` file holding one image array ``(N, H, W)`` or ``(N, H, W, C)`` (the key
  ``x``, ``images`` or the only array) and optionally labels ``y`` / ``labels`` ``(N,)``.

Pixel values: integer arrays are divided by their dtype's maximum (uint8 by 255);
float arrays must already lie in ``[0, 1]`` or ``[-1, 1]``. Then ``[0, 1] -> [-1, 1]``.
Images of different sizes, or non-square ones, need ``resolution``: each is centre
cropped to a square and resized (bilinear, antialiased) to ``resolution x resolution``.
Mixed greyscale and colour images all become RGB.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from evodiff_ray.core.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_HELDOUT_FRACTION = 0.2
DEFAULT_SPLIT_SEED = 0
#: bump when preprocessing changes (it joins the digest)
PREPROCESSING_VERSION = 1


class DatasetError(UsageError):
    """A dataset cannot be loaded; the message names the file and the fix."""


@dataclass
class Dataset:
    """A preprocessed dataset, split into train and held-out parts.

    Attributes:
        name: ``"digits"`` or the user path.
        train: ``(N_train, C, H, W)`` float32 in ``[-1, 1]``.
        heldout: ``(N_heldout, C, H, W)`` float32 in ``[-1, 1]``.
        train_labels: ``(N_train,)`` int64 class labels, or None when unlabelled.
        heldout_labels: ``(N_heldout,)`` int64, or None.
        description: the preprocessing, as JSON data (part of the digest).
        digest: sha256 hex over the arrays' bytes and ``description``.
    """

    name: str
    train: torch.Tensor
    heldout: torch.Tensor
    train_labels: torch.Tensor | None
    heldout_labels: torch.Tensor | None
    description: dict[str, Any] = field(default_factory=dict)
    digest: str = ""

    @property
    def channels(self) -> int:
        return int(self.train.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.train.shape[-1])

    @property
    def num_classes(self) -> int | None:
        if self.train_labels is None:
            return None
        return int(max(self.train_labels.max(), self.heldout_labels.max())) + 1

    def suits_levels(self, levels: int) -> bool:
        """Whether a UNet with ``levels`` resolution levels can run at this resolution."""
        return self.resolution % (2 ** (levels - 1)) == 0 and self.resolution >= 2 ** (levels - 1)


def load_dataset(
    spec: str | Path = "digits",
    resolution: int | None = None,
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> Dataset:
    """Load ``digits``, an image folder or an ``.npz`` file.

    Args:
        spec: ``"digits"`` or a path.
        resolution: target side length; None keeps the images' own (they must agree).
        heldout_fraction: share of the images held out for the quality metric.
        split_seed: seeds the train/held-out permutation.

    Returns:
        The :class:`Dataset`.

    Raises:
        DatasetError: (a UsageError) with a one-line reason.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise DatasetError(f"heldout_fraction {heldout_fraction} must be in (0, 1)")
    if str(spec) == "digits":
        images, labels, source = _digits()
    else:
        path = Path(spec)
        if path.is_dir():
            images, labels, source = _folder(path)
        elif path.suffix.lower() == ".npz" and path.is_file():
            images, labels, source = _npz(path)
        elif not path.exists():
            raise DatasetError(f"{path}: no such dataset; give 'digits', an image folder or an .npz file")
        else:
            raise DatasetError(f"{path}: not a folder or an .npz file; give 'digits', an image folder or an .npz file")
    x = _to_tensor(images, resolution, str(spec))                        # (N, C, H, W) in [-1, 1]
    n = x.shape[0]
    n_held = int(round(n * heldout_fraction))
    if n < 4 or n_held < 2 or n - n_held < 2:
        raise DatasetError(f"{spec}: only {n} images; need enough for a train and a held-out split (at least 4)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(split_seed)))
    held_idx, train_idx = perm[:n_held], perm[n_held:]
    y = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    description = {
        "source": source,
        "shape": list(x.shape[1:]),
        "count": n,
        "range": [-1, 1],
        "resize": None if resolution is None else {"to": resolution, "crop": "center-square", "mode": "bilinear-aa"},
        "heldout_fraction": heldout_fraction,
        "split_seed": split_seed,
        "labelled": y is not None,
        "preprocessing_version": PREPROCESSING_VERSION,
    }
    ds = Dataset(
        name=str(spec),
        train=x[train_idx].contiguous(),
        heldout=x[held_idx].contiguous(),
        train_labels=None if y is None else y[train_idx],
        heldout_labels=None if y is None else y[held_idx],
        description=description,
    )
    ds.digest = dataset_digest(ds)
    return ds


def dataset_digest(ds: Dataset) -> str:
    """sha256 over the preprocessing description and the arrays' bytes (train, held-out, labels)."""
    h = hashlib.sha256()
    h.update(json.dumps(ds.description, sort_keys=True, separators=(",", ":")).encode())
    for t in (ds.train, ds.heldout, ds.train_labels, ds.heldout_labels):
        if t is not None:
            h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


# -- sources -------------------------------------------------------------------------
def _digits() -> tuple[np.ndarray, np.ndarray, dict]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)                        # (1797, 8, 8) in [0, 1]
    return images, d.target.astype(np.int64), {"kind": "sklearn-digits", "scale": "x/16"}


def _folder(path: Path) -> tuple[list[np.ndarray], np.ndarray | None, dict]:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow ships with matplotlib
        raise DatasetError("reading an image folder needs Pillow; pip install pillow") from None
    subdirs = sorted(p for p in path.iterdir() if p.is_dir())
    classes = subdirs if len(subdirs) >= 2 else []
    files: list[tuple[Path, int]] = []
    if classes:
        for label, d in enumerate(classes):
            files += [(f, label) for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    else:
        files = [(f, -1) for f in sorted(path.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DatasetError(f"{path}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}); add images or fix the path")
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                mode = "L" if im.mode in ("1", "L", "I", "I;16", "F", "LA") else "RGB"
                images.append(np.asarray(im.convert(mode), dtype=np.float32) / 255.0)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DatasetError(f"{f}: unreadable image ({type(e).__name__}); remove or replace the file") from None
    labels = np.array([lbl for _, lbl in files], dtype=np.int64) if classes else None
    source = {"kind": "image-folder", "files": len(files), "classes": [d.name for d in classes] or None}
    return images, labels, source


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: unreadable .npz ({e}); save it with numpy.savez") from None
    key = next((k for k in ("x", "images") if k in arrays), None)
    if key is None:
        candidates = [k for k in arrays if k not in ("y", "labels")]
        if len(candidates) != 1:
            raise DatasetError(f"{path}: cannot tell which array holds the images ({sorted(arrays)}); name it 'x'")
        key = candidates[0]
    x = arrays[key]
    if x.ndim == 4 and x.shape[-1] not in (1, 3):
        raise DatasetError(f"{path}: array '{key}' has shape {x.shape}; channels must be last and 1 or 3: (N, H, W, C)")
    if x.ndim not in (3, 4) or x.shape[0] == 0 or min(x.shape[1:3]) == 0:
        raise DatasetError(f"{path}: array '{key}' has shape {x.shape}; expected (N, H, W) or (N, H, W, C)")
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        top = 1 if x.dtype == np.bool_ else np.iinfo(x.dtype).max
        x = x.astype(np.float32) / float(top)
        scale = f"x/{top}"
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise DatasetError(f"{path}: array '{key}' holds NaN or inf values; clean the data")
        lo, hi = float(x.min()), float(x.max())
        if lo >= 0.0 and hi <= 1.0:
            scale = "[0,1]"
        elif lo >= -1.0 and hi <= 1.0:
            x, scale = (x + 1.0) / 2.0, "[-1,1]"
        else:
            raise DatasetError(f"{path}: float values span [{lo:g}, {hi:g}]; scale them to [0, 1] or [-1, 1]")
    else:
        raise DatasetError(f"{path}: array '{key}' has dtype {x.dtype}; use an integer or float array")
    labels = None
    lkey = next((k for k in ("y", "labels") if k in arrays), None)
    if lkey is not None:
        y = arrays[lkey]
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise DatasetError(f"{path}: labels '{lkey}' must be non-negative integers of shape ({x.shape[0]},)")
        labels = y.astype(np.int64)
    return x, labels, {"kind": "npz", "key": key, "scale": scale}


def _to_tensor(images: np.ndarray | list[np.ndarray], resolution: int | None, where: str) -> torch.Tensor:
    """Images in ``[0, 1]`` (``(H, W)`` or ``(H, W, C)`` each) -> ``(N, C, R, R)`` in ``[-1, 1]``."""
    items = [images[i] for i in range(len(images))]
    channels = max(1 if im.ndim == 2 else im.shape[-1] for im in items)
    sizes = {im.shape[:2] for im in items}
    if resolution is None:
        if len(sizes) > 1:
            shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3])
            raise DatasetError(f"{where}: images differ in size ({shown}, ...); pass a resolution to resize them")
        (h, w), = sizes
        if h != w:
            raise DatasetError(f"{where}: images are {h}x{w}, not square; pass a resolution to crop and resize them")
    elif not isinstance(resolution, int) or isinstance(resolution, bool) or not 4 <= resolution <= 512:
        raise DatasetError(f"resolution {resolution!r} must be an integer in [4, 512]")
    out = []
    for im in items:
        t = torch.from_numpy(np.ascontiguousarray(im, dtype=np.float32))
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)                # (c, H, W)
        if t.shape[0] != channels:
            t = t.expand(channels, -1, -1)                                # grey -> RGB
        if resolution is not None:
            h, w = t.shape[1:]
            s = min(h, w)
            t = t[:, (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
            if s != resolution:
                t = F.interpolate(t[None], size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)[0]
        out.append(t)
    x = torch.stack(out).clamp(0.0, 1.0)                                  # (N, C, R, R)
    return (x * 2.0 - 1.0).contiguous()
