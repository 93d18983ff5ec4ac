"""Does a warm start transfer? A search on a second dataset, cold and warm-started from digits.

The second dataset is ``shapes``: greyscale 12x12 images of four procedurally drawn
shapes (disk, ring, square, triangle) at random positions, sizes, angles and
brightness, written once as a folder of PNGs with one sub-folder per class, the way a
user brings their own data (``--dataset shapes/``). It is unlike the 8x8 digits in
content, resolution and statistics, and needs no network. (``--size 16`` draws them at
16x16; on the 2-core VM a ``quick`` evaluation there took ~50 s per worker, against ~20 s
at 12x12, which put 3 seeds of every arm out of one session's reach.)

For each seed k:

- the **source** is the Pareto front of the single-fidelity NSGA-II digits run
  ``search_quality/nsga2-seed<k>.json`` (the search-quality benchmark's records,
  measured on digits), written as a genome file (when the front is larger than the
  population, an even spread of ``--pop`` members along it, from lowest FD to fastest).
  Seed 4's digits run (same settings, not part of the search-quality table) is kept as
  ``transfer/source-digits-nsga2-seed4.json``: ``--seeds 4 --source-dir DIR`` with it
  copied to ``DIR/nsga2-seed4.json`` reruns that seed;
- **cold**: NSGA-II on shapes from a random initial population;
- **warm**: the same search with ``seed_from`` = that file (``--seed-from FILE.json``),
  so the digits front fills generation 0 (cache keys differ by dataset: every seed is
  evaluated again on shapes, and those evaluations count);
- **warm-half**: the same with half as many members of the front (an even spread), so the
  other half of generation 0 is the strategy's own random draws.

Every run gets the same evaluation budget, workers, population and seed; the cache is off
and nothing is tracked. Hypervolume uses ONE reference point, twice the reference UNet's
objectives measured on shapes at the start, normalised to [0, 1]. Goal: the warm start
reaches the cold start's final hypervolume in <= 1/2 of the evaluations (per seed, and on
the median curves). Runs write ``<out-dir>/<arm>-seed<k>.json`` and a rerun skips
the finished ones; the summary is ``benchmarks/results/transfer.json`` and
``transfer.png``.

    python benchmarks/bench_transfer.py [--seeds 1,2,3] [--evaluations 48] [--pop 16] [--size 12]
        [--arms cold,warm,warm-half] [--workers 2] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_search_quality as sq  # noqa: E402  (the shared hypervolume and machine helpers)

from evodiff_ray.problems.diffusion.settings import OBJECTIVES  # noqa: E402

SHAPES = ("disk", "ring", "square", "triangle")
ARMS = ("cold", "warm", "warm-half")
#: how much of generation 0 each warm arm's seeds fill (the rest: the strategy's own random draws)
SEED_SHARE = {"warm": 1.0, "warm-half": 0.5}
LABELS = {"cold": "cold start", "warm": "warm: the digits front fills generation 0",
          "warm-half": "warm-half: half of generation 0 from the digits front"}


# --------------------------------------------------------------------------- the dataset


def draw_shape(kind: str, rng: np.random.Generator, size: int = 16, supersample: int = 4) -> np.ndarray:
    """One ``size x size`` uint8 greyscale image of ``kind`` (pure; antialiased by supersampling)."""
    n = size * supersample
    yy, xx = (np.mgrid[0:n, 0:n] + 0.5) / n                       # pixel centres in [0, 1]
    r = rng.uniform(0.18, 0.36)
    cx, cy = rng.uniform(r + 0.04, 1 - r - 0.04, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = xx - cx, yy - cy
    u = np.cos(angle) * dx + np.sin(angle) * dy                   # rotated frame
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    if kind == "disk":
        mask = dx ** 2 + dy ** 2 <= r ** 2
    elif kind == "ring":
        d = np.sqrt(dx ** 2 + dy ** 2)
        mask = (d <= r) & (d >= r * rng.uniform(0.45, 0.65))
    elif kind == "square":
        h = r / np.sqrt(2) * 1.15
        mask = (np.abs(u) <= h) & (np.abs(v) <= h)
    elif kind == "triangle":
        # an equilateral triangle inscribed in the circle of radius r: three half-planes
        mask = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = 2 * np.pi * k / 3
            mask &= (np.cos(a) * u + np.sin(a) * v) <= 0.6 * r
    else:
        raise ValueError(f"unknown shape {kind!r}")
    fg, bg = rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.15)
    img = np.where(mask, fg, bg).reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make_shapes(root: Path, per_class: int = 400, size: int = 16, seed: int = 0) -> Path:
    """Write the shapes folder (``root/<shape>/<i>.png``) once; returns ``root``."""
    from PIL import Image

    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    for kind in SHAPES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(draw_shape(kind, rng, size), mode="L").save(root / kind / f"{i:04d}.png")
    done.write_text(json.dumps({"per_class": per_class, "size": size, "seed": seed}))
    return root


# --------------------------------------------------------------------------- sources and runs


def pareto_genomes(records: list[dict]) -> list[dict]:
    """The genomes of the feasible non-dominated records (pure), lowest FD first."""
    rows = [r for r in records if r["feasible"]
            and all(r["objectives"].get(n) is not None and np.isfinite(float(r["objectives"][n])) for n in OBJECTIVES)]
    pts = np.array([[float(r["objectives"][n]) for n in OBJECTIVES] for r in rows]).reshape(-1, len(OBJECTIVES))
    keep = []
    for i, p in enumerate(pts):
        dominated = np.any(np.all(pts <= p, axis=1) & np.any(pts < p, axis=1))
        if not dominated:
            keep.append(i)
    keep.sort(key=lambda i: pts[i][0])
    out, seen = [], set()
    for i in keep:
        if rows[i]["key"] not in seen:
            seen.add(rows[i]["key"])
            out.append(rows[i]["genome"])
    return out


def spread(genomes: list, k: int) -> list:
    """At most ``k`` of ``genomes`` (ordered along the front), evenly spread from end to end (pure)."""
    if len(genomes) <= k:
        return list(genomes)
    return [genomes[int(i)] for i in np.unique(np.linspace(0, len(genomes) - 1, k).round())]


def source_file(seed: int, args, out_dir: Path, share: float = 1.0) -> Path:
    """The digits front of search-quality run ``nsga2-seed<seed>``, as a ``--seed-from`` file of
    at most ``share`` x ``--pop`` members."""
    src = Path(args.source_dir) / f"nsga2-seed{seed}.json"
    if not src.exists():
        sys.exit(f"{src}: no digits run to transfer from; run benchmarks/bench_search_quality.py "
                 f"--systems nsga2 --seeds {seed} first, or point --source-dir at its results")
    k = max(1, int(round(share * args.pop)))
    path = out_dir / (f"source-seed{seed}.json" if share >= 1 else f"source-seed{seed}-{k}.json")
    if not path.exists():
        genomes = spread(pareto_genomes(json.loads(src.read_text())["records"]), k)
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(genomes, indent=1))
    return path


def problem_options(args) -> dict[str, Any]:
    return {"fidelity": args.fidelity, "device": args.device, "dataset": str(Path(args.data_dir).resolve())}


def reference(args, out_dir: Path) -> dict[str, Any]:
    """The reference UNet's objectives on shapes (measured once, then read back)."""
    options = problem_options(args)
    return sq.measure_reference(options, out_dir / "reference.json", dataset=options["dataset"])


