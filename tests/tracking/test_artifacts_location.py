"""MLflow artifacts live under the runs dir (or beside the store --tracking-uri names),
never in ``./mlruns`` of the directory a search or a promote was started from."""

from __future__ import annotations

import json
from pathlib import Path

from evodiff_ray.config import load_config
from evodiff_ray.search import search
from evodiff_ray.tracking.mlflow_tracker import artifact_location

REPO = Path(__file__).resolve().parents[2]


def _local_path(uri: str) -> Path:
    from urllib.parse import unquote, urlparse

    u = urlparse(uri)
    assert u.scheme in ("file", ""), uri
    return Path(unquote(u.path))


def _mlruns_under(*dirs: Path) -> list[Path]:
    return [p for d in dirs for p in d.rglob("mlruns")]


def _tracked_search(runs_dir: Path, search_id: str, **kw):
    config = load_config(overrides={"problem": "zdt1", "pop_size": 6, "generations": 2, "seed": 1,
                                    "backend": "local", "no_cache": True, "runs_dir": str(runs_dir),
                                    "search_id": search_id, **kw})
    return search(config)


def test_artifact_location_per_store(tmp_path):
    runs = tmp_path / "runs"
    db = tmp_path / "store" / "mlflow.db"
    assert artifact_location(f"sqlite:///{db}", "evodiff-zdt1", runs) == \
        (tmp_path / "store" / "mlflow-artifacts" / "evodiff-zdt1").as_uri()
    # a relative sqlite path is relative to the current directory, as SQLAlchemy reads it
    rel = artifact_location("sqlite:///evodiff-runs/mlflow.db", "e", runs)
    assert rel == (Path.cwd() / "evodiff-runs" / "mlflow-artifacts" / "e").as_uri()
    # a database server has no artifact root: the runs dir; a name never escapes its folder
    assert artifact_location("postgresql+psycopg2://u:p@db/mlflow", "../a b:c", runs) == \
        (runs.resolve() / "mlflow-artifacts" / "a_b_c").as_uri()
    # a tracking server and a file store keep their own artifact root
    assert artifact_location("http://mlflow:5000", "e", runs) is None
    assert artifact_location("file:///srv/mlruns", "e", runs) is None


def test_default_store_keeps_search_and_promote_artifacts_under_the_runs_dir(tmp_path, monkeypatch, caplog):
    from mlflow import MlflowClient

    from evodiff_ray.tracking.registry import promote

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runs = tmp_path / "elsewhere" / "evodiff-runs"
    result = _tracked_search(runs, "s1")
    again = _tracked_search(runs, "s2")          # the experiment exists now: same place, no warning
    assert not any("keeps its artifacts" in r.getMessage() for r in caplog.records)

    uri = f"sqlite:///{(runs / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri)
    root = (runs / "mlflow-artifacts").resolve()
    for r in (result, again):
        run_id = json.loads((r.run_dir / "mlflow.json").read_text())["run_id"]
        where = _local_path(client.get_run(run_id).info.artifact_uri)
        assert where.is_relative_to(root), where
        assert (where / "front.json").is_file() and (where / "pareto.png").is_file()

    # promote (a tiny genome at the smoke fidelity): the logged model lands there too
    tiny = json.loads((REPO / "evodiff_ray" / "assets" / "baseline_unet.json").read_text())
    tiny["parameters"].update(base_channels=8, time_emb_dim=16, sampler_steps=3, norm_groups=4)
    point = {"key": "k" * 64, "objectives": {"quality_fd": 1.0, "latency_ms": 1.0, "memory_mb": 1.0},
             "genome": tiny, "generation": 1, "parents": [],
             "measured_on": {"node": "n", "device": "cpu", "chip": None, "predicted": []}}
    d = runs / "p1"
    d.mkdir()
    (d / "front.json").write_text(json.dumps({"search_id": "p1", "status": "finished", "generation": 1,
                                               "evaluations": 1, "cache": {}, "utilization": None,
                                               "objectives": list(point["objectives"]), "points": [point]}))
    (d / "config.json").write_text(json.dumps({"problem": "diffusion", "search_id": "p1",
                                               "problem_options": {"dataset": "digits"}}))
    out = promote("p1", runs_dir=runs, fidelity="smoke")
    mv = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(out["model_name"], out["version"])
    promoted = client.get_run(mv.run_id)
    assert _local_path(promoted.info.artifact_uri).is_relative_to(root)
    assert any(p.name == "MLmodel" for p in root.rglob("MLmodel"))

    assert _mlruns_under(tmp_path, REPO) == []
    assert not (cwd / "mlruns").exists() and list(cwd.iterdir()) == []


def test_an_explicit_sqlite_store_keeps_artifacts_beside_it(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'm.db'}"
    result = _tracked_search(tmp_path / "runs", "x1", tracking_uri=uri)
    run_id = json.loads((result.run_dir / "mlflow.json").read_text())["run_id"]
    where = _local_path(MlflowClient(tracking_uri=uri).get_run(run_id).info.artifact_uri)
    assert where.is_relative_to(store / "mlflow-artifacts") and (where / "front.csv").is_file()
    assert _mlruns_under(tmp_path, REPO) == [] and list(cwd.iterdir()) == []


def test_an_old_experiment_in_mlruns_is_named_with_the_way_out(tmp_path, monkeypatch, caplog):
    """An experiment created before (artifacts in ./mlruns) cannot move; the search says so once."""
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("evodiff-zdt1",
                                                    artifact_location=(tmp_path / "old").as_uri())
    _tracked_search(runs, "o1", tracking_uri=uri)
    msgs = [r.getMessage() for r in caplog.records if "keeps its artifacts" in r.getMessage()]
    assert len(msgs) == 1 and "--experiment" in msgs[0]
