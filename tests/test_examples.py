"""Example scripts run as users run them."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_seed_quickstart_reproduces_the_notebook(capsys: pytest.CaptureFixture[str]) -> None:
    module = runpy.run_path(str(EXAMPLES / "seed_quickstart.py"))
    final_loss = module["main"]()
    out = capsys.readouterr().out
    assert final_loss < 0.5
    assert out.count("loss") == 10  # every 10 epochs for 100 epochs
    assert "user factors" in out and "item factors" in out
    assert "predicted rating of user 0 for item 3" in out
