"""Where trained trunks wait between rungs: one file per (evaluation key, rung), no pickle.

A multi-fidelity search stores each candidate's trunk (:mod:`evodiff_ray.diffusion.wsd`)
after every rung, so that a promotion, a later search or another actor continues it
instead of training again. The store is a directory: the run dir's ``trunks/`` on one
machine, or any path every node mounts (NFS, SMB) on a cluster. A directory rather than
Redis because trunks are megabytes each (weights, EMA and Adam moments), thousands per
search, and the fitness cache's Redis is sized for small JSON records; a file also
survives a Redis flush. Writes are atomic (temp file + rename), so a reader sees a whole
trunk or none, and two actors writing the same trunk write the same bytes.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_KEY = re.compile(r"[0-9a-f]{16,128}")


class TrunkStore:
    """Trunk states by ``(key, rung)`` under one directory.

    Args:
        root: the directory (created on first write).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str, rung: int) -> Path:
        """``<root>/<key[:2]>/<key>.r<rung>.pt``.

        Raises:
            ValueError: the key is not a hex digest or the rung not a non-negative int.
        """
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"trunk key must be a hex digest, got {key!r}")
        if isinstance(rung, bool) or not isinstance(rung, int) or rung < 0:
            raise ValueError(f"rung must be a non-negative integer, got {rung!r}")
        return self.root / key[:2] / f"{key}.r{rung}.pt"

    def put(self, key: str, rung: int, data: bytes) -> Path:
        """Store a trunk atomically; returns its path."""
        path = self.path(key, rung)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def get(self, key: str, rung: int) -> bytes | None:
        """The stored trunk, or None when there is none."""
        try:
            return self.path(key, rung).read_bytes()
        except FileNotFoundError:
            return None

    def latest(self, key: str, below: int) -> tuple[int, bytes] | None:
        """The highest stored rung under ``below`` for ``key`` and its trunk, or None."""
        for rung in range(below - 1, -1, -1):
            data = self.get(key, rung)
            if data is not None:
                return rung, data
        return None
