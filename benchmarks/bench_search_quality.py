"""Does the search pay? Hypervolume per wall-clock and per training step, against Ray Tune + Optuna.

Every system searches the diffusion problem on digits with the same workers, the same
evaluation function and one equal wall-clock budget per run, over several seeds:

- ``mf``: ours, NSGA-II with multi-fidelity (rungs, continued weights);
- ``nsga2``: ours, NSGA-II at a single fidelity (``quick``);
- ``random``: ours, uniform draws from the same genome space;
- ``optuna``: ours, Optuna's NSGA-II sampler over our flat genome encoding, in our engine;
- ``tune``: Ray Tune + ``OptunaSearch`` with Optuna's NSGA-II sampler, over the same
  encoding and the same evaluation (``DiffusionProblem.evaluate``), written as a Tune
  user would write it: one trial per candidate, results reported with ``tune.report``.

Only evaluations that finished inside the budget count; the cache is off (every run pays
for its own evaluations) and nothing is tracked. Hypervolume is computed from the
records of every run with ONE reference point, twice the reference UNet's objectives
measured at the start of the benchmark on the same machine, and normalised to [0, 1].

Each (system, seed) run writes ``<out-dir>/<system>-seed<k>.json`` and a rerun skips
the finished ones, so the benchmark can span several sittings. The load average is
recorded beside each run (latency is an objective: run it on an otherwise quiet machine).
``--report-only`` aggregates what is there: a table, ``search_quality.json`` and
``search_quality.png`` (median and range over seeds), the headline ratios and, with
``--discovery``, the best run's front retrained at ``standard``.

    python benchmarks/bench_search_quality.py [--systems nsga2,random,optuna,tune,mf]
        [--seeds 1,2,3] [--budget-s 600] [--workers 2] [--device cpu] [--report-only] [--discovery]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evodiff_ray.problems.diffusion.settings import OBJECTIVES
SYSTEMS = ("mf", "nsga2", "random", "optuna", "tune")
OURS = {"mf": ("nsga2", True), "nsga2": ("nsga2", False), "random": ("random", False), "optuna": ("optuna", False)}
GRID = 60  # points on the common time / step grid of the curves
_PROBLEMS: dict[str, Any] = {}  # the discovery worker's problems, one per fidelity


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def problem_options(args) -> dict[str, Any]:
    return {"fidelity": args.fidelity, "device": args.device, "fd_samples": args.fd_samples}


# --------------------------------------------------------------------------- the reference


def reference(args, out_dir: Path) -> dict[str, Any]:
    """The reference UNet's objectives at ``args.fidelity`` (measured once, then read back)."""
    return measure_reference(problem_options(args), out_dir / "reference.json")


def measure_reference(options: dict[str, Any], path: Path, **facts: Any) -> dict[str, Any]:
    """The reference UNet of the diffusion problem with ``options``, evaluated once in one
    torch thread and kept in ``path`` (with ``facts``); read back when ``path`` exists."""
    if path.exists():
        return json.loads(path.read_text())
    from evodiff_ray.problems import make_problem

    problem = make_problem("diffusion", {**options, "threads": 1})
    problem.setup()
    fit = problem.evaluate(problem.baseline())
    doc = {"objectives": fit.objectives, "fitness": fit.to_dict(), "machine": machine(),
           "loadavg": os.getloadavg(), **facts}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return doc


def reference_point(ref: dict[str, Any]) -> list[float]:
    """The one reference point of every hypervolume here: 2x the reference UNet."""
    return [2.0 * float(ref["objectives"][n]) for n in OBJECTIVES]


# --------------------------------------------------------------------------- one run


