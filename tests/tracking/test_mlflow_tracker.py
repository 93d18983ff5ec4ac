"""A real search tracked in a real sqlite MLflow store in a temp dir."""

import json

import pytest

from evodiff_ray.config import load_config
from evodiff_ray.search import search


def cfg(runs_dir, search_id, **kw):
    base = {"problem": "zdt1", "pop_size": 8, "generations": 3, "seed": 1, "backend": "local",
            "runs_dir": str(runs_dir), "search_id": search_id, "no_cache": True}
    base.update(kw)
    return load_config(overrides=base)


def test_search_logs_parent_run_metrics_and_artifacts(runs_dir, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = search(cfg(runs_dir, "tracked", tracking_uri=uri, redis_url="redis://:hunter2@127.0.0.1:1/0"))
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("evodiff-zdt1")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["search_id"] == "tracked" and tags["problem"] == "zdt1" and tags["mode"] == "generational"
    assert "evodiff_version" in tags and "hypervolume_reference_point" in tags
    params = run.data.params
    assert params["pop_size"] == "8" and params["seed"] == "1"
    assert "hunter2" not in json.dumps(params) and "***" in params["redis_url"]   # secrets stripped
    hv = client.get_metric_history(run.info.run_id, "hypervolume")
    assert [m.step for m in hv] == [1, 2, 3]
    assert hv[-1].value == pytest.approx(result.hypervolume)
    for name in ("best_f1", "best_f2", "front_size", "evaluations", "diversity", "failures"):
        assert client.get_metric_history(run.info.run_id, name), name
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"front.json", "front.csv", "pareto.png", "hypervolume.png", "candidates.csv", "candidates.jsonl",
            "genomes"} <= arts
    local = client.download_artifacts(run.info.run_id, "pareto.png", str(tmp_path / "dl"))
    assert open(local, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    cands = client.download_artifacts(run.info.run_id, "candidates.jsonl", str(tmp_path / "dl"))
    assert len(open(cands).read().splitlines()) == result.front["evaluations"]


def test_mlflow_down_does_not_stop_the_search(runs_dir, tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    bad = f"sqlite:///{blocker}/mlflow.db"       # a path MLflow cannot create
    r = search(cfg(runs_dir, "untracked", tracking_uri=bad))
    assert r.front["status"] == "finished" and r.front["evaluations"] == 8 + 2 * 8
    assert any("MLflow tracking failed" in rec.getMessage() for rec in caplog.records)
    assert (runs_dir / "untracked" / "front.json").exists()


def test_diffusion_search_records_the_dataset_digest_as_an_input(runs_dir, tmp_path):
    from mlflow import MlflowClient

    from evodiff_ray.problems import make_problem
    from evodiff_ray.tracking.mlflow_tracker import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = load_config(overrides={"problem": "diffusion", "search_id": "d1", "runs_dir": str(runs_dir),
                                    "tracking_uri": uri, "fidelity": "quick"})
    problem = make_problem("diffusion", config.problem_options)
    tracker = MlflowTracker(uri, settings=problem.evaluation_settings())
    tracker.on_start(config, runs_dir / "d1", resumed=False)
    assert not tracker.disabled
    digest = problem.dataset_digest()
    run = MlflowClient(tracking_uri=uri).get_run(tracker.run_id)
    assert run.data.tags["dataset_digest"] == digest
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [digest[:36]]
    assert run.data.params["problem_options.fidelity"] == "quick"
