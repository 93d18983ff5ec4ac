"""``evodiff-ray genome``: sample, validate and describe architecture genomes."""

from __future__ import annotations

import argparse
import json

from evodiff_ray.cli import Command
from evodiff_ray.core.errors import UsageError


def _positive(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not an integer") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{n} must be a positive integer")
    return n


class GenomeCommand(Command):
    """Subcommands: ``sample``, ``validate``, ``describe``."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="genome_action", metavar="ACTION", required=True,
                                    parser_class=type(parser))
        s = sub.add_parser("sample", help="draw random valid genomes from the search space")
        s.add_argument("--n", type=_positive, default=5, help="how many genomes (default 5)")
        s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        s.add_argument("--generation", type=int, default=10**6,
                       help="complexity-schedule generation (default: the whole space)")
        s.add_argument("--format", choices=("json", "jsonl", "table"), default="json",
                       help="json: a list; jsonl: one genome per line; table: a summary")
        v = sub.add_parser("validate", help="check a genome JSON file; exit 0 if valid, 2 if not")
        v.add_argument("file", help="genome JSON file")
        d = sub.add_parser("describe", help="show a genome's key and analytic cost")
        d.add_argument("file", help="genome JSON file")
        d.add_argument("--resolution", type=_positive, default=8, help="image size in pixels (default 8)")
        d.add_argument("--batch", type=_positive, default=1, help="batch size (default 1)")

    def run(self, args: argparse.Namespace) -> int:
        return getattr(self, "_" + args.genome_action)(args)

    def _sample(self, args) -> int:
        import numpy as np

        from evodiff_ray.operators import sample_population
        from evodiff_ray.space import SearchSpace

        genomes = sample_population(SearchSpace(), args.n, np.random.default_rng(args.seed), args.generation)
        if args.format == "json":
            print(json.dumps([g.to_dict() for g in genomes], indent=2, sort_keys=True))
        elif args.format == "jsonl":
            for g in genomes:
                print(g.to_json())
        else:
            _table([_summary(g) for g in genomes])
        return 0

    def _validate(self, args) -> int:
        from evodiff_ray.genome import Genome

        g = Genome.load(args.file)
        print(f"{args.file}: valid genome, key {g.key()[:16]}, {g.depth} layers, {g.levels} levels")
        return 0

    def _describe(self, args) -> int:
        from evodiff_ray.cost import estimate, layer_costs
        from evodiff_ray.genome import Genome

        g = Genome.load(args.file)
        if args.resolution % (2 ** (g.levels - 1)):
            raise UsageError(f"--resolution {args.resolution} cannot be halved {g.levels - 1} times; "
                             f"use a multiple of {2 ** (g.levels - 1)}")
        c = estimate(g, resolution=args.resolution, batch=args.batch)
        print(f"key            {g.key()}")
        print(f"params         {c.params:,}")
        print(f"MFLOPs/step    {c.flops_per_step / 1e6:,.2f}  (batch {args.batch}, {args.resolution}x{args.resolution})")
        print(f"sampler steps  {c.sampler_steps}  -> {c.sampling_flops / 1e6:,.1f} MFLOPs per sample run")
        print(f"peak act. MiB  {c.peak_activation_bytes / 2**20:,.3f}")
        rows = [{"piece": x.name, "kind": x.kind, "level": x.level, "params": f"{x.params:,}",
                 "MFLOPs": f"{x.flops / 1e6:.3f}"} for x in layer_costs(g, resolution=args.resolution, batch=args.batch)]
        _table(rows)
        return 0


def _summary(g) -> dict:
    from evodiff_ray.cost import estimate

    kinds = {}
    for layer in g.layers:
        kinds[layer["kind"]] = kinds.get(layer["kind"], 0) + 1
    return {
        "key": g.key()[:12],
        "levels": g.levels,
        "width": g.parameters["base_channels"],
        "mults": "x".join(map(str, g.parameters["channel_mults"])),
        "layers": g.depth,
        "kinds": ",".join(f"{k[:4]}{v}" for k, v in sorted(kinds.items())),
        "skips": len(g.connections),
        "steps": g.parameters["sampler_steps"],
        "params": f"{estimate(g).params:,}",
    }


def _table(rows: list[dict]) -> None:
    from evodiff_ray.core.table import format_table

    if rows:
        print(format_table(list(rows[0]), [list(r.values()) for r in rows]))
