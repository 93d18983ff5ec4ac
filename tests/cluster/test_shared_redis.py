"""One Redis shared by a whole cluster: the one ``cluster/start-head.sh`` starts.

The head script's Redis part runs for real (``--no-ray``: the Ray side is a
``ray.cluster_utils.Cluster`` on this machine, a head with no CPUs and one worker node,
so evaluators run on the worker as on a real fleet). Searches go through the exact
``--redis-url`` the script prints: the second search with the same seed evaluates
nothing, and the cache survives a restart of the server (AOF, same password).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
START = REPO / "cluster" / "start-head.sh"
STOP = REPO / "cluster" / "stop-head.sh"


def _script_env(redis_dir: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("EVODIFF_HEAD_IP", None)         # the script detects the head's address itself
    env.update({"EVODIFF_REDIS_DIR": str(redis_dir), "EVODIFF_REDIS_PORT": str(port), "EVODIFF_SKIP_RAY": "1"})
    return env


def _start_head(env: dict[str, str]) -> tuple[str, str]:
    """Run the head script's Redis part; return (its stdout, the --redis-url it printed)."""
    r = subprocess.run(["bash", str(START)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    urls = re.findall(r"--redis-url (\S+)", r.stdout)
    exports = re.findall(r"export EVODIFF_REDIS_URL=(\S+)", r.stdout)
    assert len(urls) == 1 and exports == urls, r.stdout
    return r.stdout, urls[0]


@pytest.fixture(scope="module")
def cluster():
    """A head without CPUs plus one worker node; evaluator actors can only land on the worker."""
    import ray
    from ray.cluster_utils import Cluster

    had_session_runtime = ray.is_initialized()
    ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    c.add_node(num_cpus=2)
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        c.shutdown()
        if had_session_runtime:
            ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)


@pytest.fixture
def head_redis(tmp_path, free_port):
    """The head script's redis-server in a temp data dir; stopped by cluster/stop-head.sh afterwards."""
    env = _script_env(tmp_path / "head-redis", free_port())
    try:
        yield env
    finally:
        subprocess.run(["bash", str(STOP)], env=env, capture_output=True, text=True, timeout=60)


def _search(tmp_path, search_id: str, url: str):
    from evodiff_ray.config import load_config
    from evodiff_ray.search import search

    config = load_config(overrides={
        "problem": "zdt1", "pop_size": 8, "generations": 2, "seed": 3, "workers": 2,
        "runs_dir": str(tmp_path / "runs"), "search_id": search_id, "redis_url": url, "no_tracking": True,
    })
    return search(config)


def test_searches_share_the_redis_the_head_script_prints(cluster, head_redis, tmp_path):
    import redis

    out, url = _start_head(head_redis)
    u = urlparse(url)
    redis_dir = Path(head_redis["EVODIFF_REDIS_DIR"])
    password = (redis_dir / "password").read_text()
    # the printed URL is the head's address (not loopback), its own port (not Ray's 6379), the stored password
    assert u.scheme == "redis" and u.port == int(head_redis["EVODIFF_REDIS_PORT"]) and u.port != 6379
    assert u.hostname not in ("127.0.0.1", "localhost") and u.password == password and len(password) == 64
    # only this user can read the password and the config that holds it
    for name in ("password", "redis.conf"):
        assert stat.S_IMODE((redis_dir / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(redis_dir.stat().st_mode) == 0o700
    # it answers on the head's address and on loopback, and only with the password
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=u.hostname, port=u.port, socket_timeout=5).ping()
    assert redis.Redis(host="127.0.0.1", port=u.port, password=password, socket_timeout=5).ping()
    client = redis.Redis.from_url(url, socket_timeout=5)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("protected-mode") == {"protected-mode": "yes"}

    first = _search(tmp_path, "first", url)
    assert first.front["evaluations"] == 16
    assert first.front["cache"]["misses"] == 16 and first.front["cache"]["hits"] == 0
    assert len(client.keys("evodiff:fit:*")) == 16
    # the live front is in the shared Redis, where any machine of the cluster can read it
    assert client.exists("evodiff:search:first:front")

    second = _search(tmp_path, "second", url)
    assert second.front["cache"] == {"hits": 16, "misses": 0, "waited": 0}
    assert second.front["points"] == first.front["points"]

    # a second start reuses the running server and prints the same URL
    again, url2 = _start_head(head_redis)
    assert url2 == url and "already running" in again
    client.close()

    # after a stop and a start the password and the cache (AOF) are still there
    stopped = subprocess.run(["bash", str(STOP)], env=head_redis, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_timeout=2).ping()
    restarted, url3 = _start_head(head_redis)
    assert url3 == url and "started" in restarted
    third = _search(tmp_path, "third", url3)
    assert third.front["cache"] == {"hits": 16, "misses": 0, "waited": 0}


def test_the_head_script_refuses_rays_own_port(tmp_path):
    env = _script_env(tmp_path / "r", 6379)
    env.pop("EVODIFF_SKIP_RAY")
    r = subprocess.run(["bash", str(START)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "6379 is Ray's port too" in r.stderr
    assert not (tmp_path / "r").exists()


def test_the_head_scripts_are_shellcheck_clean():
    import shutil

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    scripts = sorted(str(p) for p in (REPO / "cluster").glob("*.sh"))
    r = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
