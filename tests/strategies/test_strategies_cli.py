"""Every strategy through ``evodiff-ray search``: runs, resumes, stops on a plateau, and its errors."""

import json
import sys
import textwrap

import pytest

from evodiff_ray.cli import main
from evodiff_ray.search.loop import DETERMINISTIC_STATS

STRATEGIES = [
    ("nsga2", []),
    ("random", []),
    pytest.param("optuna", ["--strategy-option", "sampler=nsga2"], id="optuna-nsga2"),
    pytest.param("optuna", ["--strategy-option", "sampler=tpe"], id="optuna-tpe"),
]


def search_argv(runs_dir, search_id, strategy, extra, generations, problem="zdt1"):
    return ["search", "--problem", problem, "--pop", "8", "--generations", str(generations), "--seed", "3",
            "--backend", "local", "--runs-dir", str(runs_dir), "--search-id", search_id, "--no-cache",
            "--no-tracking", "--quiet", "--strategy", strategy, *extra]


def saved(run_dir):
    front = json.loads((run_dir / "front.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    return ([(p["key"], p["objectives"]) for p in front["points"]], front["evaluations"],
            [{k: h[k] for k in DETERMINISTIC_STATS} for h in history])


@pytest.mark.parametrize("strategy, extra", STRATEGIES)
def test_strategy_runs_and_resumes_to_the_same_result(runs_dir, strategy, extra, capsys):
    if strategy == "optuna":
        pytest.importorskip("optuna")
    assert main(search_argv(runs_dir, "full", strategy, extra, 5)) == 0
    out = capsys.readouterr().out
    assert "stopped: generations=5 reached" in out
    front = json.loads((runs_dir / "full" / "front.json").read_text())
    assert front["status"] == "finished" and front["evaluations"] == 40 and front["points"]
    config = json.loads((runs_dir / "full" / "config.json").read_text())
    assert config["strategy"] == strategy
    assert main(search_argv(runs_dir, "part", strategy, extra, 2)) == 0
    assert main(["search", "--resume", "--search-id", "part", "--runs-dir", str(runs_dir), "--generations", "5",
                 "--quiet"]) == 0
    assert saved(runs_dir / "part") == saved(runs_dir / "full")


def test_resume_cannot_change_the_strategy(runs_dir, capsys):
    assert main(search_argv(runs_dir, "s", "random", [], 2)) == 0
    assert main(["search", "--resume", "--search-id", "s", "--runs-dir", str(runs_dir), "--strategy", "nsga2"]) == 2
    assert "--resume cannot change 'strategy'" in capsys.readouterr().err


def test_plateau_stops_the_search_and_says_so(runs_dir, capsys):
    argv = search_argv(runs_dir, "p", "random", ["--plateau", "3"], 500, problem="synthetic")
    assert main([a for a in argv if a != "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "stopped: hypervolume plateau: no gain in 3 generations (plateau_generations=3)" in out
    history = json.loads((runs_dir / "p" / "history.json").read_text())
    hv = [h["hypervolume"] for h in history]
    assert 4 <= len(hv) < 500 and hv[-1] > 0 and hv[-1] == hv[-4] and hv[-2] > 0


def one_line_error(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_unknown_strategy_is_a_usage_error(runs_dir, capsys):
    one_line_error(capsys, search_argv(runs_dir, "u", "annealing", [], 2),
                   "unknown strategy 'annealing'; choose one of nsga2, optuna, random")
    assert not (runs_dir / "u").exists()


def test_missing_optuna_names_the_extra(runs_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)   # as if it were not installed
    one_line_error(capsys, search_argv(runs_dir, "o", "optuna", [], 2),
                   "strategy 'optuna' needs Optuna, an optional extra: pip install 'evodiff-ray[optuna]'")


def test_user_strategy_and_unfit_strategies(runs_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "my_strategies.py").write_text(textwrap.dedent("""
        import numpy as np
        from pymoo.core.problem import Problem

        from evodiff_ray.core.fitness import Fitness
        from evodiff_ray.problems.base import SearchProblem
        from evodiff_ray.strategies.random import RandomStrategy

        class Halving(RandomStrategy):
            '''Random search that asks half as many after the first ask.'''

            def __init__(self, problem, *, pop_size, n_offsprings=None, seed=1, factor=2):
                super().__init__(problem, pop_size=pop_size, n_offsprings=pop_size // factor, seed=seed)

        def not_a_strategy(problem, **kwargs):
            return 42

        class Words(SearchProblem):
            '''A problem over strings: no bounds, no genome space.'''
            name = "words"
            objective_names = ("f",)

            def pymoo_problem(self):
                return Problem(n_var=1, n_obj=1, vtype=object)

            def to_json(self, x):
                return str(x)

            def from_json(self, data):
                return str(data)

            def evaluate(self, x):
                return Fitness({"f": float(len(x))})
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(search_argv(runs_dir, "h", "my_strategies:Halving", ["--strategy-option", "factor=4"], 3)) == 0
    assert json.loads((runs_dir / "h" / "front.json").read_text())["evaluations"] == 8 + 2 + 2
    one_line_error(capsys, search_argv(runs_dir, "n", "my_strategies:not_a_strategy", [], 2),
                   "factory returned int, not a Strategy")
    one_line_error(capsys, search_argv(runs_dir, "b", "my_strategies:Halving", ["--strategy-option", "size=1"], 2),
                   "bad strategy_options")
    for strategy in ("random", "optuna"):
        if strategy == "optuna":
            pytest.importorskip("optuna")
        one_line_error(capsys, search_argv(runs_dir, f"w-{strategy}", strategy, [], 2,
                                           problem="my_strategies:Words"),
                       f"strategy '{strategy}' does not fit problem 'words'")


TINY_SPACE = ('{"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4, '
              '"sampler_steps": [2, 4], "time_emb_dims": [16], "heads": [1, 2]}')


@pytest.mark.slow
@pytest.mark.parametrize("strategy, extra", STRATEGIES)
def test_strategy_runs_a_tiny_diffusion_search(runs_dir, strategy, extra, one_torch_thread):
    if strategy == "optuna":
        pytest.importorskip("optuna")
    argv = ["search", "--problem", "diffusion", "--fidelity", "smoke", "--pop", "3", "--generations", "2",
            "--seed", "1", "--backend", "local", "--runs-dir", str(runs_dir), "--search-id", "d", "--no-cache",
            "--no-tracking", "--quiet", "--strategy", strategy, *extra, "-O", "fd_samples=64",
            "-O", "latency_batch=4", "-O", "latency_repeats=1", "-O", "threads=1", "-O", f"space={TINY_SPACE}"]
    assert main(argv) == 0
    front = json.loads((runs_dir / "d" / "front.json").read_text())
    assert front["evaluations"] == 6 and front["points"]
    for p in front["points"]:
        assert p["genome"]["parameters"]["base_channels"] in (4, 8)
        assert p["objectives"]["quality_fd"] > 0 and p["objectives"]["latency_ms"] > 0
