"""Progress of ``evodiff-ray search`` while a generation runs (issue 11): plain lines without a
terminal, a live bar on one, nothing with ``--quiet``."""

import io
import subprocess
import time

from conftest import EVODIFF_RAY
from evodiff_ray.cli import main
from evodiff_ray.cli.search import ProgressPrinter


def slow_search(runs_dir, *extra):
    # 4 candidates of 0.8 s each: a generation takes over 3 s
    return ["search", "--problem", "synthetic", "-O", "mean_ms=800", "--pop", "4", "--generations", "1",
            "--backend", "local", "--runs-dir", str(runs_dir), "--no-cache", "--no-tracking", *extra]


def test_plain_lines_appear_before_the_first_generation_ends(runs_dir):
    """Through the real entry point with stdout a pipe (as in ``ray job logs``): the first
    evaluation's line arrives seconds before the generation's line."""
    proc = subprocess.Popen([EVODIFF_RAY, *slow_search(runs_dir, "--search-id", "p1")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[tuple[float, str]] = []
    for line in proc.stdout:
        seen.append((time.monotonic(), line.rstrip("\n")))
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    evals = [(t, line) for t, line in seen if line.startswith("  [gen 1] ")]
    gen = [(t, line) for t, line in seen if line.startswith("[gen 1] evals 4")]
    assert evals and gen, [line for _, line in seen]
    first_t, first = evals[0]
    assert "1/4 done" in first and "in flight" in first and "best f1=" in first and "ETA" in first
    assert gen[0][0] - first_t > 1.5          # it came while 3 evaluations were still to run
    assert "\r" not in "".join(line for _, line in seen)   # no bar drawn into a log


def test_plain_lines_are_throttled_and_quiet_silences(runs_dir, capsys):
    assert main(["search", "--problem", "zdt1", "--pop", "8", "--generations", "2", "--backend", "local",
                 "--runs-dir", str(runs_dir), "--no-cache", "--no-tracking", "--search-id", "p2"]) == 0
    out = capsys.readouterr().out
    per_eval = [line for line in out.splitlines() if line.startswith("  [gen ")]
    assert len(per_eval) == 1             # 16 fast evaluations: one line, then at most one per 10 s
    assert main(slow_search(runs_dir, "--search-id", "p3", "--quiet")) == 0
    assert "[gen" not in capsys.readouterr().out


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_live_bar(runs_dir):
    from evodiff_ray.config import load_config
    from evodiff_ray.search import search

    out = _Terminal()
    config = load_config(None, None, {"problem": "synthetic", "problem_options": {"mean_ms": 50}, "pop_size": 4,
                                      "generations": 2, "backend": "local", "runs_dir": str(runs_dir),
                                      "no_cache": True, "no_tracking": True, "search_id": "p4"})
    search(config, trackers=[ProgressPrinter(config.mode, out=out)])
    text = out.getvalue()
    assert "gen 1" in text and "4/4" in text and "eval" in text and "best f1=" in text  # the bar, drawn
    assert "[gen 2] evals 8" in text                                                   # batch lines still come
