"""``evodiff-ray evaluate GENOME.json``: train, sample and measure one genome locally.

Prints the Fitness (JSON by default). Exit 0 when the genome was evaluated, even if the
candidate turned out infeasible (the reason is in the record and on stderr); exit 2 for
a bad genome, dataset or flag, including a genome whose levels the dataset's resolution
cannot hold.
"""

from __future__ import annotations

import argparse
import json
import sys

from evodiff_ray.cli import Command
from evodiff_ray.core.errors import UsageError


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``evaluate`` and ``baseline --evaluate``."""
    from evodiff_ray.diffusion.fidelity import FIDELITIES

    parser.add_argument("--fidelity", choices=tuple(FIDELITIES), default="quick", help="training budget (default quick)")
    parser.add_argument("--dataset", default="digits", help="'digits' (default), an image folder or an .npz file")
    parser.add_argument("--resolution", type=int, default=None, help="resize user images to this side length")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds before the candidate is infeasible (600)")
    parser.add_argument("--format", choices=("json", "table"), default="json", help="output format (default json)")
    parser.add_argument("--samples", metavar="FILE.png", default=None,
                        help="write a 4x4 grid of the samples drawn for FD (fixed noise seeds) to this PNG")


def evaluate_and_print(genome, args: argparse.Namespace) -> int:
    """Evaluate ``genome`` with the flags of :func:`add_evaluation_arguments` and print the Fitness."""
    from evodiff_ray.problems.diffusion.bench import DiffusionBench, stderr_progress
    from evodiff_ray.problems.diffusion.settings import DiffusionSettings

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: use a positive integer")
    settings = DiffusionSettings(fidelity=args.fidelity, dataset=args.dataset, device=args.device,
                                 resolution=args.resolution, seed=args.seed, time_limit_s=args.time_limit,
                                 threads=args.threads)
    evaluator = DiffusionBench(settings, progress=stderr_progress)
    ds = evaluator.dataset
    if not ds.suits_levels(genome.levels):
        raise UsageError(
            f"genome has {genome.levels} levels but the dataset's resolution {ds.resolution} is not a multiple "
            f"of {2 ** (genome.levels - 1)}; use fewer levels or pass --resolution {max(8, 2 ** (genome.levels - 1))}"
        )
    fit = evaluator.evaluate(genome)
    from evodiff_ray.metrics.samples import SAMPLES_EXTRA, decode

    png = decode(fit.extras.pop(SAMPLES_EXTRA, None))     # an image, not a field to print
    if png is not None and args.samples:
        from pathlib import Path

        Path(args.samples).write_bytes(png)
        stderr_progress(f"samples: {args.samples}")
    if not fit.feasible:
        stderr_progress(f"candidate infeasible: {fit.reason}")
    if args.format == "json":
        print(json.dumps(fit.to_dict(), indent=2, sort_keys=True))
    else:
        print_table(fit)
    return 0


def print_table(fit) -> None:
    """A human-readable summary of a Fitness."""
    rows = [(name, f"{v:.4g}") for name, v in fit.objectives.items()]
    rows += [("feasible", str(fit.feasible))]
    if fit.reason:
        rows.append(("reason", fit.reason))
    for k in ("params", "heldout_loss", "latency_p90_ms", "memory_method", "fidelity", "seed"):
        if k in fit.extras:
            v = fit.extras[k]
            rows.append((k, f"{v:.4g}" if isinstance(v, float) else str(v)))
    on = fit.measured_on
    rows += [("measured_on", f"{on.get('node')} {on.get('device')} ({on.get('chip')}), torch {on.get('torch')}"),
             ("seconds", f"{fit.seconds:.1f}")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


class EvaluateCommand(Command):
    """Evaluate one genome JSON file (``-`` reads stdin)."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("genome", metavar="GENOME.json", help="genome JSON file, or - for stdin")
        add_evaluation_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.genome import Genome

        if args.genome == "-":
            genome = Genome.from_json(sys.stdin.read(), where="stdin")
        else:
            genome = Genome.load(args.genome)
        return evaluate_and_print(genome, args)