def run_one(arm: str, seed: int, args, out_dir: Path) -> Path:
    """One search on shapes (``cold`` or ``warm``), its records written to ``<arm>-seed<seed>.json``."""
    path = out_dir / f"{arm}-seed{seed}.json"
    if path.exists() and not args.force:
        print(f"{arm} seed {seed}: done before ({path}), skipped", flush=True)
        return path
    from evodiff_ray.cli.search import ProgressPrinter
    from evodiff_ray.config import load_config
    from evodiff_ray.search import search

    overrides: dict[str, Any] = {
        "problem": "diffusion", "problem_options": problem_options(args), "strategy": "nsga2",
        "pop_size": args.pop, "seed": seed, "workers": args.workers, "max_evaluations": args.evaluations,
        "mode": args.mode, "runs_dir": tempfile.mkdtemp(prefix=f"bench-transfer-{arm}-{seed}-"),
        "no_cache": True, "no_tracking": True, "no_reference": True,
    }
    if arm in SEED_SHARE:
        overrides["seed_from"] = str(source_file(seed, args, out_dir, SEED_SHARE[arm]).resolve())
    config = load_config(overrides=overrides)
    load_before = os.getloadavg()
    print(f"{arm} seed {seed}: {args.evaluations} evaluations on {args.workers} workers "
          f"(load {load_before[0]:.2f})", flush=True)
    printer = ProgressPrinter(config.mode, every_s=args.progress_s, live=False, line_every_s=args.progress_s)
    t0 = time.time()
    result = search(config, trackers=[printer] if args.progress_s > 0 else [])
    rows = []
    for r in result.records:
        fit = r["fitness"]
        rows.append({"t": float(fit["evaluated_at"]) - t0, "key": r["key"], "feasible": bool(fit["feasible"]),
                     "objectives": {n: fit["objectives"].get(n) for n in OBJECTIVES}, "genome": r["x"],
                     "origin": (r["x"] or {}).get("origin") if isinstance(r["x"], dict) else None})
    doc = {"arm": arm, "seed": seed, "records": rows, "stop_reason": result.stop_reason, "wall_s": time.time() - t0,
           "evaluations": args.evaluations, "workers": args.workers, "pop": args.pop, "mode": args.mode,
           "fidelity": args.fidelity, "device": args.device, "seed_from": overrides.get("seed_from"),
           "machine": sq.machine(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, allow_nan=True))
    os.replace(tmp, path)
    print(f"{arm} seed {seed}: {len(rows)} evaluations in {doc['wall_s']:.0f} s", flush=True)
    return path


