"""Detect the local device: Apple chip and MPS, CUDA devices, CPU model.

:func:`detect_local` gathers facts through small probes that tests replace
(``system``, ``run`` for ``sysctl``, ``read_text`` for ``/proc``). The parsing
helpers are pure. On a Mac (``Darwin``/``arm64``) it reads the chip name from
``sysctl -n machdep.cpu.brand_string`` (``"Apple M2 Max"``), the RAM from
``sysctl -n hw.memsize``, and, when MPS is available, Metal's recommended working
set from ``torch.mps.recommended_max_memory()`` (the memory the GPU may use before
macOS starts to refuse or page; the memory budget prefers it over a fixed fraction).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from evodiff_ray.hardware.chips import chip_from_brand


@dataclass
class LocalDevice:
    """What this machine offers for evaluation.

    Attributes:
        hostname: the node's name.
        system: ``platform.system()`` (``"Darwin"``, ``"Linux"``).
        machine: ``platform.machine()`` (``"arm64"``, ``"x86_64"``).
        cpu_model: CPU brand string (on Apple Silicon, the chip: ``"Apple M2 Max"``).
        cpu_count: logical CPUs.
        memory_bytes: physical RAM (unified memory on Apple Silicon), or None.
        chip: the :mod:`~evodiff_ray.hardware.chips` profile name, or None.
        gpu_cores: Apple GPU cores (from ``system_profiler``), or None when unknown.
        mps_built: torch was built with MPS.
        mps_available: MPS can run here now.
        recommended_max_memory_bytes: Metal's recommended working set, or None.
        cuda_devices: names of the CUDA devices.
        torch: torch version, or None when torch is missing.
        device: the device :func:`~evodiff_ray.hardware.device.select_device` picks.
    """

    hostname: str
    system: str
    machine: str
    cpu_model: str | None
    cpu_count: int
    memory_bytes: int | None = None
    chip: str | None = None
    gpu_cores: int | None = None
    mps_built: bool = False
    mps_available: bool = False
    recommended_max_memory_bytes: int | None = None
    cuda_devices: list[str] = field(default_factory=list)
    torch: str | None = None
    device: str = "cpu"

    @property
    def is_apple_silicon(self) -> bool:
        return self.system == "Darwin" and self.machine == "arm64"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sysctl(run: Callable, key: str) -> str | None:
    try:
        out = run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or "").strip()
    return text if out.returncode == 0 and text else None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def parse_cpuinfo(text: str | None) -> str | None:
    """The CPU model from Linux ``/proc/cpuinfo`` (x86 ``model name``; ARM ``Model``/``Hardware``)."""
    if not text:
        return None
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            k, sep, v = line.partition(":")
            if sep and k.strip() == key and v.strip():
                return v.strip()
    return None


def parse_meminfo(text: str | None) -> int | None:
    """``MemTotal`` from Linux ``/proc/meminfo``, in bytes."""
    for line in (text or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def parse_gpu_cores(system_profiler_text: str | None) -> int | None:
    """``Total Number of Cores: 38`` from ``system_profiler SPDisplaysDataType``."""
    for line in (system_profiler_text or "").splitlines():
        k, sep, v = line.strip().partition(":")
        if sep and k.strip() == "Total Number of Cores" and v.strip().isdigit():
            return int(v.strip())
    return None


def detect_local(
    *,
    system: str | None = None,
    machine: str | None = None,
    run: Callable = subprocess.run,
    read_text: Callable[[str], str | None] = _read,
    torch_module: Any = None,
) -> LocalDevice:
    """Describe this machine. Never raises for a missing tool; unknown facts stay None.

    Args:
        system: override ``platform.system()`` (tests).
        machine: override ``platform.machine()`` (tests).
        run: ``subprocess.run`` stand-in for ``sysctl`` / ``system_profiler``.
        read_text: reads a file's text or returns None (``/proc/cpuinfo``, ``/proc/meminfo``).
        torch_module: the ``torch`` module (None: import it if installed).
    """
    system = system or platform.system()
    machine = machine or platform.machine()
    dev = LocalDevice(hostname=socket.gethostname(), system=system, machine=machine,
                      cpu_model=None, cpu_count=os.cpu_count() or 1)
    if system == "Darwin":
        dev.cpu_model = _sysctl(run, "machdep.cpu.brand_string")
        mem = _sysctl(run, "hw.memsize")
        dev.memory_bytes = int(mem) if mem and mem.isdigit() else None
        chip = chip_from_brand(dev.cpu_model or "")
        dev.chip = chip.name if chip else None
        if dev.chip:
            try:
                out = run(["system_profiler", "SPDisplaysDataType"], capture_output=True, text=True, timeout=20)
                dev.gpu_cores = parse_gpu_cores(out.stdout)
            except (OSError, subprocess.SubprocessError):
                pass
    else:
        dev.cpu_model = parse_cpuinfo(read_text("/proc/cpuinfo"))
        dev.memory_bytes = parse_meminfo(read_text("/proc/meminfo"))
    if dev.cpu_model is None:
        dev.cpu_model = platform.processor() or None
    _torch_facts(dev, torch_module)
    return dev


def _torch_facts(dev: LocalDevice, torch: Any) -> None:
    if torch is None:
        try:
            import torch  # noqa: F811 - the real module unless a test injected one
        except ImportError:
            return
    dev.torch = getattr(torch, "__version__", None)
    mps = getattr(torch.backends, "mps", None)
    dev.mps_built = bool(mps is not None and mps.is_built())
    dev.mps_available = bool(mps is not None and mps.is_available())
    if dev.mps_available:
        rec = getattr(torch.mps, "recommended_max_memory", None)  # torch >= 2.3
        try:
            dev.recommended_max_memory_bytes = int(rec()) if rec else None
        except RuntimeError:
            dev.recommended_max_memory_bytes = None
    try:
        if torch.cuda.is_available():
            dev.cuda_devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except RuntimeError:
        dev.cuda_devices = []
    dev.device = "mps" if dev.mps_available else ("cuda" if dev.cuda_devices else "cpu")


def processor_name(device: Any = "cpu") -> str | None:
    """The model of the processor that does a device's work: it joins the cache key and
    ``measured_on.chip``, since the same genome measures differently on another model.

    CUDA: the GPU's name. On a Mac (CPU or MPS): the chip's brand string
    (``"Apple M2 Max"``). Elsewhere: the CPU model from ``/proc/cpuinfo``, falling back
    to ``platform.processor()``/``platform.machine()``. Never raises; None when unknown.

    Args:
        device: a ``torch.device`` or its name.
    """
    kind = str(device).split(":", 1)[0]
    if kind == "cuda":
        try:
            import torch

            return torch.cuda.get_device_name(device)
        except (RuntimeError, AssertionError, ValueError):
            return None
    return _cpu_model(platform.system())


_CPU_MODELS: dict[str, str | None] = {}


def _cpu_model(system: str) -> str | None:
    # memoised: the brand string does not change while the process runs
    if system not in _CPU_MODELS:
        name = (_sysctl(subprocess.run, "machdep.cpu.brand_string") if system == "Darwin"
                else parse_cpuinfo(_read("/proc/cpuinfo")))
        _CPU_MODELS[system] = name or platform.processor() or platform.machine() or None
    return _CPU_MODELS[system]
