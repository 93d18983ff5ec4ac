"""The images a diffusion search keeps (issue 11): a grid per candidate, the reference, front.png, show."""

import json

import pytest
from PIL import Image

from evodiff_ray.cli import main
from evodiff_ray.config import load_config
from evodiff_ray.search import search

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def tiny(runs_dir, search_id, redis_url, **extra):
    return load_config(overrides={
        "problem": "diffusion", "pop_size": 4, "max_evaluations": 4, "seed": 3, "backend": "local",
        "runs_dir": str(runs_dir), "redis_url": redis_url, "fidelity": "smoke", "search_id": search_id,
        "problem_options": {"fd_samples": 64, "latency_batch": 4, "latency_repeats": 1,
                            "threads": 1},
        **extra,
    })


def test_grids_reference_sheet_show_and_mlflow(runs_dir, redis_server, one_torch_thread, capsys):
    r = search(tiny(runs_dir, "img1", redis_server.url))
    run_dir = r.run_dir
    # every evaluated candidate kept a small PNG; records name it, never carry the bytes
    for rec in r.records:
        extras = rec["fitness"]["extras"]
        assert "samples_png" not in extras
        if rec["fitness"]["feasible"]:
            path = run_dir / extras["samples"]
            assert path.parent.name == "samples" and path.stat().st_size < 8000
            with Image.open(path) as im:
                assert im.format == "PNG" and im.size == (4 * 33 + 1, 4 * 33 + 1)   # 4 x 4 digits, 32 px each
    assert "samples_png" not in "".join(p.read_text() for p in (run_dir / "checkpoint").iterdir())
    # the reference was evaluated (first search with these settings) and heads the sheet
    assert r.reference["source"] == "evaluated" and r.reference["feasible"]
    assert set(r.reference["objectives"]) == {"quality_fd", "latency_ms", "memory_mb"}
    assert r.title.startswith("search img1 · 4 evaluations in") and r.title.endswith("· fidelity smoke")
    sheet = run_dir / "front.png"
    assert r.front_sheet == sheet and sheet.is_file()
    with Image.open(sheet) as im:
        assert im.size[1] > 100 * (1 + len(r.points)) * 0.9          # a row per member and the reference
    # show prints the paths
    assert main(["show", "img1", "--runs-dir", str(runs_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(sheet)
    key = r.points[0]["key"]
    assert main(["show", "img1", key[:10], "--runs-dir", str(runs_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "samples" / f"{key}.png")
    assert main(["show", "img1", "reference", "--runs-dir", str(runs_dir)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{r.reference['key']}.png")
    assert main(["show", "img1", "ffffffffff", "--runs-dir", str(runs_dir)]) == 2
    assert "no sample grid" in capsys.readouterr().err
    # MLflow has the sheet, the front's grids and the reference's
    from mlflow import MlflowClient

    saved = json.loads((run_dir / "mlflow.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{runs_dir / 'mlflow.db'}")
    top = {a.path for a in client.list_artifacts(saved["run_id"])}
    assert {"front.png", "pareto.png", "hypervolume.png", "samples"} <= top
    grids = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(saved["run_id"], "samples")}
    assert {f"{p['key']}.png" for p in r.points} | {"reference.png"} <= grids

    # the next search with the same settings: the reference is a cache hit, and still has its grid
    r2 = search(tiny(runs_dir, "img2", redis_server.url, seed=4))
    assert r2.reference["source"] == "hit" and r2.reference["objectives"] == r.reference["objectives"]
    assert (r2.run_dir / r2.reference["samples"]).read_bytes() == (run_dir / r.reference["samples"]).read_bytes()
    # --no-reference skips it
    r3 = search(tiny(runs_dir, "img3", redis_server.url, seed=5, no_reference=True, no_tracking=True))
    assert r3.reference is None and not (r3.run_dir / "reference.json").exists()
