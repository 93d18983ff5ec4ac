"""SIGKILL the search driver mid-run, resume it: the result equals an uninterrupted run."""

import json
import signal
import subprocess
import time

import pytest

from conftest import EVODIFF_RAY
from evodiff_ray.search.loop import DETERMINISTIC_STATS


def argv(runs_dir, search_id, backend):
    extra = ["--workers", "2"] if backend == "ray" else []
    return [EVODIFF_RAY, "search", "--problem", "synthetic", "-O", "mean_ms=15", "-O", "failure_rate=0.1",
            "--pop", "8", "--generations", "12", "--seed", "4", "--backend", backend, *extra,
            "--runs-dir", str(runs_dir), "--search-id", search_id, "--quiet", "--no-cache", "--no-tracking"]


def saved_generations(run_dir):
    try:
        return json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["n_events"] // 2
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def comparable(run_dir):
    front = json.loads((run_dir / "front.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    return ([(p["key"], p["objectives"]) for p in front["points"]], front["evaluations"],
            [{k: h[k] for k in DETERMINISTIC_STATS} for h in history])


@pytest.mark.parametrize("backend", [
    "local",
    pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow]),
])
def test_killed_driver_resumes_to_the_same_result(runs_dir, cli_env, backend):
    subprocess.run(argv(runs_dir, "full", backend), env=cli_env, check=True, timeout=300,
                   stdout=subprocess.DEVNULL)
    victim = subprocess.Popen(argv(runs_dir, "part", backend), env=cli_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while saved_generations(runs_dir / "part") < 4:
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = saved_generations(runs_dir / "part")
    assert 4 <= killed_at < 12  # really interrupted
    subprocess.run([EVODIFF_RAY, "search", "--resume", "--search-id", "part", "--runs-dir", str(runs_dir),
                    "--quiet"], env=cli_env, check=True, timeout=300, stdout=subprocess.DEVNULL)
    assert comparable(runs_dir / "part") == comparable(runs_dir / "full")