def run_ours(system: str, seed: int, args) -> dict[str, Any]:
    from evodiff_ray.config import load_config
    from evodiff_ray.search import search

    strategy, multi_fidelity = OURS[system]
    runs = tempfile.mkdtemp(prefix=f"bench-sq-{system}-{seed}-")
    overrides: dict[str, Any] = {
        "problem": "diffusion", "problem_options": problem_options(args), "strategy": strategy,
        "pop_size": args.pop, "seed": seed, "workers": args.workers, "max_seconds": args.budget_s,
        "mode": args.mode, "runs_dir": runs, "no_cache": True, "no_tracking": True,
        "no_reference": True,   # measured once for the whole benchmark (reference.json)
    }
    if multi_fidelity:
        overrides["rungs"] = args.rungs
    config = load_config(overrides=overrides)
    t0 = time.time()
    from evodiff_ray.cli.search import ProgressPrinter

    # live progress: a line per finished evaluation and per told batch, at most every --progress-s
    printer = ProgressPrinter(config.mode, every_s=args.progress_s, live=False, line_every_s=args.progress_s)
    result = search(config, trackers=[printer] if args.progress_s > 0 else [])
    rows = []
    for r in result.records:
        fit = r["fitness"]
        extras = fit.get("extras", {})
        rows.append({
            "t": float(fit["evaluated_at"]) - t0,
            "key": r["key"],
            "feasible": bool(fit["feasible"]),
            "objectives": {n: fit["objectives"].get(n) for n in OBJECTIVES},
            "train_steps": extras.get("train_steps_spent", extras.get("train_steps")),   # what this run spent
            "rung": extras.get("rung"),
            "genome": r["x"],
        })
    return {"records": rows, "stop_reason": result.stop_reason, "wall_s": time.time() - t0}


def run_tune(seed: int, args) -> dict[str, Any]:
    """Ray Tune + OptunaSearch (NSGA-II sampler) over our flat encoding and evaluation."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from evodiff_ray.problems import make_problem
    from evodiff_ray.strategies.encoding import encoding_for
    from evodiff_ray.strategies.optuna import trial_suggest

    opts = problem_options(args)
    encoding = encoding_for(make_problem("diffusion", opts), "optuna")   # the encoding our optuna strategy uses

    define_by_run = _DefineByRun(encoding, trial_suggest)

    def trainable(config):
        # what a Tune user writes: rebuild the problem in the trial, evaluate, report
        from evodiff_ray.problems import make_problem

        problem = make_problem("diffusion", {**opts, "threads": 1})
        genome = encoding.decode_values(config)
        fit = problem.evaluate(genome)
        values = {n: (float(fit.objectives[n]) if fit.feasible else 1e9) for n in OBJECTIVES}
        tune.report({**values, "evaluated_at": time.time(), "feasible": fit.feasible,
                     "train_steps": fit.extras.get("train_steps"), "key": genome.key(),
                     "genome": json.dumps(genome.to_dict())})

    searcher = OptunaSearch(
        space=define_by_run, metric=list(OBJECTIVES), mode=["min"] * len(OBJECTIVES),
        sampler=optuna.samplers.NSGAIISampler(population_size=args.pop, seed=seed),
    )
    ray.shutdown()                      # our runs' runtime, if this process started one
    os.environ.pop("RAY_ADDRESS", None)
    t0 = time.time()                    # like ours, the clock includes starting Ray
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False)

    class Progress(tune.Callback):
        """A line per finished trial, at most every --progress-s (Tune's own table is off)."""

        last, done = 0.0, 0

        def on_trial_complete(self, iteration, trials, trial, **info):
            Progress.done += 1
            if args.progress_s > 0 and time.time() - Progress.last >= args.progress_s:
                Progress.last = time.time()
                print(f"  tune: {Progress.done} trials finished, {time.time() - t0:.0f} s of "
                      f"{args.budget_s:.0f}", flush=True)

    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, max_concurrent_trials=args.workers,
                                        time_budget_s=args.budget_s),
            run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="bench-sq-tune-"), verbose=0,
                                      callbacks=[Progress()]),
        )
        grid = tuner.fit()
    finally:
        wall = time.time() - t0
        ray.shutdown()
    rows = []
    for res in grid:
        m = res.metrics or {}
        if "evaluated_at" not in m:
            continue
        rows.append({"t": float(m["evaluated_at"]) - t0, "key": m.get("key"), "feasible": bool(m.get("feasible")),
                     "objectives": {n: m.get(n) for n in OBJECTIVES}, "train_steps": m.get("train_steps"),
                     "rung": None, "genome": json.loads(m["genome"]) if m.get("genome") else None})
    rows.sort(key=lambda r: r["t"])
    return {"records": rows, "stop_reason": f"time_budget_s={args.budget_s}", "wall_s": wall}


