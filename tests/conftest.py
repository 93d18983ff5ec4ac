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


#: what a search or MLflow writes into the directory it runs in when a test forgets a temp dir
_LEFTOVERS = ("mlruns", "evodiff-runs", "mlflow.db")


def _leftovers(dirs) -> set[Path]:
    """Every path under the leftover names in ``dirs`` (files, and the contents of folders)."""
    found: set[Path] = set()
    for d in dirs:
        for name in _LEFTOVERS:
            p = d / name
            if p.exists():
                found.add(p)
                if p.is_dir():
                    found.update(p.rglob("*"))
    return found


@pytest.fixture(autouse=True)
def mlflow_env_stays_put():
    """``mlflow.set_tracking_uri`` writes ``MLFLOW_TRACKING_URI`` into the environment; a test
    that calls it must not hand its store to the searches of later tests."""
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session", autouse=True)
def working_tree_stays_clean():
    """Fail the session if its tests wrote ``mlruns/``, ``evodiff-runs/`` or ``mlflow.db``
    into the repository or the directory pytest started in: tests write to temp dirs only."""
    dirs = {REPO, Path.cwd()}
    before = _leftovers(dirs)
    yield
    new = sorted(_leftovers(dirs) - before)
    if new:
        pytest.fail(f"tests left files in the working tree (use tmp_path / runs_dir): "
                    f"{', '.join(str(p) for p in new[:5])}{' ...' if len(new) > 5 else ''}", pytrace=False)


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
