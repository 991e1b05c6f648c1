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
