"""Shared fixtures. One Ray runtime serves every test marked ``ray`` (starting one takes ~6 s)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the console script of this venv (subprocess tests run the real entry point)
EVODIFF_RAY = str(Path(sys.executable).with_name("evodiff-ray"))


@pytest.fixture(scope="session")
def ray_runtime():
    """A local 2-CPU Ray runtime shared by the whole session (shut down at the end)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    """A fresh directory for run dirs."""
    d = tmp_path / "evodiff-runs"
    d.mkdir()
    return d


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for CLI subprocesses: this interpreter's venv first on PATH, no Ray cluster address."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def free_port():
    """A function returning a TCP port that was free a moment ago on 127.0.0.1."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free port with AOF in a temp dir (stopped at the end)."""
    from evodiff_ray.cache.local_redis import LocalRedis

    server = LocalRedis(tmp_path / "redis").start(reuse=False)
    yield server
    server.stop(force=True)
    server.kill()


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a shared 2-core box, two spinning threads per process thrash."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