class _DefineByRun:
    """OptunaSearch's define-by-run space: our encoding, asked through the trial (picklable:
    Tune checkpoints its searcher)."""

    def __init__(self, encoding, suggest):
        self.encoding, self.suggest = encoding, suggest

    def __call__(self, trial):
        self.encoding.decode(self.suggest(trial))


def run_one(system: str, seed: int, args, out_dir: Path) -> Path:
    path = out_dir / f"{system}-seed{seed}.json"
    if path.exists() and not args.force:
        print(f"{system} seed {seed}: done before ({path}), skipped", flush=True)
        return path
    load_before = os.getloadavg()
    print(f"{system} seed {seed}: running for {args.budget_s:.0f} s on {args.workers} workers "
          f"(load {load_before[0]:.2f})", flush=True)
    doc = run_tune(seed, args) if system == "tune" else run_ours(system, seed, args)
    doc.update(system=system, seed=seed, budget_s=args.budget_s, rungs=args.rungs if system == "mf" else None, workers=args.workers, device=args.device,
               fidelity=args.fidelity, pop=args.pop, mode=args.mode, machine=machine(),
               loadavg_before=load_before, loadavg_after=os.getloadavg())
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, allow_nan=True))
    os.replace(tmp, path)
    counted = sum(r["t"] <= args.budget_s for r in doc["records"])
    print(f"{system} seed {seed}: {counted} evaluations inside the budget", flush=True)
    return path


# --------------------------------------------------------------------------- analysis


def normalised(rows: list[dict], ref_point: list[float]) -> np.ndarray:
    """Feasible objective vectors divided by the reference point (finite ones only)."""
    out = []
    for r in rows:
        if not r["feasible"]:
            continue
        v = [r["objectives"].get(n) for n in OBJECTIVES]
        if any(x is None or not np.isfinite(float(x)) for x in v):
            continue
        out.append([float(x) / p for x, p in zip(v, ref_point)])
    return np.array(out).reshape(-1, len(OBJECTIVES))


def hv(points: np.ndarray) -> float:
    from pymoo.indicators.hv import HV

    inside = points[(points < 1.0).all(axis=1)] if len(points) else points
    return float(HV(ref_point=np.ones(len(OBJECTIVES)))(inside)) if len(inside) else 0.0


def curve(rows: list[dict], ref_point: list[float], axis: str, grid: np.ndarray, budget_s: float) -> np.ndarray:
    """Hypervolume of everything evaluated up to each grid value of ``axis`` (t or steps)."""
    rows = [r for r in rows if r["t"] <= budget_s]
    rows = sorted(rows, key=lambda r: r["t"])
    xs, spent = [], 0.0
    for r in rows:
        spent += float(r.get("train_steps") or 0)
        xs.append(r["t"] if axis == "t" else spent)
    out = np.zeros(len(grid))
    for i, g in enumerate(grid):
        upto = [r for r, x in zip(rows, xs) if x <= g]
        out[i] = hv(normalised(upto, ref_point))
    return out


