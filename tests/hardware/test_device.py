"""select_device, synchronize, and the MPS fallback guard."""

import pytest
import torch

from evodiff_ray.core.errors import UsageError
from evodiff_ray.hardware.device import (MpsFallbackEnabled, assert_no_mps_fallback, mps_fallback_enabled,
                                         select_device, synchronize, unsupported_op_reason)


def test_select_device_here():
    dev = select_device("auto")
    assert dev.type in ("cpu", "cuda", "mps")
    assert select_device("cpu").type == "cpu"
    with pytest.raises(UsageError, match="use one of"):
        select_device("tpu")
    if not torch.backends.mps.is_available():
        with pytest.raises(UsageError, match="not available"):
            select_device("mps")
        assert select_device("mps", strict=False).type == "cpu"
    synchronize("cpu")  # a no-op, must not raise


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
