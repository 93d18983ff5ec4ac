"""A Ray head started with ``ray start`` for a test, and stopped by PID.

Ray 2.60 turns token auth on for ``ray start``; these loopback-only test clusters export
``RAY_AUTH_MODE=disabled`` to the server and every client alike (never silently). A head
is stopped by killing the processes the test started (``ray stop`` would also stop the
other Ray runtimes on the machine, such as the test session's or a benchmark's).

Each head runs in its own ``RAY_TMPDIR`` (short: Ray's socket paths must fit AF_UNIX's
108 bytes), exported to its clients too, so that the address file ``ray start`` writes
(``ray_current_cluster``, which a plain ``ray.init()`` joins) never points the rest of
the machine at a head that is gone.
"""

from __future__ import annotations

import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


@dataclass
class Head:
    """A running head: its GCS address, dashboard URL, the environment clients need, its temp dir."""

    proc: subprocess.Popen
    address: str
    dashboard: str
    env: dict
    tmpdir: str

    def stop(self, keep_tmpdir: bool = False) -> None:
        """Stop the head's processes; remove its temp dir unless ``keep_tmpdir``."""
        stop_tree(self.proc)
        if not keep_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def start_head(env: dict, free_port, num_cpus: int = 2) -> Head:
    """``ray start --head --block`` on free ports (every port a head would otherwise take at its
    fixed default, so other clusters on the machine cannot collide); returns once the job API answers."""
    tmpdir = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    env = {**env, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": tmpdir}
    port, dash = free_port(), free_port()
    ports = ["--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
             "--ray-client-server-port", str(free_port()), "--metrics-export-port", str(free_port())]
    proc = subprocess.Popen([RAY, "start", "--head", "--block", "--port", str(port), "--num-cpus", str(num_cpus),
                             "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                             "--dashboard-port", str(dash), *ports],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    head = Head(proc, f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", env, tmpdir)
    try:
        deadline = time.monotonic() + 180
        while subprocess.run([RAY, "job", "list", "--address", head.dashboard], env=env, capture_output=True,
                             timeout=60).returncode != 0:
            if proc.poll() is not None:
                raise AssertionError("ray start --head exited early")
            if time.monotonic() > deadline:
                raise AssertionError("the Ray head did not come up within 180 s")
            time.sleep(0.5)
    except BaseException:
        head.stop()
        raise
    return head


def submit_job(head: Head, entrypoint: list[str], timeout_s: float = 300) -> subprocess.CompletedProcess:
    """``ray job submit`` of ``entrypoint`` to ``head``, waiting for the job and tailing its logs
    (retried while the job agent, which comes up a little after the dashboard, is not there yet)."""
    submit = [RAY, "job", "submit", "--address", head.dashboard, "--", *entrypoint]
    for _ in range(20):
        job = subprocess.run(submit, env=head.env, capture_output=True, text=True, timeout=timeout_s)
        if job.returncode == 0 or "try again later" not in job.stdout + job.stderr:
            break
        time.sleep(2)
    return job


def _descendants(pid):
    """PIDs of every process below ``pid`` (read from /proc; Linux)."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def stop_tree(proc):
    """Stop a process and everything it started, by PID (only processes the test started)."""
    pids = [proc.pid, *_descendants(proc.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            proc.poll()
            time.sleep(0.2)
    proc.wait(timeout=10)


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