def at_quick(row: dict, doc: dict) -> bool:
    """Was this record's quality measured after exactly ``quick``'s training (the reference's)?"""
    if row.get("rung") is None:
        return True                                   # a single-fidelity run: every record is at quick
    rungs = [float(x) for x in str(doc.get("rungs") or "0.25,1,4").split(",")]
    return 0 <= row["rung"] < len(rungs) and rungs[row["rung"]] == 1.0


def first_reach(xs: np.ndarray, ys: np.ndarray, target: float) -> float | None:
    hit = np.nonzero(ys >= target)[0]
    return float(xs[hit[0]]) if len(hit) else None


def report(args, out_dir: Path) -> dict[str, Any]:
    ref = reference(args, out_dir)
    ref_point = reference_point(ref)
    runs: dict[str, list[dict]] = {}
    for path in sorted(out_dir.glob("*-seed*.json")):
        if path.name.startswith("discovery"):
            continue
        doc = json.loads(path.read_text())
        runs.setdefault(doc["system"], []).append(doc)
    if not runs:
        sys.exit(f"no runs in {out_dir}; run the benchmark first")
    budget = max(d["budget_s"] for ds in runs.values() for d in ds)
    t_grid = np.linspace(0, budget, GRID)
    max_steps = max(sum(float(r.get("train_steps") or 0) for r in d["records"] if r["t"] <= budget)
                    for ds in runs.values() for d in ds) or 1.0
    s_grid = np.linspace(0, max_steps, GRID)
    summary: dict[str, Any] = {}
    for system, docs in runs.items():
        t_curves = np.array([curve(d["records"], ref_point, "t", t_grid, d["budget_s"]) for d in docs])
        s_curves = np.array([curve(d["records"], ref_point, "steps", s_grid, d["budget_s"]) for d in docs])
        finals = [float(c[-1]) for c in t_curves]
        summary[system] = {
            "seeds": [d["seed"] for d in docs],
            "final_hv": finals,
            "final_hv_median": float(np.median(finals)),
            "evaluations": [sum(r["t"] <= d["budget_s"] for r in d["records"]) for d in docs],
            "train_steps": [sum(float(r.get("train_steps") or 0) for r in d["records"] if r["t"] <= d["budget_s"])
                            for d in docs],
            # like with like: only records measured after the reference's training (quick)
            "dominate_reference": [int(sum(all(float(r["objectives"][n]) < float(ref["objectives"][n])
                                               for n in OBJECTIVES)
                                           for r in d["records"]
                                           if r["feasible"] and r["t"] <= d["budget_s"] and at_quick(r, d)))
                                   for d in docs],
            "loadavg": [d["loadavg_before"] for d in docs],
            "t_curve_median": np.median(t_curves, axis=0).tolist(),
            "t_curve_min": t_curves.min(axis=0).tolist(),
            "t_curve_max": t_curves.max(axis=0).tolist(),
            "s_curve_median": np.median(s_curves, axis=0).tolist(),
        }
    headline = {}
    ours = [s for s in summary if s != "tune"]
    best = max(ours, key=lambda s: summary[s]["final_hv_median"]) if ours else None
    if best and "tune" in summary:
        target = summary["tune"]["final_hv_median"]
        t = first_reach(t_grid, np.array(summary[best]["t_curve_median"]), target)
        headline = {"best_system": best, "tune_final_hv": target,
                    "time_to_reach_s": t, "ratio": None if t is None else t / budget, "goal": "<= 1/3"}
    mf_saving = {}
    if "mf" in summary and "nsga2" in summary:
        target = summary["nsga2"]["final_hv_median"]
        steps = first_reach(s_grid, np.array(summary["mf"]["s_curve_median"]), target)
        single = float(np.median(summary["nsga2"]["train_steps"]))
        mf_saving = {"single_fidelity_final_hv": target, "single_fidelity_steps": single,
                     "mf_steps_to_reach": steps, "saving": None if not steps else single / steps, "goal": ">= 3"}
    doc = {"reference": ref, "reference_point": ref_point, "budget_s": budget, "t_grid": t_grid.tolist(),
           "s_grid": s_grid.tolist(), "systems": summary, "headline": headline, "multi_fidelity_saving": mf_saving,
           "machine": machine()}
    disc_path = out_dir / "discovery.json"
    if args.discovery and best and not args.discovery_run and (args.force or not disc_path.exists()):
        disc_path.write_text(json.dumps(discovery(args, runs[best], ref, out_dir), indent=1, default=float))
    if args.discovery and args.discovery_run:
        system, _, seed = args.discovery_run.partition("-seed")
        chosen = [d for d in runs.get(system, []) if str(d["seed"]) == seed]
        if not chosen:
            sys.exit(f"--discovery-run {args.discovery_run}: no such run in {out_dir}; use SYSTEM-seedK")
        path = out_dir / f"discovery-{args.discovery_run}.json"
        path.write_text(json.dumps(discovery(args, chosen, ref, out_dir), indent=1, default=float))
    if disc_path.exists():
        doc["discovery"] = json.loads(disc_path.read_text())
    doc["discovery_other_runs"] = [json.loads(f.read_text()) for f in sorted(out_dir.glob("discovery-*.json"))]
    print_table(doc)
    if args.markdown:
        print("\n" + markdown(doc))
    plot(doc, out_dir.parent / "search_quality.png")
    (out_dir.parent / "search_quality.json").write_text(json.dumps(doc, indent=1, default=float))
    return doc


