"""The dependency direction, checked on the source: models/ and losses/ depend only on the small
shared core (schema, registry, errors), never on pipeline/ (which imports them: a cycle); the
core depends on nothing of the project; no two modules of the tree import each other, directly
or round a longer circle; only pipeline.tracking imports MLflow (bench/ included) and only
pipeline.sweeps imports Ray Tune (its runner, trials, searcher and session)."""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("core", "pipeline", "models", "losses", "reports", "bench", "tasks")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (REPO / f).rglob("*.py"))


@pytest.mark.parametrize("path", files("models", "losses"), ids=lambda p: str(p.relative_to(REPO)))
def test_models_and_losses_depend_only_on_the_core(path):
    bad = {
        m
        for m in imports(path)
        if m.split(".")[0] in PROJECT and m.split(".")[0] not in ("core", "models", "losses")
    }
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", files("core"), ids=lambda p: str(p.relative_to(REPO)))
def test_core_depends_on_nothing_of_the_project(path):
    bad = {m for m in imports(path) if m.split(".")[0] in PROJECT and m.split(".")[0] != "core"}
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_one_module_talks_to_mlflow_and_one_to_ray_tune():
    code = files(*PROJECT)  # bench/ too: a benchmark reaches MLflow through pipeline.tracking
    mlflow = {
        p.relative_to(REPO).as_posix() for p in code if any(m.split(".")[0] == "mlflow" for m in imports(p))
    }
    tune = {
        p.relative_to(REPO).as_posix()
        for p in code
        if any(m.startswith("ray.tune") or m == "ray.tune" for m in imports(p))
    }
    tune |= {
        p.relative_to(REPO).as_posix()
        for p in code
        if "from ray import tune" in p.read_text(encoding="utf-8")
    }
    outside = sorted(p for p in mlflow if not p.startswith("pipeline/tracking/"))
    assert mlflow and not outside, f"MLflow imported outside pipeline/tracking/: {outside}"  # one package
    # the runner, the trials it hands Tune, the searcher (teachers before their students), and
    # the one run a plain-grid study feeds batch by batch
    assert tune == {
        "pipeline/sweeps/tune_runner.py",
        "pipeline/sweeps/trials.py",
        "pipeline/sweeps/ordered.py",
        "pipeline/sweeps/session.py",
    }


# --- import circles -------------------------------------------------------------------------
# The graph is one of modules (package __init__ files are modules of their own). An edge is any
# import of a project module, at any depth: a function-level import only postpones a circle to
# the first call, it does not remove the tangle. A package's own __init__, which Python runs
# before any of its modules, is not an edge of theirs: re-exporting its modules is what it is for.


def module_name(path: Path, root: Path) -> str:
    """`pipeline/tracking/store.py` -> `pipeline.tracking.store`; an `__init__.py` names its package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module under the top-level `packages` of `root`, by dotted name."""
    return {module_name(p, root): p for f in packages for p in sorted((root / f).rglob("*.py"))}


def module_imports(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The project modules that module `name` (the file `path`) imports: relative imports resolved
    against its package, and `from pkg import x` taken as the module `pkg.x` where that exists,
    else as `pkg` (a name defined there)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for a in node.names:
                if f"{source}.{a.name}" in modules:
                    out.add(f"{source}.{a.name}")
                elif source in modules:
                    out.add(source)
    return out - {name}


def import_graph(root: Path = REPO, packages: Iterable[str] = PROJECT) -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    modules = project_modules(root, packages)
    return {m: module_imports(m, p, modules) for m, p in modules.items()}


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One circle per tangle: for each strongly connected group of two or more modules (Tarjan),
    the shortest closed path from its first module by name, e.g. ["a", "b", "a"]; sorted. Edges
    to names outside the graph are ignored."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_shortest_circle(graph, group) for group in groups)


def _shortest_circle(graph: Mapping[str, Iterable[str]], group: set[str]) -> list[str]:
    """Breadth-first from the group's first module back to itself, inside the group."""
    start = min(group)
    came_from: dict[str, str] = {}
    todo = deque([start])
    while todo:
        v = todo.popleft()
        for w in sorted(graph[v]):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if w in group and w not in came_from:
                came_from[w] = v
                todo.append(w)
    raise AssertionError(f"no circle through {start} in {sorted(group)}")  # not strongly connected


def test_no_import_circle_in_the_tree():
    graph = import_graph()
    assert {"pipeline.tracking.store", "models.stats", "reports.query", "bench.common"} <= set(graph)
    assert "pipeline.tracking.store" in graph["pipeline.tracking.read"]  # edges are seen
    circles = [" -> ".join(c) for c in find_cycles(graph)]
    assert not circles, "import circles:\n  " + "\n  ".join(circles)


def test_the_cycle_finder_names_each_circle_once():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]


def test_the_cycle_finder_passes_a_layered_graph():
    graph = {"top": {"mid", "leaf"}, "mid": {"leaf"}, "leaf": set(), "x": {"outside"}}
    assert find_cycles(graph) == []


def test_the_cycle_finder_gives_the_shortest_circle_of_a_tangle():
    # one tangle of four: a -> b -> c -> d -> a, and the short cut a -> c -> a
    graph = {"a": {"b", "c"}, "b": {"c"}, "c": {"d", "a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "c", "a"]]


def test_imports_resolve_to_modules(tmp_path):
    """Relative imports, `from pkg import module`, `from pkg import name` (-> pkg) and imports
    inside functions; a circle that only a function-level import closes is still found."""
    files = {
        "pkg/__init__.py": "from pkg.a import A\n",
        "pkg/a.py": "import os\nfrom . import b\nfrom .sub.c import C\nA = 1\n",
        "pkg/b.py": "from pkg import A\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "import pkg.sub\nC = 1\ndef f():\n    from ..sub.d import D\n",
        "pkg/sub/d.py": "from pkg.sub.c import C\nD = 2\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = import_graph(tmp_path, ["pkg"])
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b", "pkg.sub.c"},
        "pkg.b": {"pkg"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.sub", "pkg.sub.d"},
        "pkg.sub.d": {"pkg.sub.c"},
    }
    assert find_cycles(graph) == [["pkg", "pkg.a", "pkg.b", "pkg"], ["pkg.sub.c", "pkg.sub.d", "pkg.sub.c"]]
