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
import socket
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
from evodiff_ray.metrics.samples import SAMPLES_EXTRA, grid_png
from evodiff_ray.metrics.samples import encode as encode_grid
from evodiff_ray.diffusion.train import NonFiniteLoss, heldout_loss, step_progress, train
from evodiff_ray.core.errors import UsageError
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.genome import Genome
from evodiff_ray.hardware.detect import processor_name
from evodiff_ray.hardware.device import select_device
from evodiff_ray.metrics.latency import measure_latency
from evodiff_ray.metrics.memory import measure_peak_memory
from evodiff_ray.metrics.quality import feature_stats, frechet_distance, load_feature_net
from evodiff_ray.problems.diffusion.settings import OBJECTIVES, DiffusionSettings

# A change here that moves the numbers a genome gets bumps
# evodiff_ray.core.key.EVALUATION_CODE_VERSION (it joins every cache key).

#: the feature network's seed is fixed: the metric must not move with the evaluation seed
FEATURE_NET_SEED = 0


class CandidateTimeout(Exception):
    """The candidate exceeded its time limit."""


def stderr_progress(message: str) -> None:
    """Default progress sink for long work: one line on stderr."""
    print(f"[evodiff-ray] {message}", file=sys.stderr, flush=True)


class DiffusionBench:
    """Evaluates genomes on one dataset and device, keeping the expensive state warm.

    Args:
        settings: how candidates are trained and measured (the problem's
            :class:`~evodiff_ray.problems.diffusion.settings.DiffusionSettings`, passed
            whole; None: the defaults). The bench reads the options; the facts the cache
            key adds (digest, device class, processor) it finds for itself.
        dataset: the dataset ``settings.dataset`` names, already loaded (reused warm);
            None: load it.
        cache_dir: where the feature network is cached (None: ``$EVODIFF_CACHE_DIR``
            or ``~/.cache/evodiff-ray``).
        progress: called with one-line progress messages (None: silent).
        fault_hook: called with the stage name (``build``, ``train``, ``sample``,
            ``latency``, ``memory``) at every step of that stage; tests use it to
            inject failures (e.g. raise ``torch.OutOfMemoryError``).

    Raises:
        UsageError: a device this machine lacks, an unloadable dataset, or ``fd_samples``
            outside the held-out split.
    """

    def __init__(
        self,
        settings: DiffusionSettings | None = None,
        *,
        dataset: Dataset | None = None,
        cache_dir: str | Path | None = None,
        progress: Callable[[str], None] | None = None,
        fault_hook: Callable[[str], None] | None = None,
    ):
        self.settings = settings = settings or DiffusionSettings()
        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        self.device = select_device(settings.device or "auto")
        if self.device.type == "mps":
            # timed runs must never fall back to the CPU silently (hardware/device.py)
            from evodiff_ray.hardware.device import assert_no_mps_fallback

            assert_no_mps_fallback(self.device)
        self.progress = progress or (lambda message: None)
        self.fault_hook = fault_hook
        if dataset is not None and dataset.name != str(settings.dataset):
            raise ValueError(f"the loaded dataset is {dataset.name!r} but the settings name {settings.dataset!r}")
        self.dataset = dataset if dataset is not None else load_dataset(settings.dataset,
                                                                        resolution=settings.resolution)
        n_held = self.dataset.heldout.shape[0]
        fd_samples = settings.fd_samples
        self.fd_samples = min(n_held, 2000) if fd_samples is None else int(fd_samples)
        if not 2 <= self.fd_samples <= n_held:
            raise UsageError(f"fd_samples {fd_samples} must be in [2, {n_held}] (the held-out split's size)")
        self.schedule = linear_schedule()
        self.feature_net = load_feature_net(self.dataset, cache_dir, FEATURE_NET_SEED, self.progress)
        self.real_stats = feature_stats(self.feature_net, self.dataset.heldout[: self.fd_samples])
        self._measured_on = _measured_on(self.device)

    # -- description ---------------------------------------------------------------
    def measured_on(self) -> dict[str, Any]:
        """Where this evaluator measures: node, device, chip, torch, predicted (none)."""
        return dict(self._measured_on)

    # -- evaluation ----------------------------------------------------------------
    def evaluate(
        self,
        genome: Genome,
        fidelity: str | Fidelity | None = None,
        *,
        seed: int | None = None,
        time_limit_s: float | None = None,
    ) -> Fitness:
        """Train, sample and measure one genome. Never raises for a candidate's failure.

        Args:
            genome: the architecture.
            fidelity: a name in :data:`~evodiff_ray.diffusion.fidelity.FIDELITIES` or a
                :class:`~evodiff_ray.diffusion.fidelity.Fidelity` (None: the settings').
            seed: overrides the settings' seed for this call.
            time_limit_s: overrides the settings' time limit for this call.

        Returns:
            A :class:`Fitness` with objectives ``quality_fd``, ``latency_ms`` and
            ``memory_mb``; infeasible with a reason when the candidate failed.

        Raises:
            UsageError: only for an unknown fidelity name.
        """
        fid = self.settings.fidelity if fidelity is None else get_fidelity(fidelity)
        seed = self.settings.seed if seed is None else int(seed)
        limit = self.settings.time_limit_s if time_limit_s is None else time_limit_s
        extras: dict[str, Any] = {"fidelity": fid.name, "seed": seed, "sampler_steps": genome.parameters["sampler_steps"],
                                  "train_steps": fid.train_steps, "train_steps_spent": fid.train_steps}

        def run(state, check):
            net = self._build(genome, seed, state, check, extras)
            state["stage"] = "train"
            self.progress(f"training {genome.key()[:12]} ({extras['params']:,} params) at {fid.name}: "
                          f"{fid.train_steps} steps")
            on_step = step_progress(self.progress, fid.train_steps, f"training {genome.key()[:12]}", then=check)
            result = train(net, self.dataset.train, self.schedule, fid, seed, on_step=on_step)
            extras["train_loss"] = result.final_loss
            extras["train_seconds"] = result.seconds
            fd = self._quality(result.model, genome, seed, state, check, extras)
            return {"quality_fd": fd, **self._device_objectives(result.model, genome, seed, state, check, extras)}

        return self._guarded(run, limit, extras)

    def probe(self, genome: Genome) -> Fitness:
        """Latency and memory of ``genome``'s network, untrained (they do not depend on the
        weights): the first, cheap step of multi-fidelity. ``quality_fd`` is ``inf``."""
        seed = self.settings.seed
        extras: dict[str, Any] = {"rung": -1, "train_steps": 0, "train_steps_spent": 0,
                                  "sampler_steps": genome.parameters["sampler_steps"]}

        def run(state, check):
            net = self._build(genome, seed, state, check, extras).eval()
            return {"quality_fd": float("inf"), **self._device_objectives(net, genome, seed, state, check, extras)}

        return self._guarded(run, self.settings.time_limit_s, extras)

    def train_rung(self, genome: Genome, rung: int, *, store, trunk_key: str) -> Fitness:
        """Train ``genome`` to multi-fidelity rung ``rung`` and measure its quality.

        Training continues from the highest lower rung in ``store`` (weights, EMA, Adam
        moments, data order, generators), or starts fresh; the trunk at this rung is stored
        for the next; the rung's decay branch is measured and thrown away. For the same
        seeds, the result equals training straight through (:mod:`evodiff_ray.diffusion.wsd`).

        Args:
            genome: the architecture.
            rung: index into the settings' rungs.
            store: a :class:`~evodiff_ray.diffusion.trunk_store.TrunkStore`.
            trunk_key: the genome's key under the settings' quality part.

        Returns:
            A Fitness whose ``quality_fd`` is measured and whose latency and memory are
            ``inf`` (the probe has them); ``extras`` name the rung, ``train_steps`` behind
            the measurement and ``train_steps_spent`` by this call.
        """
        from evodiff_ray.diffusion import wsd

        recipe = self.settings.rung_recipe
        if recipe is None:
            raise ValueError("train_rung needs settings with rungs")
        seed = self.settings.seed
        extras: dict[str, Any] = {"rung": rung, "train_steps": recipe.budget(rung),
                                  "sampler_steps": genome.parameters["sampler_steps"]}

        def run(state, check):
            net = self._build(genome, seed, state, check, extras)
            state["stage"] = "train"
            found = store.latest(trunk_key, rung + 1)
            trunk = None
            if found is not None:
                try:
                    trunk = wsd.state_from_bytes(found[1], net, recipe.fidelity)
                except ValueError as e:   # a damaged or foreign file: train from scratch
                    self.progress(f"trunk of {genome.key()[:12]} unusable ({e}); training from scratch")
            if trunk is None:
                trunk = wsd.start(net, self.dataset.train.shape[0], recipe.fidelity, seed)
            start_step, before = trunk.step, trunk.seconds
            self.progress(f"training {genome.key()[:12]} ({extras['params']:,} params) to rung {rung}: "
                          f"steps {start_step} -> {recipe.trunk_steps(rung)} + {recipe.decay_steps(rung)} decay")
            wsd.advance(trunk, self.dataset.train, self.schedule, recipe, recipe.trunk_steps(rung), on_step=check)
            if found is None or found[0] < rung:
                store.put(trunk_key, rung, wsd.state_bytes(trunk))
            model = wsd.branch(trunk, self.dataset.train, self.schedule, recipe, rung, on_step=check)
            extras["train_steps_spent"] = recipe.trunk_steps(rung) - start_step + recipe.decay_steps(rung)
            extras["continued_from_step"] = start_step
            extras["train_loss"] = sum(trunk.tail_losses) / max(1, len(trunk.tail_losses))
            extras["train_seconds"] = trunk.seconds - before
            fd = self._quality(model, genome, seed, state, check, extras)
            return {"quality_fd": fd, "latency_ms": float("inf"), "memory_mb": float("inf")}

        return self._guarded(run, self.settings.time_limit_s, extras)

    # -- the stages ----------------------------------------------------------------
    def _guarded(self, run, limit: float | None, extras: dict[str, Any]) -> Fitness:
        """Run ``run(state, check)`` under the time limit and the fault hook; any failure of
        the candidate becomes an infeasible Fitness with its reason."""
        t0 = time.perf_counter()
        deadline = None if limit is None else t0 + float(limit)
        state = {"stage": "build"}

        def check(_step: int = 0) -> None:
            if deadline is not None and time.perf_counter() > deadline:
                raise CandidateTimeout(state["stage"])
            if self.fault_hook is not None:
                self.fault_hook(state["stage"])

        try:
            objectives = run(state, check)
        except Exception as e:  # noqa: BLE001 - every candidate failure becomes a reason
            self._release()
            reason = _reason(e, state["stage"], limit, self.device)
            # a time limit hit on an overloaded machine (load measured as it fires) is the
            # machine's failure, not the genome's: transient, so it is never cached
            from evodiff_ray.core.fitness import overloaded

            transient = isinstance(e, CandidateTimeout) and overloaded()
            return Fitness.infeasible(
                OBJECTIVES, reason + (" while the machine was overloaded" if transient else ""),
                measured_on=self.measured_on(), extras=extras, seconds=time.perf_counter() - t0,
                transient=transient,
            )
        extras.update(fd_samples=self.fd_samples, dataset=self.dataset.digest)
        return Fitness(objectives=objectives, measured_on=self.measured_on(), extras=extras,
                       seconds=time.perf_counter() - t0)

    def _build(self, genome: Genome, seed: int, state: dict, check, extras: dict):
        """The network for ``genome``, initialised from ``seed``, on the device."""
        ds = self.dataset
        if not ds.suits_levels(genome.levels):
            raise _Unsuitable(
                f"resolution {ds.resolution} does not suit {genome.levels} levels "
                f"(needs a multiple of {2 ** (genome.levels - 1)})"
            )
        state["stage"] = "build"
        check()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_denoiser(genome, ds.channels).to(self.device)
        extras["params"] = sum(p.numel() for p in net.parameters())
        return net

    def _quality(self, model, genome: Genome, seed: int, state: dict, check, extras: dict) -> float:
        """Held-out loss and ``quality_fd`` of a trained model (fixed sampling noise)."""
        ds, dev = self.dataset, self.device
        t0 = time.perf_counter()
        extras["heldout_loss"] = heldout_loss(model, ds.heldout, self.schedule, seed + 2)
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
        extras["sample_seconds"] = time.perf_counter() - t0
        # what FD measured, to look at: the first samples (fixed noise seeds) as a small PNG
        extras[SAMPLES_EXTRA] = encode_grid(grid_png(images))
        return fd

    def _device_objectives(self, model, genome: Genome, seed: int, state: dict, check,
                           extras: dict) -> dict[str, float]:
        """``latency_ms`` and ``memory_mb`` of full sampling at the latency batch."""
        ds, dev = self.dataset, self.device
        t0 = time.perf_counter()
        steps = genome.parameters["sampler_steps"]
        batch = self.settings.latency_batch
        bnoise = sample_noise((batch, ds.channels, ds.resolution, ds.resolution), seed + 4)

        def sample_once() -> torch.Tensor:
            return ddim_sample(model, self.schedule, bnoise.to(dev), steps, on_step=check)

        state["stage"] = "latency"
        lat = measure_latency(sample_once, dev, warmup=1, repeats=self.settings.latency_repeats)
        state["stage"] = "memory"
        mem = measure_peak_memory(sample_once, model, dev)
        extras.update(
            latency_p90_ms=lat.p90_ms,
            latency_runs_ms=list(lat.runs_ms),
            latency_batch=batch,
            memory_method=mem.method,
            model_mb=mem.model_mb,
            activation_mb=mem.activation_mb,
            measure_seconds=time.perf_counter() - t0,
        )
        return {"latency_ms": lat.median_ms, "memory_mb": mem.peak_mb}

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
        "chip": processor_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "predicted": [],
    }
    if device.type == "mps":
        # the CPU fallback would silently time CPU kernels; we never enable it, but say if the user did
        info["mps_fallback"] = os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK", "") == "1"
    return info