def _discovery_worker_init(options: dict[str, Any]) -> None:
    global _PROBLEMS
    from evodiff_ray.problems import make_problem

    _PROBLEMS = {}
    for fidelity in ("quick", "standard"):
        _PROBLEMS[fidelity] = make_problem("diffusion", {**options, "fidelity": fidelity, "threads": 1})
        _PROBLEMS[fidelity].setup()


def _discovery_evaluate(job: tuple[str, str, dict | None]) -> tuple[str, str, dict | None]:
    """Train one genome (None: the reference UNet) straight through at one fidelity."""
    from evodiff_ray.genome import Genome

    key, fidelity, genome = job
    problem = _PROBLEMS[fidelity]
    fit = problem.evaluate(problem.baseline() if genome is None else Genome.from_dict(genome))
    return key, fidelity, (dict(fit.objectives) if fit.feasible else None)


def discovery(args, docs: list[dict], ref: dict, out_dir: Path) -> dict[str, Any]:
    """Retrain the best run's front members and the reference at ``quick`` and ``standard``.

    Every model is trained straight through (no rungs, no continued weights) with the same
    seeds, in ``args.workers`` processes of one torch thread each, so the reference and the
    members are measured under the same conditions. At most ``--discovery-max`` members are
    retrained: the front members with the lowest recorded FD (those that can come near the
    reference), which the result states.
    """
    from concurrent.futures import ProcessPoolExecutor

    from scipy.stats import spearmanr

    from evodiff_ray.core.front import front_of

    ref_point = reference_point(ref)
    best = max(docs, key=lambda d: hv(normalised([r for r in d["records"] if r["t"] <= d["budget_s"]], ref_point)))
    recs = [{"key": r["key"], "fitness": {"feasible": r["feasible"], "objectives": r["objectives"]}, "x": r["genome"],
             "rung": r.get("rung")}
            for r in best["records"] if r["t"] <= best["budget_s"] and r["feasible"]]
    front = front_of(recs, OBJECTIVES)
    front.sort(key=lambda r: float(r["fitness"]["objectives"]["quality_fd"]))
    chosen = front[: args.discovery_max]
    jobs = [("reference", f, None) for f in ("standard", "quick")]
    jobs += [(r["key"], f, r["x"]) for r in chosen for f in ("standard", "quick")]
    print(f"discovery: retraining the reference and {len(chosen)} of {len(front)} front members of "
          f"{best['system']} seed {best['seed']} at quick and standard on {args.workers} processes", flush=True)
    load_before = os.getloadavg()
    t0 = time.time()
    got: dict[tuple[str, str], dict | None] = {}
    with ProcessPoolExecutor(args.workers, initializer=_discovery_worker_init,
                             initargs=(problem_options(args),)) as pool:
        for i, (key, fidelity, objectives) in enumerate(pool.map(_discovery_evaluate, jobs), 1):
            got[key, fidelity] = objectives
            print(f"  [{i}/{len(jobs)} {time.time() - t0:6.0f} s] {key[:10]} {fidelity:8} "
                  f"{'infeasible' if objectives is None else {n: round(v, 2) for n, v in objectives.items()}}",
                  flush=True)
    ref_std, ref_quick = got["reference", "standard"], got["reference", "quick"]
    members = [{"key": r["key"], "rung": r["rung"], "recorded": r["fitness"]["objectives"],
                "quick": got[r["key"], "quick"], "standard": got[r["key"], "standard"]} for r in chosen]
    ok = [m for m in members if m["standard"] and m["quick"]]
    close = [m for m in ok if m["standard"]["quality_fd"] <= 1.05 * ref_std["quality_fd"]]
    fastest = min(close, key=lambda m: m["standard"]["latency_ms"]) if close else None
    rho = spearmanr([m["quick"]["quality_fd"] for m in ok], [m["standard"]["quality_fd"] for m in ok]).statistic \
        if len(ok) >= 3 else None
    return {
        "run": f"{best['system']}-seed{best['seed']}", "front_size": len(front), "retrained": len(chosen),
        "chosen_by": f"lowest recorded FD, at most {args.discovery_max}",
        "reference_standard": ref_std, "reference_quick": ref_quick, "members": members,
        "fastest_within_5pct_fd": fastest,
        "latency_ratio": None if not fastest else ref_std["latency_ms"] / fastest["standard"]["latency_ms"],
        "goal_latency_ratio": ">= 2",
        "dominating_reference": [m["key"] for m in ok if all(m["standard"][n] < ref_std[n] for n in OBJECTIVES)],
        "any_dominates_reference": any(all(m["standard"][n] < ref_std[n] for n in OBJECTIVES) for m in ok),
        "spearman_quick_vs_standard_fd": None if rho is None else float(rho),
        "wall_s": time.time() - t0, "workers": args.workers, "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(), "machine": machine(),
    }


