"""The architecture holds: layers import only downward, no import cycles, no imports hidden in functions.

The layers are the import-linter contracts in pyproject.toml (drawn in docs/architecture.md); the cycle
check runs over every module of service/, training/ and models/, so a cycle cannot creep back in between
two modules of one package either. In the service and the model contract, function-level imports are allowed
only where they keep torch out of a CPU server's process (training's own modules load theirs lazily).
"""
from __future__ import annotations

import ast
from pathlib import Path

import grimp
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "training", "models")
# Imported inside functions on purpose: torch (and what pulls it in) only when training, exporting or
# serving on a GPU, never by a CPU server, `tailor --help` or a job that does not train.
TORCH = {"torch", "safetensors.torch", "training.models", "training.train", "training.export"}


def test_layer_contracts_are_kept():
    configuration.configure()  # what the lint-imports command does first
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_logo=True)


def test_no_import_cycles():
    graph = grimp.build_graph(*PACKAGES)
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(module: str) -> None:  # Tarjan's strongly connected components, iteratively deep enough here
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []


def function_level_imports(path: Path) -> list[str]:
    """Modules imported inside a function or method of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found += [alias.name for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom):
                    found.append(inner.module or "")
    return found


def test_imports_sit_at_the_top_of_modules_except_torchs():
    hidden = {f"{path.relative_to(REPO)}: {name}" for package in ("service", "models")
              for path in (REPO / package).rglob("*.py") for name in function_level_imports(path) if name not in TORCH}
    assert hidden == set()
