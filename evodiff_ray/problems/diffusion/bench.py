"""Real candidate evaluation: train a genome's denoiser, sample, measure -> Fitness.

:class:`DiffusionBench` holds the warm state (dataset tensors, feature network,
held-out feature statistics, noise schedule) so that a Ray actor builds it once and
evaluates many genomes. Every candidate gets the same diffusion machinery (schedule,
loss, DDIM sampler, training budget, seeds); only the architecture differs.

Nothing a candidate does crashes the caller: a NaN or infinite loss, an exception,
running out of memory, an op the device does not support (MPS), or exceeding the
time limit each give an infeasible :class:`Fitness` whose ``reason`` says which.
The time limit is checked before every training step and every sampler step, so a
candidate overruns it by at most one step.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from evodiff_ray.data import Dataset, load_dataset
from evodiff_ray.denoiser import build_denoiser
from evodiff_ray.diffusion.fidelity import Fidelity, get_fidelity
from evodiff_ray.diffusion.sampler import ddim_sample, sample_noise
from evodiff_ray.diffusion.schedule import linear_schedule
from evodiff_ray.diffusion.train import NonFiniteLoss, heldout_loss, train
from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.genome import Genome
from evodiff_ray.metrics.latency import measure_latency
from evodiff_ray.metrics.memory import measure_peak_memory
from evodiff_ray.metrics.quality import feature_stats, frechet_distance, load_feature_net

#: objective names, all minimised, in pymoo's F column order
OBJECTIVES = ("quality_fd", "latency_ms", "memory_mb")
#: bump when anything here changes the numbers a genome gets (joins cache keys)
EVAL_CODE_VERSION = "diffusion-eval-1"
#: the feature network's seed is fixed: the metric must not move with the evaluation seed
FEATURE_NET_SEED = 0


class CandidateTimeout(Exception):
    """The candidate exceeded its time limit."""


def stderr_progress(message: str) -> None:
    """Default progress sink for long work: one line on stderr."""
    print(f"[evodiff-ray] {message}", file=sys.stderr, flush=True)


def resolve_device(name: str | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA if present, else MPS, else CPU; or the named device.

    Raises:
        UsageError: a named device that this machine lacks.
    """
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} requested but CUDA is not available here; use auto or cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {name!r} requested but MPS is not available here; use auto or cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"device {name!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return dev


