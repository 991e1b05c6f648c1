"""PyTorch modules and the minibatch trainable shared by the SGD-trained factor models."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from latentrec._rng import derive_seed, torch_generator
from latentrec.data import Interactions
from latentrec.models.config import EpochConfig
from latentrec.models.factor import FactorModel
from latentrec.training.minibatch import (
    OPTIMIZERS,
    SPARSE_OPTIMIZERS,
    MinibatchLoop,
    resolve_device,
)


class FactorModule(nn.Module):
    """``global_mean + b_u + b_i + p_u . q_i`` with embeddings (biases optional)."""

    def __init__(self, n_users: int, n_items: int, factors: int, *, biases: bool, sparse: bool,
                 init_std: float, global_mean: float, generator: torch.Generator) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, factors, sparse=sparse)
        self.item_factors = nn.Embedding(n_items, factors, sparse=sparse)
        with torch.no_grad():
            self.user_factors.weight.normal_(0.0, init_std, generator=generator)
            self.item_factors.weight.normal_(0.0, init_std, generator=generator)
        self.user_bias: nn.Embedding | None = None
        self.item_bias: nn.Embedding | None = None
        if biases:
            self.user_bias = nn.Embedding(n_users, 1, sparse=sparse)
            self.item_bias = nn.Embedding(n_items, 1, sparse=sparse)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        self.global_mean: torch.Tensor
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        prediction = (self.user_factors(users) * self.item_factors(items)).sum(dim=1)
        if self.user_bias is not None and self.item_bias is not None:
            prediction = prediction + self.user_bias(users).squeeze(1) + self.item_bias(
                items).squeeze(1)
        result: torch.Tensor = prediction + self.global_mean
        return result

    def penalty(self, users: torch.Tensor, items: torch.Tensor, reg: float,
                reg_bias: float) -> torch.Tensor:
        """L2 on the rows a batch touches (Funk/Koren style), averaged over the batch."""
        total = reg * (self.user_factors(users).pow(2).sum(1) + self.item_factors(items).pow(2)
                       .sum(1))
        if reg_bias and self.user_bias is not None and self.item_bias is not None:
            total = total + reg_bias * (self.user_bias(users).pow(2) + self.item_bias(items)
                                        .pow(2)).squeeze(1)
        mean: torch.Tensor = total.mean()
        return mean


class MinibatchFactorTrainable:
    """A :class:`~latentrec.training.Trainable` that fits a :class:`FactorModule` by minibatches.

    The targets are the ratings divided by ``scale``; published factors are multiplied by
    ``sqrt(scale)`` and biases by ``scale``, so predictions are in the original units. Reports
    ``loss``, the mean training objective in original units.
    """

    def __init__(self, model: FactorModel, data: Interactions, *, biases: bool,
                 global_mean: float, scale: float = 1.0) -> None:
        config: SGDConfig = model.config
        device = resolve_device(config.device)
        self.model = model
        self.module = FactorModule(
            data.n_users, data.n_items, config.factors, biases=biases,
            sparse=config.optimizer in SPARSE_OPTIMIZERS, init_std=config.init_std,
            global_mean=global_mean / scale, generator=torch_generator(config.seed),
        ).to(device)
        self.device = device
        self.users = torch.from_numpy(data.user_index).to(device)
        self.items = torch.from_numpy(data.item_index).to(device)
        self.ratings = torch.from_numpy((data.weights() / scale).astype(np.float32)).to(device)
        self.reg = config.reg
        self.reg_bias = float(getattr(config, "reg_bias", 0.0))
        self.scale = scale
        self.loop = MinibatchLoop(self.module, self._loss, len(data), config.optimizer,
                                  config.lr, config.batch_size, lr_decay=config.lr_decay,
                                  seed=derive_seed(config.seed, 1), device=device)

    def _loss(self, rows: torch.Tensor) -> torch.Tensor:
        users, items = self.users[rows], self.items[rows]
        error = self.module(users, items) - self.ratings[rows]
        loss: torch.Tensor = error.pow(2).mean()
        if self.reg or self.reg_bias:
            loss = loss + self.module.penalty(users, items, self.reg, self.reg_bias)
        return loss

    def publish(self) -> None:
        module, scale = self.module, self.scale
        root = scale**0.5
        self.model._set_factors(
            module.user_factors.weight.detach().clone() * root,
            module.item_factors.weight.detach().clone() * root,
            None if module.user_bias is None else module.user_bias.weight.detach() * scale,
            None if module.item_bias is None else module.item_bias.weight.detach() * scale,
            float(module.global_mean) * scale,
        )

    def train_epoch(self) -> dict[str, float]:
        logs = self.loop.train_epoch()
        logs["loss"] *= self.scale**2
        return logs

    def state_dict(self) -> dict[str, Any]:
        return {"module": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
                "loop": self.loop.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.loop.load_state_dict(state["loop"])


@dataclasses.dataclass(frozen=True)
class SGDConfig(EpochConfig):
    """Hyperparameters shared by the factor models trained by gradient descent."""

    factors: int = 64
    lr: float = 0.01
    reg: float = 0.02
    optimizer: str = "sgd"
    batch_size: int | None = 1024
    init_std: float = 0.1
    lr_decay: float = 1.0
    device: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive("factors", integer=True)
        self.check_positive("lr", "init_std", "lr_decay")
        self.check_non_negative("reg")
        self.check_choice("optimizer", OPTIMIZERS)
        if self.batch_size is not None:
            self.check_positive("batch_size", integer=True)
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a string, got {type(self.device).__name__}")
