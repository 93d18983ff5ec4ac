"""Multi-fidelity under failure, against the real services: an evaluator actor killed while it
continues a candidate, a search driver killed and resumed, and asynchronous promotion on Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import EVODIFF_RAY
from evodiff_ray.core.evaluator import Evaluator, Task
from evodiff_ray.evaluation.rungs import SuccessiveHalving
from evodiff_ray.problems.diffusion import DiffusionProblem, baseline_genome

# the tiny settings of tests/problems/test_multi_fidelity.py
TINY_SPACE = {"base_channels": [4, 8], "channel_mults": [1, 2], "max_levels": 2, "max_depth": 4,
              "sampler_steps": [2, 4], "time_emb_dims": [16], "heads": [1, 2]}
OPTIONS = {"fd_samples": 64, "latency_batch": 4, "latency_repeats": 1, "threads": 1, "seed": 3}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busiest(pids: list[int], window_s: float = 0.6) -> tuple[int, dict[int, float]]:
    """The pid that used the most CPU over ``window_s``, and every pid's CPU seconds in it."""
    before = {p: _cpu_seconds(p) for p in pids}
    time.sleep(window_s)
    used = {p: _cpu_seconds(p) - before[p] for p in pids}
    return max(used, key=used.get), used


def _copy_feature_net(src: Path, dst: Path) -> None:
    """Share the trained feature network (not the trunks) so that no actor trains it again."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.pt"):
        shutil.copyfile(f, dst / f.name)


class _Spy(Evaluator):
    """The real evaluator, passed through; remembers which rungs were submitted."""

    def __init__(self, inner):
        self.inner = inner
        self.submitted: list[int | None] = []

    capacity = property(lambda self: self.inner.capacity)
    in_flight = property(lambda self: self.inner.in_flight)

    def submit(self, tasks):
        self.submitted += [t.rung for t in tasks]
        self.inner.submit(tasks)

    def poll(self, timeout=None):
        return self.inner.poll(timeout)

    def stats(self):
        return self.inner.stats()


# ------------------------------------------------------------- 1. an actor killed mid-continuation

@pytest.mark.ray
@pytest.mark.slow
def test_an_actor_killed_mid_continuation_is_continued_elsewhere_from_the_stored_rung(ray_runtime, tmp_path):
    """SIGKILL the actor training rung 2 of a candidate that continues from rung 1's stored
    trunk: the pool retries the task on the other actor, which continues from the stored
    rung 1 (not from scratch) and gets exactly the quality of training straight through."""
    from evodiff_ray.evaluation.pool import EvaluatorPool

    rungs = [0.5, 1, 4]            # smoke: 20, 40 and 160 steps
    g = baseline_genome()

    # straight through to rung 2 in this process, in a cache dir holding no trunks
    straight_dir = tmp_path / "straight"
    straight = DiffusionProblem(fidelity="smoke", rungs=rungs, cache_dir=str(straight_dir), **OPTIONS)
    expected = straight.evaluate_rung(g, 2)
    recipe = straight.settings.rung_recipe
    assert expected.feasible and expected.extras["continued_from_step"] == 0

    cache_dir = tmp_path / "shared"
    _copy_feature_net(straight_dir, cache_dir)
    options = {"fidelity": "smoke", "rungs": rungs, "cache_dir": str(cache_dir), **OPTIONS}
    trunks = cache_dir / "trunks"
    with EvaluatorPool("diffusion", options, workers=2, max_attempts=2, search_id="mf-kill",
                       objective_names=straight.objective_names) as pool:
        spy = _Spy(pool)
        sh = SuccessiveHalving(spy, rungs=len(rungs), objective_names=straight.objective_names, eta=3)
        sh.submit([Task(0, g.key(), straight.to_json(g))])
        killed, outcomes = None, []
        deadline = time.monotonic() + 240
        while not outcomes:
            assert time.monotonic() < deadline, f"no outcome; submitted rungs {spy.submitted}"
            outcomes = sh.poll(timeout=0.05)
            if killed is None and 2 in spy.submitted:
                # rung 1's result is in and rung 2 went to an actor: it loads rung 1's stored
                # trunk and trains 108 more trunk steps; the busy actor is the one training it
                assert len(list(trunks.rglob("*.r1.pt"))) == 1 and not list(trunks.rglob("*.r2.pt"))
                pids = [a["pid"] for a in pool.actor_info()]
                killed, used = _busiest(pids)
                others = [v for p, v in used.items() if p != killed]
                assert used[killed] > max(0.05, 2 * max(others)), f"which actor trains? CPU seconds {used}"
                assert not list(trunks.rglob("*.r2.pt")), "rung 2 finished before the kill (too fast)"
                os.kill(killed, signal.SIGKILL)
        stats = pool.stats()

    (out,) = outcomes
    fit = out.fitness
    assert killed is not None and stats["deaths"] == 1 and stats["gave_up"] == 0
    assert spy.submitted == [-1, 0, 1, 2]                    # the retry is the pool's, not a new submit
    assert fit.feasible, fit.reason
    assert fit.extras["rung"] == 2 and fit.extras["train_steps"] == recipe.budget(2)
    # continued from the stored rung 1 on the surviving actor, never restarted
    assert fit.extras["continued_from_step"] == recipe.trunk_steps(1) > 0
    assert fit.objectives["quality_fd"] == expected.objectives["quality_fd"]
    # what this search paid: each rung once, the killed attempt's lost work aside
    assert fit.extras["train_steps_spent"] == recipe.trunk_steps(2) + sum(recipe.decay_steps(r) for r in range(3))
    assert len(list(trunks.rglob("*.r2.pt"))) == 1


# ------------------------------------------------------ 2. a driver killed and resumed, training once

KILL_RUNGS = [1, 4, 16]            # smoke: 40, 160 and 640 steps


def _search_argv(runs_dir: Path, cache_dir: Path) -> list[str]:
    argv = [EVODIFF_RAY, "search", "--problem", "diffusion", "--fidelity", "smoke",
            "--rungs", ",".join(map(str, KILL_RUNGS)), "--pop", "4", "--generations", "3", "--seed", "3",
            "--backend", "local", "--runs-dir", str(runs_dir), "--search-id", "mf", "--no-tracking", "--quiet"]
    for k, v in {**OPTIONS, "space": TINY_SPACE, "cache_dir": str(cache_dir)}.items():
        argv += ["-O", f"{k}={json.dumps(v)}"]
    return argv


def _told(run_dir: Path) -> list[dict]:
    from evodiff_ray.search.checkpoint import Checkpoint

    try:
        events = Checkpoint(run_dir / "checkpoint").load().events
    except Exception:  # noqa: BLE001 - not written yet
        return []
    return [r for e in events if e["op"] == "tell" for r in e["records"]]


def _trunks(cache_dir: Path) -> dict[Path, tuple[int, int]]:
    """Every stored trunk, with its inode and mtime (a rewrite changes both: temp file + rename)."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (cache_dir / "trunks").rglob("*.pt")}


