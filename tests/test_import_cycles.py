"""No import cycles in fastmamba.isa and fastmamba.simulator, and every module imports on its own.

The import graph is built from the source files' `ast` (every `import` and
`from ... import`, including those inside functions, which a lazy import hides
from a plain module-level scan; not those under `if TYPE_CHECKING:`, which
never run) and checked for cycles with networkx; each
module is then imported first in a fresh interpreter, which would fail on a
cycle that needs a partially initialized module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"fastmamba.isa": ROOT / "isa", "fastmamba.simulator": ROOT / "simulator"}


def _modules() -> dict[str, Path]:
    """Module name -> source file, for every module of the packages (packages as their __init__)."""
    out = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node of the tree except the bodies of `if TYPE_CHECKING:` (imports for annotations only)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if _is_type_checking(node):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `name`'s source imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package holding this module
                anchor = name.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # importing a.b.c runs a, a.b and a.b.c
            parts = target.split(".")
            found.update(m for m in (".".join(parts[:k]) for k in range(1, len(parts) + 1)) if m in known)
    found.discard(name)
    return found


def _graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, dep) for dep in _imported(name, path, set(modules)))
    return graph


def test_the_graph_sees_every_kind_of_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import fastmamba.isa.errors\nfrom fastmamba.isa import target\n"
                      "def f():\n    from fastmamba.simulator.effects import Range\n"
                      "if TYPE_CHECKING:\n    from fastmamba.simulator import stats\n")
    known = {"fastmamba.isa", "fastmamba.isa.errors", "fastmamba.isa.target", "fastmamba.simulator",
             "fastmamba.simulator.effects", "fastmamba.simulator.stats"}
    assert _imported("fastmamba.simulator.m", source, known) == known - {"fastmamba.simulator.stats"}


def test_no_import_cycle_in_isa_and_simulator():
    graph = _graph()
    assert graph.number_of_edges() > 20  # the scan found the imports
    assert ("fastmamba.simulator.engine", "fastmamba.isa.formatting") in graph.edges
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + [c[0]]) for c in cycles)


def test_isa_imports_nothing_else_of_fastmamba_and_the_simulator_only_isa():
    for a, b in _graph().edges:
        if a.startswith("fastmamba.isa"):
            assert b.startswith("fastmamba.isa"), (a, b)
        assert not b.startswith("fastmamba.compiler") and not b.startswith("fastmamba.passes"), (a, b)


@pytest.mark.parametrize("module", sorted(_modules()))
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=ROOT)
