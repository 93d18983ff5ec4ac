"""A test problem that logs every evaluation on the evaluator's side, and can stop its own process.

``make(log_path, ...)`` builds a two-objective ZDT1-like problem whose ``evaluate`` appends
the candidate's key to ``log_path`` (O_APPEND, so several processes can share one file):
the log is the ground truth of what was evaluated, wherever the evaluation ran. Options:

* ``delay_s``: seconds each evaluation takes (so that searches overlap).
* ``interrupt_at``: raise ``KeyboardInterrupt`` (a Ctrl-C) instead of the evaluation that
  would be the log's ``interrupt_at + 1``-th line.
* ``kill_at``: SIGKILL this process as soon as the search tells a batch (it computes the
  population's diversity) with at least ``kill_at`` evaluations logged: the batch was
  evaluated, and the process dies before anything else happens.

Both stops happen once: they leave ``<log_path>.stopped`` behind, and a resumed search
(same options) runs through.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from evodiff_ray.core.fitness import Fitness
from evodiff_ray.problems.base import SearchProblem


def evaluated_keys(log_path) -> list[str]:
    """The keys in an evaluation log, one per evaluation, in order."""
    path = Path(log_path)
    return path.read_text().split() if path.exists() else []


class LoggedProblem(SearchProblem):
    name = "logged"
    objective_names = ("f1", "f2")

    def __init__(self, log_path: str, delay_s: float = 0.0, interrupt_at: int | None = None,
                 kill_at: int | None = None, n_var: int = 4):
        self.log_path = log_path
        self.delay_s = delay_s
        self.interrupt_at = interrupt_at
        self.kill_at = kill_at
        self.n_var = n_var

    def pymoo_problem(self):
        from pymoo.core.problem import Problem

        return Problem(n_var=self.n_var, n_obj=2, xl=0.0, xu=1.0)

    def to_json(self, x):
        return [float(v) for v in x]

    def from_json(self, data):
        return [float(v) for v in data]

    def _stop_once(self) -> bool:
        try:
            fd = os.open(f"{self.log_path}.stopped", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def diversity(self, xs):
        if self.kill_at is not None and len(evaluated_keys(self.log_path)) >= self.kill_at and self._stop_once():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().diversity(xs)

    def evaluate(self, x) -> Fitness:
        if (self.interrupt_at is not None and len(evaluated_keys(self.log_path)) == self.interrupt_at
                and self._stop_once()):
            raise KeyboardInterrupt
        time.sleep(self.delay_s)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (self.key(x) + "\n").encode())
        finally:
            os.close(fd)
        g = 1.0 + 9.0 * sum(x[1:]) / (len(x) - 1)
        return Fitness(objectives={"f1": x[0], "f2": g * (1.0 - (x[0] / g) ** 0.5)},
                       measured_on={"node": os.uname().nodename, "device": "cpu", "predicted": []})


def make(log_path: str, delay_s: float = 0.0, interrupt_at: int | None = None, kill_at: int | None = None,
         n_var: int = 4) -> LoggedProblem:
    return LoggedProblem(log_path, delay_s, interrupt_at, kill_at, n_var)
