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
            ours, ours_pop, theirs, t_ours, t_theirs = [], [], [], [], []
            for seed in args.seeds:
                config = load_config(overrides={
                    "problem": name, "pop_size": args.pop, "generations": args.generations, "seed": seed,
                    "workers": args.workers, "batch_size": args.batch_size, "runs_dir": runs,
                    "no_cache": True, "no_tracking": True,
                })
                t0 = time.perf_counter()
                result = search(config)
                t_ours.append(time.perf_counter() - t0)
                ours.append(float(igd(result.front_array())))
                ours_pop.append(float(igd(result.population_front_array())))
                t0 = time.perf_counter()
                res = minimize(problem.pymoo_problem(), NSGA2(pop_size=args.pop), ("n_gen", args.generations),
                               seed=seed)
                t_theirs.append(time.perf_counter() - t0)
                theirs.append(float(igd(res.F)))
            row = {
                "problem": name, "ours_igd": ours, "ours_population_igd": ours_pop, "pymoo_igd": theirs,
                "ours_median": statistics.median(ours), "ours_population_median": statistics.median(ours_pop),
                "pymoo_median": statistics.median(theirs),
                "ratio": statistics.median(ours) / statistics.median(theirs),
                "population_ratio": statistics.median(ours_pop) / statistics.median(theirs),
                "ours_seconds_median": statistics.median(t_ours),
                "pymoo_seconds_median": statistics.median(t_theirs),
            }
            rows.append(row)
            print(f"{name:6s}  ours {row['ours_median']:.5f} (population {row['ours_population_median']:.5f})  "
                  f"pymoo {row['pymoo_median']:.5f}  ratio {row['ratio']:.3f}  ({row['ours_seconds_median']:.1f} s vs "
                  f"{row['pymoo_seconds_median']:.2f} s)", flush=True)
    ray.shutdown()

    print("\nIGD, median of seeds. archive = every evaluated candidate (what a search returns);"
          " population = NSGA-II's final population, like pymoo's minimize().F")
    print("problem  ours archive  ours population  pymoo minimize  archive/pymoo  population/pymoo  within 10%")
    for r in rows:
        ok = max(r["ratio"], r["population_ratio"]) <= 1.10
        print(f"{r['problem']:7s}  {r['ours_median']:12.5f}  {r['ours_population_median']:15.5f}  "
              f"{r['pymoo_median']:14.5f}  {r['ratio']:13.3f}  {r['population_ratio']:16.3f}  {'yes' if ok else 'NO'}")
    out = Path(__file__).parent / "results" / "engine_igd.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "engine_igd", "machine": {"node": platform.node(), "python": platform.python_version()},
        "settings": {"pop_size": args.pop, "generations": args.generations, "seeds": args.seeds,
                     "workers": args.workers, "batch_size": args.batch_size, "mode": "generational",
                     "ours_front": "non-dominated archive of all evaluated candidates",
                     "ours_population_front": "non-dominated feasible members of the final population",
                     "pymoo_front": "minimize(...).F (non-dominated final population)"},
        "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
