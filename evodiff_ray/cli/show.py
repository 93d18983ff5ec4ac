"""``evodiff-ray show SEARCH_ID [KEY]``: where a search's pictures are (the front sheet, a candidate's samples)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evodiff_ray.cli import Command
from evodiff_ray.core.errors import UsageError


def picture_path(run_dir: Path, key: str | None) -> Path:
    """The front sheet (no key), the reference's grid (``reference``) or a candidate's grid
    (a key or a unique key prefix) in a run dir.

    Raises:
        UsageError: the run dir, the sheet or the grid does not exist, or a prefix is ambiguous.
    """
    from evodiff_ray.evaluation.samples import SAMPLES_DIR
    from evodiff_ray.search.pictures import FRONT_SHEET, REFERENCE_FILE

    if not run_dir.is_dir():
        raise UsageError(f"no run dir {run_dir}; check the search id and --runs-dir")
    if key is None:
        sheet = run_dir / FRONT_SHEET
        if not sheet.is_file():
            raise UsageError(f"{sheet} does not exist: the search has not finished, or its problem draws no "
                             "samples; 'evodiff-ray front' prints its front")
        return sheet
    if key == "reference":
        try:
            key = str(json.loads((run_dir / REFERENCE_FILE).read_text())["key"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError(f"{run_dir / REFERENCE_FILE} is missing or unreadable: the search ran with "
                             "--no-reference, or has not finished") from None
    found = sorted((run_dir / SAMPLES_DIR).glob(f"{_glob_safe(key)}*.png"))
    if not found:
        raise UsageError(f"no sample grid for key {key!r} in {run_dir / SAMPLES_DIR}; "
                         "'evodiff-ray front' lists the keys")
    if len(found) > 1:
        raise UsageError(f"key prefix {key!r} matches {len(found)} candidates; give more of the key")
    return found[0]


def _glob_safe(key: str) -> str:
    if not key or any(c in key for c in "*?[]/\\"):
        raise UsageError(f"{key!r} is not a key; give a candidate key or its prefix (hex), or 'reference'")
    return key


class ShowCommand(Command):
    """Print the path of a search's front sheet, or of one candidate's sample grid."""

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("search_id", metavar="SEARCH_ID", help="the search")
        parser.add_argument("key", metavar="KEY", nargs="?",
                            help="a candidate's key or key prefix, or 'reference' (default: the front sheet)")
        parser.add_argument("--runs-dir", default="evodiff-runs", help="directory holding run dirs")

    def run(self, args: argparse.Namespace) -> int:
        print(picture_path(Path(args.runs_dir) / args.search_id, args.key))
        return 0
