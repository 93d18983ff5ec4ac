"""``evodiff-ray front [SEARCH_ID]``: the live or final Pareto front of a search."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import Any

from evodiff_ray.cli import Command
from evodiff_ray.errors import UsageError

FORMATS = ("table", "json", "csv")


def format_front(front: dict[str, Any], fmt: str = "table") -> str:
    """Render a front document as a table, JSON or CSV (pure).

    Args:
        front: a front document (DESIGN section 4).
        fmt: ``table``, ``json`` or ``csv``.
    """
    names = front["objectives"]
    points = sorted(front["points"], key=lambda p: [p["objectives"][n] for n in names])
    if fmt == "json":
        return json.dumps(front, indent=1)
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["key", "generation", *names, "node", "device"])
        for p in points:
            m = p.get("measured_on", {})
            w.writerow([p["key"], p["generation"], *[repr(p["objectives"][n]) for n in names],
                        m.get("node"), m.get("device")])
        return out.getvalue().rstrip("\n")
    header = (f"search {front['search_id']} ({front['status']}): generation {front['generation']}, "
              f"{front['evaluations']} evaluations, {len(points)} points on the front")
    cols = ["key", "gen", *names]
    rows = [[p["key"][:12], str(p["generation"]), *[f"{p['objectives'][n]:.6g}" for n in names]] for p in points]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = [header, "  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


class FrontCommand(Command):
    """Print the front of a search (the most recent one when no id is given)."""

    help = "show the live or final Pareto front of a search"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("search_id", nargs="?", help="search id (default: the most recently updated)")
        parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="directory holding run dirs")

    def run(self, args: argparse.Namespace) -> int:
        from evodiff_ray.search.front import FileFrontStore

        store = FileFrontStore(args.runs_dir)
        search_id = args.search_id or store.latest()
        if search_id is None:
            raise UsageError(f"no search fronts under {args.runs_dir!r}; run 'evodiff-ray search' first")
        try:
            front = store.read(search_id)
        except ValueError as e:
            raise UsageError(f"front of {search_id!r} is malformed: {e}") from None
        if front is None:
            raise UsageError(f"no front for search {search_id!r} under {args.runs_dir!r}")
        sys.stdout.write(format_front(front, args.format) + "\n")
        return 0
