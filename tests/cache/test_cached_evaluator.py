"""CachedEvaluator over a real redis-server: hits, in-flight dedup, stale claims, outages."""

import logging
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from evodiff_ray.cache import CachedEvaluator, FitnessCache, LocalRedis
from evodiff_ray.cache.redis_cache import claim_key
from evodiff_ray.core.evaluator import Task
from evodiff_ray.evaluation.local import LocalEvaluator
from evodiff_ray.core.key import ProblemSettings, cache_key

from counting_problem import CountingProblem

pytestmark = pytest.mark.redis
SETTINGS = ProblemSettings("counting")


def _tasks(problem, xs, start=0):
    return [Task(start + i, problem.key(x), problem.to_json(x)) for i, x in enumerate(xs)]


def _log(path: Path) -> Counter:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def _cached(url, problem, **kw):
    return CachedEvaluator(LocalEvaluator(problem), FitnessCache(url, **kw), SETTINGS)


def test_second_run_is_all_hits_and_batch_duplicates_run_once(redis_server, tmp_path):
    log = tmp_path / "evals.log"
    p = CountingProblem(str(log))
    xs = [[i / 10, 0.5] for i in range(6)] + [[0.0, 0.5], [0.1, 0.5]]   # two in-batch duplicates
    with _cached(redis_server.url, p) as ev:
        out = ev.evaluate(_tasks(p, xs))
        assert [o.fitness.objectives["f1"] for o in out] == [x[0] for x in xs]
        assert Counter(o.source for o in out) == {"evaluated": 6, "hit": 2}
        assert ev.stats()["cache"]["misses"] == 6
    assert sum(_log(log).values()) == 6 and max(_log(log).values()) == 1
    with _cached(redis_server.url, p) as ev:
        out = ev.evaluate(_tasks(p, xs, start=100))
        assert {o.source for o in out} == {"hit"}
        assert ev.stats()["cache"]["hits"] == 8 and ev.stats()["cache"]["misses"] == 0
    assert sum(_log(log).values()) == 6


def test_corrupt_entry_is_reevaluated_and_overwritten(redis_server, tmp_path):
    log = tmp_path / "evals.log"
    p = CountingProblem(str(log))
    x = [0.3, 0.3]
    rkey = cache_key(p.key(x), SETTINGS)
    FitnessCache(redis_server.url).client.set(rkey, "{not json")
    with _cached(redis_server.url, p) as ev:
        assert ev.evaluate(_tasks(p, [x]))[0].source == "evaluated"
    assert FitnessCache(redis_server.url).get_many([rkey])[0].objectives["f1"] == 0.3


def test_stale_claim_of_a_dead_owner_is_taken_over(redis_server, tmp_path):
    log = tmp_path / "evals.log"
    p = CountingProblem(str(log))
    x = [0.7, 0.1]
    rkey = cache_key(p.key(x), SETTINGS)
    # a search that died mid-evaluation left its claim behind, with a short TTL left
    FitnessCache(redis_server.url).client.set(claim_key(rkey), "dead-owner", px=600)
    with _cached(redis_server.url, p) as ev:
        t0 = time.monotonic()
        out = ev.evaluate(_tasks(p, [x]), poll_s=0.2)
        assert out[0].source == "evaluated" and out[0].fitness.objectives["f1"] == 0.7
        assert ev.stats()["cache"]["stale_takeovers"] == 1
        assert time.monotonic() - t0 >= 0.5   # it waited for the claim instead of evaluating at once
    assert _log(log)[p.key(x)] == 1


