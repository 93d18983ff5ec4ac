"""``history``: an experiment's searches over time, on one reference point (real sqlite MLflow)."""

import json

import pytest

from evodiff_ray.adapt.history import experiment_history
from evodiff_ray.cli import main
from evodiff_ray.config import load_config
from evodiff_ray.search import search


def test_history_spans_every_search_of_the_experiment(runs_dir, capsys):
    uri = f"sqlite:///{runs_dir / 'mlflow.db'}"
    results = []
    for sid, gens in (("h1", 1), ("h2", 4), ("h3", 2)):
        results.append(search(load_config(overrides={
            "problem": "zdt1", "pop_size": 8, "generations": gens, "seed": 1, "backend": "local",
            "search_id": sid, "runs_dir": str(runs_dir), "no_cache": True, "tracking_uri": uri,
            "experiment": "hist"})))
    h = experiment_history(uri, "hist", runs_dir=runs_dir)
    assert [r["search_id"] for r in h["rows"]] == ["h1", "h2", "h3"]
    so_far = [r["hypervolume_so_far"] for r in h["rows"]]
    assert all(b >= a - 1e-12 for a, b in zip(so_far, so_far[1:]))          # the union front never loses
    assert so_far[-1] >= max(r["hypervolume"] for r in h["rows"]) - 1e-12
    # the same seed, more generations: h2's front contains h1's and is at least as good
    assert h["rows"][1]["hypervolume"] >= h["rows"][0]["hypervolume"]
    for n in h["objectives"]:
        assert h["rows"][-1]["best_so_far"][n] == pytest.approx(
            min(min(p["objectives"][n] for p in r.points) for r in results))

    png = runs_dir / "h.png"
    assert main(["history", "--experiment", "hist", "--tracking-uri", uri, "--runs-dir", str(runs_dir),
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "experiment hist: 3 searches" in out and "h2" in out and png.stat().st_size > 5000
    # without --experiment: the experiment of the newest tracked run dir
    assert main(["history", "--tracking-uri", uri, "--runs-dir", str(runs_dir), "--format", "json",
                 "--plot", str(png)]) == 0
    assert json.loads(capsys.readouterr().out)["experiment"] == "hist"


def test_unknown_experiment_is_a_usage_error(runs_dir, capsys):
    uri = f"sqlite:///{runs_dir / 'mlflow.db'}"
    assert main(["history", "--experiment", "nope", "--tracking-uri", uri, "--runs-dir", str(runs_dir)]) == 2
    assert "no MLflow experiment 'nope'" in capsys.readouterr().err.strip().splitlines()[-1]
