"""Promise: the README's quick start. ``evodiff-ray search --preset quick`` searches diffusion
denoisers on Ray with the embedded redis-server and sqlite MLflow; running the same command
again evaluates nothing: 18 cache hits and the same front.

Exactly the README's command in a fresh directory (default runs dir ``./evodiff-runs``, a local
Ray, the embedded Redis, sqlite MLflow), with one change to stay fast: ``--fidelity smoke``
(40 training steps per candidate instead of 400).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import EVODIFF_RAY

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.redis]

COMMAND = [EVODIFF_RAY, "search", "--preset", "quick", "--fidelity", "smoke"]


def run_quick_start(cwd, env):
    p = subprocess.run(COMMAND, cwd=cwd, env=env, capture_output=True, text=True, timeout=500)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    found = re.search(r"^results: (\S+)/ ", p.stdout, re.M)
    assert found, p.stdout[-3000:]
    run_dir = cwd / found.group(1)
    return p.stdout, run_dir, json.loads((run_dir / "front.json").read_text())


def test_quick_preset_then_the_same_command_again(tmp_path, cli_env):
    from mlflow import MlflowClient

    env = {k: v for k, v in cli_env.items() if k not in ("MLFLOW_TRACKING_URI", "EVODIFF_REDIS_URL")}
    out1, dir1, first = run_quick_start(tmp_path, env)
    # 6 candidates x 3 generations, all evaluated, through the embedded Redis and sqlite MLflow
    assert "[gen 3] evals 18" in out1
    assert "evaluations: 18 (18 evaluated, 0 cache hits, 0 waited for other searches)" in out1
    assert "fitness cache: embedded redis-server on 127.0.0.1:" in out1
    assert first["status"] == "finished" and first["evaluations"] == 18
    assert first["cache"] == {"hits": 0, "misses": 18, "waited": 0}
    assert first["objectives"] == ["quality_fd", "latency_ms", "memory_mb"] and first["points"]
    runs = tmp_path / "evodiff-runs"
    assert dir1.parent == runs and (runs / ".redis" / "appendonlydir").is_dir() and (runs / "mlflow.db").is_file()
    config = json.loads((dir1 / "config.json").read_text())
    assert config["backend"] == "ray" and config["pop_size"] == 6 and config["generations"] == 3
    assert config["problem"] == "diffusion" and config["problem_options"]["fidelity"] == "smoke"
    # every candidate was measured by an evaluator actor of its own process, not by the driver
    assert all(p["measured_on"]["device"] == "cpu" for p in first["points"])

    out2, dir2, second = run_quick_start(tmp_path, env)
    assert dir2 != dir1                                   # a new search id, the same seed
    assert "evaluations: 18 (0 evaluated, 18 cache hits, 0 waited for other searches)" in out2
    assert second["evaluations"] == 18 and second["cache"] == {"hits": 18, "misses": 0, "waited": 0}
    assert [(p["key"], p["objectives"]) for p in second["points"]] == \
        [(p["key"], p["objectives"]) for p in first["points"]]

    # both searches are in the default MLflow store, finished, with a metric per generation
    client = MlflowClient(tracking_uri=f"sqlite:///{runs.resolve() / 'mlflow.db'}")
    every = client.search_runs([e.experiment_id for e in client.search_experiments()])
    tracked = [r for r in every if "mlflow.parentRunId" not in r.data.tags]   # the searches' own runs
    # and each search registered its knee (a child run of the search's run)
    registered = [r for r in every if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags.get("registered_from_search") for r in registered) == sorted([dir1.name, dir2.name])
    assert sorted(r.data.tags["search_id"] for r in tracked) == sorted([dir1.name, dir2.name])
    for r in tracked:
        assert r.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(r.info.run_id, "hypervolume")] == [1, 2, 3]