class DiffusionBench:
    """Evaluates genomes on one dataset and device, keeping the expensive state warm.

    Args:
        dataset: ``"digits"``, an image folder or an ``.npz`` path, or a loaded
            :class:`~evodiff_ray.data.Dataset`.
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.
        resolution: resize user images to this side length (None: keep theirs).
        seed: default evaluation seed: model init, data order, training noise and
            sampling noise all derive from it (common random numbers across candidates).
        fd_samples: generated and held-out samples for ``quality_fd`` (None: the
            whole held-out split, capped at 2,000).
        latency_batch: images per sampling run for ``latency_ms`` and ``memory_mb``.
        latency_repeats: timed sampling runs (after one warm-up run).
        time_limit_s: per-candidate wall-time limit (None: no limit).
        threads: ``torch.set_num_threads`` for this process (None: leave as is).
        cache_dir: where the feature network is cached (None: ``$EVODIFF_CACHE_DIR``
            or ``~/.cache/evodiff-ray``).
        progress: called with one-line progress messages (None: silent).
        fault_hook: called with the stage name (``build``, ``train``, ``sample``,
            ``latency``, ``memory``) at every step of that stage; tests use it to
            inject failures (e.g. raise ``torch.OutOfMemoryError``).
    """

    def __init__(
        self,
        dataset: str | Path | Dataset = "digits",
        *,
        device: str | None = None,
        resolution: int | None = None,
        seed: int = 0,
        fd_samples: int | None = None,
        latency_batch: int = 16,
        latency_repeats: int = 5,
        time_limit_s: float | None = 600.0,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        progress: Callable[[str], None] | None = None,
        fault_hook: Callable[[str], None] | None = None,
    ):
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.device = resolve_device(device)
        if self.device.type == "mps":
            # timed runs must never fall back to the CPU silently (hardware/device.py)
            from evodiff_ray.hardware.device import assert_no_mps_fallback

            assert_no_mps_fallback(self.device)
        self.seed = int(seed)
        self.latency_batch = int(latency_batch)
        self.latency_repeats = int(latency_repeats)
        self.time_limit_s = time_limit_s
        self.progress = progress or (lambda message: None)
        self.fault_hook = fault_hook
        if self.latency_batch < 1 or self.latency_repeats < 1:
            raise UsageError("latency_batch and latency_repeats must be at least 1")
        self.dataset = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, resolution=resolution)
        n_held = self.dataset.heldout.shape[0]
        self.fd_samples = min(n_held, 2000) if fd_samples is None else int(fd_samples)
        if not 2 <= self.fd_samples <= n_held:
            raise UsageError(f"fd_samples {fd_samples} must be in [2, {n_held}] (the held-out split's size)")
        self.schedule = linear_schedule()
        self.feature_net = load_feature_net(self.dataset, cache_dir, FEATURE_NET_SEED, self.progress)
        self.real_stats = feature_stats(self.feature_net, self.dataset.heldout[: self.fd_samples])
        self._measured_on = _measured_on(self.device)

    # -- description ---------------------------------------------------------------
    def settings(self, fidelity: str | Fidelity = "quick") -> dict[str, Any]:
        """Everything besides the genome that changes its fitness (for cache keys)."""
        return {
            "fidelity": get_fidelity(fidelity).to_dict(),
            "dataset": self.dataset.digest,
            "schedule": self.schedule.describe(),
            "seed": self.seed,
            "fd_samples": self.fd_samples,
            "latency_batch": self.latency_batch,
            "device_class": self.device.type,
            "code_version": EVAL_CODE_VERSION,
        }

    def measured_on(self) -> dict[str, Any]:
        """Where this evaluator measures: node, device, chip, torch, predicted (none)."""
        return dict(self._measured_on)

    # -- evaluation ----------------------------------------------------------------
    def evaluate(
        self,
        genome: Genome,
        fidelity: str | Fidelity = "quick",
        *,
        seed: int | None = None,
        time_limit_s: float | None = None,
    ) -> Fitness:
        """Train, sample and measure one genome. Never raises for a candidate's failure.

        Args:
            genome: the architecture.
            fidelity: a name in :data:`~evodiff_ray.diffusion.fidelity.FIDELITIES` or a
                :class:`~evodiff_ray.diffusion.fidelity.Fidelity`.
            seed: overrides the evaluator's seed for this call.
            time_limit_s: overrides the evaluator's time limit for this call.

        Returns:
            A :class:`Fitness` with objectives ``quality_fd``, ``latency_ms`` and
            ``memory_mb``; infeasible with a reason when the candidate failed.

        Raises:
            UsageError: only for an unknown fidelity name.
        """
        fid = get_fidelity(fidelity)
        seed = self.seed if seed is None else int(seed)
        limit = self.time_limit_s if time_limit_s is None else time_limit_s
        t0 = time.perf_counter()
        deadline = None if limit is None else t0 + float(limit)
        state = {"stage": "build"}
        extras: dict[str, Any] = {"fidelity": fid.name, "seed": seed, "sampler_steps": genome.parameters["sampler_steps"]}

        def check(_step: int = 0) -> None:
            if deadline is not None and time.perf_counter() > deadline:
                raise CandidateTimeout(state["stage"])
            if self.fault_hook is not None:
                self.fault_hook(state["stage"])

        try:
            objectives = self._run(genome, fid, seed, state, check, extras)
        except Exception as e:  # noqa: BLE001 - every candidate failure becomes a reason
            self._release()
            reason = _reason(e, state["stage"], limit, self.device)
            return Fitness.infeasible(
                OBJECTIVES, reason, measured_on=self.measured_on(), extras=extras, seconds=time.perf_counter() - t0
            )
        return Fitness(
            objectives=objectives,
            measured_on=self.measured_on(),
            extras=extras,
            seconds=time.perf_counter() - t0,
        )

    def _run(self, genome: Genome, fid: Fidelity, seed: int, state: dict, check, extras: dict) -> dict[str, float]:
        ds, dev = self.dataset, self.device
        if not ds.suits_levels(genome.levels):
            raise _Unsuitable(
                f"resolution {ds.resolution} does not suit {genome.levels} levels "
                f"(needs a multiple of {2 ** (genome.levels - 1)})"
            )
        marks = {"start": time.perf_counter()}
        check()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_denoiser(genome, ds.channels).to(dev)
        extras["params"] = sum(p.numel() for p in net.parameters())

        state["stage"] = "train"
        self.progress(f"training {genome.key()[:12]} ({extras['params']:,} params) at {fid.name}: {fid.train_steps} steps")
        result = train(net, ds.train, self.schedule, fid, seed, on_step=check)
        model = result.model
        extras["train_loss"] = result.final_loss
        extras["heldout_loss"] = heldout_loss(model, ds.heldout, self.schedule, seed + 2)
        marks["train"] = time.perf_counter()

        state["stage"] = "sample"
        steps = genome.parameters["sampler_steps"]
        shape = (self.fd_samples, ds.channels, ds.resolution, ds.resolution)
        noise = sample_noise(shape, seed + 3)                              # (N, C, H, W)
        images = torch.cat([
            ddim_sample(model, self.schedule, noise[i : i + 500].to(dev), steps, on_step=check).cpu()
            for i in range(0, shape[0], 500)
        ])
        if not torch.isfinite(images).all():
            raise FloatingPointError("sampler produced non-finite images")
        fd = frechet_distance(feature_stats(self.feature_net, images), self.real_stats)
        marks["sample"] = time.perf_counter()

        bshape = (self.latency_batch, ds.channels, ds.resolution, ds.resolution)
        bnoise = sample_noise(bshape, seed + 4)

        def sample_once() -> torch.Tensor:
            return ddim_sample(model, self.schedule, bnoise.to(dev), steps, on_step=check)

        state["stage"] = "latency"
        lat = measure_latency(sample_once, dev, warmup=1, repeats=self.latency_repeats)
        state["stage"] = "memory"
        mem = measure_peak_memory(sample_once, model, dev)
        marks["measure"] = time.perf_counter()

        extras.update(
            latency_p90_ms=lat.p90_ms,
            latency_runs_ms=list(lat.runs_ms),
            latency_batch=self.latency_batch,
            memory_method=mem.method,
            model_mb=mem.model_mb,
            activation_mb=mem.activation_mb,
            fd_samples=self.fd_samples,
            dataset=ds.digest,
            train_seconds=marks["train"] - marks["start"],
            sample_seconds=marks["sample"] - marks["train"],
            measure_seconds=marks["measure"] - marks["sample"],
        )
        return {"quality_fd": fd, "latency_ms": lat.median_ms, "memory_mb": mem.peak_mb}

    def _release(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps":
            torch.mps.empty_cache()


class _Unsuitable(Exception):
    """The genome cannot run on this dataset (e.g. too many levels for the resolution)."""


def _reason(e: BaseException, stage: str, limit: float | None, device: torch.device) -> str:
    """A one-line reason for an infeasible Fitness."""
    msg = str(e).splitlines()[0][:300] if str(e) else ""
    if isinstance(e, CandidateTimeout):
        return f"timeout: exceeded the {limit:g} s limit during {stage}"
    if isinstance(e, NonFiniteLoss):
        return f"non-finite loss: {msg}"
    if isinstance(e, _Unsuitable):
        return f"unsuitable: {msg}"
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in msg.lower():
        return f"out of memory during {stage}: {type(e).__name__}: {msg}".rstrip(": ")
    if isinstance(e, NotImplementedError) and device.type == "mps":
        return f"unsupported on mps during {stage}: {msg}"
    if isinstance(e, FloatingPointError):
        return f"non-finite output during {stage}: {msg}"
    return f"exception during {stage}: {type(e).__name__}: {msg}".rstrip(": ")


def _measured_on(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "node": socket.gethostname(),
        "device": str(device),
        "chip": _chip(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "predicted": [],
    }
    if device.type == "mps":
        # the CPU fallback would silently time CPU kernels; we never enable it, but say if the user did
        info["mps_fallback"] = os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK", "") == "1"
    return info


def _chip(device: torch.device) -> str | None:
    """A human name for the chip doing the work (GPU name, Apple chip or CPU model)."""
    try:
        if device.type == "cuda":
            return torch.cuda.get_device_name(device)
        if platform.system() == "Darwin":
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5)
            return out.stdout.strip() or platform.machine()
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError, RuntimeError):
        pass
    return platform.processor() or platform.machine() or None
