"""Static checks run with the tests, so CI enforces them: ruff, mypy --strict, import layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the dev extra: pip install -e '.[dev]'")
    return found


def _check(*command: str) -> None:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_ruff() -> None:
    _check(_tool("ruff"), "check", "src", "tests", "examples", "benchmarks")


def test_import_layers() -> None:
    _check(_tool("lint-imports"))


@pytest.mark.slow
def test_mypy_strict() -> None:
    _check(_tool("mypy"), "src/latentrec")


def test_no_import_cycles() -> None:
    """No module imports itself through others, type-checking-only imports included."""
    import grimp

    graph = grimp.build_graph("latentrec", exclude_type_checking_imports=False)
    edges = {module: graph.find_modules_directly_imported_by(module)
             for module in graph.modules}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if target == module or target not in edges:
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)
