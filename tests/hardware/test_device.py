"""select_device, synchronize, and the MPS fallback guard."""

import pytest
import torch

from evodiff_ray.core.errors import UsageError
from evodiff_ray.hardware.device import (MpsFallbackEnabled, assert_no_mps_fallback, mps_fallback_enabled,
                                         select_device, synchronize, unsupported_op_reason)


def test_select_device_here():
    """What ``auto`` and each explicit name give on this machine, from what torch reports."""
    mps = torch.backends.mps.is_available()
    cuda = torch.cuda.is_available()
    expected = "mps" if mps else "cuda" if cuda else "cpu"   # MPS first, then CUDA, then the CPU
    assert select_device("auto") == torch.device(expected)
    assert select_device(None) == torch.device(expected) and select_device(" AUTO ") == torch.device(expected)
    assert select_device("cpu") == torch.device("cpu")
    for name, have in (("mps", mps), ("cuda", cuda), ("cuda:0", cuda)):
        if have:
            assert select_device(name) == torch.device(name)
            assert select_device(name, strict=False) == torch.device(name)
        else:
            with pytest.raises(UsageError, match=rf"device '{name}' is not available .*use --device auto or cpu"):
                select_device(name)
            assert select_device(name, strict=False) == torch.device("cpu")   # the fallback, not an error
    for bad in ("tpu", "gpu", "metal:0"):
        with pytest.raises(UsageError, match="use one of auto, mps, cuda, cuda:N, cpu"):
            select_device(bad)
    synchronize("cpu")  # a no-op, must not raise
    synchronize(select_device("auto"))  # waits on whatever auto picked


def test_fallback_guard():
    assert not mps_fallback_enabled({})
    assert not mps_fallback_enabled({"PYTORCH_ENABLE_MPS_FALLBACK": "0"})
    assert mps_fallback_enabled({"PYTORCH_ENABLE_MPS_FALLBACK": "1"})
    with pytest.raises(MpsFallbackEnabled, match="unset it"):
        assert_no_mps_fallback("mps", {"PYTORCH_ENABLE_MPS_FALLBACK": "1"})
    with pytest.raises(MpsFallbackEnabled):
        assert_no_mps_fallback(None, {"PYTORCH_ENABLE_MPS_FALLBACK": "1"})
    assert_no_mps_fallback("cpu", {"PYTORCH_ENABLE_MPS_FALLBACK": "1"})  # harmless off MPS
    assert_no_mps_fallback("mps", {})


def test_unsupported_op_reason():
    e = NotImplementedError("The operator 'aten::foo' is not currently implemented for the MPS device.")
    assert unsupported_op_reason(e) == "unsupported on mps: " + str(e)
    assert unsupported_op_reason(ValueError("x")) is None
