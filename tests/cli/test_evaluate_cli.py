"""``evodiff-ray evaluate`` and ``evodiff-ray baseline``: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from evodiff_ray.cli import main
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.genome import Genome

TINY = {
    "parameters": {"base_channels": 8, "channel_mults": [1, 2], "time_emb_dim": 16, "sampler_steps": 3, "norm_groups": 4},
    "layers": [{"kind": "residual", "side": "down", "level": 0}, {"kind": "residual", "side": "up", "level": 0}],
    "connections": [[0, 1]],
}


@pytest.fixture(autouse=True)
def cache_env(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("EVODIFF_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "evodiff-cache"))


def test_baseline_prints_the_reference_genome(capsys):
    assert main(["baseline"]) == 0
    g = Genome.from_json(capsys.readouterr().out)
    assert g.levels == 2 and g.has_attention() and g.parameters["base_channels"] == 32


def test_evaluate_prints_fitness_json(tmp_path, capsys):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    grid = tmp_path / "samples.png"
    assert main(["evaluate", str(path), "--fidelity", "quick", "--threads", "1", "--seed", "1",
                 "--samples", str(grid)]) == 0
    out = capsys.readouterr()
    fit = Fitness.from_dict(json.loads(out.out))
    assert fit.feasible and set(fit.objectives) == {"quality_fd", "latency_ms", "memory_mb"}
    assert fit.extras["fidelity"] == "quick" and fit.extras["seed"] == 1
    assert "training" in out.err  # progress goes to stderr
    assert "samples_png" not in out.out and grid.read_bytes().startswith(b"\x89PNG")   # the image, as a file


@pytest.mark.parametrize("content, message", [
    (None, "cannot read genome file"),
    ("{not json", "not valid JSON"),
    (json.dumps({**TINY, "parameters": {**TINY["parameters"], "base_channels": 3}}), "base_channels"),
])
def test_bad_genome_exits_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "g.json"
    if content is not None:
        path.write_text(content)
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_bad_dataset_and_unsuitable_levels_exit_2(tmp_path, capsys):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    assert main(["evaluate", str(path), "--dataset", str(tmp_path / "nowhere")]) == 2
    assert "no such dataset" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(path), "--dataset", str(tmp_path / "empty")]) == 2
    assert "no images found" in capsys.readouterr().err
    np.savez(tmp_path / "odd.npz", x=np.random.default_rng(0).integers(0, 255, (30, 5, 5), dtype=np.uint8))
    assert main(["evaluate", str(path), "--dataset", str(tmp_path / "odd.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "resolution 5 is not a multiple of 2" in err[-1] and "--resolution" in err[-1]


def test_unknown_fidelity_is_a_usage_error(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    proc = subprocess.run([sys.executable, "-m", "evodiff_ray", "evaluate", str(path), "--fidelity", "warp"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
