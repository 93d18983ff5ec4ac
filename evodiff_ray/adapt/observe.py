"""What the ``adapt`` controller looks at each poll: the watched dataset and the served model.

- :class:`DatasetWatch`: the digest of a watched image folder (or ``.npz``), the one
  :func:`evodiff_ray.data.load_dataset` gives and cache keys use. Loading a folder costs
  more than a poll should, so the digest is recomputed only when a cheap fingerprint of the
  files (names, sizes, modification times) changed, and only once that fingerprint held
  still for one poll (a copy in progress is not a dataset yet).
- :func:`served_snapshot`: what the production version gathered in the current deployment
  (its ratings) and the rolling FD of its served samples: the numbers ``GET /models``
  reports, read from the same Redis keys (``serving/metrics.py``, ``serving/quality.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from evodiff_ray.adapt.triggers import ServedSnapshot
from evodiff_ray.core.errors import UsageError

log = logging.getLogger(__name__)


def fingerprint(path: str | Path) -> tuple:
    """Names, sizes and modification times of a dataset's files (a folder's images, or one file)."""
    from evodiff_ray.data import IMAGE_SUFFIXES

    p = Path(path)
    if p.is_file():
        st = p.stat()
        return ((p.name, st.st_size, st.st_mtime_ns),)
    if not p.is_dir():
        return ()
    out = []
    for f in sorted(p.rglob("*")):
        if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
            st = f.stat()
            out.append((str(f.relative_to(p)), st.st_size, st.st_mtime_ns))
    return tuple(out)


class DatasetWatch:
    """The digest of a watched dataset, recomputed only when its files changed and settled.

    Args:
        path: an image folder or an ``.npz`` file (what ``problem_options.dataset`` takes).
        resolution: resize to this side, as the search will (None: the images' own).
    """

    def __init__(self, path: str | Path, resolution: int | None = None):
        self.path = Path(path)
        self.resolution = resolution
        self._stable: tuple | None = None      # the fingerprint the digest is of
        self._digest: str | None = None
        self._pending: tuple | None = None     # a changed fingerprint seen once, not yet settled
        self.error: str | None = None          # why the last load failed (a half-copied folder)

    def check(self) -> str:
        """Load the dataset now and return its digest.

        Raises:
            UsageError: not a usable dataset, one line naming ``--watch``.
        """
        fp = fingerprint(self.path)
        digest = self._load()
        self._stable, self._digest, self._pending = fp, digest, None
        return digest

    def _load(self) -> str:
        from evodiff_ray.data import load_dataset

        try:
            return load_dataset(str(self.path), resolution=self.resolution).digest
        except UsageError as e:
            raise UsageError(f"--watch {self.path}: {e}") from None

    def digest(self) -> str | None:
        """The digest of the files as they stood for one poll at least (None: never readable yet).

        A folder that cannot be loaded right now keeps the last good digest (and sets
        :attr:`error`): a half-written file is not a change of the data.
        """
        fp = fingerprint(self.path)
        if fp == self._stable:              # unchanged, or back as it was
            self._pending, self.error = None, None
            return self._digest
        if fp != self._pending:
            self._pending = fp                  # changed: wait one poll for it to settle
            return self._digest
        try:
            digest = self._load()
        except UsageError as e:
            if self.error != str(e):
                log.warning("%s; keeping the last good digest", e)
            self.error = str(e)
            return self._digest
        self.error = None
        self._stable, self._digest, self._pending = fp, digest, None
        return digest


def served_snapshot(client, model: str) -> ServedSnapshot | None:
    """The production version's evidence in the current deployment (a sync Redis client).

    Returns:
        None when ``model`` has no routing state in this Redis (never served here).
    """
    from evodiff_ray.serving.metrics import Keys, arm_stats
    from evodiff_ray.serving.state import read_state

    state = read_state(client, model)
    if state is None:
        return None
    keys = Keys(model)
    arm = arm_stats(client, keys, state.deployment, state.production).summary()
    fd: dict[str, Any] = {}
    raw = client.get(keys.fd(state.production))
    if raw:
        try:
            fd = json.loads(raw)
        except ValueError:
            fd = {}
    return ServedSnapshot(version=state.production, deployment=state.deployment, started_at=float(state.started_at),
                          canary=state.challenger is not None, ratings=int(arm["ratings"]),
                          mean_rating=arm["mean_rating"], fd=_float(fd.get("fd")),
                          fd_samples=int(fd.get("samples") or 0), fd_at=_float(fd.get("at")))


def _float(v) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


__all__ = ["DatasetWatch", "fingerprint", "served_snapshot"]
