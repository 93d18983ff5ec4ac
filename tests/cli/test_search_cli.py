"""``evodiff-ray search`` and ``front`` through the real entry point (in-process and subprocesses)."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import EVODIFF_RAY
from ray_head import start_head, submit_job
from evodiff_ray.cli import main


def quick(runs_dir, *extra):
    return ["search", "--problem", "zdt1", "--pop", "8", "--generations", "3", "--backend", "local",
            "--runs-dir", str(runs_dir), "--no-cache", "--no-tracking", *extra]


def test_search_prints_progress_front_and_location(runs_dir, capsys):
    assert main(quick(runs_dir, "--search-id", "s1")) == 0
    out = capsys.readouterr().out
    assert "[gen 3] evals 24" in out and "search s1 (finished)" in out
    assert f"results: {runs_dir / 's1'}/" in out
    assert main(["front", "s1", "--runs-dir", str(runs_dir), "--format", "json"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert front["status"] == "finished" and front["evaluations"] == 24
    assert main(["front", "--runs-dir", str(runs_dir), "--format", "csv"]) == 0  # no id: most recent
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "key,generation,f1,f2,rung,train_steps,node,device" and len(lines) == 1 + len(front["points"])


@pytest.mark.redis
def test_resume_after_ctrl_c_evaluates_nothing_twice(runs_dir, tmp_path, capsys, monkeypatch):
    """Ctrl-C in the middle of generation 2, then ``--resume``: every candidate is evaluated once.

    The problem logs each evaluation on the evaluator's side. The half-evaluated generation is
    not in the checkpoint, so the resume asks it again; the embedded Redis cache (the default)
    returns the four already evaluated, and only the rest are evaluated.
    """
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "promises"))
    from logged_problem import evaluated_keys

    log = tmp_path / "evaluations.log"
    first = ["search", "--problem", "logged_problem:make", "-O", f"log_path={log}", "-O", "interrupt_at=12",
             "--pop", "8", "--generations", "5", "--backend", "local", "--runs-dir", str(runs_dir),
             "--search-id", "r1", "--no-tracking", "--quiet"]
    assert main(first) == 130                                  # interrupted, as a Ctrl-C exits
    assert "interrupted" in capsys.readouterr().err
    assert len(evaluated_keys(log)) == 12                       # generation 1 and half of generation 2
    assert json.loads((runs_dir / "r1" / "front.json").read_text())["generation"] == 1
    assert main(["search", "--resume", "--search-id", "r1", "--runs-dir", str(runs_dir), "--quiet"]) == 0
    keys = evaluated_keys(log)
    front = json.loads((runs_dir / "r1" / "front.json").read_text())
    assert front["status"] == "finished" and front["generation"] == 5 and front["evaluations"] == 40
    assert len(keys) == len(set(keys)) == 40                    # nothing evaluated twice, nothing lost
    assert front["cache"] == {"hits": 4, "misses": 36, "waited": 0}   # the 4 done before Ctrl-C: cache hits


def test_every_budget_given_applies_and_the_summary_names_the_one_that_ended_it(runs_dir, capsys):
    # the preset's 5 generations end the search although a time budget is given beside them
    assert main(["search", "--problem", "zdt1", "--preset", "quick", "--max-seconds", "2400", "--backend", "local",
                 "--runs-dir", str(runs_dir), "--no-cache", "--no-tracking", "--search-id", "b1"]) == 0
    out = capsys.readouterr().out
    assert "stops at generations=5 or max_seconds=2400 (first reached)" in out
    assert "stopped: generations=5 reached (first of generations=5, max_seconds=2400)" in out
    assert json.loads((runs_dir / "b1" / "front.json").read_text())["generation"] == 5
    # here time runs out long before the preset's 50 generations (64 x 5 ms each, in-process)
    assert main(["search", "--problem", "synthetic", "-O", "mean_ms=5", "--preset", "standard", "--max-seconds", "1",
                 "--backend", "local", "--runs-dir", str(runs_dir), "--no-cache", "--no-tracking", "--quiet",
                 "--search-id", "b2"]) == 0
    out = capsys.readouterr().out
    assert "stopped: max_seconds=1 reached (first of generations=50, max_seconds=1)" in out
    assert 1 <= json.loads((runs_dir / "b2" / "front.json").read_text())["generation"] < 50


def test_search_help_shows_every_flag_with_its_help(capsys):
    from evodiff_ray.config import cli_flags

    with pytest.raises(SystemExit) as e:
        main(["search", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    squeezed = "".join(out.split())
    from evodiff_ray.problems import problem_names

    for flag in cli_flags():
        text = flag.help.replace("{problems}", ", ".join(problem_names()))
        assert all(name in out for name in flag.names) and "".join(text.split()) in squeezed, flag
    # the flag names scripts and the README use stay as they were
    for name in ("--config", "--preset", "--problem", "-O", "--pop", "--offspring", "--generations", "--evaluations",
                 "--max-seconds", "--mode", "--seed", "--backend", "--workers", "--batch-size", "--num-cpus",
                 "--resource", "--label", "--address", "--redis-url", "--no-cache", "--tracking-uri", "--no-tracking",
                 "--experiment", "--search-id", "--resume", "--target", "--fidelity", "--runs-dir", "--quiet"):
        assert f" {name} " in out.replace(",", " ").replace("\n", " "), name


def test_flag_values_reach_the_config(runs_dir):
    from evodiff_ray.cli import build_parser
    from evodiff_ray.cli.search import build_config

    args = build_parser().parse_args([
        "search", "--problem", "synthetic", "-O", "mean_ms=5", "-O", "name=x", "--resource", "apple_silicon=1",
        "--label", "chip=4", "--num-cpus", "2", "--start-timeout", "30", "--no-cache", "--runs-dir", str(runs_dir)])
    c = build_config(args)
    assert c.problem_options == {"mean_ms": 5, "name": "x"}
    assert (c.actor.resources, c.actor.label_selector) == ({"apple_silicon": 1.0}, {"chip": "4"})
    assert (c.actor.num_cpus, c.actor.start_timeout_s, c.no_cache, c.no_tracking) == (2.0, 30.0, True, False)


BAD = [
    (["search", "--problem", "zdt9"], "unknown problem 'zdt9'"),
    (["search", "--pop", "0"], "pop_size must be > 0"),
    (["search", "--generations", "-1"], "generations must be > 0"),
    (["search", "--workers", "0"], "workers must be > 0"),
    (["search", "--mode", "turbo"], "invalid choice"),
    (["search", "--pop", "ten"], "invalid int value"),
    (["search", "--config", "/nonexistent.toml"], "does not exist"),
    (["search", "-O", "colour=red", "--backend", "local"], "bad problem_options"),
    (["search", "--resume"], "--resume needs --search-id"),
    (["search", "--resume", "--search-id", "nope"], "nothing to resume"),
    (["search", "--problem", "synthetic", "-O", "failure_rate=3", "--backend", "local"], "failure_rate"),
    (["search", "--problem", "zdt1", "--fidelity", "quick"], "fidelity is not an option of problem 'zdt1'"),
    (["search", "--problem", "zdt1", "--preset", "huge"], "unknown preset 'huge' for problem 'zdt1'"),
    (["search", "--resource", "apple_silicon=0"], "actor.resources.apple_silicon must be > 0"),
    (["search", "--label", "chip"], "expected KEY=VALUE"),
    (["front", "nope"], "no search 'nope'"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_input_is_one_line_and_exit_2(runs_dir, capsys, argv, message):
    try:
        code = main([*argv, "--runs-dir", str(runs_dir)])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_config_file_in_a_real_process(tmp_path, runs_dir, cli_env):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("pop_size = 8\npopsize = 9\n")
    p = subprocess.run([EVODIFF_RAY, "search", "--config", str(cfg), "--runs-dir", str(runs_dir)],
                       capture_output=True, text=True, env=cli_env, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip() == (f"evodiff-ray: error: {cfg}: unknown config key 'popsize' "
                                f"(known: {', '.join(_field_names())})")


def test_front_is_readable_from_another_process_while_searching(runs_dir, cli_env):
    search = subprocess.Popen(
        [EVODIFF_RAY, "search", "--problem", "synthetic", "-O", "mean_ms=20", "--pop", "8", "--generations", "1000",
         "--backend", "local", "--runs-dir", str(runs_dir), "--search-id", "live", "--quiet",
         "--no-cache", "--no-tracking"],   # killed below: an embedded redis-server would outlive it
        env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: (runs_dir / "live" / "front.json").exists(), search)
        seen = []
        for _ in range(2):
            p = subprocess.run([EVODIFF_RAY, "front", "--runs-dir", str(runs_dir), "--format", "json"],
                               capture_output=True, text=True, env=cli_env, timeout=60)
            assert p.returncode == 0, p.stderr
            seen.append(json.loads(p.stdout))
        assert search.poll() is None  # the search was still running while we read
        assert all(f["search_id"] == "live" and f["status"] == "running" for f in seen)
        assert seen[1]["evaluations"] >= seen[0]["evaluations"] > 0
    finally:
        os.killpg(search.pid, signal.SIGKILL)
        search.wait()


def wait_for(cond, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"process exited early: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _field_names():
    import dataclasses

    from evodiff_ray.config import SearchConfig

    return [f.name for f in dataclasses.fields(SearchConfig)]


@pytest.mark.slow
@pytest.mark.ray
def test_ray_job_submit(tmp_path, cli_env, free_port):
    """A head started with ``ray start``, a search submitted as a Ray job with ``--address``
    (see ``tests/ray_head.py`` for how the test cluster is started and stopped)."""
    head = start_head(cli_env, free_port)
    runs = tmp_path / "runs"
    try:
        job = submit_job(head, [EVODIFF_RAY, "search", "--problem", "synthetic", "--pop", "6", "--generations", "3",
                                "--workers", "2", "--address", head.address, "--runs-dir", str(runs),
                                "--search-id", "job"])
        assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
        assert "search job (finished)" in job.stdout
        p = subprocess.run([EVODIFF_RAY, "front", "job", "--runs-dir", str(runs), "--format", "json"],
                           capture_output=True, text=True, env=cli_env, timeout=60)
        front = json.loads(p.stdout)
        assert front["status"] == "finished" and front["evaluations"] == 18 and front["points"]
    finally:
        head.stop()
