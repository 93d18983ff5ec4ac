"""Latency and memory of a genome on a device, predicted from the analytic cost model.

Latency is a roofline sum. For every piece of the network
(:func:`evodiff_ray.cost.layer_costs`) one forward pass costs::

    flops / peak_flops + traffic_bytes / bandwidth + kernels * launch_overhead
        + attention_scores * score_time

where ``traffic`` is the activations the piece writes and reads back plus its weights,
``kernels`` the operator launches the piece makes in :mod:`evodiff_ray.denoiser`
(:data:`KERNEL_LAUNCHES`), and ``attention_scores`` is ``B * heads * N^2`` for attention pieces.
The terms add rather than take a maximum because a piece is several kernels in a row:
its convolutions are compute-bound, its norms and activations memory-bound. A full
sampling run is that sum plus the sampler's own update, times the sampler steps: the
same quantity the ``latency_ms`` objective measures (:mod:`evodiff_ray.metrics.latency`).
On this project's tiny images the launch term dominates on a GPU (8x8 images at batch
64 are dispatch-bound); on a CPU all four terms matter.

Memory follows ``memory_mb`` (:mod:`evodiff_ray.metrics.memory`): float32 weights plus
the peak live activations of a forward pass at the sampling batch
(:func:`evodiff_ray.cost.estimate`), plus the sampler's state tensors, plus a fixed
runtime overhead.

Both raw numbers are then corrected per device by a :class:`LogLogFit`
(``log measured = a + b log raw``), fitted on candidates measured on that device and
stored, as JSON, with the run. The fit is monotone, so it fixes scale and curvature
but never the *ranking*; the ranking is the roofline's own. For latency a
:class:`ComponentFit` (one non-negative weight per roofline term) is the alternative
that can re-rank, when there are enough clean measurements to fit it.

Device profiles: one per Apple chip (from :mod:`.chips`), and one for this machine's
CPU, either an estimate or measured by :func:`measure_cpu_profile`.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, asdict, dataclass, field, replace
from typing import Any, Sequence

from evodiff_ray.cost import BYTES_PER_FLOAT, estimate, layer_costs
from evodiff_ray.genome import Genome
from evodiff_ray.hardware.chips import ChipProfile, get_chip

MIB = 2**20
#: operator launches per piece of one forward pass (see denoiser/blocks.py and unet.py)
KERNEL_LAUNCHES: dict[str, int] = {
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
        score_ns: time per attention-score element (one image, one head, one query-key
            pair) beyond the FLOPs, nanoseconds. On the CPU this dominates attention:
            every image-head runs its own small strided GEMMs and softmax. On a GPU the
            scores stream through one batched kernel, close to the bandwidth bound.
        estimated: True when the numbers are estimates rather than measurements.
        source: where the numbers come from.
    """

    name: str
    peak_gflops: float
    bandwidth_gbs: float
    launch_overhead_us: float
    runtime_overhead_mb: float = 0.0
    score_ns: float = 0.0
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
        # write, softmax read/write, read for AV: ~4 passes of 4 bytes at the bandwidth bound
        score_ns=16.0 / c.bandwidth_for(gpu_cores),
        estimated=True,
        source=f"chips.{c.name} (peak, bandwidth); launch and runtime overheads estimated",
    )


def cpu_device_profile(threads: int = 1) -> DeviceProfile:
    """An *estimated* profile of one x86-64/ARM server core times ``threads``.

    About 40 GFLOP/s attainable per core for small fp32 convolutions (AVX2 FMA peak is
    ~100 at 3 GHz; small 8x8 convs reach a fraction), ~5 GB/s for elementwise work with
    transcendentals (SiLU, softmax), ~30 us per small operator (eager dispatch plus
    oneDNN setup) and ~20 ns per attention score. Prefer :func:`measure_cpu_profile`.
    """
    t = max(1, int(threads))
    return DeviceProfile("cpu", 40.0 * t, 5.0 * t, 30.0, 0.0, 20.0 / t, True,
                         "estimate: typical server core, PyTorch eager dispatch")


