"""Plain-text tables: left-aligned columns separated by two spaces (CLI output and reports)."""

from __future__ import annotations

from typing import Sequence


def format_table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The header and rows as aligned lines (no trailing newline).

    Args:
        head: column names.
        rows: one sequence of cells per row; cells are shown with ``str``.
    """
    body = [[str(c) for c in r] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)] if head else []
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [list(head), *body])
