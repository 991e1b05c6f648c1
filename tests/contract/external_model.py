"""A complete latentrec model defined outside the package: the baseline predictor
``global mean + user bias + item bias``, learned by a few epochs of alternating least squares.

This file is the model of docs/extending.md, word for word; the contract suite
(tests/contract) registers it and runs every check on it, as on latentrec's own models.
A package of your own would list it under the ``latentrec.models`` entry points instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from latentrec import Interactions
from latentrec.errors import ModelFileError
from latentrec.models import EpochConfig, Recommender, hyperparameters
from latentrec.training import Trainable


@dataclasses.dataclass(frozen=True)
class UserItemBaselineConfig(EpochConfig):
    """Hyperparameters of :class:`UserItemBaseline` (``epochs``, ``patience`` and ``seed``
    come from :class:`~latentrec.models.EpochConfig`)."""

    epochs: int = 10
    reg_user: float = 10.0
    reg_item: float = 25.0
    init_std: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_non_negative("reg_user", "reg_item", "init_std")


class UserItemBaseline(Recommender):
    """Predicts ``mean + b_u + b_i`` (Koren 2010, "Factor in the neighbors", section 2.1).

    Each epoch solves every user's bias with the item biases held fixed, then every item's
    bias with the user biases held fixed, each shrunk towards zero by ``reg_user`` (``reg_item``)
    pseudo-ratings. Item biases start from ``N(0, init_std)`` drawn with ``seed``.
    """

    kind = "user-item-baseline"
    Config = UserItemBaselineConfig
    config: UserItemBaselineConfig
    feedback = "explicit"  # it predicts ratings; RatingValidator (valid_rmse) is the default
    quick_params: ClassVar[dict[str, Any]] = {"epochs": 3}

    global_mean_: float
    user_bias_: torch.Tensor
    item_bias_: torch.Tensor

    def __init__(self, *, epochs: int = 10, patience: int | None = None,
                 seed: int | None = 0, reg_user: float = 10.0, reg_item: float = 25.0,
                 init_std: float = 0.01) -> None:
        super().__init__(**hyperparameters(locals()))

    # ---------------------------------------------------------------- training
    def _trainable(self, data: Interactions) -> Trainable:
        return _BaselineTrainable(self, data)

    # ---------------------------------------------------------------- scoring
    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        scores = (self.global_mean_ + self.user_bias_[torch.from_numpy(user_index)]
                  + self.item_bias_[torch.from_numpy(item_index)])
        return scores.numpy().astype(np.float32)

    def _score_users(self, user_index: np.ndarray) -> torch.Tensor:
        user_bias = self.user_bias_[torch.from_numpy(user_index)]
        return self.global_mean_ + user_bias[:, None] + self.item_bias_[None, :]

    def _fallback_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        # an unknown user (or item) has bias 0: keep the bias of the side that is known
        result = np.full(len(user_index), self.global_mean_, dtype=np.float32)
        users, items = user_index >= 0, item_index >= 0
        result[users] += self.user_bias_.numpy()[user_index[users]]
        result[items] += self.item_bias_.numpy()[item_index[items]]
        return result

    # ---------------------------------------------------------------- persistence
    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"user_bias": self.user_bias_, "item_bias": self.item_bias_}

    def _extra_meta(self) -> dict[str, Any]:
        return {"global_mean": self.global_mean_}

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        user_bias, item_bias = tensors["user_bias"], tensors["item_bias"]
        if user_bias.shape != (len(self.users_),) or item_bias.shape != (len(self.items_),):
            raise ModelFileError("the biases do not match the number of users and items")
        self.user_bias_, self.item_bias_ = user_bias, item_bias
        self.global_mean_ = float(meta["global_mean"])


class _BaselineTrainable:
    """One epoch = one user half-sweep and one item half-sweep, in float64 with numpy."""

    def __init__(self, model: UserItemBaseline, data: Interactions) -> None:
        config = model.config
        self.model = model
        self.users, self.items = data.user_index, data.item_index
        self.ratings = data.weights().astype(np.float64)
        self.n_users, self.n_items = data.n_users, data.n_items
        self.mean = float(self.ratings.mean())
        self.user_bias = np.zeros(self.n_users)
        self.item_bias = np.random.default_rng(config.seed).normal(
            0.0, config.init_std, self.n_items)

    def _solve(self, rows: np.ndarray, residual: np.ndarray, count: int,
               reg: float) -> np.ndarray:
        sums = np.bincount(rows, weights=residual, minlength=count)
        return sums / (reg + np.bincount(rows, minlength=count))

    def train_epoch(self) -> dict[str, float]:
        config = self.model.config
        self.user_bias = self._solve(
            self.users, self.ratings - self.mean - self.item_bias[self.items], self.n_users,
            config.reg_user)
        self.item_bias = self._solve(
            self.items, self.ratings - self.mean - self.user_bias[self.users], self.n_items,
            config.reg_item)
        predicted = self.mean + self.user_bias[self.users] + self.item_bias[self.items]
        return {"loss": float(np.mean((predicted - self.ratings) ** 2))}

    def publish(self) -> None:
        model = self.model
        model.global_mean_ = self.mean
        model.user_bias_ = torch.from_numpy(self.user_bias.astype(np.float32))
        model.item_bias_ = torch.from_numpy(self.item_bias.astype(np.float32))

    def state_dict(self) -> dict[str, Any]:
        # everything the next epochs depend on (the mean is recomputed from the data)
        return {"user_bias": self.user_bias.copy(), "item_bias": self.item_bias.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.user_bias = np.array(state["user_bias"], dtype=np.float64)
        self.item_bias = np.array(state["item_bias"], dtype=np.float64)