def print_table(doc: dict[str, Any]) -> None:
    print(f"\nreference point (2x the reference UNet): {dict(zip(OBJECTIVES, doc['reference_point']))}")
    print(f"{'system':8} {'seeds':>6} {'final HV median':>16} {'range':>17} {'evals':>12} {'beat ref':>9}")
    for s, v in doc["systems"].items():
        print(f"{s:8} {len(v['seeds']):>6} {v['final_hv_median']:>16.4f} "
              f"{min(v['final_hv']):>8.4f}-{max(v['final_hv']):<8.4f} "
              f"{int(np.median(v['evaluations'])):>12} {int(np.median(v['dominate_reference'])):>9}")
    if doc["headline"]:
        print(f"headline: {doc['headline']}")
    if doc["multi_fidelity_saving"]:
        print(f"multi-fidelity saving: {doc['multi_fidelity_saving']}")
    if doc.get("discovery"):
        d = doc["discovery"]
        print(f"discovery ({d['run']}): latency ratio {d['latency_ratio']}, any dominates reference: "
              f"{d['any_dominates_reference']}, Spearman quick vs standard FD {d['spearman_quick_vs_standard_fd']}")
    for d in doc.get("discovery_other_runs", []):
        print(f"discovery ({d['run']}): latency ratio {d['latency_ratio']}, any dominates reference: "
              f"{d['any_dominates_reference']}, Spearman quick vs standard FD {d['spearman_quick_vs_standard_fd']}")


