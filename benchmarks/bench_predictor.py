"""Does the roofline predictor rank genomes like measurements on this CPU do?

Draws random genomes (the search space's own sampler), measures each one's full
sampling latency (median of timed DDIM runs, all sampler steps, batch 64 of 8x8x1,
torch.set_num_threads(1), after a warm-up run) and peak memory (the metrics module's
method: CPU profiler allocations + model bytes) with the evaluation engineer's
sampler and metrics, on an untrained ``build_denoiser(genome)``. The predictor's
per-device correction is fitted on a separate calibration set; the test set reports
Spearman rank correlation (goal >= 0.9) and the median absolute percentage error
after calibration, for latency and memory. Prints a table and writes JSON to
benchmarks/results/predictor.json.

    python benchmarks/bench_predictor.py [--test 32] [--calibration 12] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from evodiff_ray.denoiser import build_denoiser
from evodiff_ray.diffusion.sampler import ddim_sample, sample_noise
from evodiff_ray.diffusion.schedule import linear_schedule
from evodiff_ray.hardware.detect import detect_local
from evodiff_ray.hardware.predict import Predictor, cpu_device_profile, measure_cpu_profile
from evodiff_ray.metrics.latency import measure_latency
from evodiff_ray.metrics.memory import measure_peak_memory
from evodiff_ray.operators import sample_population
from evodiff_ray.space import SearchSpace

BATCH, RES, CH = 64, 8, 1


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(x):
        x = np.asarray(x, dtype=float)
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # average ties
            idx = np.where(x == v)[0]
            r[idx] = r[idx].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def measure(genome, schedule, repeats: int) -> tuple[float, float]:
    """(median latency ms, peak memory MiB) of full sampling on the CPU."""
    torch.manual_seed(0)
    net = build_denoiser(genome, CH).eval()
    noise = sample_noise((BATCH, CH, RES, RES), 1)
    steps = genome.parameters["sampler_steps"]

    def run():
        return ddim_sample(net, schedule, noise, steps)

    dev = torch.device("cpu")
    lat = measure_latency(run, dev, warmup=1, repeats=repeats)
    mem = measure_peak_memory(run, net, dev)
    return lat.median_ms, mem.peak_mb


def _steps(genome) -> int:
    return genome.parameters["sampler_steps"]


def mdape(pred, meas) -> float:
    return float(statistics.median(abs(p - m) / m for p, m in zip(pred, meas)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=int, default=32, help="test genomes (>= 30 for the report)")
    ap.add_argument("--calibration", type=int, default=12, help="calibration genomes (a separate draw)")
    ap.add_argument("--repeats", type=int, default=5, help="timed sampling runs per genome")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "predictor.json"))
    args = ap.parse_args()

    torch.set_num_threads(1)
    space = SearchSpace()
    rng = np.random.default_rng(args.seed)
    calib = sample_population(space, args.calibration, rng)
    test = sample_population(space, args.test, rng)
    schedule = linear_schedule()
    t0 = time.perf_counter()
    profile = measure_cpu_profile(threads=1)
    print(f"cpu profile (measured): {profile.peak_gflops:.1f} GFLOP/s, {profile.bandwidth_gbs:.1f} GB/s, "
          f"{profile.launch_overhead_us:.2f} us/op")

    def run_set(genomes, label):
        rows = []
        for i, g in enumerate(genomes):
            lat, mem = measure(g, schedule, args.repeats)
            rows.append((g, lat, mem))
            print(f"  {label} {i + 1:>2}/{len(genomes)}: {lat:8.1f} ms {mem:7.2f} MiB  "
                  f"steps {g.parameters['sampler_steps']:>2}", flush=True)
        return rows

    calib_rows = run_set(calib, "calibration")
    test_rows = run_set(test, "test")
    results = {}
    variants = (("measured/loglog", profile, "loglog"), ("measured/components", profile, "components"),
                ("estimated/loglog", cpu_device_profile(1), "loglog"))
    for pname, prof, how in variants:
        base = Predictor(prof, batch=BATCH, resolution=RES, in_channels=CH)
        fitted = base.calibrated([g for g, _, _ in calib_rows], [lat for _, lat, _ in calib_rows],
                                 [mem for _, _, mem in calib_rows], latency_fit=how)
        lat_meas = [lat for _, lat, _ in test_rows]
        mem_meas = [mem for _, _, mem in test_rows]
        lat_pred = [fitted.latency_ms(g) for g, _, _ in test_rows]
        mem_pred = [fitted.memory_mb(g) for g, _, _ in test_rows]
        lat_raw = [base.roofline_ms(g) for g, _, _ in test_rows]
        results[pname] = {
            "profile": prof.to_dict(),
            "predictor": fitted.to_dict(),
            "latency": {"spearman": spearman(lat_pred, lat_meas), "spearman_raw": spearman(lat_raw, lat_meas),
                        "spearman_per_step": spearman([p / _steps(g) for p, (g, _, _) in zip(lat_pred, test_rows)],
                                                      [m / _steps(g) for m, (g, _, _) in zip(lat_meas, test_rows)]),
                        "mdape_calibrated": mdape(lat_pred, lat_meas), "mdape_raw": mdape(lat_raw, lat_meas)},
            "memory": {"spearman": spearman(mem_pred, mem_meas), "mdape_calibrated": mdape(mem_pred, mem_meas)},
        }
    wall = time.perf_counter() - t0

    print(f"\n{'profile/fit':<20} {'objective':<8} {'spearman':>9} {'per step':>9} {'MdAPE cal':>10} {'MdAPE raw':>10}")
    for pname, r in results.items():
        for obj in ("latency", "memory"):
            raw = r[obj].get("mdape_raw")
            per = r[obj].get("spearman_per_step")
            print(f"{pname:<20} {obj:<8} {r[obj]['spearman']:>9.3f} {'' if per is None else f'{per:.3f}':>9} "
                  f"{100 * r[obj]['mdape_calibrated']:>9.1f}% {'' if raw is None else f'{100 * raw:.1f}%':>10}")
    print(f"(n_test {len(test_rows)}, n_calibration {len(calib_rows)}, batch {BATCH}, {RES}x{RES}x{CH}, "
          f"1 thread; {wall:.0f} s)")

    local = detect_local()
    out = {
        "question": "rank correlation of predicted vs measured sampling latency and memory on this CPU",
        "machine": {"cpu": local.cpu_model, "cpus": os.cpu_count(), "system": platform.platform(),
                    "torch": torch.__version__, "threads": 1},
        "settings": {"batch": BATCH, "resolution": RES, "channels": CH, "repeats": args.repeats,
                     "seed": args.seed, "n_test": len(test_rows), "n_calibration": len(calib_rows)},
        "results": results,
        "points": [{"key": g.key()[:12], "sampler_steps": g.parameters["sampler_steps"],
                    "latency_ms": lat, "memory_mb": mem,
                    "predicted": Predictor.from_dict(results["measured/loglog"]["predictor"]).predict(g)}
                   for g, lat, mem in test_rows],
        "seconds": wall,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
