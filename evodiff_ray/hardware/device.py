"""Device helpers for timed runs: pick the device, synchronise it, refuse the MPS CPU fallback.

MPS (and CUDA) run asynchronously: a timer read without :func:`synchronize` measures
only how long it took to *queue* the kernels. On MPS, ``torch.mps.synchronize()``
waits for the command buffers to finish.

``PYTORCH_ENABLE_MPS_FALLBACK=1`` makes PyTorch run an operator MPS lacks on the CPU
instead of raising. For a *timed* candidate that is wrong twice over: the latency is
partly CPU time labelled MPS, and the copies to and from the CPU distort memory. So
timed evaluations call :func:`assert_no_mps_fallback` first, and an unsupported op
surfaces as ``NotImplementedError``, which :func:`unsupported_op_reason` turns into the
infeasible candidate's reason. PyTorch reads the variable when it initialises the MPS
backend, so it must be unset in the evaluator's process environment (the Ray worker's
``runtime_env``), not just before a run.
"""

from __future__ import annotations

import os
from typing import Mapping

from evodiff_ray.core.errors import UsageError

#: the environment variable that turns on PyTorch's silent CPU fallback for MPS
MPS_FALLBACK_ENV = "PYTORCH_ENABLE_MPS_FALLBACK"
DEVICE_CHOICES = ("auto", "mps", "cuda", "cpu")


class MpsFallbackEnabled(UsageError):
    """``PYTORCH_ENABLE_MPS_FALLBACK=1`` is set for a timed MPS run."""


def select_device(prefer: str = "auto", *, strict: bool = True):
    """The torch device to evaluate on.

    Args:
        prefer: ``"auto"`` (MPS on Apple Silicon, else CUDA, else CPU), ``"mps"``,
            ``"cuda"``, ``"cuda:N"`` or ``"cpu"``.
        strict: when the preferred accelerator is missing, raise (True) or fall back
            to the CPU (False).

    Returns:
        A ``torch.device``.

    Raises:
        UsageError: an unknown name, or (strict) a device this machine lacks.
    """
    import torch

    name = (prefer or "auto").strip().lower()
    kind = name.split(":", 1)[0]
    if kind not in DEVICE_CHOICES:
        raise UsageError(f"unknown device {prefer!r}; use one of auto, mps, cuda, cuda:N, cpu")
    if kind == "auto":
        if mps_available():
            return torch.device("mps")
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    have = {"mps": mps_available, "cuda": torch.cuda.is_available, "cpu": lambda: True}[kind]()
    if have:
        return torch.device(name)
    if strict:
        why = ("needs macOS 12.3+ on Apple Silicon and a torch build with MPS" if kind == "mps"
               else "no CUDA device or CUDA build here")
        raise UsageError(f"device {prefer!r} is not available ({why}); use --device auto or cpu")
    return torch.device("cpu")


def mps_available() -> bool:
    """True when this torch build has MPS and the OS exposes a Metal device."""
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def synchronize(device) -> None:
    """Block until queued work on ``device`` is done (CUDA, MPS); a no-op on the CPU.

    Args:
        device: a ``torch.device`` or its name.
    """
    import torch

    dev = torch.device(device)
    if dev.type == "mps":
        torch.mps.synchronize()
    elif dev.type == "cuda":
        torch.cuda.synchronize(dev)


def mps_fallback_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``PYTORCH_ENABLE_MPS_FALLBACK`` is set to a true value (PyTorch checks ``"1"``)."""
    env = os.environ if environ is None else environ
    return env.get(MPS_FALLBACK_ENV, "").strip() not in ("", "0")


def assert_no_mps_fallback(device=None, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a timed run while the MPS CPU fallback is on.

    Call it before timing on MPS. On other devices the variable is harmless and this
    returns quietly.

    Args:
        device: the device that will be timed (None: check regardless of device).
        environ: the environment to check (None: ``os.environ``).

    Raises:
        MpsFallbackEnabled: the variable is set and the device is MPS (or unspecified).
    """
    if device is not None:
        import torch

        if torch.device(device).type != "mps":
            return
    if mps_fallback_enabled(environ):
        raise MpsFallbackEnabled(
            f"{MPS_FALLBACK_ENV} is set: ops MPS lacks would silently run on the CPU and be timed as MPS; "
            f"unset it (and drop it from the Ray runtime_env) for timed evaluations"
        )


def unsupported_op_reason(error: BaseException, device=None) -> str | None:
    """The infeasibility reason for an op the device lacks, or None if ``error`` is something else.

    PyTorch raises ``NotImplementedError`` ("The operator '...' is not currently
    implemented for the MPS device") when the fallback is off.
    """
    if not isinstance(error, NotImplementedError):
        return None
    msg = str(error).splitlines()[0][:300] if str(error) else "operator not implemented"
    where = "mps"
    if device is not None:
        import torch

        where = torch.device(device).type
    return f"unsupported on {where}: {msg}"
