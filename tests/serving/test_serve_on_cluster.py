"""``evodiff-ray serve --address``: the deployment loop on a Ray cluster started with ``ray start``.

The head is a separate cluster (its own ports, see ``tests/ray_head.py``); ``serve`` joins it
as a client, deploys the gateway and the production sampler there, answers over HTTP, and
on SIGTERM removes only its own applications, leaving the cluster running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import EVODIFF_RAY
from ray_head import RAY, start_head, submit_job
from serving_models import MINIMAL, register_version

#: a space holding the registered version's architecture (serving_models.MINIMAL), so the
#: cycle's warm start from production fits
ADAPT_SPACE = {"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4,
               "sampler_steps": [2, 4], "time_emb_dims": [8, 16], "heads": [1, 2]}

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.slow]


def test_serve_on_a_cluster_answers_and_leaves_the_cluster_running(tmp_path, cli_env, free_port):
    import requests

    from evodiff_ray.cache.local_redis import LocalRedis

    runs = tmp_path / "evodiff-runs"
    runs.mkdir()
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    version = register_version(uri, "tiny", runs / ".models", seed=0, alias="production")
    redis_server = LocalRedis(runs / ".redis").start(reuse=False)
    head = start_head(cli_env, free_port)
    port = free_port()
    serve = None
    try:
        serve = subprocess.Popen([EVODIFF_RAY, "serve", "tiny", "--address", head.address, "--port", str(port),
                                  "--tracking-uri", uri, "--redis-url", redis_server.url, "--runs-dir", str(runs),
                                  "--replica-cpus", "0.25", "--fd-interval", "0"],
                                 env=head.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            assert serve.poll() is None, serve.stdout.read()[-3000:]
            try:
                if requests.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "serve on the cluster did not become ready in 240 s"
            time.sleep(0.5)
        r = requests.post(url + "/generate", json={"n": 2, "seed": 7}, headers={"Accept": "application/json"},
                          timeout=60)
        assert r.status_code == 200, r.text
        assert str(r.json()["version"]) == str(version) and r.json()["request_id"]
        # the applications live on the cluster, not in a Ray of the serve process
        listed = subprocess.run([RAY, "list", "actors", "--address", head.dashboard, "--filter", "state=ALIVE",
                                 "--limit", "200"], env=head.env, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and "ServeController" in listed.stdout, listed.stdout[-2000:]

        # adapt as a Ray job on the same cluster: one whole cycle (a warm-started search, the
        # knee registered, its canary deployed on the cluster's Serve), decided by its timeout
        # since no traffic comes; the job ends after the cycle (--max-cycles 1)
        options = {"space": ADAPT_SPACE, "fd_samples": 16, "latency_batch": 2, "latency_repeats": 1, "threads": 1}
        seeds = tmp_path / "seeds.json"        # the test's registry versions carry no genome tag
        seeds.write_text(json.dumps(MINIMAL))
        adapt = [EVODIFF_RAY, "adapt", "tiny", "--every", "1d", "--quiet", "--pop", "2", "--evaluations", "2",
                 "--fidelity", "smoke", "-S", "backend=local", "-S", "no_reference=true",
                 "-S", "problem_options=" + json.dumps(options), "--seed-from", str(seeds), "--canary", "50",
                 "--decision-timeout", "5s", "--tracking-uri", uri, "--redis-url", redis_server.url,
                 "--runs-dir", str(runs)]
        job = submit_job(head, [*adapt, "--cycle-now", "--max-cycles", "1"])
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-2000:]
        assert "cycle 1: triggered by manual" in job.stdout, job.stdout[-3000:]
        assert "tiny: 1 cycle(s); the last: rollback (adapt: no decision within 5 s" in job.stdout, job.stdout[-3000:]
        state = json.loads((runs / ".adapt" / "tiny" / "state.json").read_text())
        assert state["stage"] == "decided" and state["decision"] == "rollback" and state["version"]
        # the knee was registered as a version of tiny, deployed beside production and retired
        r = requests.get(url + "/readyz", timeout=30)
        assert r.status_code == 200 and r.json()["routes"] == {str(version): 100.0}, r.text

        # a watching adapt job stopped with `ray job stop` (SIGTERM): the job ends STOPPED, the
        # state file is as the last cycle left it, and the state dir's lock is free for the next start
        started = subprocess.run([RAY, "job", "submit", "--address", head.dashboard, "--submission-id", "adapt-stop",
                                  "--no-wait", "--", *adapt, "--poll", "1s"], env=head.env, capture_output=True,
                                 text=True, timeout=120)
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        deadline = time.monotonic() + 120
        while "adapting tiny" not in (logs := subprocess.run(
                [RAY, "job", "logs", "--address", head.dashboard, "adapt-stop"], env=head.env, capture_output=True,
                text=True, timeout=60).stdout):
            assert time.monotonic() < deadline and "error:" not in logs, logs[-2000:]
            time.sleep(0.5)
        stop = subprocess.run([RAY, "job", "stop", "--address", head.dashboard, "adapt-stop"], env=head.env,
                              capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stdout[-2000:] + stop.stderr[-2000:]
        status = subprocess.run([RAY, "job", "status", "--address", head.dashboard, "adapt-stop"], env=head.env,
                                capture_output=True, text=True, timeout=60)
        assert "'adapt-stop' was stopped" in status.stdout, status.stdout[-2000:]
        assert json.loads((runs / ".adapt" / "tiny" / "state.json").read_text())["cycle"] == state["cycle"]
        from evodiff_ray.adapt.state import StateLock

        StateLock(runs / ".adapt" / "tiny").acquire().release()      # no controller holds it any more

        serve.send_signal(signal.SIGTERM)
        out, _ = serve.communicate(timeout=120)
        assert serve.returncode == 0, out[-3000:]
        assert "stopping" in out
        # the cluster keeps running; only this model's applications are gone
        assert head.proc.poll() is None
        jobs = subprocess.run([RAY, "job", "list", "--address", head.dashboard], env=head.env, capture_output=True,
                              timeout=60)
        assert jobs.returncode == 0

        # the head is gone, its address file stays (as after a crash): a plain `serve` starts a
        # local Ray instead of joining the dead cluster and waiting for it. With --haproxy,
        # Serve's HAProxy ingress listens on the port (ray[serve] bundles the binary on Linux),
        # and the gateway samples in its own process (the default) once it has loaded the version
        head.stop(keep_tmpdir=True)
        stale = Path(head.tmpdir) / "ray" / "ray_current_cluster"
        assert stale.is_file() and stale.read_text().strip().endswith(head.address.rsplit(":", 1)[1])
        env = {k: v for k, v in head.env.items() if k != "RAY_ADDRESS"}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        local = subprocess.run([EVODIFF_RAY, "serve", "tiny", "--port", str(port), "--tracking-uri", uri,
                                "--redis-url", redis_server.url, "--runs-dir", str(runs), "--replica-cpus", "0.25",
                                "--fd-interval", "0", "--ready-timeout", "120", "--haproxy", "--detach"],
                               env=env, capture_output=True, text=True, timeout=300)
        assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
        r = requests.post(url + "/generate", json={"n": 1, "seed": 1}, headers={"Accept": "application/json"},
                          timeout=60)
        assert r.status_code == 200 and str(r.json()["version"]) == str(version)
        deadline = time.monotonic() + 60
        while r.headers.get("X-Sampled-In") != "gateway" and time.monotonic() < deadline:
            time.sleep(0.2)
            r = requests.post(url + "/generate", json={"n": 1, "seed": 1}, timeout=60)
        assert r.status_code == 200 and r.headers.get("X-Sampled-In") == "gateway", r.headers
        bad = requests.post(url + "/generate", data=b'{"n": 2, "seed": 1.5}', timeout=60)   # through HAProxy too
        assert bad.status_code == 400 and "integer" in bad.json()["error"], bad.text
        assert _listener(port) == "haproxy"             # not Serve's Python proxy
        stopped = subprocess.run([EVODIFF_RAY, "serve", "stop", "tiny", "--runs-dir", str(runs)], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]
    finally:
        if serve is not None and serve.poll() is None:
            serve.kill()
        head.stop()
        redis_server.stop(force=True)


def _listener(port: int) -> str | None:
    """The command name of the process listening on 127.0.0.1:``port`` (Linux's /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:      # 0A: LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return (proc / "comm").read_text().strip()
        except OSError:
            continue
    return None

