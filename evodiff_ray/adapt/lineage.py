"""Lineage: the ancestry of a candidate, back to generation 0, across warm starts.

Every record of a search keeps its ``generation``, its ``parents`` (keys) and its
``origin``: the edit that made it (``sample``, ``crossover``, ``mutation:<edit>``,
``crossover+mutation:<edit>``, or ``seed:<source>`` when a warm start brought it in). The
run dir's checkpoint holds every record, so :func:`ancestry` walks parents inside a search
and, at a ``seed:`` record, continues in the source search (the same key there), so the
ancestry of a warm-started search runs back into the search it came from.

:func:`lineage_plot` draws the ancestry as a graph PNG with matplotlib alone (time runs
left to right; one colour per search).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evodiff_ray.core.errors import UsageError
from evodiff_ray.search.checkpoint import Checkpoint

__all__ = ["Node", "SearchRecords", "ancestry", "format_ancestry", "lineage_plot", "seed_source"]

#: origin prefix of a warm-started genome; the rest names the source
SEED_PREFIX = "seed:"


@dataclass
class Node:
    """One ancestor: a record of one search.

    Attributes:
        search_id, key, generation, origin: the record's lineage facts.
        parents: (search_id, key) of each parent found; a warm-started record's parent is
            the same key in the search it was seeded from.
        missing: parent keys (or seed sources) that no run dir holds.
        depth: steps from the queried record (0 for it).
    """

    search_id: str
    key: str
    generation: int
    origin: str | None
    parents: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    depth: int = 0
    objectives: dict[str, float] = field(default_factory=dict)


class SearchRecords:
    """Every record of every search under ``runs_dir``, read lazily from their checkpoints.

    Args:
        runs_dir: the directory of run dirs (``./evodiff-runs``).
    """

    def __init__(self, runs_dir: str | Path = "evodiff-runs"):
        self.runs_dir = Path(runs_dir)
        self._by_search: dict[str, dict[str, dict[str, Any]]] = {}

    def search_ids(self) -> list[str]:
        """Searches with a checkpoint, oldest first (by the checkpoint's manifest time)."""
        if not self.runs_dir.is_dir():
            return []
        found = [p.parent.parent for p in self.runs_dir.glob("*/checkpoint/manifest.json")]
        return [p.name for p in sorted(found, key=lambda p: ((p / "checkpoint" / "manifest.json").stat().st_mtime, p.name))]

    def records(self, search_id: str) -> dict[str, dict[str, Any]]:
        """key -> the search's first record of it (empty for an unknown search)."""
        if search_id not in self._by_search:
            out: dict[str, dict[str, Any]] = {}
            ckpt = Checkpoint(self.runs_dir / search_id / "checkpoint")
            if ckpt.exists():
                for event in ckpt.load().events:
                    for r in event.get("records", []) if event.get("op") == "tell" else []:
                        out.setdefault(r["key"], r)
            self._by_search[search_id] = out
        return self._by_search[search_id]

    def find(self, key: str, search_id: str | None = None) -> tuple[str, dict[str, Any]]:
        """The record of ``key`` (a unique prefix is enough) in ``search_id``, or in the
        newest search holding it.

        Raises:
            UsageError: no search (or not the named one) holds the key, or the prefix is ambiguous.
        """
        if search_id is not None and not (self.runs_dir / search_id).is_dir():
            raise UsageError(f"no search {search_id!r} in {self.runs_dir}/; list them with 'evodiff-ray searches' "
                             "or pass --runs-dir")
        for sid in [search_id] if search_id else reversed(self.search_ids()):
            hits = [k for k in self.records(sid) if k.startswith(key)]
            if len(hits) > 1:
                raise UsageError(f"key prefix {key!r} matches {len(hits)} candidates of search {sid!r}; "
                                 "give a longer key")
            if hits:
                return sid, self.records(sid)[hits[0]]
        where = f"search {search_id!r}" if search_id else f"any search under {self.runs_dir}/"
        raise UsageError(f"no candidate with key {key!r} in {where}; copy a key from 'evodiff-ray front'")


def seed_source(origin: str | None) -> str | None:
    """The source named by a warm-started record's origin (``seed:<source>``), else None."""
    if origin and origin.startswith(SEED_PREFIX):
        return origin[len(SEED_PREFIX):]
    return None


def ancestry(key: str, *, search_id: str | None = None, runs_dir: str | Path = "evodiff-runs",
             max_nodes: int = 10_000) -> list[Node]:
    """The record of ``key`` and all its ancestors, breadth first (the record itself first).

    Parents are looked up in the record's own search; a ``seed:<source>`` record continues
    at the same key in the source search when ``<source>`` is a search under ``runs_dir``.

    Raises:
        UsageError: the key (or the named search) is unknown.
    """
    store = SearchRecords(runs_dir)
    sid, rec = store.find(key, search_id)
    out: list[Node] = []
    seen: dict[tuple[str, str], Node] = {}
    queue = [(sid, rec, 0)]
    while queue and len(out) < max_nodes:
        sid, rec, depth = queue.pop(0)
        if (sid, rec["key"]) in seen:
            continue
        fit = rec.get("fitness") or {}
        node = Node(sid, rec["key"], int(rec.get("generation") or 0), rec.get("origin"), depth=depth,
                    objectives=dict(fit.get("objectives") or {}))
        seen[(sid, rec["key"])] = node
        out.append(node)
        source = seed_source(node.origin)
        if source is not None:
            src_sid = _source_search(source)
            src = store.records(src_sid).get(rec["key"]) if src_sid else None
            if src is None:
                node.missing.append(source)
            else:
                node.parents.append((src_sid, rec["key"]))
                queue.append((src_sid, src, depth + 1))
            continue
        for pk in rec.get("parents") or []:
            parent = store.records(sid).get(pk)
            if parent is None:
                node.missing.append(pk)
            else:
                node.parents.append((sid, pk))
                queue.append((sid, parent, depth + 1))
    return out


def _source_search(source: str) -> str | None:
    """The search id a seed source names: ``search:<id>`` (also what a registered model's
    lineage tags resolve to), else None (a file of genomes has no search behind it)."""
    for part in source.split("|"):   # a model seed: "model:NAME@ALIAS|search:<id>"
        kind, _, rest = part.partition(":")
        if kind == "search" and rest:
            return rest
    return None


def format_ancestry(nodes: list[Node], objective_names: list[str] | None = None) -> str:
    """The ancestry as an indented tree, the queried record first (pure)."""
    if not nodes:
        return ""
    by_id = {(n.search_id, n.key): n for n in nodes}
    names = objective_names or list(nodes[0].objectives)
    lines: list[str] = []
    printed: set[tuple[str, str]] = set()

    def walk(n: Node, indent: int) -> None:
        objs = " ".join(f"{k}={_fmt(n.objectives[k])}" for k in names if k in n.objectives)
        again = (n.search_id, n.key) in printed
        lines.append(f"{'  ' * indent}{n.key[:12]}  gen {n.generation}  {n.origin or '?'}  "
                     f"[{n.search_id}]" + (f"  {objs}" if objs and not again else "") + ("  (see above)" if again else ""))
        if again:
            return
        printed.add((n.search_id, n.key))
        for m in n.missing:
            lines.append(f"{'  ' * (indent + 1)}{m[:40]}  (not in any run dir)")
        for p in n.parents:
            walk(by_id[p], indent + 1)

    walk(nodes[0], 0)
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return str(v)


def lineage_plot(nodes: list[Node], path: str | Path) -> Path:
    """Draw the ancestry as a graph PNG: one box per record, an arrow from each parent to
    its child, one column per (search, generation) in time order (the oldest search, and
    its first generation, on the left), one colour per search. Returns the path written."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a search whose records lie deeper in the ancestry is older (it seeded the later ones)
    age = {}
    for n in nodes:
        age[n.search_id] = max(age.get(n.search_id, 0), n.depth)
    order = {s: i for i, s in enumerate(sorted(age, key=lambda s: (-age[s], s)))}
    slots = sorted({(order[n.search_id], n.generation) for n in nodes})
    column_of = {slot: i for i, slot in enumerate(slots)}
    columns: dict[int, list[Node]] = {}
    for n in nodes:
        columns.setdefault(column_of[(order[n.search_id], n.generation)], []).append(n)
    max_col = max(columns, default=0)
    pos: dict[tuple[str, str], tuple[float, float]] = {}
    for c, col in columns.items():
        col.sort(key=lambda n: (n.depth, n.key))
        for i, n in enumerate(col):
            pos[(n.search_id, n.key)] = (float(c), i - (len(col) - 1) / 2)
    max_depth = max_col
    searches = sorted({n.search_id for n in nodes})
    cmap = plt.get_cmap("tab10")
    colour = {s: cmap(i % 10) for i, s in enumerate(searches)}
    tallest = max((len(c) for c in columns.values()), default=1)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.6 * (max_depth + 1)), max(3.0, 0.9 * tallest + 1.5)))
    for n in nodes:
        x1, y1 = pos[(n.search_id, n.key)]
        for p in n.parents:
            x0, y0 = pos[p]
            ax.annotate("", xy=(x1 - 0.28, y1), xytext=(x0 + 0.28, y0),
                        arrowprops=dict(arrowstyle="->", color="0.4", lw=1.0))
    for n in nodes:
        x, y = pos[(n.search_id, n.key)]
        origin = (n.origin or "?").replace("+", "+\n").replace("|", "\n")
        label = f"{n.key[:10]}\ngen {n.generation}\n{origin}"
        ax.text(x, y, label, ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round,pad=0.3", fc=colour[n.search_id], alpha=0.35, ec=colour[n.search_id]))
    for s in searches:
        ax.plot([], [], "s", color=colour[s], alpha=0.6, label=f"search {s}")
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.set_xlim(-0.6, max_depth + 0.6)
    ax.set_ylim(-(tallest / 2) - 0.6, tallest / 2 + 0.9)
    ax.set_axis_off()
    ax.set_title(f"lineage of {nodes[0].key[:12]} ({len(nodes)} records, {len(searches)} searches)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ancestry_json(nodes: list[Node]) -> str:
    """The ancestry as JSON (one object per record)."""
    return json.dumps([{"search_id": n.search_id, "key": n.key, "generation": n.generation, "origin": n.origin,
                        "depth": n.depth, "parents": [list(p) for p in n.parents], "missing": n.missing,
                        "objectives": n.objectives} for n in nodes], indent=1)
