"""``evodiff-ray lineage KEY``: a candidate's ancestry back to generation 0, and a graph PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evodiff_ray.cli import Command


class LineageCommand(Command):
    """Print the ancestry of a candidate (across warm starts) and write it as a PNG graph."""

    help = "print a candidate's ancestry back to generation 0 and draw it as a graph"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("key", help="the candidate's key (a unique prefix is enough)")
        parser.add_argument("--search-id", help="the search holding it (default: the newest that does)")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="directory holding run dirs")
        parser.add_argument("--format", choices=("tree", "json"), default="tree", help="output format")
        parser.add_argument("--png", help="where the graph goes (default: <run dir>/lineage-<key>.png)")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.adapt.lineage import ancestry, ancestry_json, format_ancestry, lineage_plot

        nodes = ancestry(args.key, search_id=args.search_id, runs_dir=args.runs_dir)
        head = nodes[0]
        png = Path(args.png) if args.png else Path(args.runs_dir) / head.search_id / f"lineage-{head.key[:12]}.png"
        lineage_plot(nodes, png)
        if args.format == "json":
            sys.stdout.write(ancestry_json(nodes) + "\n")
        else:
            gens = sorted({(n.search_id, n.generation) for n in nodes})
            sys.stdout.write(format_ancestry(nodes) + "\n")
            sys.stdout.write(f"{len(nodes)} records over {len({s for s, _ in gens})} search(es); graph: {png}\n")
        return 0