def _fitness_entries(url: str) -> dict[str, str]:
    import redis

    with redis.Redis.from_url(url) as client:
        return {k.decode(): client.get(k).decode() for k in client.scan_iter("evodiff:fit:*")}


def _wait_for_kill_point(victim, run_dir: Path, cache_dir: Path, err: Path, limit_s: float = 180) -> None:
    """Return the moment a trunk of rung >= 1 appears after generation 1 was told (or, failing
    that, any new trunk once generation 2 is told): the call that stored it is then in its
    decay branch, with its result not yet cached."""
    deadline = time.monotonic() + limit_s
    seen: dict[int, set[str]] = {}
    gens, i = 0, 0
    while True:
        if i % 25 == 0:        # the checkpoint now and then; the trunk store closely
            assert victim.poll() is None, f"finished before the kill point: {err.read_text()}"
            assert time.monotonic() < deadline, f"no kill point within {limit_s} s"
            gens = len(_told(run_dir)) // 4
        i += 1
        if gens >= 1:
            files = {p.name for p in (cache_dir / "trunks").rglob("*.pt")}
            for g in range(1, gens + 1):
                seen.setdefault(g, files)
            if any(not n.endswith(".r0.pt") for n in files - seen[1]) or (gens >= 2 and files - seen[2]):
                return
        time.sleep(0.002)


def _rung_key(problem, key: str, rung: int) -> str:
    """The fitness-cache key of ``key``'s result at ``rung`` (as the search's cache computes it)."""
    from evodiff_ray.core.key import cache_key

    return cache_key(Task(0, key, None, rung).cache_key, problem.rung_settings(rung))


