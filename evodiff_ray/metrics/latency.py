"""Latency: median wall time of a full sampling run on the evaluating device."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (CUDA and MPS run asynchronously; CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@dataclass(frozen=True)
class LatencyStats:
    """Wall times of repeated runs, in milliseconds.

    Attributes:
        median_ms: median over the timed runs (the objective ``latency_ms``).
        p90_ms: 90th percentile (linear interpolation).
        runs_ms: every timed run, in order.
    """

    median_ms: float
    p90_ms: float
    runs_ms: tuple[float, ...]


def measure_latency(
    fn: Callable[[], object], device: torch.device, warmup: int = 1, repeats: int = 5
) -> LatencyStats:
    """Time ``fn`` after ``warmup`` untimed calls, synchronising the device around each run.

    Args:
        fn: one full sampling run (all steps) for the configured batch.
        device: where ``fn`` runs.
        warmup: untimed calls first (allocator caches, kernel selection, lazy init).
        repeats: timed calls.
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    runs = []
    for _ in range(max(1, repeats)):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        runs.append((time.perf_counter() - t0) * 1e3)
    arr = np.asarray(runs)
    return LatencyStats(float(np.median(arr)), float(np.percentile(arr, 90)), tuple(float(r) for r in runs))
