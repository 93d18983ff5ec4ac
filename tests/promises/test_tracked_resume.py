"""Promise: a tracked, cached search killed with SIGKILL resumes with ``--resume`` into the same
MLflow run, and evaluates nothing twice.

Everything is the default: the embedded redis-server and sqlite MLflow in the runs dir, the CLI
in real processes. The problem (``logged_problem.py``) logs each evaluation on the evaluator's
side and SIGKILLs its own process the moment the search tells generation 2: those 8 candidates
were evaluated and cached, but not yet checkpointed, tracked or published. (A kill in the middle
of an evaluation would leave that batch's claims in Redis, and the resume would first wait out
their 60 s lifetime.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import EVODIFF_RAY

pytestmark = [pytest.mark.redis, pytest.mark.slow]

HERE = str(Path(__file__).resolve().parent)


def test_killed_tracked_search_resumes_into_the_same_mlflow_run(tmp_path, cli_env, monkeypatch):
    from mlflow import MlflowClient

    from evodiff_ray.cache.local_redis import LocalRedis

    monkeypatch.syspath_prepend(HERE)
    from logged_problem import evaluated_keys

    env = {**cli_env, "PYTHONPATH": os.pathsep.join(p for p in (HERE, cli_env.get("PYTHONPATH")) if p)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("EVODIFF_REDIS_URL", None)
    runs = tmp_path / "evodiff-runs"
    run_dir = runs / "tracked"
    log = tmp_path / "evaluations.log"
    argv = [EVODIFF_RAY, "search", "--problem", "logged_problem:make", "-O", f"log_path={log}", "-O", "kill_at=16",
            "--pop", "8", "--generations", "5", "--seed", "3", "--backend", "local", "--runs-dir", str(runs),
            "--search-id", "tracked"]
    try:
        killed = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert len(evaluated_keys(log)) == 16                    # generations 1 and 2 evaluated
        run_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
        uri = f"sqlite:///{runs.resolve() / 'mlflow.db'}"          # the default store, in the runs dir
        client = MlflowClient(tracking_uri=uri)
        assert client.get_run(run_id).info.status == "RUNNING"  # it died without finishing the run
        assert [m.step for m in client.get_metric_history(run_id, "evaluations")] == [1]

        resumed = subprocess.run([EVODIFF_RAY, "search", "--resume", "--search-id", "tracked", "--runs-dir", str(runs)],
                                 cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert "resuming search tracked" in resumed.stdout
    finally:
        # the killed search left its embedded redis-server running; the resume reused and stopped it
        leftover = LocalRedis.running(runs / ".redis")
        if leftover is not None:
            leftover.stop(force=True)

    # the same MLflow run, continued: one run for the search, its id unchanged, metrics 1..5 once each
    assert json.loads((run_dir / "mlflow.json").read_text())["run_id"] == run_id
    runs_found = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                    filter_string="tags.search_id = 'tracked'")
    assert [r.info.run_id for r in runs_found] == [run_id]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run_id, "evaluations")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(g, 8.0 * g) for g in range(1, 6)]
    assert [m.step for m in sorted(client.get_metric_history(run_id, "hypervolume"), key=lambda m: m.step)] \
        == [1, 2, 3, 4, 5]
    cands = client.download_artifacts(run_id, "candidates.jsonl", str(tmp_path / "dl"))
    rows = [json.loads(line) for line in Path(cands).read_text().splitlines()]
    assert len(rows) == len({r["key"] for r in rows}) == 40      # every candidate once, before and after the kill

    # nothing evaluated twice: generation 2 came back from the cache, the rest was evaluated once
    keys = evaluated_keys(log)
    assert len(keys) == len(set(keys)) == 40
    front = json.loads((run_dir / "front.json").read_text())
    assert front["status"] == "finished" and front["evaluations"] == 40
    assert front["cache"]["hits"] == 8, front["cache"]     # the told-but-unsaved generation 2
