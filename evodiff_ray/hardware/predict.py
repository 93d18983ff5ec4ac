"""Latency and memory of a genome on a device, predicted from the analytic cost model.

Latency is a roofline sum. For every piece of the network
(:func:`evodiff_ray.cost.layer_costs`) one forward pass costs::

    max(flops / peak_flops, traffic_bytes / bandwidth) + kernels * launch_overhead

where ``traffic`` is the activations the piece writes and reads back plus its weights,
and ``kernels`` the number of operator launches the piece makes in
:mod:`evodiff_ray.denoiser` (:data:`KERNELS`). A full sampling run is that sum plus the
sampler's own update, times the sampler steps: the same quantity the ``latency_ms``
objective measures (:mod:`evodiff_ray.metrics.latency`).

Memory follows ``memory_mb`` (:mod:`evodiff_ray.metrics.memory`): float32 weights plus
the peak live activations of a forward pass at the sampling batch
(:func:`evodiff_ray.cost.estimate`), plus the sampler's state tensors, plus a fixed
runtime overhead.

Both raw numbers are then corrected per device by a :class:`LogLogFit`
(``log measured = a + b log raw``), fitted on candidates measured on that device and
stored, as JSON, with the run. The fit is monotone, so it fixes scale and curvature
but never the *ranking*; the ranking is the roofline's own.

Device profiles: one per Apple chip (from :mod:`.chips`), and one for this machine's
CPU, either an estimate or measured by :func:`measure_cpu_profile`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

from evodiff_ray.cost import BYTES_PER_FLOAT, estimate, layer_costs
from evodiff_ray.genome import Genome
from evodiff_ray.hardware.chips import ChipProfile, get_chip

MIB = 2**20
#: operator launches per piece of one forward pass (see denoiser/blocks.py and unet.py)
KERNELS: dict[str, int] = {
    "conv": 1,
    "residual": 10,      # norm, silu, conv, silu(temb), linear, add, norm, silu, conv, add
    "attention": 7,      # norm, qkv conv, transposes/copy, sdpa, reshape copy, proj conv, add
    "norm": 1,
    "activation": 1,
    "time_mlp": 9,       # sinusoid (arange, exp, mul, cos, sin, cat) + linear, silu, linear
    "stem": 3,           # conv, linear, broadcast add
    "down": 1,           # stride-2 conv
    "up": 2,             # nearest upsample, conv
    "head": 3,           # norm, silu, conv
}
#: elementwise kernels of one DDIM update (sqrt, sub, mul, div, clamp, ... on the image)
SAMPLER_KERNELS = 14
#: image-sized tensors the sampler keeps alive besides the network (x, x0, eps, temporaries)
SAMPLER_TENSORS = 4
#: noise schedule length the sampler spaces its steps over (diffusion/schedule.py)
SCHEDULE_STEPS = 1000


@dataclass(frozen=True)
class DeviceProfile:
    """The roofline parameters of one device.

    Attributes:
        name: ``"m2-max"``, ``"cpu"``, ...
        peak_gflops: attainable FP32 throughput, GFLOP/s.
        bandwidth_gbs: memory bandwidth, GB/s.
        launch_overhead_us: fixed cost of one operator launch (framework dispatch plus,
            on a GPU, kernel encode/launch), microseconds.
        runtime_overhead_mb: fixed memory the runtime adds to a measured peak, MiB.
        estimated: True when the numbers are estimates rather than measurements.
        source: where the numbers come from.
    """

    name: str
    peak_gflops: float
    bandwidth_gbs: float
    launch_overhead_us: float
    runtime_overhead_mb: float = 0.0
    estimated: bool = True
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DeviceProfile":
        return cls(**d)


#: MPS: per-op dispatch through PyTorch plus Metal command encoding, about 10-20 us on
#: M1/M2 in community microbenchmarks; an estimate the per-device fit corrects.
MPS_LAUNCH_OVERHEAD_US = 15.0
#: MPS: allocator pool granularity seen by ``driver_allocated_memory``; an estimate.
MPS_RUNTIME_OVERHEAD_MB = 8.0


def chip_device_profile(chip: ChipProfile | str, gpu_cores: int | None = None) -> DeviceProfile:
    """The roofline profile of an Apple chip's GPU (MPS), from its chip profile.

    Args:
        chip: a profile or name.
        gpu_cores: a binned configuration (None: the full chip).
    """
    c = chip if isinstance(chip, ChipProfile) else get_chip(chip)
    return DeviceProfile(
        name=c.name if gpu_cores is None else f"{c.name}-{gpu_cores}c",
        peak_gflops=c.tflops_for(gpu_cores) * 1e3,
        bandwidth_gbs=c.bandwidth_for(gpu_cores),
        launch_overhead_us=MPS_LAUNCH_OVERHEAD_US,
        runtime_overhead_mb=MPS_RUNTIME_OVERHEAD_MB,
        estimated=True,
        source=f"chips.{c.name} (peak, bandwidth); launch and runtime overheads estimated",
    )


def cpu_device_profile(threads: int = 1) -> DeviceProfile:
    """An *estimated* profile of one x86-64/ARM server core times ``threads``.

    About 40 GFLOP/s attainable per core for small fp32 convolutions (AVX2 FMA peak is
    ~100 at 3 GHz; small 8x8 convs reach a fraction), ~10 GB/s of per-core bandwidth,
    and ~6 us of PyTorch eager dispatch per operator. Prefer :func:`measure_cpu_profile`.
    """
    t = max(1, int(threads))
    return DeviceProfile("cpu", 40.0 * t, 10.0 * min(t, 4), 6.0, 0.0, True,
                         "estimate: typical server core, PyTorch eager dispatch")


def measure_cpu_profile(threads: int = 1, repeats: int = 5) -> DeviceProfile:
    """Measure this machine's CPU roofline with three microbenchmarks (about a second).

    Peak: a 256x256x256 fp32 matmul. Bandwidth: copying a 64 MiB tensor (read + write).
    Launch overhead: a tiny elementwise op on a 1-element tensor. Each is the best of
    ``repeats`` runs under ``torch.set_num_threads(threads)``.
    """
    import time

    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        def best(fn, n: int) -> float:
            fn()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                times.append((time.perf_counter() - t0) / n)
            return min(times)

        a = torch.randn(256, 256)
        b = torch.randn(256, 256)
        t_mm = best(lambda: a @ b, 20)
        big = torch.empty(16 * MIB)                     # 64 MiB of float32
        dst = torch.empty_like(big)
        t_copy = best(lambda: dst.copy_(big), 3)
        tiny = torch.zeros(1)
        t_op = best(lambda: tiny.add(1.0), 2000)
    finally:
        torch.set_num_threads(old)
    return DeviceProfile(
        name="cpu",
        peak_gflops=2 * 256**3 / t_mm / 1e9,
        bandwidth_gbs=2 * big.numel() * 4 / t_copy / 1e9,
        launch_overhead_us=t_op * 1e6,
        runtime_overhead_mb=0.0,
        estimated=False,
        source=f"measured on this machine: matmul, copy and tiny-op microbenchmarks, {threads} thread(s)",
    )


# --------------------------------------------------------------------------- correction


@dataclass(frozen=True)
class LogLogFit:
    """``measured = exp(intercept) * raw ** slope``: a per-device correction of a raw prediction.

    Attributes:
        intercept: ``a`` in ``log y = a + b log x``.
        slope: ``b``.
        n: points it was fitted on (0: the identity).
        rmse_log: root mean square residual in log space (0.1 is about 10%).
    """

    intercept: float = 0.0
    slope: float = 1.0
    n: int = 0
    rmse_log: float = 0.0

    def __call__(self, raw: float) -> float:
        return math.exp(self.intercept) * max(raw, 1e-12) ** self.slope

    @classmethod
    def fit(cls, raw: Sequence[float], measured: Sequence[float]) -> "LogLogFit":
        """Least squares in log space. One point (or no spread) fits the scale only.

        Raises:
            ValueError: fewer than one positive pair, or lengths that differ.
        """
        if len(raw) != len(measured):
            raise ValueError("raw and measured must have the same length")
        pairs = [(math.log(x), math.log(y)) for x, y in zip(raw, measured)
                 if x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y)]
        if not pairs:
            raise ValueError("need at least one positive, finite (raw, measured) pair")
        n = len(pairs)
        mx = sum(x for x, _ in pairs) / n
        my = sum(y for _, y in pairs) / n
        sxx = sum((x - mx) ** 2 for x, _ in pairs)
        slope = sum((x - mx) * (y - my) for x, y in pairs) / sxx if sxx > 1e-12 and n >= 3 else 1.0
        intercept = my - slope * mx
        rmse = math.sqrt(sum((y - intercept - slope * x) ** 2 for x, y in pairs) / n)
        return cls(intercept, slope, n, rmse)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "loglog", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LogLogFit":
        return cls(float(d["intercept"]), float(d["slope"]), int(d.get("n", 0)), float(d.get("rmse_log", 0.0)))


# --------------------------------------------------------------------------- the predictor


def _kernels(name: str, kind: str) -> int:
    if kind != "fixed":
        return KERNELS[kind]
    return KERNELS[name.rstrip("0123456789")]


def layer_times(genome: Genome, profile: DeviceProfile, batch: int, resolution: int = 8,
                in_channels: int = 1) -> list[tuple[str, float]]:
    """Roofline seconds of each piece for one forward pass, in execution order."""
    peak = profile.peak_gflops * 1e9
    bw = profile.bandwidth_gbs * 1e9
    launch = profile.launch_overhead_us * 1e-6
    out = []
    for c in layer_costs(genome, resolution, batch, in_channels):
        traffic = 2 * c.bytes + BYTES_PER_FLOAT * c.params
        out.append((c.name, max(c.flops / peak, traffic / bw) + _kernels(c.name, c.kind) * launch))
    return out


def sampler_steps(genome: Genome) -> int:
    """Network evaluations of one sampling run (distinct DDIM timesteps)."""
    return max(1, min(int(genome.parameters["sampler_steps"]), SCHEDULE_STEPS))


@dataclass(frozen=True)
class Predictor:
    """Predicts ``latency_ms`` and ``memory_mb`` of a genome on one device.

    Attributes:
        profile: the device's roofline parameters.
        batch: images per sampling run (the evaluator's ``latency_batch``).
        resolution: image side in pixels.
        in_channels: image channels.
        latency_fit: correction of the raw roofline latency, fitted on this device.
        memory_fit: correction of the raw memory, fitted on this device.
    """

    profile: DeviceProfile
    batch: int = 64
    resolution: int = 8
    in_channels: int = 1
    latency_fit: LogLogFit = field(default_factory=LogLogFit)
    memory_fit: LogLogFit = field(default_factory=LogLogFit)

    # -- raw model -----------------------------------------------------------------
    def roofline_ms(self, genome: Genome) -> float:
        """Uncorrected latency of a full sampling run, milliseconds."""
        per_pass = sum(t for _, t in layer_times(genome, self.profile, self.batch, self.resolution, self.in_channels))
        p = self.profile
        image = BYTES_PER_FLOAT * self.batch * self.in_channels * self.resolution**2
        skips = len(genome.connections) * p.launch_overhead_us * 1e-6
        update = SAMPLER_KERNELS * (p.launch_overhead_us * 1e-6 + 3 * image / (p.bandwidth_gbs * 1e9))
        return 1e3 * sampler_steps(genome) * (per_pass + skips + update)

    def raw_memory_mb(self, genome: Genome) -> float:
        """Uncorrected peak memory of a sampling run: weights + activations + sampler state + runtime."""
        c = estimate(genome, self.resolution, self.batch, self.in_channels)
        image = BYTES_PER_FLOAT * self.batch * self.in_channels * self.resolution**2
        total = BYTES_PER_FLOAT * c.params + c.peak_activation_bytes + SAMPLER_TENSORS * image
        return total / MIB + self.profile.runtime_overhead_mb

    # -- corrected -----------------------------------------------------------------
    def latency_ms(self, genome: Genome) -> float:
        """Predicted ``latency_ms`` on this device."""
        return self.latency_fit(self.roofline_ms(genome))

    def memory_mb(self, genome: Genome) -> float:
        """Predicted ``memory_mb`` on this device."""
        return self.memory_fit(self.raw_memory_mb(genome))

    def predict(self, genome: Genome) -> dict[str, float]:
        """``{"latency_ms": ..., "memory_mb": ...}``."""
        return {"latency_ms": self.latency_ms(genome), "memory_mb": self.memory_mb(genome)}

    def calibrated(self, genomes: Sequence[Genome], latency_ms: Sequence[float] | None = None,
                   memory_mb: Sequence[float] | None = None) -> "Predictor":
        """A copy whose corrections are fitted on candidates measured on this device.

        Args:
            genomes: the measured candidates.
            latency_ms: their measured latency (None: keep the current fit).
            memory_mb: their measured memory (None: keep the current fit).
        """
        new = self
        if latency_ms is not None:
            new = replace(new, latency_fit=LogLogFit.fit([self.roofline_ms(g) for g in genomes], latency_ms))
        if memory_mb is not None:
            new = replace(new, memory_fit=LogLogFit.fit([self.raw_memory_mb(g) for g in genomes], memory_mb))
        return new

    # -- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON data (stored with the run, so a prediction can be reproduced)."""
        return {
            "profile": self.profile.to_dict(), "batch": self.batch, "resolution": self.resolution,
            "in_channels": self.in_channels, "latency_fit": self.latency_fit.to_dict(),
            "memory_fit": self.memory_fit.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Predictor":
        return cls(DeviceProfile.from_dict(d["profile"]), int(d["batch"]), int(d["resolution"]),
                   int(d["in_channels"]), LogLogFit.from_dict(d["latency_fit"]), LogLogFit.from_dict(d["memory_fit"]))


def predictor_for(device: str, batch: int = 64, resolution: int = 8, in_channels: int = 1,
                  calibration: dict[str, Any] | None = None) -> Predictor:
    """The predictor of a chip name (``"m2-max"``) or ``"cpu"`` (the estimated CPU profile).

    Args:
        device: a chip name or ``"cpu"``.
        batch: sampling batch.
        resolution: image side.
        in_channels: image channels.
        calibration: ``{"latency_fit": {...}, "memory_fit": {...}}`` fitted earlier on
            that device (see :meth:`Predictor.to_dict`).
    """
    profile = cpu_device_profile() if device == "cpu" else chip_device_profile(device)
    p = Predictor(profile, batch, resolution, in_channels)
    if calibration:
        p = replace(p, latency_fit=LogLogFit.from_dict(calibration.get("latency_fit", LogLogFit().to_dict())),
                    memory_fit=LogLogFit.from_dict(calibration.get("memory_fit", LogLogFit().to_dict())))
    return p