def test_waits_for_another_searchs_evaluation_instead_of_repeating_it(redis_server, tmp_path):
    log = tmp_path / "evals.log"
    slow = CountingProblem(str(log), delay_s=1.0)
    x = [0.4, 0.4]
    first = _cached(redis_server.url, slow, claim_ttl_s=2.0)
    second = _cached(redis_server.url, slow, claim_ttl_s=2.0)
    try:
        first.submit(_tasks(slow, [x]))
        second.submit(_tasks(slow, [x]))      # claimed by `first`: waits
        assert second.stats()["cache"]["misses"] == 0
        got_first = first.poll(timeout=5)      # evaluates (1 s) and stores
        got_second = []
        deadline = time.monotonic() + 10
        while not got_second and time.monotonic() < deadline:
            got_second = second.poll(timeout=0.5)
        assert got_first[0].source == "evaluated" and got_second[0].source == "waited"
        assert second.stats()["cache"]["waited"] == 1
    finally:
        first.close()
        second.close()
    assert _log(log)[slow.key(x)] == 1


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r} + "/cache")
    from counting_problem import CountingProblem
    from evodiff_ray.cache import CachedEvaluator, FitnessCache
    from evodiff_ray.core.evaluator import Task
    from evodiff_ray.core.key import ProblemSettings
    from evodiff_ray.evaluation.local import LocalEvaluator
    p = CountingProblem({log!r}, delay_s=0.15)
    xs = [[i / 100, 0.0] for i in range({lo}, {hi})]
    tasks = [Task(i, p.key(x), p.to_json(x)) for i, x in enumerate(xs)]
    with CachedEvaluator(LocalEvaluator(p), FitnessCache({url!r}, claim_ttl_s=5), ProblemSettings("counting")) as ev:
        out = ev.evaluate(tasks, poll_s=0.05)
    assert len(out) == len(xs) and all(o.fitness.objectives["f1"] == x[0] for o, x in zip(out, xs))
    print(dict(ev.stats()["cache"]))
""")


def test_two_concurrent_processes_evaluate_each_shared_genome_once(redis_server, tmp_path):
    log = tmp_path / "evals.log"
    tests = str(Path(__file__).resolve().parents[1])
    procs = [
        subprocess.Popen([sys.executable, "-c", SCRIPT.format(tests=tests, log=str(log), url=redis_server.url,
                                                               lo=lo, hi=hi)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for lo, hi in ((0, 20), (10, 30))     # 10 shared candidates
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    counts = _log(log)
    assert len(counts) == 30                     # every candidate evaluated...
    assert max(counts.values()) == 1             # ...exactly once, across both processes


def test_redis_killed_and_restarted_mid_search(tmp_path, caplog):
    log = tmp_path / "evals.log"
    p = CountingProblem(str(log))
    server = LocalRedis(tmp_path / "redis").start(reuse=False)
    port = server.port
    ev = CachedEvaluator(LocalEvaluator(p), FitnessCache(server.url, socket_timeout_s=0.5), SETTINGS,
                         reconnect_max_s=0.5)
    try:
        with caplog.at_level(logging.WARNING):
            a = ev.evaluate(_tasks(p, [[0.1, 0.0], [0.2, 0.0]]))
            server.kill()                                       # Redis dies mid-search
            b = ev.evaluate(_tasks(p, [[0.3, 0.0], [0.4, 0.0], [0.3, 0.0]], start=10))
            c = ev.evaluate(_tasks(p, [[0.5, 0.0]], start=20))
            assert ev.stats()["cache"]["redis"] == "down"
            server2 = LocalRedis(tmp_path / "redis", port=port).start(reuse=False)  # back, same data dir
            try:
                time.sleep(0.6)
                d = ev.evaluate(_tasks(p, [[0.6, 0.0], [0.1, 0.0]], start=30))
                assert ev.stats()["cache"]["redis"] == "up"
                assert d[1].source == "hit"          # written before the outage, kept by the AOF
                # results obtained while Redis was down were written back on reconnect
                back = FitnessCache(server2.url).get_many([cache_key(p.key([0.4, 0.0]), SETTINGS)])
                assert back[0] is not None and back[0].objectives["f1"] == 0.4
            finally:
                ev.close()
                server2.stop(force=True)
    finally:
        server.kill()
    assert len(a + b + c + d) == 8                            # nothing lost
    assert [o.fitness.objectives["f1"] for o in b] == [0.3, 0.4, 0.3]
    downs = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(downs) == 1                                    # warned once
