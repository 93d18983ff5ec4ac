"""What does orchestration cost, and how busy are the workers? (synthetic problem, 2 workers)

(a) 0-ms evaluations: evaluations per second and overhead per evaluation for our engine
    (generational and async, Ray actor pool), pymoo's NSGA-II with ``RayParallelization``
    (one Ray task per individual), Optuna's ``NSGAIISampler`` in-process (serial), and Ray
    Tune with ``OptunaSearch`` (multi-objective, NSGA-II sampler).
(b) lognormal evaluation times (mean 200 ms, sigma 1): worker utilisation
    = sum(evaluation time) / (workers * wall), and wall time against the ideal
    sum(evaluation time) / workers. Every system evaluates the same synthetic function, whose
    sleep per candidate is drawn from the candidate's key, so sum(evaluation time) is
    recomputed exactly from the candidates each system evaluated.

Our engine's actors are started before the clock starts (they are long-lived by design);
Ray itself is started once for all. Peers need the ``bench`` extra (optuna, ray[tune]).
Prints a table and writes JSON to benchmarks/results/orchestration.json.

    python benchmarks/bench_orchestration.py [--evals 1000] [--lognormal-evals 100]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from evodiff_ray.config import load_config
from evodiff_ray.evaluation.pool import EvaluatorPool
from evodiff_ray.problems import make_problem
from evodiff_ray.problems.synthetic import candidate_rng, draw_delay
from evodiff_ray.search import search

WORKERS = 2
N_VAR = 10


def work_seconds(problem, X) -> float:
    """Sum of the sleeps the synthetic problem does for candidates X (recomputed, exact)."""
    return float(sum(draw_delay(candidate_rng(problem.key(np.asarray(x, float)), problem.seed),
                                problem.time, problem.mean_s, problem.sigma) for x in X))


def ours(options, mode, n_evals, pop, runs, batch_size=1, offspring=None, services=False):
    """Our engine; ``services`` adds the embedded Redis cache and sqlite MLflow (the CLI default)."""
    over = {"problem": "synthetic", "problem_options": options, "pop_size": pop, "seed": 1, "mode": mode,
            "workers": WORKERS, "batch_size": batch_size, "runs_dir": runs, "n_offsprings": offspring,
            "no_cache": not services, "no_tracking": not services}
    if mode == "generational":
        over["generations"] = n_evals // pop
    else:
        over.update(generations=None, max_evaluations=n_evals)
    config = load_config(overrides=over)
    pool = EvaluatorPool.from_config(config, objective_names=("f1", "f2"))
    try:
        t0 = time.perf_counter()
        result = search(config, evaluator=pool)
        wall = time.perf_counter() - t0
    finally:
        pool.close()
    return wall, [r["x"] for r in result.records]


def pymoo_ray(options, n_evals, pop):
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.callback import Callback
    from pymoo.optimize import minimize
    from pymoo.parallelization.ray import RayParallelization

    problem = make_problem("synthetic", options)
    seen = []

    class Collect(Callback):
        def notify(self, algorithm):
            seen.extend(algorithm.off.get("X"))

    pp = problem.pymoo_problem(elementwise_runner=RayParallelization(job_resources={"num_cpus": 1}))
    t0 = time.perf_counter()
    minimize(pp, NSGA2(pop_size=pop), ("n_gen", n_evals // pop), seed=1, callback=Collect())
    return time.perf_counter() - t0, seen


def optuna_nsga2(options, n_evals, pop, n_jobs):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    problem = make_problem("synthetic", options)
    seen = []

    def objective(trial):
        x = np.array([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(N_VAR)])
        seen.append(x)
        fit = problem.evaluate(x)
        return fit.objectives["f1"], fit.objectives["f2"]

    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(population_size=pop, seed=1))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_evals, n_jobs=n_jobs)
    return time.perf_counter() - t0, seen


def ray_tune(options, n_evals, pop, storage):
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    problem = make_problem("synthetic", options)

    def trainable(config):
        x = np.array([config[f"x{i}"] for i in range(N_VAR)])
        fit = problem.evaluate(x)
        return {"f1": fit.objectives["f1"], "f2": fit.objectives["f2"]}

    searcher = OptunaSearch(metric=["f1", "f2"], mode=["min", "min"],
                            sampler=optuna.samplers.NSGAIISampler(population_size=pop, seed=1))
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={f"x{i}": tune.uniform(0.0, 1.0) for i in range(N_VAR)},
        # reuse_actors: the peer's fastest setting (its default, False, starts a process per trial)
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=n_evals, max_concurrent_trials=WORKERS,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    t0 = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - t0
    seen = [[r.config[f"x{i}"] for i in range(N_VAR)] for r in results]
    return wall, seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=1000, help="evaluations in (a)")
    ap.add_argument("--tune-evals", type=int, default=40,
                    help="evaluations for Ray Tune in (a) and (b) (a trial costs it seconds here)")
    ap.add_argument("--lognormal-evals", type=int, default=100, help="evaluations in (b)")
    ap.add_argument("--skip", nargs="*", default=[], help="systems to skip: pymoo optuna tune")
    args = ap.parse_args()

    import ray

    ray.init(address="local", num_cpus=WORKERS, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    rows = []
    runs = tempfile.mkdtemp(prefix="bench-runs-")

    def record(part, system, options, wall, X, workers, note=""):
        problem = make_problem("synthetic", options)
        n = len(X)
        work = work_seconds(problem, X)
        row = {"part": part, "system": system, "evaluations": n, "wall_s": wall, "workers": workers,
               "evals_per_s": n / wall, "overhead_ms_per_eval": 1000 * (wall - work / workers) / n,
               "work_s": work, "ideal_wall_s": work / workers,
               "utilization": work / (workers * wall) if work > 0 else None,
               "wall_over_ideal": wall / (work / workers) if work > 0 else None, "note": note}
        rows.append(row)
        util = "-" if row["utilization"] is None else f"{100 * row['utilization']:.0f}%"
        print(f"({part}) {system:34s} n={n:5d} wall {wall:7.2f} s  {row['evals_per_s']:8.1f} ev/s  "
              f"overhead {row['overhead_ms_per_eval']:7.2f} ms/ev  util {util}", flush=True)

    zero = {"n_var": N_VAR, "mean_ms": 0}
    ln = {"n_var": N_VAR, "time": "lognormal", "mean_ms": 200, "sigma": 1.0}
    for part, opts, n in (("a", zero, args.evals), ("b", ln, args.lognormal_evals)):
        pop = 50 if part == "a" else 20
        record(part, "ours generational (batch 1)", opts, *ours(opts, "generational", n, pop, runs), WORKERS)
        if part == "a":
            record(part, "ours generational (batch 25)", opts,
                   *ours(opts, "generational", n, pop, runs, batch_size=25), WORKERS)
        record(part, "ours async (batch 1)", opts, *ours(opts, "async", n, pop, runs), WORKERS)
        if part == "a":
            record(part, "ours async (batch 10, offspring 20)", opts,
                   *ours(opts, "async", n, pop, runs, batch_size=10, offspring=20), WORKERS)
            record(part, "ours generational (batch 25) + Redis + MLflow", opts,
                   *ours(opts, "generational", n, pop, runs, batch_size=25, services=True), WORKERS,
                   note="embedded redis-server cache and sqlite MLflow, as the CLI runs by default")
        if "pymoo" not in args.skip:
            record(part, "pymoo NSGA2 + RayParallelization", opts, *pymoo_ray(opts, n, pop), WORKERS)
        if "optuna" not in args.skip:
            jobs = 1 if part == "a" else WORKERS
            record(part, f"optuna NSGAIISampler (n_jobs={jobs})", opts, *optuna_nsga2(opts, n, pop, jobs), jobs,
                   note="in-process; threads for n_jobs>1")
        if "tune" not in args.skip:
            nt = min(n, args.tune_evals)
            record(part, "ray tune + OptunaSearch (NSGA-II)", opts,
                   *ray_tune(opts, nt, pop, tempfile.mkdtemp(prefix="bench-tune-")), WORKERS)
    ray.shutdown()

    print("\npart  system                               evals   wall s   evals/s  overhead ms/eval  util   wall/ideal")
    for r in rows:
        util = "-" if r["utilization"] is None else f"{100 * r['utilization']:.0f}%"
        ratio = "-" if r["wall_over_ideal"] is None else f"{r['wall_over_ideal']:.2f}"
        print(f"({r['part']})   {r['system']:36s} {r['evaluations']:5d} {r['wall_s']:8.2f} {r['evals_per_s']:9.1f} "
              f"{r['overhead_ms_per_eval']:17.2f} {util:>5s}  {ratio:>9s}")
    out = Path(__file__).parent / "results" / "orchestration.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"benchmark": "orchestration", "workers": WORKERS,
                               "machine": {"node": platform.node(), "python": platform.python_version()},
                               "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
