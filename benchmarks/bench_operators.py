"""How fast are the genome operators on the driver's hot path? (one core)

Measures genomes per second for sample, mutate, crossover (children/s), key() on a
fresh genome (canonicalisation + sha256) and key() cached, and the pymoo
duplicate-elimination pass. Prints a table and writes JSON to benchmarks/results/.

    python benchmarks/bench_operators.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from evodiff_ray.genome import Genome
from evodiff_ray.operators import crossover, mutate, sample_genome, sample_population
from evodiff_ray.space import SearchSpace


def rate(fn, seconds: float) -> tuple[float, int]:
    """Calls per second of ``fn`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        fn()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(50):
            fn()
        n += 50
    return n / elapsed, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--out", default="benchmarks/results/operators.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    space = SearchSpace()
    rng = np.random.default_rng(0)
    pop = sample_population(space, 64, rng, generation=10**6)
    dicts = [g.to_dict() for g in pop]
    i = iter(range(10**12))

    def pick():
        return pop[next(i) % len(pop)]

    rows = []
    r, n = rate(lambda: sample_genome(space, rng, generation=10**6), args.seconds)
    rows.append(("sample", r, n, 1))
    r, n = rate(lambda: mutate(pick(), space, rng), args.seconds)
    rows.append(("mutate", r, n, 1))
    r, n = rate(lambda: crossover(pick(), pick(), space, rng), args.seconds)
    rows.append(("crossover (2 children/call)", 2 * r, n, 2))
    r, n = rate(lambda: Genome.from_dict(dicts[next(i) % len(dicts)]).key(), args.seconds)
    rows.append(("from_dict + key() (validate, canonicalise, sha256)", r, n, 1))
    r, n = rate(lambda: pick().key(), args.seconds)
    rows.append(("key() on a loaded genome (cached)", r, n, 1))

    print(f"{'operation':<52} {'genomes/s':>12} {'calls':>8}")
    for name, r, n, _ in rows:
        print(f"{name:<52} {r:>12,.0f} {n:>8}")
    result = {
        "benchmark": "operators",
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "cores_used": 1},
        "target_per_s": {"key": 5000, "mutate": 5000},
        "results": {name: {"genomes_per_s": round(r, 1), "calls": n} for name, r, n, _ in rows},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
