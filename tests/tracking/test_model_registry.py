"""promote: knee pick, training, registration in a real sqlite MLflow, load back and sample."""

import json

import numpy as np
import pytest

from evodiff_ray.cli import main
from evodiff_ray.core.errors import UsageError
from evodiff_ray.tracking.registry import knee_index, pick_point

NAMES = ["quality_fd", "latency_ms", "memory_mb"]
TINY = {"parameters": {"base_channels": 8, "channel_mults": [1, 2], "time_emb_dim": 16, "sampler_steps": 5,
                       "norm_groups": 4},
        "layers": [{"kind": "residual", "side": "down", "level": 0},
                   {"kind": "conv", "side": "mid", "level": 1},
                   {"kind": "residual", "side": "up", "level": 0}],
        "connections": [[0, 2]], "generation": 2, "parents": ["a" * 64]}


def _front(points):
    return {"search_id": "s1", "status": "finished", "generation": 3, "evaluations": 9,
            "cache": {"hits": 0, "misses": 9, "waited": 0}, "utilization": 0.9, "objectives": NAMES,
            "points": points}


def _point(key, q, l, m, genome=TINY):
    return {"key": key, "objectives": {"quality_fd": q, "latency_ms": l, "memory_mb": m}, "genome": genome,
            "generation": 2, "parents": ["a" * 64],
            "measured_on": {"node": "n", "device": "cpu", "chip": None, "predicted": []}}


def test_knee_is_the_balanced_point():
    pts = [_point("a", 0, 10, 10), _point("b", 5, 5, 5), _point("c", 10, 0, 10), _point("d", 10, 10, 0)]
    assert knee_index(pts, NAMES) == 1
    front = _front(pts)
    assert pick_point(front, "knee")["key"] == "b"
    assert pick_point(front, "2")["key"] == "c"
    assert pick_point(front, "d")["key"] == "d"
    with pytest.raises(UsageError, match="0..3"):
        pick_point(front, "9")
    with pytest.raises(UsageError, match="key prefix"):
        pick_point(front, "zz")


#: about the cheapest genome that builds: its full-fidelity training (6,000 steps at batch 64) takes
#: ~35 s on one thread (TINY's: ~2 min); two threads are faster on an idle machine and ten times
#: slower on a busy one
MINIMAL = {"parameters": {"base_channels": 4, "channel_mults": [1], "time_emb_dim": 8, "sampler_steps": 2,
                          "norm_groups": 1},
           "layers": [{"kind": "conv", "side": "mid", "level": 0, "kernel": 1}],
           "connections": [], "generation": 2, "parents": ["a" * 64]}


@pytest.mark.slow
def test_promote_registers_the_knee_at_full_fidelity(tmp_path, capsys, monkeypatch, one_torch_thread):
    """``evodiff-ray promote SEARCH`` with every default: the knee, trained at ``full``, alias ``candidate``."""
    import mlflow

    from evodiff_ray.diffusion.fidelity import FIDELITIES
    from evodiff_ray.genome import Genome

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "evodiff-runs" / "s1"
    run.mkdir(parents=True)
    knee_key = Genome.from_dict(MINIMAL).key()
    # three extremes, each best at one objective and worst at the others, and one balanced point:
    # after min-max normalisation the balanced one is 0.19 from the ideal point, the others 1.41
    points = [_point("a" * 64, 10, 100, 100), _point(knee_key, 20, 20, 20, genome=MINIMAL),
              _point("c" * 64, 100, 10, 100), _point("d" * 64, 100, 100, 10)]
    (run / "front.json").write_text(json.dumps(_front(points)))
    (run / "config.json").write_text(json.dumps({"problem": "diffusion", "problem_options": {"dataset": "digits"},
                                                 "target": None, "search_id": "s1"}))
    assert main(["promote", "s1", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["key"] == knee_key and out["objectives"] == points[1]["objectives"]
    assert out["model_name"] == "evodiff-s1" and out["alias"] == "candidate"
    uri = out["tracking_uri"]
    assert uri.startswith("sqlite:///") and uri.endswith("evodiff-runs/mlflow.db")
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("evodiff-s1", "candidate")
    assert mv.tags["search_id"] == "s1" and mv.tags["genome_key"] == knee_key and mv.tags["pick"] == "knee"
    assert mv.tags["fidelity"] == "full"
    assert json.loads(mv.tags["parents"]) == ["a" * 64]
    assert json.loads(mv.tags["objectives"]) == points[1]["objectives"]
    # what was trained and logged is the knee's genome, at the full budget
    dl = tmp_path / "dl"
    meta = json.loads(open(mlflow.artifacts.download_artifacts(f"{out['model_uri']}/artifacts/meta.json",
                                                               dst_path=str(dl / "m"))).read())
    assert meta["fidelity"] == FIDELITIES["full"].to_dict()
    logged = json.loads(open(mlflow.artifacts.download_artifacts(f"{out['model_uri']}/artifacts/genome.json",
                                                                 dst_path=str(dl / "g"))).read())
    assert Genome.from_dict(logged).key() == knee_key
    model = mlflow.pyfunc.load_model(out["model_uri"])
    imgs = model.predict({"n": 6, "seed": 3})
    assert imgs.shape == (6, 1, 8, 8) and np.isfinite(imgs).all() and imgs.min() >= -1 and imgs.max() <= 1
    assert np.array_equal(imgs, model.predict({"n": 6, "seed": 3}))     # sampling reproduces
    # the same genome picked by index: the full-fidelity weights are reused, a new version registered
    assert main(["promote", "s1", "--pick", "1", "--alias", "production", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert "reusing weights trained at full fidelity" in captured.err
    again = json.loads(captured.out)
    assert again["key"] == knee_key and int(again["version"]) == int(out["version"]) + 1
    assert client.get_model_version_by_alias("evodiff-s1", "production").tags["genome_key"] == knee_key


def test_promote_asks_the_problem_and_refuses_candidates_that_are_not_models(tmp_path):
    from evodiff_ray.tracking.registry import promote

    run = tmp_path / "z1"
    run.mkdir()
    point = {"key": "k" * 64, "objectives": {"f1": 0.1, "f2": 0.9}, "genome": [0.1] * 30, "generation": 1,
             "parents": [], "measured_on": {"node": "n", "device": "cpu", "chip": None, "predicted": []}}
    (run / "front.json").write_text(json.dumps({**_front([point]), "search_id": "z1", "objectives": ["f1", "f2"]}))
    (run / "config.json").write_text(json.dumps({"problem": "zdt1", "problem_options": {}, "search_id": "z1"}))
    with pytest.raises(UsageError, match="'zdt1' search, whose candidates are not models"):
        promote("z1", runs_dir=tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not (tmp_path / "mlflow.db").exists()          # refused before anything was logged
