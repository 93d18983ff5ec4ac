"""SampleGrids: writes each outcome's sample grid into the run dir, keeps only its name.

Why a wrapper at the driver and not a folder the problem writes to: the problem runs in
Ray actors that may sit on other machines than the run dir, and a cache hit never reaches
a problem at all. The grid therefore travels inside the Fitness (base64 under
:data:`~evodiff_ray.metrics.samples.SAMPLES_EXTRA`, cached with it), and this outermost
wrapper turns it into ``samples/<key>.png`` before the search tells, checkpoints or logs
the record, which keeps only ``extras["samples"] = "samples/<key>.png"`` (STYLE 6: wrap,
don't fork).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from evodiff_ray.core.evaluator import Evaluator, EvaluatorWrapper, Outcome
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.metrics.samples import SAMPLES_EXTRA, SAMPLES_FILE_EXTRA, decode

#: the run dir's folder of grids
SAMPLES_DIR = "samples"
_SAFE = re.compile(r"[^A-Za-z0-9_.@-]")


def grid_path(run_dir: str | Path, key: str) -> Path:
    """Where the grid of candidate ``key`` is kept in a run dir."""
    return Path(run_dir) / SAMPLES_DIR / f"{_SAFE.sub('_', key)[:80]}.png"


def keep_grid(fitness: Fitness, key: str, run_dir: str | Path) -> Fitness:
    """``fitness`` without its travelling grid; the grid written to :func:`grid_path`.

    A grid that is not a PNG is dropped (it came from a cache or the network). Returns
    ``fitness`` itself when it carries no grid.
    """
    if SAMPLES_EXTRA not in fitness.extras:
        return fitness
    extras = dict(fitness.extras)
    png = decode(extras.pop(SAMPLES_EXTRA))
    if png is not None:
        path = grid_path(run_dir, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(png)
        tmp.replace(path)
        extras[SAMPLES_FILE_EXTRA] = str(path.relative_to(Path(run_dir)))
    return dataclasses.replace(fitness, extras=extras)


class SampleGrids(EvaluatorWrapper):
    """Wraps an evaluator; each outcome's grid goes to ``<run_dir>/samples/<key>.png``.

    Args:
        inner: the evaluator to wrap (cache, rungs and pool inside).
        run_dir: the search's run dir.
    """

    def __init__(self, inner: Evaluator, run_dir: str | Path):
        super().__init__(inner)
        self.run_dir = Path(run_dir)

    def poll(self, timeout: float | None = None) -> list[Outcome]:
        return [dataclasses.replace(o, fitness=keep_grid(o.fitness, o.task.key, self.run_dir))
                for o in self.inner.poll(timeout)]