@pytest.mark.redis
@pytest.mark.slow
def test_a_killed_and_resumed_multi_fidelity_search_trains_nothing_twice(runs_dir, tmp_path, cli_env):
    """SIGKILL the driver of a multi-fidelity search (embedded Redis cache, local backend) while
    it trains the second generation, then ``--resume`` it.

    What is counted is evaluator-side: the Redis fitness cache holds one entry per completed
    trained rung of a genome, with the steps that call trained (``train_steps_spent``) and the
    step it continued from; the trunk store holds one file per (genome, rung). Asserted:

    * every (genome, rung) measured before the kill keeps its cache entry byte for byte (a hit
      afterwards, never measured again), and no trunk stored before the kill is written again;
    * every trained rung, before the kill and after it, continued from the trunk of the rung
      below (or from its own, stored by the call the kill interrupted), never from scratch;
      some rung measured after the kill continued from a trunk stored before it;
    * the resumed search took back the claims its killed run held (no stale takeovers);
    * per genome, over both runs, the completed calls' ``train_steps_spent`` plus the trunk
      steps stored by the call in flight at the kill add up to exactly
      ``trunk_steps(top rung) + sum(decay_steps(r))``: each trunk step and each rung's decay
      branch trained once.

    So the only training done twice is the part of the call in flight at the kill that it had
    not stored. The local backend runs one call at a time, so that is one call: at most one
    rung's budget (``budget(2) = 640`` steps here). The kill is timed as a trunk file appears,
    so that call has usually stored its trunk and was in its decay branch; it is then the one
    (genome, rung) whose trunk was stored but whose result was not cached, and after the
    resume it continues from that trunk, repeating only ``decay_steps(rung)`` steps (4, 16 or
    64): the bound asserted for it.
    """
    from evodiff_ray.cache.local_redis import LocalRedis
    from evodiff_ray.core.key import evaluation_key
    from evodiff_ray.search.services import REDIS_DIR

    cache_dir, run_dir, redis_dir = tmp_path / "cache", runs_dir / "mf", runs_dir / REDIS_DIR
    cache_dir.mkdir()
    problem = DiffusionProblem(fidelity="smoke", rungs=KILL_RUNGS, space=TINY_SPACE, cache_dir=str(cache_dir),
                               **OPTIONS)
    recipe = problem.settings.rung_recipe
    try:
        t0 = time.monotonic()
        with open(tmp_path / "victim.err", "wb") as err:
            victim = subprocess.Popen(_search_argv(runs_dir, cache_dir), env=cli_env, stdout=subprocess.DEVNULL,
                                      stderr=err, start_new_session=True)
            try:
                _wait_for_kill_point(victim, run_dir, cache_dir, tmp_path / "victim.err")
            finally:
                victim.send_signal(signal.SIGKILL)
                victim.wait()
        killed_s = time.monotonic() - t0
        told1 = _told(run_dir)
        assert 4 <= len(told1) < 12                                        # really interrupted
        trunks1 = _trunks(cache_dir)
        server = LocalRedis.running(redis_dir)                              # it outlives its driver
        assert server is not None
        entries1 = _fitness_entries(server.url)

        t1 = time.monotonic()
        resumed = subprocess.run([EVODIFF_RAY, "search", "--resume", "--search-id", "mf", "--runs-dir",
                                  str(runs_dir), "--quiet"], env=cli_env, capture_output=True, text=True, timeout=300)
        resume_s = time.monotonic() - t1
        assert resumed.returncode == 0, resumed.stderr
        front = json.loads((run_dir / "front.json").read_text())
        assert front["status"] == "finished" and front["evaluations"] == 12
        told = _told(run_dir)
        assert told[: len(told1)] == told1                                  # the first run's tells stand
        # the resumed search took back the claims its killed run held, instead of waiting for
        # them to expire (a minute) and taking them over as another search's
        history = json.loads((run_dir / "history.json").read_text())
        assert all(h["cache_service"]["stale_takeovers"] == 0 for h in history[len(told1) // 4:])
        assert LocalRedis.running(redis_dir) is None                        # the resumed search stopped it
        with LocalRedis(redis_dir) as server:                              # ... and its AOF kept everything
            entries = _fitness_entries(server.url)
    finally:
        left = LocalRedis.running(redis_dir)
        if left is not None:
            left.stop(force=True)

    # every (genome, rung) measured before the kill: a hit afterwards, not measured again
    assert {k: entries.get(k) for k in entries1} == entries1
    # no stored trunk trained again (a rewrite is a new file: new inode, new mtime)
    assert {p: v for p, v in _trunks(cache_dir).items() if p in trunks1} == trunks1

    genomes = {r["key"] for r in told}
    trained_once = 0          # trunk steps and decay branches, each trained exactly once
    orphans = []              # (genome, rung): trunk stored before the kill, its result not cached
    continued = []            # (rung, stored rung it continued from) of calls measured after the kill
    for key in genomes:
        trunk_key = evaluation_key(key, problem.rung_settings(0))
        stored = {r for r in range(len(KILL_RUNGS))
                  if cache_dir / "trunks" / trunk_key[:2] / f"{trunk_key}.r{r}.pt" in trunks1}
        calls = {}
        for rung in range(len(KILL_RUNGS)):
            raw = entries.get(_rung_key(problem, key, rung))
            if raw is not None:
                calls[rung] = json.loads(raw)["extras"]
        assert sorted(calls) == list(range(len(calls)))                     # rungs climbed one by one
        mine = [r for r in stored if _rung_key(problem, key, r) not in entries1]
        orphans += [(key, r) for r in mine]
        # the trunk steps the killed call trained and stored: done once, though no entry shows them
        saved = sum(recipe.trunk_steps(r) - (recipe.trunk_steps(r - 1) if r else 0) for r in mine)
        if not calls:
            assert not mine
            continue                                                        # probed only
        spent = sum(c["train_steps_spent"] for c in calls.values())
        top = max(calls)
        assert spent + saved == recipe.trunk_steps(top) + sum(recipe.decay_steps(r) for r in calls), (key, calls)
        trained_once += spent + saved
        for rung, c in calls.items():
            # every call continued from the trunk of the rung below (its own, when the killed call
            # had stored it), before the kill and after it: none started again from scratch
            start = recipe.trunk_steps(rung) if rung in mine else recipe.trunk_steps(rung - 1) if rung else 0
            assert c["continued_from_step"] == start, (key, rung, c)
            below = [r for r in stored if r <= rung]
            if _rung_key(problem, key, rung) not in entries1 and below:
                continued.append((rung, max(below)))       # after the kill, on a trunk from before it
    # one call at a time (local backend): at most the one in flight at the kill stored its trunk
    # without its result; its (genome, rung) then repeated only its decay branch
    assert len(orphans) <= 1
    assert continued, "nothing measured after the kill continued from a trunk stored before it"
    for key, rung in orphans:
        extras = json.loads(entries[_rung_key(problem, key, rung)])["extras"]
        assert extras["continued_from_step"] == recipe.trunk_steps(rung)
        assert extras["train_steps_spent"] == recipe.decay_steps(rung)
    # what the records say this search paid never exceeds the training done once
    paid = sum(r["fitness"]["extras"].get("train_steps_spent") or 0 for r in told)
    assert 0 < paid <= trained_once
    print(f"killed after {killed_s:.1f} s with {len(told1)} told; resumed in {resume_s:.1f} s; "
          f"continued after the kill: {continued}; in flight at the kill: {orphans}; "
          f"trained once {trained_once} steps, records paid {paid}")


# ------------------------------------------------------------------ 3. asynchronous promotion on Ray

@pytest.mark.ray
@pytest.mark.redis
@pytest.mark.slow
def test_an_async_multi_fidelity_search_on_ray_spends_its_budget_and_promotes(ray_runtime, redis_server, runs_dir,
                                                                               tmp_path):
    """Async mode, two actors, per-rung cache: every evaluation of the budget is told, each
    candidate at one rung; promotion happens without a generation barrier (ASHA-like)."""
    from evodiff_ray.config import load_config
    from evodiff_ray.search import search

    cache_dir = tmp_path / "cache"
    DiffusionProblem(fidelity="smoke", cache_dir=str(cache_dir), **OPTIONS).setup()   # the feature net, once
    config = load_config(overrides={
        "problem": "diffusion", "mode": "async", "pop_size": 4, "max_evaluations": 10, "seed": 2,
        "backend": "ray", "workers": 2, "runs_dir": str(runs_dir), "redis_url": redis_server.url,
        "no_tracking": True, "fidelity": "smoke", "rungs": "0.5,1,2", "eta": 2, "search_id": "mf-async",
        "problem_options": {**OPTIONS, "space": TINY_SPACE, "cache_dir": str(cache_dir)},
    })
    result = search(config)

    assert result.stop_reason.startswith("max_evaluations") and len(result.records) == 10
    assert len({r["ordinal"] for r in result.records}) == 10
    extras = [r["fitness"]["extras"] for r in result.records]
    trained = [e for e, r in zip(extras, result.records) if r["fitness"]["feasible"]]
    assert trained and all(e["rung"] >= 0 and e["train_steps"] > 0 for e in trained)
    assert max(e["rung"] for e in trained) >= 1, "no candidate was promoted"
    recipe = DiffusionProblem(fidelity="smoke", rungs=[0.5, 1, 2], **OPTIONS).settings.rung_recipe
    for e in trained:
        # measured after the rung's budget, continued rung by rung (quality at every rung passed)
        assert e["train_steps"] == recipe.budget(e["rung"]) and len(e["rung_quality"]) == e["rung"] + 1
        if e["rung"] >= 1:
            assert e["continued_from_step"] == recipe.trunk_steps(e["rung"] - 1)
    # asynchronous: candidates were told in several small batches while others trained
    assert len(result.history) > 2
    assert (runs_dir / "mf-async" / "front.json").is_file()
    assert list((cache_dir / "trunks").rglob("*.r1.pt"))
