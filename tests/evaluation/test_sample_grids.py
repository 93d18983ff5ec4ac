"""SampleGrids: a travelling grid becomes a file in the run dir, and only its name stays in the record."""

import numpy as np

from evodiff_ray.core.evaluator import Evaluator, Outcome, Task
from evodiff_ray.core.fitness import Fitness
from evodiff_ray.evaluation.local import LocalEvaluator
from evodiff_ray.evaluation.samples import SampleGrids, grid_path
from evodiff_ray.metrics.samples import encode, grid_png
from evodiff_ray.problems import make_problem


class _Drawing:
    """A real problem (zdt1) whose fitness also carries a grid, as the diffusion bench's does."""

    def __init__(self):
        self.problem = make_problem("zdt1", {})

    def __getattr__(self, name):
        return getattr(self.problem, name)

    def evaluate(self, x):
        fit = self.problem.evaluate(x)
        level = float(np.asarray(x)[0]) * 2 - 1
        fit.extras["samples_png"] = encode(grid_png(np.full((16, 1, 8, 8), level)))
        return fit


def test_grids_go_to_files_and_records_keep_their_names(tmp_path):
    problem = _Drawing()
    ev = SampleGrids(LocalEvaluator(problem), tmp_path)
    tasks = [Task(i, f"k{i}", [i / 4] + [0.0] * 29) for i in range(3)]
    out = ev.evaluate(tasks)
    for t, o in zip(tasks, out):
        assert "samples_png" not in o.fitness.extras
        assert o.fitness.extras["samples"] == f"samples/{t.key}.png"
        assert grid_path(tmp_path, t.key).read_bytes().startswith(b"\x89PNG")
        assert o.fitness.objectives == problem.problem.evaluate(problem.problem.from_json(t.x)).objectives


class _Replay(Evaluator):
    """Hands back fixed outcomes (as a cache would, with whatever it stored)."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)

    capacity = 1
    in_flight = 0

    def submit(self, tasks):
        pass

    def poll(self, timeout=None):
        out, self.outcomes = self.outcomes, []
        return out


def test_a_grid_that_is_not_a_png_is_dropped_and_a_key_cannot_escape(tmp_path):
    bad = Fitness({"f": 1.0}, extras={"samples_png": encode(b"#!/bin/sh\n"), "params": 3})
    sneaky = Fitness({"f": 1.0}, extras={"samples_png": encode(grid_png(np.zeros((1, 1, 8, 8))))})
    out = SampleGrids(_Replay([Outcome(Task(0, "k0", None), bad, "hit"),
                               Outcome(Task(1, "../../etc/x", None), sneaky, "hit")]), tmp_path).poll()
    assert out[0].fitness.extras == {"params": 3} and not (tmp_path / "samples" / "k0.png").exists()
    assert out[1].fitness.extras["samples"] == "samples/.._.._etc_x.png"
    assert (tmp_path / "samples" / ".._.._etc_x.png").is_file()
