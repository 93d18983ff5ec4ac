"""Promises of the shared fitness cache, through ``search()`` against real redis-servers:

* two searches running at once (two processes) on one Redis evaluate each shared candidate
  once: the later one waits for the evaluation the other has in flight;
* Redis dying in the middle of a search: the search finishes uncached and says so, writes back
  what it evaluated meanwhile when Redis is back, and nothing is lost.

The problem (``logged_problem.py``) logs every evaluation on the evaluator's side, so
"evaluated once" is counted where the work happens, not where the search reports it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import EVODIFF_RAY
from evodiff_ray.cli.search import ProgressPrinter
from evodiff_ray.config import load_config
from evodiff_ray.search import search

pytestmark = pytest.mark.redis

HERE = str(Path(__file__).resolve().parent)


@pytest.fixture(autouse=True)
def _problem_on_path(monkeypatch):
    monkeypatch.syspath_prepend(HERE)


def cfg(runs_dir, search_id, log, redis_url, delay_s, **kw):
    base = {"problem": "logged_problem:make", "problem_options": {"log_path": str(log), "delay_s": delay_s},
            "pop_size": 6, "generations": 3, "seed": 5, "backend": "local", "runs_dir": str(runs_dir),
            "search_id": search_id, "redis_url": redis_url, "no_tracking": True}
    base.update(kw)
    return load_config(overrides=base)


def wait_until(cond, timeout=60.0, proc=None):
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_second_search_waits_for_the_first_ones_evaluations(redis_server, runs_dir, tmp_path, cli_env):
    from logged_problem import evaluated_keys

    log = tmp_path / "evaluations.log"
    env = {**cli_env, "PYTHONPATH": os.pathsep.join(p for p in (HERE, cli_env.get("PYTHONPATH")) if p)}
    first = subprocess.Popen(
        [EVODIFF_RAY, "search", "--problem", "logged_problem:make", "-O", f"log_path={log}", "-O", "delay_s=0.4",
         "--pop", "6", "--generations", "3", "--seed", "5", "--backend", "local", "--runs-dir", str(runs_dir),
         "--search-id", "first", "--redis-url", redis_server.url, "--no-tracking", "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # the first search has claimed its first generation and is evaluating it (6 x 0.4 s)
        wait_until(lambda: len(evaluated_keys(log)) >= 1, proc=first)
        second = search(cfg(runs_dir, "second", log, redis_server.url, 0.4))
        assert first.wait(timeout=120) == 0, first.stderr.read()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    one = json.loads((runs_dir / "first" / "front.json").read_text())
    two = second.front
    keys = evaluated_keys(log)
    # same seed: both searches ask the same 18 candidates, and each was evaluated once, by one of them
    assert len(keys) == len(set(keys)) == 18
    assert two["cache"]["waited"] > 0                        # the second waited for the first's evaluations
    assert one["cache"]["misses"] + two["cache"]["misses"] == len(keys)
    for front in (one, two):
        assert front["evaluations"] == 18
        assert sum(front["cache"].values()) == 18
    # same seed, same fitness values: the same front, whoever evaluated what
    assert [(p["key"], p["objectives"]) for p in one["points"]] == [(p["key"], p["objectives"]) for p in two["points"]]


def test_redis_dying_mid_search(tmp_path, runs_dir):
    """SIGKILL the redis-server in generation 2, start it again in generation 3 (same port, same AOF)."""
    import redis

    from evodiff_ray.cache.local_redis import LocalRedis
    from logged_problem import evaluated_keys

    log = tmp_path / "evaluations.log"
    data = tmp_path / "redis"
    server = LocalRedis(data).start(reuse=False)
    revived: list[LocalRedis] = []

    def chaos():
        wait_until(lambda: len(evaluated_keys(log)) >= 9)     # mid generation 2 (6 per generation)
        server.kill()
        wait_until(lambda: len(evaluated_keys(log)) >= 15)    # mid generation 3
        revived.append(LocalRedis(data, port=server.port).start(reuse=False))

    killer = threading.Thread(target=chaos, daemon=True)
    killer.start()
    printed = io.StringIO()      # what `evodiff-ray search` prints per generation
    try:
        result = search(cfg(runs_dir, "survivor", log, server.url, 0.05, generations=8),
                        trackers=[ProgressPrinter("generational", out=printed)])
        killer.join(timeout=30)
        assert revived, "the redis-server was not restarted during the search"
        # nothing crashed, nothing was lost: every candidate was evaluated exactly once
        keys = evaluated_keys(log)
        assert result.front["status"] == "finished" and result.front["evaluations"] == 48
        assert len(keys) == len(set(keys)) == 48 == result.front["cache"]["misses"]
        # the stats say Redis was down, and that it came back
        states = [(h.get("cache_service") or {}).get("redis") for h in result.history]
        assert states[0] == "up" and "down" in states and states[-1] == "up", states
        assert result.history[-1]["cache_service"]["uncached"] > 0
        lines = printed.getvalue().splitlines()
        assert sum("(Redis down: uncached)" in line for line in lines) == states.count("down") > 0
        # what was evaluated while Redis was down was written back when it came back
        client = redis.Redis(host="127.0.0.1", port=server.port)
        assert len(list(client.scan_iter("evodiff:fit:*"))) == 48
        client.close()
        again = search(cfg(runs_dir, "again", log, server.url, 0.05, generations=8))
        assert again.front["cache"] == {"hits": 48, "misses": 0, "waited": 0}
        assert len(evaluated_keys(log)) == 48
    finally:
        server.kill()
        for s in revived:
            s.stop(force=True)
            s.kill()