# --------------------------------------------------------------------------- analysis


def hv_curve(records: list[dict], ref_point: list[float], n: int) -> np.ndarray:
    """Hypervolume after each of the first ``n`` evaluations, in order of completion."""
    rows = sorted(records, key=lambda r: r["t"])[:n]
    out = np.zeros(n)
    for i in range(n):
        out[i] = sq.hv(sq.normalised(rows[: i + 1], ref_point)) if i < len(rows) else (out[i - 1] if i else 0.0)
    return out


def evaluations_to_reach(curve: np.ndarray, target: float) -> int | None:
    """The first evaluation count (1-based) whose hypervolume is >= ``target`` (pure)."""
    hit = np.nonzero(curve >= target - 1e-12)[0]
    return int(hit[0]) + 1 if len(hit) else None


def report(args, out_dir: Path) -> dict[str, Any]:
    ref = reference(args, out_dir)
    ref_point = sq.reference_point(ref)
    docs = {(d["arm"], d["seed"]): d for d in (json.loads(p.read_text()) for p in sorted(out_dir.glob("*-seed*.json"))
                                               if not p.name.startswith("source"))}
    arms = [a for a in ARMS if any(k[0] == a for k in docs)]
    warm_arms = [a for a in arms if a in SEED_SHARE]
    seeds = sorted({s for (_, s) in docs if all((a, s) in docs for a in arms)})
    if "cold" not in arms or not warm_arms or not seeds:
        sys.exit(f"no seed with a finished cold run and warm run in {out_dir}; run the benchmark first")
    n = min(len(docs[(a, s)]["records"]) for a in arms for s in seeds)
    curves = {a: np.array([hv_curve(docs[(a, s)]["records"], ref_point, n) for s in seeds]) for a in arms}
    med = {a: np.median(curves[a], axis=0) for a in arms}
    summary = {}
    for arm in warm_arms:
        per_seed = []
        for i, s in enumerate(seeds):
            cold_final = float(curves["cold"][i][-1])
            reach = evaluations_to_reach(curves[arm][i], cold_final)
            per_seed.append({"seed": s, "cold_final_hv": cold_final, "warm_final_hv": float(curves[arm][i][-1]),
                             "warm_evaluations_to_reach_cold_final": reach,
                             "fraction": None if reach is None else reach / n,
                             "seeds_evaluated": sum(1 for r in docs[(arm, s)]["records"]
                                                    if str(r.get("origin") or "").startswith("seed:")),
                             "loadavg_before": {a: docs[(a, s)]["loadavg_before"][0] for a in ("cold", arm)}})
        reach_med = evaluations_to_reach(med[arm], float(med["cold"][-1]))
        fractions = [p["fraction"] for p in per_seed]
        summary[arm] = {
            "seed_share": SEED_SHARE[arm], "per_seed": per_seed,
            "median": {"cold_final_hv": float(med["cold"][-1]), "warm_final_hv": float(med[arm][-1]),
                       "warm_evaluations_to_reach_cold_final": reach_med,
                       "fraction": None if reach_med is None else reach_med / n},
            "goal_met_every_seed": all(f is not None and f <= 0.5 for f in fractions),
            "goal_met_on_median": reach_med is not None and reach_med / n <= 0.5,
        }
    doc = {
        "dataset": f"shapes ({args.size}x{args.size} greyscale, 4 classes, a folder of PNGs)", "reference": ref,
        "reference_point": ref_point, "evaluations": n, "size": args.size, "pop": args.pop, "seeds": seeds,
        "goal": "warm reaches cold's final hypervolume in <= 1/2 of the evaluations",
        "arms": summary,
        "curves": {a: {"median": med[a].tolist(), "min": curves[a].min(axis=0).tolist(),
                       "max": curves[a].max(axis=0).tolist()} for a in arms},
        "machine": sq.machine(),
    }
    print_table(doc)
    results = out_dir.parent
    plot(doc, results / "transfer.png")
    (results / "transfer.json").write_text(json.dumps(doc, indent=1, default=float))
    return doc


