"""Shared fixtures of the hostile-input suites: small valid files and a trained model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentrec.cli.main import cli


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="session")
def invoke() -> Callable[..., tuple[int, str, str]]:
    """Run the CLI in-process: ``invoke(*args) -> (exit status, stdout, stderr)``."""
    return run_cli


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ratings.csv, plays.csv, a trained biased-mf model and an item-knn one."""
    folder = tmp_path_factory.mktemp("hostile")
    rows = ["user,item,rating"] + [f"u{u},i{i},{1 + (u + i) % 5}" for u in range(30)
                                   for i in range(20) if (u * 7 + i * 3) % 4 == 0]
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    plays = ["user,item,weight"] + [f"u{u},i{i},{1 + (u * i) % 7}" for u in range(30)
                                    for i in range(20) if (u + 2 * i) % 5 == 0 or u % 3 == i % 3]
    (folder / "plays.csv").write_text("\n".join(plays) + "\n")
    code, _, err = run_cli("train", str(folder / "ratings.csv"), "-o", str(folder / "model"),
                           "--factors", "4", "--epochs", "3", "--quiet")
    assert code == 0, err
    code, _, err = run_cli("train", str(folder / "plays.csv"), "-o", str(folder / "knn"),
                           "--model", "item-knn", "--implicit", "--quiet")
    assert code == 0, err
    (folder / "afile").write_text("not a folder\n")
    return folder
