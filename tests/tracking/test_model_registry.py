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


@pytest.mark.slow
def test_promote_registers_a_model_that_loads_and_samples(tmp_path, capsys, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "evodiff-runs" / "s1"
    run.mkdir(parents=True)
    (run / "front.json").write_text(json.dumps(_front([_point("k" * 64, 50, 5, 3), _point("j" * 64, 60, 2, 2)])))
    (run / "config.json").write_text(json.dumps({"problem": "diffusion", "problem_options": {"dataset": "digits"},
                                                 "target": None, "search_id": "s1"}))
    argv = ["promote", "s1", "--pick", "knee", "--alias", "candidate", "--fidelity", "quick", "--format", "json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_name"] == "evodiff-s1" and out["alias"] == "candidate"
    uri = out["tracking_uri"]
    assert uri.startswith("sqlite:///") and uri.endswith("evodiff-runs/mlflow.db")
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("evodiff-s1", "candidate")
    assert mv.tags["search_id"] == "s1" and mv.tags["genome_key"] in ("k" * 64, "j" * 64)
    assert json.loads(mv.tags["parents"]) == ["a" * 64] and "quality_fd" in json.loads(mv.tags["objectives"])
    model = mlflow.pyfunc.load_model(out["model_uri"])
    imgs = model.predict({"n": 6, "seed": 3})
    assert imgs.shape == (6, 1, 8, 8) and np.isfinite(imgs).all() and imgs.min() >= -1 and imgs.max() <= 1
    assert np.array_equal(imgs, model.predict({"n": 6, "seed": 3}))     # sampling reproduces
    # a second promote of the same genome reuses the trained weights
    assert main(argv) == 0
    assert "reusing weights" in capsys.readouterr().err
