"""Local-device detection, with the probes replaced: a Mac, a Linux box, and this machine."""

import subprocess
import types

from evodiff_ray.hardware.detect import detect_local, parse_cpuinfo, parse_gpu_cores, parse_meminfo


def fake_run(outputs):
    def run(cmd, **kw):
        key = " ".join(cmd)
        if key not in outputs:
            raise FileNotFoundError(cmd[0])
        return subprocess.CompletedProcess(cmd, 0, stdout=outputs[key], stderr="")
    return run


def fake_torch(mps: bool, recommended: int = 0):
    mps_backend = types.SimpleNamespace(is_built=lambda: mps, is_available=lambda: mps)
    return types.SimpleNamespace(
        __version__="2.13.0", backends=types.SimpleNamespace(mps=mps_backend),
        mps=types.SimpleNamespace(recommended_max_memory=lambda: recommended),
        cuda=types.SimpleNamespace(is_available=lambda: False),
    )


def test_mac_with_mps():
    run = fake_run({"sysctl -n machdep.cpu.brand_string": "Apple M2 Max\n", "sysctl -n hw.memsize": "34359738368\n",
                    "system_profiler SPDisplaysDataType": "Chipset Model: Apple M2 Max\n  Total Number of Cores: 38\n"})
    d = detect_local(system="Darwin", machine="arm64", run=run, torch_module=fake_torch(True, 22 * 2**30))
    assert d.is_apple_silicon and d.chip == "m2-max" and d.cpu_model == "Apple M2 Max"
    assert d.memory_bytes == 32 * 2**30 and d.gpu_cores == 38
    assert d.mps_available and d.recommended_max_memory_bytes == 22 * 2**30 and d.device == "mps"


def test_linux_box():
    files = {"/proc/cpuinfo": "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n", "/proc/meminfo": "MemTotal: 1024 kB\n"}
    d = detect_local(system="Linux", machine="x86_64", run=fake_run({}), read_text=files.get,
                     torch_module=fake_torch(False))
    assert d.cpu_model == "AMD EPYC 7B13" and d.memory_bytes == 1024 * 1024
    assert d.chip is None and not d.mps_available and d.device == "cpu"


def test_parsers_and_this_machine():
    assert parse_cpuinfo("Hardware\t: BCM2835\n") == "BCM2835"
    assert parse_cpuinfo(None) is None and parse_meminfo("") is None
    assert parse_gpu_cores("Total Number of Cores: 10") == 10
    d = detect_local()
    assert d.cpu_count >= 1 and d.torch and d.to_dict()["device"] in ("cpu", "cuda", "mps")
