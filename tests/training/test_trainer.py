"""The shared training loop: validation, early stopping, warnings, checkpoints and resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from latentrec import BiasedMF, Interactions, random_split
from latentrec.datasets import synthetic
from latentrec.errors import ConvergenceWarning, InvalidParameterError, ModelFileError
from latentrec.training import Checkpoint, Trainer
from latentrec.training.checkpoints import read_checkpoint, write_checkpoint


@pytest.fixture
def split() -> tuple[Interactions, Interactions]:
    train, valid = random_split(synthetic(150, 80, seed=3), 0.2, seed=0)
    return train, valid


def test_checkpoint_state_round_trips_every_kind_of_value(tmp_path: Path) -> None:
    state: dict[str, Any] = {
        "epoch": 3, "tensor": torch.arange(6.0).reshape(2, 3), "array": np.arange(4),
        "nested": {"optimizer": {"state": {0: {"step": torch.tensor(2.0)}},
                                 "param_groups": [{"betas": (0.9, 0.999), "params": [0]}]}},
        "rng": np.random.default_rng(5).bit_generator.state, "best": float("inf"),
        "none": None,
    }
    write_checkpoint(tmp_path, state)
    again = read_checkpoint(tmp_path)
    assert torch.equal(again["tensor"], state["tensor"])
    np.testing.assert_array_equal(again["array"], state["array"])
    assert isinstance(again["array"], np.ndarray)
    assert again["nested"]["optimizer"]["state"][0]["step"].item() == 2.0
    assert again["nested"]["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert again["rng"] == state["rng"] and again["best"] == float("inf")
    assert again["none"] is None and again["epoch"] == 3


def test_only_the_newest_checkpoints_are_kept_and_latest_names_the_newest(
        tmp_path: Path) -> None:
    for epoch in range(1, 5):
        write_checkpoint(tmp_path, {"epoch": epoch}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "epoch-000003", "epoch-000004"]
    assert (tmp_path / "LATEST").read_text().strip() == "epoch-000004"
    assert read_checkpoint(tmp_path)["epoch"] == 4
    assert not list(tmp_path.glob(".*tmp"))


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    write_checkpoint(tmp_path, {"epoch": 1, "value": torch.ones(3)})

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, {"epoch": 2, "value": torch.zeros(3)})
    assert read_checkpoint(tmp_path)["epoch"] == 1
    assert not list(tmp_path.glob(".*tmp"))


def test_damaged_checkpoints_are_refused_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
        read_checkpoint(tmp_path / "missing")
    with pytest.raises(ModelFileError, match="no LATEST file"):
        read_checkpoint(tmp_path)
    write_checkpoint(tmp_path, {"epoch": 1, "value": torch.ones(3)})
    (tmp_path / "epoch-000001" / "state.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="unreadable checkpoint"):
        read_checkpoint(tmp_path)
    (tmp_path / "LATEST").write_text("../elsewhere\n")
    with pytest.raises(ModelFileError, match="which is not a checkpoint here"):
        read_checkpoint(tmp_path)


def test_checkpoint_policy_is_checked() -> None:
    with pytest.raises(InvalidParameterError, match="checkpoint every must be an integer"):
        Checkpoint("x", every=0)


def test_resuming_with_more_epochs_continues_the_same_run(
        split: tuple[Interactions, Interactions], tmp_path: Path) -> None:
    train, _ = split
    whole = BiasedMF(factors=4, epochs=6).fit(train, show_progress=False)
    BiasedMF(factors=4, epochs=3).fit(
        train, trainer=Trainer(show_progress=False, checkpoint=Checkpoint(tmp_path)))
    trainer = Trainer(show_progress=False, resume=tmp_path)
    resumed = BiasedMF(factors=4, epochs=6).fit(train, trainer=trainer)
    assert trainer.resumed_from == 3
    assert torch.equal(resumed.user_factors_, whole.user_factors_)
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_other_data(split: tuple[Interactions, Interactions],
                                   tmp_path: Path) -> None:
    train, valid = split
    BiasedMF(factors=4, epochs=2).fit(
        train, trainer=Trainer(show_progress=False, checkpoint=Checkpoint(tmp_path)))
    with pytest.raises(InvalidParameterError, match="the checkpoint is of another run"):
        BiasedMF(factors=4, epochs=4).fit(valid, trainer=Trainer(resume=tmp_path))


def test_callbacks_go_to_the_trainer_when_one_is_given(
        split: tuple[Interactions, Interactions]) -> None:
    train, _ = split
    with pytest.raises(InvalidParameterError, match="give callbacks to the Trainer"):
        BiasedMF(epochs=2).fit(train, callbacks=[lambda epoch, logs: None], trainer=Trainer())


def test_still_improving_at_the_last_epoch_warns(split: tuple[Interactions, Interactions]
                                                 ) -> None:
    train, valid = split
    with pytest.warns(ConvergenceWarning, match="still improving at the last epoch"):
        BiasedMF(factors=4, epochs=3, patience=5, lr=0.001).fit(train, valid=valid,
                                                                 show_progress=False)


def test_early_stopping_restores_the_best_epoch(split: tuple[Interactions, Interactions]
                                                ) -> None:
    train, valid = split
    model = BiasedMF(factors=32, epochs=60, patience=2, reg=0.0, lr=0.1, lr_decay=1.0)
    model.fit(train, valid=valid, show_progress=False)
    scores = [h["valid_rmse"] for h in model.history_]
    best = int(np.argmin(scores))
    assert len(scores) < 60 and model.history_[best]["best"] == 1.0
    users, items = model.to_indices(valid)
    rmse = float(np.sqrt(np.mean((model.score_indices(users, items) - valid.values) ** 2)))
    assert rmse == pytest.approx(scores[best], rel=1e-5)


def test_resume_with_fewer_epochs_than_the_checkpoint_is_refused(
        split: tuple[Interactions, Interactions], tmp_path: Path) -> None:
    train, _ = split
    BiasedMF(factors=4, epochs=4).fit(
        train, trainer=Trainer(show_progress=False, checkpoint=Checkpoint(tmp_path)))
    with pytest.raises(InvalidParameterError, match="checkpoint is at epoch 4, past epochs=2"):
        BiasedMF(factors=4, epochs=2).fit(train, trainer=Trainer(resume=tmp_path))


def test_another_run_names_only_what_differs(split: tuple[Interactions, Interactions],
                                             tmp_path: Path) -> None:
    train, _ = split
    BiasedMF(factors=4, epochs=2).fit(
        train, trainer=Trainer(show_progress=False, checkpoint=Checkpoint(tmp_path)))
    with pytest.raises(InvalidParameterError, match=r"\(lr was 0.03, now 0.5\)"):
        BiasedMF(factors=4, epochs=3, lr=0.5).fit(train, trainer=Trainer(resume=tmp_path))


def test_an_early_stopping_policy_given_to_the_trainer_applies(
        split: tuple[Interactions, Interactions]) -> None:
    from latentrec.training import EarlyStopping

    train, valid = split
    # a huge min_delta: no epoch after the first counts as an improvement
    trainer = Trainer(show_progress=False,
                      early_stopping=EarlyStopping(patience=2, min_delta=10.0,
                                                   restore_best=False))
    model = BiasedMF(factors=4, epochs=20).fit(train, valid=valid, trainer=trainer)
    assert len(model.history_) == 3
    assert [h["best"] for h in model.history_] == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("damage", ["missing", "shape"])
def test_a_training_state_that_does_not_fit_is_refused_in_one_line(
        split: tuple[Interactions, Interactions], tmp_path: Path, damage: str) -> None:
    """A checkpoint of the same run written by another engine or version of latentrec: its
    trainer state has other parts or other shapes."""
    train, _ = split
    BiasedMF(factors=4, epochs=2).fit(
        train, trainer=Trainer(show_progress=False, checkpoint=Checkpoint(tmp_path)))
    state = read_checkpoint(tmp_path)
    parameters = state["trainable"]["parameters"]
    if damage == "missing":
        del state["trainable"]["parameters"]
    else:
        parameters["user_factors"] = parameters["user_factors"][:, :3].copy()
    write_checkpoint(tmp_path, state)
    with pytest.raises(ModelFileError, match="does not fit") as error:
        BiasedMF(factors=4, epochs=4).fit(train, trainer=Trainer(resume=tmp_path))
    assert "\n" not in str(error.value) and str(tmp_path) in str(error.value)
