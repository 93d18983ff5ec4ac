"""HTTP bodies of the serving API, pure: request validation and image encodings.

A bad body is a :class:`BadRequest` with a one-line message (the gateway answers 4xx with
it, never a 500). Images leave as a PNG grid, an ``.npz`` (``images``: ``(n, C, H, W)``
float32 in [-1, 1]) or JSON, chosen by the ``Accept`` header.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the largest ``n`` one request may ask for (``serve --max-n``)
MAX_N = 64
MAX_SEED = 2**63 - 1

PNG, NPZ, JSON = "image/png", "application/x-npz", "application/json"


class BadRequest(ValueError):
    """A client's mistake: HTTP ``status`` with a one-line message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class GenerateRequest:
    n: int
    seed: int


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`BadRequest`."""
    if not raw.strip():
        raise BadRequest("empty body; send a JSON object, e.g. {\"n\": 16, \"seed\": 7}")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not valid JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(body).__name__}")
    return body


def integer(body: dict[str, Any], name: str, lo: int, hi: int, default: int | None = None) -> int:
    """Field ``name`` as an integer in ``[lo, hi]`` (JSON integers only: no floats, strings or booleans)."""
    if name not in body:
        if default is None:
            raise BadRequest(f"'{name}' is missing; give an integer {lo}..{hi}")
        return default
    v = body[name]
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)   # 7.0 is an integer in JSON's number model
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadRequest(f"'{name}' must be an integer {lo}..{hi}, got {json.dumps(v)[:40]}")
    if not lo <= v <= hi:
        raise BadRequest(f"'{name}' = {v} is out of range; give an integer {lo}..{hi}")
    return v


def parse_generate(raw: bytes, max_n: int = MAX_N, rng: np.random.Generator | None = None) -> GenerateRequest:
    """``{"n": 1..max_n (default 16), "seed": integer (default: drawn)}``."""
    body = parse_json_object(raw) if raw.strip() else {}
    unknown = sorted(set(body) - {"n", "seed"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; /generate takes 'n' and 'seed'")
    n = integer(body, "n", 1, max_n, default=min(16, max_n))
    seed = body.get("seed")
    if seed is None:
        seed = int((rng or np.random.default_rng()).integers(0, 2**31))
    else:
        seed = integer(body, "seed", 0, MAX_SEED)
    return GenerateRequest(n=n, seed=seed)


def choose_format(accept: str | None) -> str:
    """The response type for an ``Accept`` header: PNG unless npz or JSON is asked for first."""
    for part in (accept or "").split(","):
        kind = part.split(";")[0].strip().lower()
        if kind in (NPZ, "application/npz", "application/octet-stream"):
            return NPZ
        if kind == JSON:
            return JSON
        if kind in (PNG, "image/*", "*/*", ""):
            return PNG
    raise BadRequest(f"cannot answer Accept: {accept[:80]}; ask for {PNG}, {NPZ} or {JSON}", 406)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """``(n, C, H, W)`` in [-1, 1] -> ``(n, H, W, C)`` uint8."""
    x = np.clip((np.asarray(images, dtype=np.float32) + 1) * 127.5, 0, 255).round().astype(np.uint8)
    return x.transpose(0, 2, 3, 1)


def png_grid(images: np.ndarray, scale: int = 4) -> bytes:
    """The images as one PNG: a near-square grid, each image scaled up ``scale`` times."""
    from PIL import Image

    x = to_uint8(images)
    n, h, w, c = x.shape
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (h + 1) + 1, cols * (w + 1) + 1, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = x[i]
    grid = grid.repeat(scale, 0).repeat(scale, 1)
    img = Image.fromarray(grid[..., 0] if c == 1 else grid)     # uint8: "L" for 2-D, "RGB" for 3 channels
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def npz_bytes(images: np.ndarray, **meta: Any) -> bytes:
    """An ``.npz`` with ``images`` and each of ``meta`` as a 0-d array (loads with ``allow_pickle=False``)."""
    buf = io.BytesIO()
    np.savez(buf, images=np.asarray(images, dtype=np.float32), **{k: np.asarray(str(v)) for k, v in meta.items()})
    return buf.getvalue()


def json_body(images: np.ndarray, **meta: Any) -> bytes:
    """Metadata plus the PNG grid in base64."""
    return json.dumps({**meta, "shape": list(np.shape(images)),
                       "png_base64": base64.b64encode(png_grid(images)).decode()}).encode()
