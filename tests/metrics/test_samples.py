"""Sample grids: tiling, PNG bytes, and the check on grids that come back from a cache."""

import base64

import numpy as np
from PIL import Image
import io

from evodiff_ray.metrics.samples import decode, encode, grid_array, grid_png


def test_grid_tiles_scales_and_borders():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(6, 1, 8, 8)).astype(np.float32)
    g = grid_array(images, columns=4, min_tile=32)
    assert g.shape == (2 * 33 + 1, 4 * 33 + 1, 1) and g.dtype == np.uint8
    # tile 5 (row 1, col 1), scaled 4x by nearest neighbour
    tile = g[34:66, 34:66, 0]
    expect = np.clip((images[5, 0] + 1) * 127.5, 0, 255).round().astype(np.uint8).repeat(4, 0).repeat(4, 1)
    assert np.array_equal(tile, expect)
    assert (g[0] == 96).all() and (g[:, 0] == 96).all()            # borders
    assert (g[34:, 2 * 33 + 1:] == 96).all()                        # the empty slots of the last row


def test_png_round_trip_is_small_and_checked():
    images = np.linspace(-1, 1, 40 * 64).reshape(40, 1, 8, 8)
    png = grid_png(images)                                         # only the first 16
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.size == (133, 133) and im.mode == "L"
    assert len(png) < 8000
    assert decode(encode(png)) == png
    assert decode(base64.b64encode(b"GIF89a....").decode()) is None   # not a PNG: refused
    assert decode("not base64 !!") is None and decode(123) is None
    assert decode("A" * 400_000) is None                                # too large to be ours
