"""Sample grids: the images a candidate draws, kept as a small PNG beside its fitness.

A number says little until one sees the digits behind it, so every quality measurement
keeps the first :data:`GRID_SAMPLES` of the samples drawn for FD (the fixed noise seeds,
so every candidate draws from the same noise) as one PNG grid, a few KB. The grid travels
inside :attr:`Fitness.extras <evodiff_ray.core.fitness.Fitness.extras>` under
:data:`SAMPLES_EXTRA` (base64): that is the one channel that crosses a Ray actor and the
fitness cache, so a cache hit (the reference UNet, after its first search) still has its
images. The driver writes it out as a file and keeps only the file's name in the record
(:class:`~evodiff_ray.evaluation.samples.SampleGrids`).
"""

from __future__ import annotations

import base64
import io

import numpy as np

#: the Fitness extra holding the grid as base64 PNG while it travels
SAMPLES_EXTRA = "samples_png"
#: the Fitness extra naming the grid's file (relative to the run dir) once written
SAMPLES_FILE_EXTRA = "samples"
#: samples in a grid: 4 x 4
GRID_SAMPLES = 16
#: a PNG starts with these bytes; anything else from the cache or network is refused
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: a grid larger than this is not ours
MAX_GRID_BYTES = 256 * 1024


def grid_array(images: np.ndarray, columns: int = 4, min_tile: int = 32) -> np.ndarray:
    """Tile images into one picture (pure).

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]`` (C is 1 or 3).
        columns: tiles per row.
        min_tile: each image is scaled up (nearest neighbour) to at least this side.

    Returns:
        ``(rows * (H*s + 1) + 1, columns * (W*s + 1) + 1, C)`` uint8, 1-pixel grey borders.
    """
    x = np.asarray(images, dtype=np.float32)
    n, c, h, w = x.shape
    s = max(1, -(-min_tile // max(h, w)))                          # ceil
    x = np.clip((x + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    x = x.repeat(s, axis=2).repeat(s, axis=3)                      # (N, C, H*s, W*s)
    rows = -(-n // columns)
    th, tw = h * s + 1, w * s + 1
    out = np.full((rows * th + 1, columns * tw + 1, c), 96, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        out[r * th + 1:(r + 1) * th, col * tw + 1:(col + 1) * tw] = x[i].transpose(1, 2, 0)
    return out


def grid_png(images, columns: int = 4) -> bytes:
    """The first :data:`GRID_SAMPLES` images as PNG bytes (``images``: tensor or array, ``(N, C, H, W)``)."""
    from PIL import Image

    arr = grid_array(np.asarray(images[:GRID_SAMPLES]), columns)
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def encode(png: bytes) -> str:
    """PNG bytes as the text stored in a Fitness extra."""
    return base64.b64encode(png).decode("ascii")


def decode(text: object) -> bytes | None:
    """The PNG bytes of a Fitness extra, or None when it is not a PNG of a sane size (it may
    come from Redis or the network: it is checked, never trusted)."""
    if not isinstance(text, str) or len(text) > MAX_GRID_BYTES * 4 // 3 + 4:
        return None
    try:
        png = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return png if png.startswith(PNG_SIGNATURE) else None
