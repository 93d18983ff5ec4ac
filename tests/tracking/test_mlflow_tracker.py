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


@pytest.mark.slow
def test_diffusion_search_records_the_dataset_digest_as_an_input(runs_dir, tmp_path, monkeypatch, one_torch_thread):
    """A real (tiny) tracked diffusion search: its MLflow run names the data it trained on."""
    from mlflow import MlflowClient

    from evodiff_ray.data import load_dataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = load_config(overrides={
        "problem": "diffusion", "search_id": "d1", "runs_dir": str(runs_dir), "tracking_uri": uri,
        "fidelity": "smoke", "pop_size": 2, "generations": 1, "backend": "local", "no_cache": True,
        "problem_options": {"latency_repeats": 1, "fd_samples": 100},
    })
    result = search(config)
    assert result.front["evaluations"] == 2
    digest = load_dataset("digits").digest     # the data the candidates were trained on
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.search_id = 'd1'")
    assert len(runs) == 1
    run = runs[0]
    (ds_input,) = run.inputs.dataset_inputs
    assert ds_input.dataset.name == "digits" and ds_input.dataset.digest == digest[:36]
    assert json.loads(ds_input.dataset.source) == {"dataset": "digits", "digest": digest}
    assert run.data.tags["dataset_digest"] == digest
    assert run.data.params["problem_options.fidelity"] == "smoke"


def test_pointing_mlflow_at_a_store_leaves_the_environment_alone(monkeypatch, tmp_path):
    """A registration points MLflow's fluent API at its store without making that store the
    default of every later search in the process (mlflow.set_tracking_uri alone would)."""
    import os

    import mlflow

    from evodiff_ray.tracking.mlflow_tracker import point_mlflow_at, resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    point_mlflow_at(uri)
    assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert resolve_tracking_uri(None, tmp_path / "runs").endswith("runs/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    point_mlflow_at(uri)
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"
