"""The package's layering: imports point downward only, and no two subpackages import each other.

The order, lowest first; a unit may import its own level and those below:

    core
    genome, space, cost, operators, denoiser, diffusion, data, metrics
    hardware, problems
    evaluation, cache, tracking, strategies
    config
    search
    serving, adapt
    cli (and the package's own __init__/__main__)

Imports are read with ``ast`` from every module, including those inside functions (a lazy
import is still a dependency).
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

PACKAGE = "evodiff_ray"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE

LEVELS: list[tuple[str, ...]] = [
    ("core",),
    ("genome", "space", "cost", "operators", "denoiser", "diffusion", "data", "metrics"),
    ("hardware", "problems"),
    ("evaluation", "cache", "tracking", "strategies"),
    ("config",),
    ("search",),
    ("serving", "adapt"),
    ("cli", "__init__", "__main__"),
]
LEVEL_OF = {unit: i for i, units in enumerate(LEVELS) for unit in units}


def unit_of(module: str) -> str:
    """``evodiff_ray.cache.redis_cache`` -> ``cache``; ``evodiff_ray`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_imports(root: pathlib.Path = ROOT) -> list[tuple[str, str, str]]:
    """Every import of ours: (importing module, imported module, "file:line")."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(rel.parts)
        is_pkg = module.endswith(".__init__")
        if is_pkg:
            module = module[: -len(".__init__")]
        package = module if is_pkg else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                else:
                    targets = [node.module or ""]
                if targets[0] == PACKAGE:  # `from evodiff_ray import x`: x may be a subpackage
                    targets = [f"{PACKAGE}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                if t == PACKAGE or t.startswith(PACKAGE + "."):
                    out.append((module, t, f"{path.relative_to(root.parent)}:{node.lineno}"))
    return out


def unit_edges(imports) -> dict[tuple[str, str], str]:
    """(importing unit, imported unit) -> the first place it happens, across units only."""
    edges: dict[tuple[str, str], str] = {}
    for src, dst, where in imports:
        a, b = unit_of(src), unit_of(dst)
        if a != b:
            edges.setdefault((a, b), where)
    return edges


def upward(edges: dict[tuple[str, str], str]) -> list[str]:
    """Imports from a lower level to a higher one, or involving a unit with no level."""
    bad = []
    for (a, b), where in sorted(edges.items()):
        if a not in LEVEL_OF or b not in LEVEL_OF:
            bad.append(f"{a} -> {b} ({where}): add the new unit to LEVELS")
        elif LEVEL_OF[a] < LEVEL_OF[b]:
            bad.append(f"{a} (level {LEVEL_OF[a]}) imports {b} (level {LEVEL_OF[b]}) at {where}")
    return bad


def cycles(edges: dict[tuple[str, str], str]) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_upward_import():
    assert upward(unit_edges(package_imports())) == []


def test_no_cycle_between_subpackages():
    assert cycles(unit_edges(package_imports())) == []


def test_core_is_a_leaf():
    edges = unit_edges(package_imports())
    assert [f"core -> {b} ({w})" for (a, b), w in edges.items() if a == "core"] == []


def test_the_scan_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "cache").mkdir(parents=True)
    (pkg / "search").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cache" / "__init__.py").write_text("from . import store\n")
    (pkg / "cache" / "store.py").write_text("def f():\n    from ..search import front\n")
    (pkg / "search" / "__init__.py").write_text("")
    (pkg / "search" / "front.py").write_text("import evodiff_ray.cache.store\n")
    edges = unit_edges(package_imports(pkg))
    assert set(edges) == {("cache", "search"), ("search", "cache")}
    assert cycles(edges) == [["cache", "search"]]


# The cycles and upward imports the layered-house issue found; each must still be caught.
OLD_PROBLEMS = [
    [("evaluation", "search"), ("search", "evaluation")],   # pool imported search.tracker
    [("evaluation", "problems"), ("problems", "evaluation")],  # make_problem <-> evaluation.evaluate
    [("cache", "search"), ("search", "cache")],             # cache.front_store imported search.front
    [("config", "search")],                                  # config imported search.front
    [("tracking", "cli")],                                   # tracking.registry imported cli.compare
]


@pytest.mark.parametrize("old", OLD_PROBLEMS, ids=lambda e: f"{e[0][0]}->{e[0][1]}")
def test_the_old_import_problems_would_fail(old):
    edges = {**unit_edges(package_imports()), **{e: "injected" for e in old}}
    assert upward(edges) or cycles(edges)


def test_every_import_of_ours_resolves():
    """Every ``from evodiff_ray.x import name`` names something that exists (lazy imports
    included: an unused-import cleanup once removed a name another module imported)."""
    import importlib

    missing = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    and node.module.startswith(PACKAGE + ".")):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    continue
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    missing.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.module}.{alias.name}")
    assert missing == []
