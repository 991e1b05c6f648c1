"""Shared fixtures. Real data comes from ../shared/datasets (or $LATENTREC_DATA), never the net."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from latentrec.data import Interactions

REPO = Path(__file__).resolve().parents[1]


def shared_datasets_dir() -> Path:
    if "LATENTREC_DATA" in os.environ:
        return Path(os.environ["LATENTREC_DATA"])
    for folder in REPO.parents:
        if (folder / "shared" / "datasets").is_dir():
            return folder / "shared" / "datasets"
    return REPO / "datasets"


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The shared datasets folder. Missing data skips locally but fails under CI=true."""
    path = shared_datasets_dir()
    if not (path / "ml-100k" / "u.data").exists():
        message = f"real datasets not found at {path} (set LATENTREC_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def tiny() -> Interactions:
    """Hand-written explicit ratings with string ids."""
    return Interactions.from_arrays(
        ["ann", "ann", "ann", "bob", "bob", "cat", "cat", "dan"],
        ["x", "y", "z", "x", "w", "y", "w", "z"],
        [5.0, 3.0, 4.0, 4.0, 1.0, 2.0, 5.0, 3.0],
    )


@pytest.fixture
def checkerboard() -> Interactions:
    """Implicit known-answer pattern: even users like even items, odd users odd items."""
    users, items = np.meshgrid(np.arange(20), np.arange(20), indexing="ij")
    mask = (users % 2) == (items % 2)
    return Interactions.from_arrays(
        [f"u{u}" for u in users[mask]], [f"i{i}" for i in items[mask]], feedback="implicit"
    )


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return tmp_path / "model"


@pytest.fixture(scope="session")
def planted() -> Interactions:
    """Synthetic explicit ratings with planted low-rank structure."""
    from latentrec.datasets import synthetic

    return synthetic(n_users=600, n_items=300, density=0.1, factors=4, noise=0.3, seed=3)