def print_table(doc: dict[str, Any]) -> None:
    print(f"\nshapes {doc['size']}x{doc['size']}, {doc['evaluations']} evaluations per run, pop {doc['pop']}; "
          "hypervolume on 2x the reference UNet")
    print(f"{'arm':>10} {'seed':>6} {'cold final HV':>14} {'warm final HV':>14} {'warm reaches it at':>19} "
          f"{'fraction':>9}")
    for arm, v in doc["arms"].items():
        for p in v["per_seed"] + [{"seed": "median", **v["median"]}]:
            reach, frac = p["warm_evaluations_to_reach_cold_final"], p["fraction"]
            print(f"{arm:>10} {p['seed']:>6} {p['cold_final_hv']:>14.4f} {p['warm_final_hv']:>14.4f} "
                  f"{'never' if reach is None else reach:>19} {'-' if frac is None else f'{frac:.2f}':>9}")
        print(f"{arm:>10} goal (<= 0.50): every seed {'met' if v['goal_met_every_seed'] else 'missed'}, "
              f"median curves {'met' if v['goal_met_on_median'] else 'missed'}")


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    xs = np.arange(1, doc["evaluations"] + 1)
    for arm, c in doc["curves"].items():
        label = LABELS[arm]
        (line,) = ax.plot(xs, c["median"], label=f"{label} (median of {len(doc['seeds'])})")
        ax.fill_between(xs, c["min"], c["max"], color=line.get_color(), alpha=0.2)
    ax.axhline(doc["curves"]["cold"]["median"][-1], color="grey", lw=0.8, ls="--")
    ax.axvline(doc["evaluations"] / 2, color="grey", lw=0.8, ls=":", label="half the evaluations")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume (normalised)")
    ax.set_title(f"Transfer to shapes {doc['size']}x{doc['size']}: warm vs cold start")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8)   # below: the bands fill the axes
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma list of {', '.join(ARMS)}")
    ap.add_argument("--evaluations", type=int, default=48, help="evaluations per run (cold and warm alike)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pop", type=int, default=16)
    ap.add_argument("--size", type=int, default=12, help="side of the shapes images (a multiple of 4)")
    ap.add_argument("--mode", default="async", choices=("generational", "async"))
    ap.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    ap.add_argument("--fidelity", default="quick")
    ap.add_argument("--data-dir", default=None, help="where the shapes folder is written (default: a folder in the temp dir)")
    ap.add_argument("--source-dir", default="benchmarks/results/search_quality",
                    help="the search-quality runs whose nsga2 fronts are the digits sources")
    ap.add_argument("--out-dir", default="benchmarks/results/transfer")
    ap.add_argument("--force", action="store_true", help="rerun finished runs")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--progress-s", type=float, default=30.0, help="least seconds between progress lines (0: none)")
    args = ap.parse_args()
    out_dir = Path(args.out_dir)
    args.data_dir = args.data_dir or str(Path(tempfile.gettempdir()) / f"evodiff-bench-shapes{args.size}")
    make_shapes(Path(args.data_dir), size=args.size)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if sorted(set(arms) - set(ARMS)):
        sys.exit(f"unknown arm(s) {sorted(set(arms) - set(ARMS))}; choose from {', '.join(ARMS)}")
    reference(args, out_dir)
    if not args.report_only:
        for seed in seeds:
            for arm in arms:
                run_one(arm, seed, args, out_dir)
    report(args, out_dir)


if __name__ == "__main__":
    main()
