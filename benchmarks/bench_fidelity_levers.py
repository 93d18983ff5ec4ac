"""What do quick's ranking levers buy? Spearman vs the 4x reference, with and without them.

Reuses the architectures and the 4x-budget quality_fd of a finished
``bench_evaluation.py`` run (its JSON), evaluates the same architectures with a
*plain* recipe of the same sample budget (constant LR 2e-3, batch 64, half the steps,
no warm-up, no EMA; common random numbers stay on), and reports both rank
correlations. Writes benchmarks/results/fidelity_levers.json.

    python benchmarks/bench_fidelity_levers.py [--reference benchmarks/results/evaluation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_evaluation import _evaluate, _init_worker  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default="benchmarks/results/evaluation.json")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/fidelity_levers.json")
    args = ap.parse_args()

    import numpy as np
    from scipy.stats import spearmanr

    from evodiff_ray.diffusion.fidelity import FIDELITIES, Fidelity
    from evodiff_ray.operators import sample_population
    from evodiff_ray.space import SearchSpace

    ref = json.loads(Path(args.reference).read_text())
    quick = FIDELITIES["quick"]
    plain = Fidelity("plain", train_steps=quick.train_steps * quick.batch_size // 64, batch_size=64,
                     lr=2e-3, warmup_fraction=0.0, ema_decay=0.0)
    n = len(ref["architectures"])
    genomes = sample_population(SearchSpace(), n, np.random.default_rng(0), ref["generation"])
    t0 = time.perf_counter()
    plain_fd: dict[int, float] = {}
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(None,)) as pool:
        futures = [pool.submit(_evaluate, str(i), g.to_json(), plain.to_dict()) for i, g in enumerate(genomes)]
        for k, fut in enumerate(as_completed(futures), 1):
            label, fit = fut.result()
            plain_fd[int(label)] = fit["objectives"]["quality_fd"] if fit["feasible"] else float("nan")
            print(f"[{k}/{n}] arch{int(label):02d}@plain fd={plain_fd[int(label)]:.1f} {fit['seconds']:.1f}s", file=sys.stderr, flush=True)
    rows = []
    for i, a in enumerate(ref["architectures"]):
        assert a["quick"]["params"] == _params(genomes[i]), "architectures differ from the reference run"
        rows.append({"arch": i, "params": a["quick"]["params"], "long": a["long"]["quality_fd"],
                     "quick": a["quick"]["quality_fd"], "plain": plain_fd[i]})
    ok = [r for r in rows if all(np.isfinite(r[k]) for k in ("long", "quick", "plain"))]
    rho_quick = float(spearmanr([r["quick"] for r in ok], [r["long"] for r in ok]).statistic)
    rho_plain = float(spearmanr([r["plain"] for r in ok], [r["long"] for r in ok]).statistic)
    out = {"machine": {"node": platform.node(), "cpus": os.cpu_count(), "loadavg_after": os.getloadavg()},
           "quick": quick.to_dict(), "plain": plain.to_dict(), "wall_seconds": time.perf_counter() - t0,
           "spearman_quick_vs_long": rho_quick, "spearman_plain_vs_long": rho_plain, "pairs": len(ok), "rows": rows}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"Spearman vs quick*4 over {len(ok)} architectures: quick (levers) {rho_quick:.3f}, plain {rho_plain:.3f}")
    print(f"wrote {args.out}")


def _params(genome) -> int:
    from evodiff_ray.cost import estimate

    return estimate(genome).params


if __name__ == "__main__":
    main()
