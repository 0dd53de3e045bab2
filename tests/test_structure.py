"""The shape of the code, as docs/design.md promises it: small modules, no import cycle,
and RQ's worker internals used in one folder only (the seam ``tests/test_rq_contract.py``
checks against the installed rq)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "taskkit"
MAX_LINES = 430
"""About 400 lines: a module a reader takes in at one sitting ("a few hundred lines")."""
WORKER_INTERNALS = (
    "rq.worker",
    "rq.worker_pool",
    "rq.worker_registration",
    "rq.scheduler",
    "rq.job_lifecycle",
    "rq.intermediate_queue",
    "rq.defaults",
)
"""RQ modules that only the worker package may import: its loop and its internals."""


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def runtime_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported: module level, not under TYPE_CHECKING."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return names


def import_graph() -> dict[str, set[str]]:
    """Each module -> the package's modules it imports at import time.

    ``from taskkit.worker import horses`` is an edge to ``taskkit.worker.horses``, not to
    the package whose ``__init__`` re-exports names (that is Python's usual layout).
    """
    known = modules()
    graph = {}
    for name, path in known.items():
        imported = {m for m in runtime_imports(path) if m in known and m != name}
        graph[name] = {
            m for m in imported if not any(other.startswith(m + ".") for other in imported)
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:  # noqa: C901 - Tarjan, in one piece
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                strong(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return found


def test_no_module_is_longer_than_a_sitting() -> None:
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these by concern (over {MAX_LINES} lines): {long}"


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_check_can_fail() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_rqs_worker_internals_are_used_in_the_worker_package_only() -> None:
    outside = {
        name: sorted(m for m in runtime_imports(path) if m.startswith(WORKER_INTERNALS))
        for name, path in modules().items()
        if not name.startswith("taskkit.worker")
    }
    assert {name: found for name, found in outside.items() if found} == {}
