"""Memory: peak device memory of one full sampling run.

``memory_mb`` means the same thing on every device: the bytes of the model's
parameters and buffers, plus the peak of the *additional* memory the device holds
while one full sampling run (all steps, the configured batch) executes, in MiB
(2**20 bytes). How the peak is read differs by device:

* **CUDA**: exact. ``torch.cuda.reset_peak_memory_stats`` before the run, then
  ``max_memory_allocated() - memory_allocated_before`` (bytes held by tensors through
  PyTorch's caching allocator; the allocator's unused cache is not counted).
* **MPS**: sampled. MPS has no peak API, so a background thread polls
  ``torch.mps.driver_allocated_memory()`` (all memory the Metal driver holds for the
  process, including the MPS allocator's pools and MPSGraph's own buffers: on
  unified memory this is what competes with the rest of the system) every
  ``interval_s`` after ``torch.mps.empty_cache()``; the value is
  ``max(sampled) - before``. Spikes shorter than the interval can be missed, and
  pool granularity rounds up.
* **CPU**: exact for tensors. The run executes under ``torch.profiler`` with
  ``profile_memory=True``, which records every allocation and free of PyTorch's CPU
  allocator with a timestamp; the value is the peak of their running sum. It counts
  every tensor (inputs, activations, temporaries, outputs), but not memory libraries
  allocate behind PyTorch's back (oneDNN scratch space), nor the interpreter. We
  chose this over sampling the process RSS because RSS neither falls when freed
  memory stays in malloc's arenas nor rises for memory reused from them, so in a
  long-lived evaluator it reports history rather than this candidate; the profiler
  costs one extra sampling run per evaluation.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from evodiff_ray.metrics.latency import synchronize

MIB = 2**20


@dataclass(frozen=True)
class MemoryStats:
    """Peak memory of one run.

    Attributes:
        peak_mb: model bytes plus the run's peak additional bytes, in MiB (``memory_mb``).
        model_mb: parameters and buffers, in MiB.
        activation_mb: the run's peak additional bytes, in MiB.
        method: how the peak was read (``cuda-max-allocated``, ``mps-driver-sampled``,
            ``cpu-profiler-allocations``).
    """

    peak_mb: float
    model_mb: float
    activation_mb: float
    method: str


def model_bytes(model: nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def measure_peak_memory(
    fn: Callable[[], object], model: nn.Module, device: torch.device, interval_s: float = 0.001
) -> MemoryStats:
    """Run ``fn`` once and report its peak memory on ``device`` (see the module docstring).

    Args:
        fn: one full sampling run.
        model: the sampled network (its bytes are added to the peak).
        device: where ``fn`` runs.
        interval_s: polling interval on MPS.
    """
    if device.type == "cuda":
        extra, method = _cuda_peak(fn, device), "cuda-max-allocated"
    elif device.type == "mps":
        extra, method = _mps_peak(fn, interval_s), "mps-driver-sampled"
    else:
        extra, method = _cpu_peak(fn), "cpu-profiler-allocations"
    mb = model_bytes(model) / MIB
    return MemoryStats(peak_mb=mb + extra / MIB, model_mb=mb, activation_mb=extra / MIB, method=method)


def _cuda_peak(fn: Callable[[], object], device: torch.device) -> int:
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before)


def _mps_peak(fn: Callable[[], object], interval_s: float) -> int:
    torch.mps.synchronize()
    torch.mps.empty_cache()
    before = torch.mps.driver_allocated_memory()
    peak = [before]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], torch.mps.driver_allocated_memory())
            time.sleep(interval_s)

    thread = threading.Thread(target=poll, name="mps-memory-poll", daemon=True)
    thread.start()
    try:
        fn()
        torch.mps.synchronize()
    finally:
        stop.set()
        thread.join()
    peak[0] = max(peak[0], torch.mps.driver_allocated_memory())
    return max(0, peak[0] - before)


def _cpu_peak(fn: Callable[[], object]) -> int:
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _stderr_silenced():  # Kineto prints "USDT ... profiler_start/stop" lines on every run
        prof.__enter__()
    try:
        fn()
    finally:
        with _stderr_silenced():
            prof.__exit__(None, None, None)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        if e.device_type() == torch.autograd.DeviceType.CPU:
            live += e.nbytes()
            peak = max(peak, live)
    return peak


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null for the duration (native libraries' chatter)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
