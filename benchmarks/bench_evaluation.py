"""How long does a real candidate evaluation take, and does ``quick`` rank like 4x the budget?

Three questions, one torch thread per evaluation, ``--jobs`` evaluations in parallel
processes (each keeps a warm DiffusionBench):

1. seconds per candidate at ``quick`` for the reference UNet and for small and large
   sampled genomes (goal: <= 30 s on one core for the reference);
2. whether quality_fd still separates training budgets: the reference UNet at 1/4,
   1 and 4 times the ``quick`` budget;
3. the fidelity check: Spearman rank correlation of quality_fd between ``quick`` and 4x
   its steps over ``--archs`` random architectures (goal >= 0.8).

Prints a table and writes JSON to benchmarks/results/evaluation.json.

    python benchmarks/bench_evaluation.py [--archs 20] [--jobs 2] [--generation 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

_EVALUATOR = None


def _init_worker(fd_samples):
    import torch

    from evodiff_ray.problems.diffusion.bench import DiffusionBench
    from evodiff_ray.problems.diffusion.settings import DiffusionSettings

    global _EVALUATOR
    torch.set_num_threads(1)
    _EVALUATOR = DiffusionBench(DiffusionSettings(threads=1, time_limit_s=None, fd_samples=fd_samples))


def _evaluate(label: str, genome_json: str, fidelity: dict) -> tuple[str, dict]:
    from evodiff_ray.diffusion.fidelity import Fidelity
    from evodiff_ray.genome import Genome

    fit = _EVALUATOR.evaluate(Genome.from_json(genome_json), Fidelity(**fidelity))
    return label, fit.to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=20, help="random architectures for the fidelity check")
    ap.add_argument("--jobs", type=int, default=2, help="parallel evaluation processes")
    ap.add_argument("--factor", type=float, default=4.0, help="budget multiple to correlate against")
    ap.add_argument("--generation", type=int, default=0, help="complexity-schedule generation to sample at")
    ap.add_argument("--seed", type=int, default=0, help="seeds the architecture draws")
    ap.add_argument("--fd-samples", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="override quick's steps (smoke tests only)")
    ap.add_argument("--out", default="benchmarks/results/evaluation.json")
    args = ap.parse_args()

    import numpy as np
    from scipy.stats import spearmanr

    from evodiff_ray.cost import estimate
    from evodiff_ray.diffusion.fidelity import FIDELITIES
    from evodiff_ray.operators import sample_population
    from evodiff_ray.problems.diffusion import baseline_genome
    from evodiff_ray.space import SearchSpace

    quick = FIDELITIES["quick"]
    if args.steps:
        quick = quick.scaled(args.steps / quick.train_steps, name="quick")
    long = quick.scaled(args.factor)
    short = quick.scaled(0.25)
    base = baseline_genome()
    genomes = sample_population(SearchSpace(), args.archs, np.random.default_rng(args.seed), args.generation)
    jobs = [("baseline@quick/4", base, short), ("baseline@quick", base, quick), (f"baseline@quick*{args.factor:g}", base, long)]
    for i, g in enumerate(genomes):
        jobs += [(f"arch{i:02d}@quick", g, quick), (f"arch{i:02d}@long", g, long)]
    # longest first, for load balance across processes
    jobs.sort(key=lambda j: -estimate(j[1], resolution=8, batch=32).flops_per_step * j[2].train_steps)

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    results: dict[str, dict] = {}
    ctx = get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init_worker, initargs=(args.fd_samples,)) as pool:
        futures = [pool.submit(_evaluate, label, g.to_json(), f.to_dict()) for label, g, f in jobs]
        for n, fut in enumerate(as_completed(futures), 1):
            label, fit = fut.result()
            results[label] = fit
            fd = fit["objectives"]["quality_fd"]
            print(f"[{n}/{len(jobs)}] {label}: fd={fd} {fit['seconds']:.1f}s {fit['reason'] or ''}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0

    def row(label, g):
        fit = results[label]
        return {
            "label": label, "params": estimate(g).params, "quality_fd": fit["objectives"]["quality_fd"],
            "latency_ms": fit["objectives"]["latency_ms"], "memory_mb": fit["objectives"]["memory_mb"],
            "seconds": fit["seconds"], "train_seconds": fit["extras"].get("train_seconds"),
            "feasible": fit["feasible"], "reason": fit["reason"],
        }

    archs = [(row(f"arch{i:02d}@quick", g), row(f"arch{i:02d}@long", g)) for i, g in enumerate(genomes)]
    ok = [(q, lg) for q, lg in archs if q["feasible"] and lg["feasible"]]
    rho = float(spearmanr([q["quality_fd"] for q, _ in ok], [lg["quality_fd"] for _, lg in ok]).statistic) if len(ok) >= 3 else None
    quick_rows = sorted((q for q, _ in archs), key=lambda r: r["params"])
    budgets = [row(label, base) for label in (j[0] for j in jobs) if label.startswith("baseline")]
    budgets.sort(key=lambda r: r["seconds"])
    out = {
        "machine": {"node": platform.node(), "cpus": os.cpu_count(), "processor": results["baseline@quick"]["measured_on"].get("chip"),
                    "torch_threads_per_eval": 1,
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "jobs": args.jobs, "python": platform.python_version()},
        "fidelity": {"quick": quick.to_dict(), "long": long.to_dict()},
        "generation": args.generation,
        "wall_seconds": wall,
        "baseline_budgets": budgets,
        "seconds_per_candidate_quick": {
            "baseline": results["baseline@quick"]["seconds"],
            "smallest": quick_rows[0], "largest": quick_rows[-1],
            "median": statistics.median(r["seconds"] for r in quick_rows),
        },
        "spearman_quick_vs_long": rho,
        "feasible_pairs": len(ok),
        "architectures": [{"quick": q, "long": lg} for q, lg in archs],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n")

    print(f"\nreal candidate evaluation, {platform.node()}, 1 torch thread/eval, {args.jobs} parallel, wall {wall:.0f}s")
    print(f"{'candidate':<24}{'params':>10}{'fd':>9}{'lat ms':>9}{'mem MB':>8}{'sec':>7}")
    for r in budgets + [quick_rows[0], quick_rows[-1]]:
        print(f"{r['label']:<24}{r['params']:>10,}{r['quality_fd']:>9.1f}{r['latency_ms']:>9.1f}{r['memory_mb']:>8.2f}{r['seconds']:>7.1f}")
    print(f"median seconds per sampled candidate at quick: {out['seconds_per_candidate_quick']['median']:.1f}")
    print(f"Spearman(quality_fd @quick, @quick*{args.factor:g}) over {len(ok)} architectures: {rho}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