def measure_cpu_profile(threads: int = 1, repeats: int = 5) -> DeviceProfile:
    """Measure this machine's CPU roofline with three microbenchmarks (about a second).

    The shapes are this project's: a batch of 64 feature maps of 8x8 pixels with 32
    channels. Peak: a 3x3 convolution on it (what the denoiser's FLOPs run through).
    Bandwidth: SiLU on it, read plus write (elementwise work on cache-resident
    activations is bound by this, not by DRAM). Launch overhead: a 3x3 convolution on
    a 1x8x2x2 tensor (PyTorch eager dispatch plus oneDNN setup). Each is the best of
    ``repeats`` runs under ``torch.set_num_threads(threads)``.
    """
    import time

    import torch
    from torch import nn

    from evodiff_ray.denoiser.blocks import AttentionBlock

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

        with torch.no_grad():
            x = torch.randn(64, 32, 8, 8)                       # (B, C, H, W)
            conv = nn.Conv2d(32, 32, 3, padding=1)
            t_conv = best(lambda: conv(x), 10)
            t_silu = best(lambda: nn.functional.silu(x), 100)
            tiny_conv = nn.Conv2d(8, 8, 3, padding=1)
            tiny = torch.randn(1, 8, 2, 2)
            t_op = best(lambda: tiny_conv(tiny), 500)
            attn = AttentionBlock(16, 4, 4).eval()           # the denoiser's own block
            xa = torch.randn(64, 16, 8, 8)
            t_attn = best(lambda: attn(xa, None), 3)
    finally:
        torch.set_num_threads(old)
    peak = 2 * x.numel() * 32 * 9 / t_conv
    scores = 64 * 4 * 64 * 64                                # B * heads * N^2
    attn_flops = 2 * 64 * 64 * 16 * (3 * 16 + 16) + 4 * scores * 4
    return DeviceProfile(
        name="cpu",
        peak_gflops=peak / 1e9,
        bandwidth_gbs=2 * x.numel() * 4 / t_silu / 1e9,
        launch_overhead_us=t_op * 1e6,
        runtime_overhead_mb=0.0,
        score_ns=max(0.0, t_attn - attn_flops / peak - 6 * t_op) / scores * 1e9,
        estimated=False,
        source=f"measured on this machine: 3x3 conv, SiLU, tiny-conv and attention-block microbenchmarks, "
               f"{threads} thread(s)",
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
        return KERNEL_LAUNCHES[kind]
    return KERNEL_LAUNCHES[name.rstrip("0123456789")]


#: the terms of a latency prediction, each in seconds per forward pass
COMPONENTS = ("compute", "memory", "launch", "scores")


def layer_components(genome: Genome, profile: DeviceProfile, *, batch: int, resolution: int = 8,
                     in_channels: int = 1) -> list[tuple[str, dict[str, float]]]:
    """Per piece of one forward pass, its roofline terms in seconds (see :data:`COMPONENTS`).

    ``compute`` is FLOPs at the peak; ``memory`` the piece's traffic (activations written
    and read back, weights read) at the bandwidth; ``launch`` its operator launches; and
    ``scores`` its attention scores (``B * heads * N^2``) at ``score_ns``. A piece's time
    is their sum: its big kernels are compute-bound and its elementwise ones memory-bound,
    and they run one after the other.
    """
    peak = profile.peak_gflops * 1e9
    bw = profile.bandwidth_gbs * 1e9
    launch = profile.launch_overhead_us * 1e-6
    out = []
    for c in layer_costs(genome, resolution=resolution, batch=batch, in_channels=in_channels):
        scores = 0.0
        if c.kind == "attention":
            hw = (resolution >> c.level) ** 2
            scores = batch * genome.layers[c.index]["heads"] * hw * hw * profile.score_ns * 1e-9
        out.append((c.name, {
            "compute": c.flops / peak,
            "memory": (2 * c.bytes + BYTES_PER_FLOAT * c.params) / bw,
            "launch": _kernels(c.name, c.kind) * launch,
            "scores": scores,
        }))
    return out


def layer_times(genome: Genome, profile: DeviceProfile, *, batch: int, resolution: int = 8,
                in_channels: int = 1) -> list[tuple[str, float]]:
    """Roofline seconds of each piece for one forward pass, in execution order (cost analysis)."""
    return [(name, sum(parts.values()))
            for name, parts in layer_components(genome, profile, batch=batch, resolution=resolution,
                                                in_channels=in_channels)]


def sampler_steps(genome: Genome) -> int:
    """Network evaluations of one sampling run (distinct DDIM timesteps)."""
    return max(1, min(int(genome.parameters["sampler_steps"]), SCHEDULE_STEPS))


def sampling_components(genome: Genome, profile: DeviceProfile, *, batch: int, resolution: int = 8,
                        in_channels: int = 1) -> dict[str, float]:
    """The :data:`COMPONENTS` of a full sampling run (all steps, the sampler's update included), seconds."""
    total = dict.fromkeys(COMPONENTS, 0.0)
    for _, parts in layer_components(genome, profile, batch=batch, resolution=resolution, in_channels=in_channels):
        for k, v in parts.items():
            total[k] += v
    image = BYTES_PER_FLOAT * batch * in_channels * resolution**2
    launch = profile.launch_overhead_us * 1e-6
    total["launch"] += (len(genome.connections) + SAMPLER_KERNELS) * launch
    total["memory"] += SAMPLER_KERNELS * 3 * image / (profile.bandwidth_gbs * 1e9)
    steps = sampler_steps(genome)
    return {k: v * steps for k, v in total.items()}


@dataclass(frozen=True)
class ComponentFit:
    """Per-device weights of the latency terms: ``latency = sum_i w_i * component_i``.

    The roofline's parameters come from spec sheets or microbenchmarks; how far real
    kernels fall short of them differs by term and device (small convolutions reach a
    fraction of peak; dispatch costs more inside a network than in a loop). The
    weights are fitted by non-negative least squares on *relative* error over measured
    candidates, so a weight never goes negative and small models count as much as big
    ones. Identity weights mean the pure roofline.

    Attributes:
        weights: one per :data:`COMPONENTS`, in that order.
        n: candidates it was fitted on (0: identity).
        rmse_log: root mean square of ``log(predicted / measured)`` on those candidates.
    """

    weights: tuple[float, ...] = (1.0,) * len(COMPONENTS)
    n: int = 0
    rmse_log: float = 0.0

    def __call__(self, components: dict[str, float]) -> float:
        return sum(w * components[k] for w, k in zip(self.weights, COMPONENTS))

    @classmethod
    def fit(cls, components: Sequence[dict[str, float]], measured: Sequence[float]) -> "ComponentFit":
        """Fit the weights (same units as ``measured``). Terms that never occur keep weight 1.

        Raises:
            ValueError: no usable measurement, or lengths that differ.
        """
        import numpy as np
        from scipy.optimize import nnls  # scipy comes with scikit-learn, a dependency

        if len(components) != len(measured):
            raise ValueError("components and measured must have the same length")
        rows = [(c, y) for c, y in zip(components, measured) if y > 0 and math.isfinite(y)]
        if not rows:
            raise ValueError("need at least one positive, finite measurement")
        used = [k for k in COMPONENTS if any(c[k] > 0 for c, _ in rows)]
        A = np.array([[c[k] / y for k in used] for c, y in rows])
        w_used, _ = nnls(A, np.ones(len(rows)))
        by_name = dict(zip(used, w_used))
        weights = tuple(float(by_name.get(k, 1.0)) for k in COMPONENTS)
        fitted = cls(weights, len(rows))
        resid = [math.log(max(fitted(c), 1e-12) / y) for c, y in rows]
        return cls(weights, len(rows), math.sqrt(sum(r * r for r in resid) / len(rows)))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "components", "weights": dict(zip(COMPONENTS, self.weights)), "n": self.n,
                "rmse_log": self.rmse_log}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ComponentFit":
        w = d.get("weights", {})
        return cls(tuple(float(w.get(k, 1.0)) for k in COMPONENTS), int(d.get("n", 0)), float(d.get("rmse_log", 0.0)))


