"""Does NSGA-II through our engine (Ray, 2 actors) converge as well as pymoo's own serial loop?

For zdt1, zdt2, zdt3 and dtlz2: IGD of our final front (the archive of every evaluated
candidate; generational mode) and of pymoo's ``minimize`` result, same population,
generations and seeds; the median over 3 seeds. Prints a table and writes JSON to
benchmarks/results/engine_igd.json.

    python benchmarks/bench_engine_igd.py [--pop 100] [--generations 100] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.indicators.igd import IGD
from pymoo.optimize import minimize

from evodiff_ray.config import load_config
from evodiff_ray.problems import make_problem
from evodiff_ray.search import search

PROBLEMS = ("zdt1", "zdt2", "zdt3", "dtlz2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pop", type=int, default=100)
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=25, help="genomes per actor call")
    args = ap.parse_args()

    import ray

    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for name in PROBLEMS:
            problem = make_problem(name, {})
            igd = IGD(problem.pareto_front())
            ours, theirs, t_ours, t_theirs = [], [], [], []
            for seed in args.seeds:
                config = load_config(overrides={
                    "problem": name, "pop_size": args.pop, "generations": args.generations, "seed": seed,
                    "workers": args.workers, "batch_size": args.batch_size, "runs_dir": runs,
                })
                t0 = time.perf_counter()
                result = search(config)
                t_ours.append(time.perf_counter() - t0)
                ours.append(float(igd(result.front_array())))
                t0 = time.perf_counter()
                res = minimize(problem.pymoo_problem(), NSGA2(pop_size=args.pop), ("n_gen", args.generations),
                               seed=seed)
                t_theirs.append(time.perf_counter() - t0)
                theirs.append(float(igd(res.F)))
            row = {
                "problem": name, "ours_igd": ours, "pymoo_igd": theirs,
                "ours_median": statistics.median(ours), "pymoo_median": statistics.median(theirs),
                "ratio": statistics.median(ours) / statistics.median(theirs),
                "ours_seconds_median": statistics.median(t_ours),
                "pymoo_seconds_median": statistics.median(t_theirs),
            }
            rows.append(row)
            print(f"{name:6s}  ours {row['ours_median']:.5f}  pymoo {row['pymoo_median']:.5f}  "
                  f"ratio {row['ratio']:.3f}  ({row['ours_seconds_median']:.1f} s vs "
                  f"{row['pymoo_seconds_median']:.2f} s)", flush=True)
    ray.shutdown()

    print("\nproblem  IGD ours (median)  IGD pymoo (median)  ours/pymoo  within 10%")
    for r in rows:
        print(f"{r['problem']:7s}  {r['ours_median']:17.5f}  {r['pymoo_median']:18.5f}  {r['ratio']:10.3f}  "
              f"{'yes' if r['ratio'] <= 1.10 else 'NO'}")
    out = Path(__file__).parent / "results" / "engine_igd.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "engine_igd", "machine": {"node": platform.node(), "python": platform.python_version()},
        "settings": {"pop_size": args.pop, "generations": args.generations, "seeds": args.seeds,
                     "workers": args.workers, "batch_size": args.batch_size, "mode": "generational",
                     "ours_front": "non-dominated archive of all evaluated candidates",
                     "pymoo_front": "minimize(...).F (non-dominated final population)"},
        "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
