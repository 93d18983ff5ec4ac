"""What does the Redis fitness cache cost? Lookup latency, and a cached vs uncached generation.

Against a real redis-server started here (127.0.0.1, free port, AOF on):
  1. lookup latency per genome: single GETs (one round trip each) vs batched MGET;
  2. end to end on the ``synthetic`` problem (10 ms evaluations, in-process evaluator):
     one generation of N candidates uncached (all evaluated and stored) against the
     same generation fully cached (all hits).
Goal: a hit costs <= 1 ms amortised in batches. Prints a table; writes JSON to
benchmarks/results/cache.json.

    python benchmarks/bench_cache.py [--n 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from evodiff_ray.cache import CachedEvaluator, FitnessCache, LocalRedis
from evodiff_ray.core.evaluator import Task
from evodiff_ray.evaluation.local import LocalEvaluator
from evodiff_ray.core.key import cache_key_function
from evodiff_ray.problems import make_problem


def _tasks(problem, n, seed, start=0):
    rng = np.random.default_rng(seed)
    xs = rng.random((n, problem.n_var))
    return [Task(start + i, problem.key(x), problem.to_json(x)) for i, x in enumerate(xs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="candidates per generation")
    ap.add_argument("--eval-ms", type=float, default=10.0, help="synthetic evaluation time")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/cache.json")
    args = ap.parse_args()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, LocalRedis(Path(tmp) / "redis") as server:
        problem = make_problem("synthetic", {"mean_ms": args.eval_ms})
        settings = problem.evaluation_settings()
        cache = FitnessCache(server.url)
        # populate
        seed_tasks = _tasks(problem, args.n, 0)
        with CachedEvaluator(LocalEvaluator(problem), FitnessCache(server.url), settings) as ev:
            ev.evaluate(seed_tasks, poll_s=0.01)
        rkey = cache_key_function(settings)
        rkeys = [rkey(t.key) for t in seed_tasks]
        single, batched = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for k in rkeys:
                cache.get_many([k])
            single.append((time.perf_counter() - t0) / len(rkeys))
            t0 = time.perf_counter()
            cache.get_many(rkeys)
            batched.append((time.perf_counter() - t0) / len(rkeys))
        rows["lookup, one GET per genome"] = {"ms_per_genome": 1000 * statistics.median(single)}
        rows[f"lookup, one MGET of {args.n}"] = {"ms_per_genome": 1000 * statistics.median(batched)}
        # end to end: an uncached generation vs the same generation fully cached
        uncached, cached = [], []
        for r in range(args.repeats):
            tasks = _tasks(problem, args.n, 1000 + r, start=r * 10 * args.n)
            with CachedEvaluator(LocalEvaluator(problem), FitnessCache(server.url), settings) as ev:
                t0 = time.perf_counter()
                out = ev.evaluate(tasks, poll_s=0.01)
                uncached.append(time.perf_counter() - t0)
                assert all(o.source == "evaluated" for o in out)
            again = [Task(t.ordinal + args.n, t.key, t.x) for t in tasks]
            with CachedEvaluator(LocalEvaluator(problem), FitnessCache(server.url), settings) as ev:
                t0 = time.perf_counter()
                out = ev.evaluate(again, poll_s=0.01)
                cached.append(time.perf_counter() - t0)
                assert all(o.source == "hit" for o in out)
        rows[f"generation of {args.n}, uncached ({args.eval_ms:g} ms evals)"] = {
            "seconds": statistics.median(uncached), "ms_per_genome": 1000 * statistics.median(uncached) / args.n}
        rows[f"generation of {args.n}, fully cached"] = {
            "seconds": statistics.median(cached), "ms_per_genome": 1000 * statistics.median(cached) / args.n}
    print(f"{'measurement':<48} {'ms/genome':>10} {'seconds':>9}")
    for name, r in rows.items():
        print(f"{name:<48} {r['ms_per_genome']:>10.4f} {r.get('seconds', float('nan')):>9.4f}")
    result = {"benchmark": "cache", "machine": {"cpu": platform.processor() or platform.machine(),
                                                "python": platform.python_version()},
              "n": args.n, "eval_ms": args.eval_ms, "repeats": args.repeats, "goal_hit_ms": 1.0,
              "results": rows, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
