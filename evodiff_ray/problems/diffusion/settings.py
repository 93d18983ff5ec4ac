"""The diffusion problem's evaluation settings: every option that changes a measured number.

:class:`DiffusionSettings` is one frozen object. :class:`~.problem.DiffusionProblem`
builds it from its options and hands it whole to the
:class:`~.bench.DiffusionBench` that trains and measures; its :meth:`~DiffusionSettings.key_dict`
is the only source of the fitness cache's key. The defaults below are the only place
they are stated: the problem's signature refers to them.

Some of what the key must name is not an option but a fact of the machine and the data:
the dataset's digest, the device class an ``auto`` device resolves to, the processor
model (CPU model, GPU name, or the Apple chip) and the torch thread count.
:meth:`~DiffusionSettings.resolved` fills those in; only a resolved object has a key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from evodiff_ray.core.errors import UsageError
from evodiff_ray.diffusion.fidelity import Fidelity, get_fidelity

#: the objectives every diffusion candidate gets, all minimised, in pymoo's F column order
OBJECTIVES = ("quality_fd", "latency_ms", "memory_mb")
TARGET_MODES = ("measure", "predict")


@dataclass(frozen=True)
class DiffusionSettings:
    """How a diffusion candidate is trained and measured (see the module docstring).

    Args:
        fidelity: training budget: a name (``smoke``, ``quick``, ``standard``, ``full``)
            or a :class:`~evodiff_ray.diffusion.fidelity.Fidelity`; held as the latter.
        dataset: ``"digits"``, an image folder or an ``.npz`` path.
        resolution: resize user images to this side (None: keep theirs).
        seed: evaluation seed: model init, data order, training and sampling noise all
            derive from it (the same for every candidate: common random numbers).
        fd_samples: generated and held-out samples for ``quality_fd`` (None: the whole
            held-out split, capped at 2,000).
        latency_batch: images per sampling run for ``latency_ms`` and ``memory_mb``.
        latency_repeats: timed sampling runs (after one warm-up run); the median is reported.
        time_limit_s: per-candidate wall-time limit (None: none). A candidate over it is
            infeasible, so the limit decides some results and joins the key.
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.
        threads: torch threads of the evaluating process (None: torch's default). On Ray
            the search sets it from ``actor.num_cpus``, as the pool does for the actor.
        target: hardware target (``m2-max``, ``apple_silicon``, ``any``), held canonical.
        target_mode: ``"measure"`` on the target's nodes, or ``"predict"`` for a chip no
            node has (None: ``"measure"``).
        memory_fraction: usable share of the chip's unified memory (None: see ``hardware/budget.py``).
        memory_gb: which memory configuration of the chip (None: its smallest).
        predictor_calibration: fitted correction of the chip's predictor (JSON data), or None.
        space: the resolved search space as JSON data (``SearchSpace.to_dict()``); its
            limits are constraint values.
        rungs: multi-fidelity: each training rung's budget as a multiple of the fidelity's
            steps, increasing (e.g. ``(0.25, 1, 4)``); candidates are then trained on a
            warmup-stable-decay schedule and continued rung by rung from stored weights
            (:mod:`evodiff_ray.diffusion.wsd`). None: one training run at the fidelity.
        dataset_digest: filled by :meth:`resolved`: sha256 of the loaded data.
        device_class: filled by :meth:`resolved`: ``cpu``, ``cuda`` or ``mps``.
        processor: filled by :meth:`resolved`: the CPU model, GPU name or Apple chip.
    """

    fidelity: Fidelity | str = "quick"
    dataset: str = "digits"
    resolution: int | None = None
    seed: int = 0
    fd_samples: int | None = None
    latency_batch: int = 16
    latency_repeats: int = 5
    time_limit_s: float | None = 600.0
    device: str | None = None
    threads: int | None = None
    target: str | None = None
    target_mode: str | None = "measure"
    memory_fraction: float | None = None
    memory_gb: int | None = None
    predictor_calibration: dict[str, Any] | None = None
    space: dict[str, Any] | None = None
    rungs: tuple[float, ...] | None = None
    dataset_digest: str | None = None
    device_class: str | None = None
    processor: str | None = None

    def __post_init__(self):
        set_ = object.__setattr__  # normalising a frozen dataclass's own fields
        set_(self, "fidelity", get_fidelity(self.fidelity))
        for label, v in (("seed", self.seed), ("latency_batch", self.latency_batch),
                         ("latency_repeats", self.latency_repeats)):
            if isinstance(v, bool) or not isinstance(v, int) or (label != "seed" and v < 1):
                kind = "an integer" if label == "seed" else "a positive integer"
                raise UsageError(f"diffusion: {label} must be {kind}, got {v!r}")
        v = self.threads
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise UsageError(f"diffusion: threads must be a positive integer or null, got {v!r}")
        t = self.time_limit_s
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0):
            raise UsageError(f"diffusion: time_limit_s must be a positive number or null, got {t!r}")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise UsageError(f"diffusion: dataset must be 'digits' or a path, got {self.dataset!r}")
        if self.rungs is not None:
            set_(self, "rungs", check_rungs(self.rungs))
        if self.target_mode is None:
            set_(self, "target_mode", "measure")
        if self.target_mode not in TARGET_MODES:
            raise UsageError(f"diffusion: target_mode must be 'measure' or 'predict', got {self.target_mode!r}")
        if self.target is not None:
            from evodiff_ray.hardware.targets import parse_target

            set_(self, "target", parse_target(self.target).name)
        if self.target_mode == "predict" and self.chip is None:
            raise UsageError("diffusion: predicting needs a chip target (e.g. target = 'm2-max')")

    @property
    def chip(self) -> str | None:
        """The target's chip profile name, or None when the target is not one chip."""
        if self.target is None:
            return None
        from evodiff_ray.hardware.targets import parse_target

        t = parse_target(self.target)
        return t.chip if t.kind == "chip" else None

    @property
    def predicting(self) -> bool:
        """True when latency and memory are predicted for a chip rather than measured."""
        return self.chip is not None and self.target_mode == "predict"

    def resolved(self, dataset_digest: str | None = None) -> "DiffusionSettings":
        """A copy with the machine's and the data's facts filled in (see the module docstring).

        They are read in this process. On Ray the search then takes the device class and
        processor the measuring actors report (:meth:`DiffusionProblem.adopt_worker_facts`).

        Args:
            dataset_digest: the digest when the caller has the dataset loaded already
                (None: load it to compute it).
        """
        import torch

        from evodiff_ray.hardware.detect import processor_name
        from evodiff_ray.hardware.device import select_device

        if dataset_digest is None and self.dataset_digest is None:
            from evodiff_ray.data import load_dataset

            dataset_digest = load_dataset(self.dataset, resolution=self.resolution).digest
        dev = select_device(self.device or "auto")
        return dataclasses.replace(
            self, dataset_digest=dataset_digest or self.dataset_digest, device_class=dev.type,
            processor=processor_name(dev), threads=self.threads or torch.get_num_threads(),
        )

    def key_dict(self) -> dict[str, Any]:
        """Everything above as JSON data, for the cache key; options that cannot matter
        (a memory fraction without a chip target, a calibration while measuring) are None.

        Raises:
            ValueError: the settings are not :meth:`resolved`.
        """
        if self.dataset_digest is None or self.device_class is None:
            raise ValueError("DiffusionSettings.key_dict() needs resolved settings; call resolved() first")
        from evodiff_ray.diffusion.schedule import linear_schedule

        chip = self.chip
        return {
            "problem": "diffusion",
            "fidelity": self.fidelity.to_dict(),
            "dataset": self.dataset_digest,          # covers the resolution: resizing is in the digest
            "schedule": linear_schedule().describe(),
            "seed": self.seed,
            "fd_samples": self.fd_samples,
            "latency_batch": self.latency_batch,
            "latency_repeats": self.latency_repeats,
            "time_limit_s": self.time_limit_s,
            "device_class": self.device_class,
            "processor": self.processor,
            "threads": self.threads,
            "target": self.target,
            "target_mode": self.target_mode if chip else None,
            "memory_fraction": self.memory_fraction if chip else None,
            "memory_gb": self.memory_gb if chip else None,
            "predictor_calibration": self.predictor_calibration if self.predicting else None,
            "space": self.space,
            "rungs": None if self.rungs is None else list(self.rungs),
        }

    @property
    def rung_recipe(self):
        """The :class:`~evodiff_ray.diffusion.wsd.Rungs` of a multi-fidelity search, or None."""
        if self.rungs is None:
            return None
        from evodiff_ray.diffusion.wsd import Rungs

        return Rungs(self.fidelity, factors=self.rungs)

    def for_rung(self, rung: int) -> "RungSettings":
        """The part of the settings a multi-fidelity step depends on (see :class:`RungSettings`)."""
        return RungSettings(self, "device" if rung < 0 else "quality")


#: what a probe of latency and memory depends on: the hardware and how it is measured
DEVICE_PART = ("problem", "dataset", "schedule", "seed", "latency_batch", "latency_repeats", "time_limit_s",
               "device_class", "processor", "threads", "target", "target_mode", "memory_fraction", "memory_gb",
               "predictor_calibration", "space")
#: what training and quality depend on: never the hardware that trains
QUALITY_PART = ("problem", "fidelity", "rungs", "dataset", "schedule", "seed", "fd_samples", "time_limit_s", "space")


@dataclass(frozen=True)
class RungSettings:
    """One part of :class:`DiffusionSettings` for multi-fidelity cache keys.

    Quality (training, FD) does not depend on the device that trains, while latency and
    memory do; so a probe (``device``) and a trained rung (``quality``) are cached under
    keys that name only what they depend on. A search for a second chip, or on another
    node class, reuses every trained rung and only probes again.
    """

    settings: DiffusionSettings
    part: str

    @property
    def dataset_digest(self) -> str | None:
        return self.settings.dataset_digest

    def key_dict(self) -> dict[str, Any]:
        full = self.settings.key_dict()
        names = DEVICE_PART if self.part == "device" else QUALITY_PART
        return {"part": self.part, **{n: full[n] for n in names}}


def check_rungs(rungs: Any) -> tuple[float, ...]:
    """Rung factors as a tuple of positive, increasing numbers.

    Raises:
        UsageError: naming the problem and an example that works.
    """
    if isinstance(rungs, str):
        rungs = [r for r in rungs.replace(" ", "").split(",") if r]
    try:
        values = tuple(float(r) for r in rungs)
    except (TypeError, ValueError):
        raise UsageError(f"rungs must be numbers such as 0.25,1,4 (multiples of the fidelity's steps), got {rungs!r}") from None
    if not values or any(not v > 0 or v == float("inf") for v in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise UsageError(f"rungs must be positive and increasing, e.g. 0.25,1,4; got {list(values)}")
    return values
