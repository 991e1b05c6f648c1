"""End to end on the real MovieLens 100K files (read from the shared datasets folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from latentrec import BiasedMF, evaluate, load, read_interactions
from latentrec.cli.main import cli

pytestmark = pytest.mark.realdata


def test_u1_split_with_unseen_items(datasets_dir: Path, tmp_path: Path) -> None:
    base = datasets_dir / "ml-100k"
    train = read_interactions(base / "u1.base")
    test = read_interactions(base / "u1.test")
    model = BiasedMF(epochs=5).fit(train, show_progress=False)
    table = evaluate(model, test).set_index("metric")["value"]
    # u1.test rates 32 times items that u1.base never saw: scored by the fallback, counted
    assert table["fallback_predictions"] == 32
    assert table["unknown_users"] == 0
    assert table["test_interactions"] == 20_000
    assert 0.85 < table["rmse"] < 1.0
    model.save(tmp_path / "model")
    assert load(tmp_path / "model").predict(196, 242) == model.predict(196, 242)


def test_cli_on_u_data(datasets_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = datasets_dir / "ml-100k"
    done = runner.invoke(cli, ["train", str(base / "u1.base"), "-o", str(tmp_path / "m"),
                               "--quiet", "--epochs", "3"])
    assert done.exit_code == 0, done.stderr
    done = runner.invoke(cli, ["evaluate", str(tmp_path / "m"), str(base / "u1.test"),
                               "--json"])
    assert done.exit_code == 0, done.stderr
    assert '"fallback_predictions": 32' in done.stdout
