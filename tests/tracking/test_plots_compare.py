"""Plots are valid images; compare uses a common reference point."""

import matplotlib.image as mpimg
import pytest

from evodiff_ray.core.errors import UsageError
from evodiff_ray.tracking.compare import common_reference_point, compare_fronts, format_comparison
from evodiff_ray.tracking.plots import front_overlay, hypervolume_plot, pareto_scatter

NAMES = ["quality_fd", "latency_ms", "memory_mb"]


def _rec(q, l, m, key="k"):
    return {"key": key, "fitness": {"objectives": {"quality_fd": q, "latency_ms": l, "memory_mb": m},
                                    "feasible": True}}


def _front(sid, pts, evals=10):
    return {"search_id": sid, "status": "finished", "generation": 3, "evaluations": evals,
            "cache": {"hits": 0, "misses": evals, "waited": 0}, "objectives": NAMES,
            "points": [{"key": f"{sid}{i}", "objectives": dict(zip(NAMES, p))} for i, p in enumerate(pts)]}


def _is_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100


def test_plots_write_valid_pngs(tmp_path):
    evaluated = [_rec(100 - i, 10 + i, 5 + (i % 3), f"k{i}") for i in range(20)] + [_rec(float("inf"), 1, 1)]
    front = evaluated[:5]
    _is_png(pareto_scatter(tmp_path / "p.png", NAMES, evaluated, front,
                           baseline={"quality_fd": 90, "latency_ms": 15, "memory_mb": 6}))
    hist = [{"evaluations": 10 * i, "hypervolume": float(i), "reference_point": [1, 2, 3]} for i in range(1, 6)]
    _is_png(hypervolume_plot(tmp_path / "h.png", hist))
    _is_png(front_overlay(tmp_path / "o.png", NAMES, {"a": front, "b": evaluated[5:9]}))


def test_compare_common_reference_and_dominance():
    a = _front("a", [[1, 1, 1]])
    b = _front("b", [[2, 2, 2]])
    cmp = compare_fronts({"a": a, "b": b})
    assert cmp["reference_point"] == common_reference_point([a, b], NAMES)
    rows = {r["search_id"]: r for r in cmp["rows"]}
    assert rows["a"]["hypervolume"] > rows["b"]["hypervolume"] > 0
    assert rows["a"]["best"]["quality_fd"] == 1
    text = format_comparison(cmp)
    assert "hypervolume reference point" in text and "a " in text


def test_compare_rejects_different_objectives():
    a = _front("a", [[1, 1, 1]])
    b = dict(_front("b", [[1, 1, 1]]), objectives=["f1", "f2", "f3"])
    with pytest.raises(UsageError, match="different objectives"):
        compare_fronts({"a": a, "b": b})


def test_compare_cli_reads_run_dirs_and_writes_the_overlay(tmp_path, capsys):
    import json

    from evodiff_ray.cli import main

    runs = tmp_path / "runs"
    for sid, pts in (("a", [[1, 1, 1], [0.5, 2, 1]]), ("b", [[2, 2, 2]])):
        (runs / sid).mkdir(parents=True)
        (runs / sid / "front.json").write_text(json.dumps(_front(sid, pts)))
    plot = tmp_path / "overlay.png"
    assert main(["compare", "a", "b", "--runs-dir", str(runs), "--plot", str(plot), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["search_id"] for r in out["rows"]] == ["a", "b"] and out["rows"][0]["front_size"] == 2
    _is_png(plot)
    assert main(["compare", "a", "nope", "--runs-dir", str(runs)]) == 2
    assert "no search 'nope'" in capsys.readouterr().err