def markdown(doc: dict[str, Any]) -> str:
    """The README's table: what a user gets from each system, from the records."""
    names = {"mf": "ours: NSGA-II, multi-fidelity (`--rungs 0.25,1,4`)", "nsga2": "ours: NSGA-II, one fidelity",
             "random": "ours: `--strategy random`", "optuna": "ours: `--strategy optuna` (NSGA-II sampler)",
             "tune": "Ray Tune + OptunaSearch (NSGA-II sampler)"}
    tune_hv = doc["systems"].get("tune", {}).get("final_hv_median")
    rows = ["| system | seeds | final hypervolume, median (range) | evaluations, median | "
            "beat the reference at `quick`, median | reaches Tune's final hypervolume at |",
            "| --- | --- | --- | --- | --- | --- |"]
    t_grid = np.array(doc["t_grid"])
    for s in ("mf", "nsga2", "optuna", "random", "tune"):
        v = doc["systems"].get(s)
        if not v:
            continue
        reach = None if tune_hv is None else first_reach(t_grid, np.array(v["t_curve_median"]), tune_hv)
        reached = "never" if reach is None else f"{reach:.0f} s of {doc['budget_s']:.0f}"
        rows.append(f"| {names[s]} | {len(v['seeds'])} | {v['final_hv_median']:.3f} "
                    f"({min(v['final_hv']):.3f}-{max(v['final_hv']):.3f}) | {int(np.median(v['evaluations']))} | "
                    f"{np.median(v['dominate_reference']):g} | "
                    f"{reached} |")
    return "\n".join(rows)


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for s, v in doc["systems"].items():
        (line,) = a.plot(doc["t_grid"], v["t_curve_median"], label=f"{s} (n={len(v['seeds'])})")
        a.fill_between(doc["t_grid"], v["t_curve_min"], v["t_curve_max"], alpha=0.2, color=line.get_color())
        b.plot(doc["s_grid"], v["s_curve_median"], label=s, color=line.get_color())
    a.set_xlabel("wall-clock (s)")
    b.set_xlabel("training steps spent")
    for ax in (a, b):
        ax.set_ylabel("hypervolume (normalised; ref = 2x reference UNet)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Search quality on digits: median and range over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma list of {', '.join(SYSTEMS)}")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--budget-s", type=float, default=600.0, help="wall-clock budget per run (>= 600 for results)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    ap.add_argument("--fidelity", default="quick")
    ap.add_argument("--fd-samples", type=int, default=None)
    ap.add_argument("--pop", type=int, default=24)
    ap.add_argument("--rungs", default="0.25,1,4", help="the mf system's rungs (multiples of the fidelity's steps)")
    ap.add_argument("--mode", default="generational", choices=("generational", "async"))
    ap.add_argument("--out-dir", default="benchmarks/results/search_quality")
    ap.add_argument("--force", action="store_true", help="rerun finished (system, seed) runs")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="also print the README's table")
    ap.add_argument("--progress-s", type=float, default=30.0,
                    help="least seconds between live progress lines of a run (0: none)")
    ap.add_argument("--discovery", action="store_true", help="retrain the best run's front at standard")
    ap.add_argument("--discovery-run", default=None, metavar="SYSTEM-seedK",
                    help="with --discovery: retrain this run's front instead of the best run's "
                         "(kept in discovery-<run>.json beside the best run's)")
    ap.add_argument("--discovery-max", type=int, default=16,
                    help="retrain at most this many front members (those with the lowest recorded FD)")
    args = ap.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        sys.exit(f"unknown system(s) {unknown}; choose from {', '.join(SYSTEMS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    out_dir = Path(args.out_dir)
    reference(args, out_dir)
    if not args.report_only:
        for seed in seeds:
            for system in systems:
                run_one(system, seed, args, out_dir)
    report(args, out_dir)


if __name__ == "__main__":
    main()