@dataclass(frozen=True)
class Predictor:
    """Predicts ``latency_ms`` and ``memory_mb`` of a genome on one device.

    Attributes:
        profile: the device's roofline parameters.
        batch: images per sampling run (the evaluator's ``latency_batch``).
        resolution: image side in pixels.
        in_channels: image channels.
        latency_fit: correction of the roofline latency on this device: a
            :class:`LogLogFit` of the terms' sum (the default; keeps the roofline's
            ranking) or a :class:`ComponentFit` of per-term weights (can re-rank; needs
            clean measurements, several per weight).
        memory_fit: correction of the raw memory, fitted on this device.
    """

    profile: DeviceProfile
    _: KW_ONLY                      # batch and resolution are both ints: name them
    batch: int = 64
    resolution: int = 8
    in_channels: int = 1
    latency_fit: LogLogFit | ComponentFit = field(default_factory=LogLogFit)
    memory_fit: LogLogFit = field(default_factory=LogLogFit)

    # -- raw model -----------------------------------------------------------------
    def components_ms(self, genome: Genome) -> dict[str, float]:
        """The latency terms of a full sampling run, milliseconds."""
        parts = sampling_components(genome, self.profile, batch=self.batch, resolution=self.resolution,
                                    in_channels=self.in_channels)
        return {k: 1e3 * v for k, v in parts.items()}

    def roofline_ms(self, genome: Genome) -> float:
        """Uncorrected latency of a full sampling run (the terms' plain sum), milliseconds."""
        return sum(self.components_ms(genome).values())

    def raw_memory_mb(self, genome: Genome) -> float:
        """Uncorrected peak memory of a sampling run: weights + activations + sampler state + runtime."""
        c = estimate(genome, resolution=self.resolution, batch=self.batch, in_channels=self.in_channels)
        image = BYTES_PER_FLOAT * self.batch * self.in_channels * self.resolution**2
        total = BYTES_PER_FLOAT * c.params + c.peak_activation_bytes + SAMPLER_TENSORS * image
        return total / MIB + self.profile.runtime_overhead_mb

    # -- corrected -----------------------------------------------------------------
    def latency_ms(self, genome: Genome) -> float:
        """Predicted ``latency_ms`` on this device."""
        if isinstance(self.latency_fit, ComponentFit):
            return self.latency_fit(self.components_ms(genome))
        return self.latency_fit(self.roofline_ms(genome))

    def memory_mb(self, genome: Genome) -> float:
        """Predicted ``memory_mb`` on this device."""
        return self.memory_fit(self.raw_memory_mb(genome))

    def predict(self, genome: Genome) -> dict[str, float]:
        """``{"latency_ms": ..., "memory_mb": ...}``."""
        return {"latency_ms": self.latency_ms(genome), "memory_mb": self.memory_mb(genome)}

    def calibrated(self, genomes: Sequence[Genome], latency_ms: Sequence[float] | None = None,
                   memory_mb: Sequence[float] | None = None, latency_fit: str = "loglog") -> "Predictor":
        """A copy whose corrections are fitted on candidates measured on this device.

        Args:
            genomes: the measured candidates.
            latency_ms: their measured latency (None: keep the current fit).
            memory_mb: their measured memory (None: keep the current fit).
            latency_fit: ``"loglog"`` or ``"components"`` (see the class attributes).
        """
        new = self
        if latency_ms is not None:
            if latency_fit == "components":
                fit = ComponentFit.fit([self.components_ms(g) for g in genomes], latency_ms)
            elif latency_fit == "loglog":
                fit = LogLogFit.fit([self.roofline_ms(g) for g in genomes], latency_ms)
            else:
                raise ValueError(f"latency_fit must be 'loglog' or 'components', not {latency_fit!r}")
            new = replace(new, latency_fit=fit)
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
        return cls(DeviceProfile.from_dict(d["profile"]), batch=int(d["batch"]), resolution=int(d["resolution"]),
                   in_channels=int(d["in_channels"]), latency_fit=_latency_fit_from_dict(d["latency_fit"]),
                   memory_fit=LogLogFit.from_dict(d["memory_fit"]))


def _latency_fit_from_dict(d: dict[str, Any]) -> LogLogFit | ComponentFit:
    return ComponentFit.from_dict(d) if d.get("kind") == "components" else LogLogFit.from_dict(d)


def predictor_for(device: str, *, batch: int = 64, resolution: int = 8, in_channels: int = 1,
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
    p = Predictor(profile, batch=batch, resolution=resolution, in_channels=in_channels)
    if calibration:
        p = replace(p, latency_fit=_latency_fit_from_dict(calibration.get("latency_fit", LogLogFit().to_dict())),
                    memory_fit=LogLogFit.from_dict(calibration.get("memory_fit", LogLogFit().to_dict())))
    return p
