"""Alternating least squares for ratings (ALS-WR)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from latentrec._rng import torch_generator
from latentrec.data import Interactions
from latentrec.models._solvers import SparseRows, bias_penalties, ridge_rows
from latentrec.models.base import hyperparameters
from latentrec.models.config import EpochConfig
from latentrec.models.factor import FactorModel, Prior
from latentrec.training import Trainable
from latentrec.training.minibatch import resolve_device
from latentrec.training.partition import Partition

__all__ = ["ALS"]


@dataclasses.dataclass(frozen=True)
class ALSConfig(EpochConfig):
    """Hyperparameters of :class:`ALS`."""

    epochs: int = 15
    factors: int = 64
    reg: float = 0.1
    reg_bias: float = 0.01
    init_std: float = 0.1
    clip: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_positive("factors", integer=True)
        self.check_positive("init_std")
        self.check_non_negative("reg", "reg_bias")
        self.check_flag("clip")


class ALS(FactorModel):
    """Biased matrix factorisation of ratings by alternating least squares (ALS-WR).

    Each half-sweep solves every user's (then every item's) factors and bias exactly, with the
    L2 penalty scaled by the row's number of ratings (Zhou et al. 2008): ``reg * n_u`` on the
    factors and ``reg_bias * n_u`` on the bias. No learning rate to tune; one epoch is one sweep.

    Examples
    --------
    >>> from latentrec import ALS
    >>> from latentrec.datasets import synthetic
    >>> model = ALS(factors=8, epochs=3).fit(synthetic(200, 100), show_progress=False)
    >>> 1.0 <= model.predict(0, 0) <= 5.0
    True
    """

    kind = "als"
    Config = ALSConfig
    config: ALSConfig
    feedback = "explicit"
    quick_params: ClassVar[dict[str, Any]] = {"factors": 4, "epochs": 3}

    def __init__(self, *, epochs: int = 15, patience: int | None = None, seed: int | None = 0,
                 factors: int = 64, reg: float = 0.1, reg_bias: float = 0.01,
                 init_std: float = 0.1, clip: bool = True, device: str = "auto") -> None:
        super().__init__(**hyperparameters(locals()))

    def _distributed_trainable(self, data: Partition) -> Trainable:
        from latentrec.models._distributed_als import DistributedALSTrainable

        return DistributedALSTrainable(self, data)

    def _trainable(self, data: Interactions) -> Trainable:
        return _ExplicitALSTrainable(self, data)

    def _fold_in(self, rows: SparseRows, prior: Prior | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        config = self.config
        return self._fold_in_biased(rows, bias_penalties(rows, config.reg, config.reg_bias,
                                                    config.factors), prior)


class _ExplicitALSTrainable:
    def __init__(self, model: ALS, data: Interactions) -> None:
        config = model.config
        self.model = model
        self.device = resolve_device(config.device)
        csr = data.to_csr()
        self.by_user = SparseRows.from_csr(csr, self.device)
        self.by_item = SparseRows.from_csr(csr.T.tocsr(), self.device)
        self.mean = float(np.mean(data.weights(), dtype=np.float64))
        generator = torch_generator(config.seed)
        k = config.factors
        self.user_factors = (torch.randn(data.n_users, k, generator=generator)
                             * config.init_std).to(self.device)
        self.item_factors = (torch.randn(data.n_items, k, generator=generator)
                             * config.init_std).to(self.device)
        self.user_bias = torch.zeros(data.n_users, device=self.device)
        self.item_bias = torch.zeros(data.n_items, device=self.device)

    def _half(self, rows: SparseRows, other: torch.Tensor, other_bias: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        config = self.model.config
        design = torch.cat([other, torch.ones(len(other), 1, device=self.device)], dim=1)
        targets = rows.weights - self.mean - other_bias[rows.indices]
        solution = ridge_rows(rows, design, targets, bias_penalties(rows, config.reg,
                                                               config.reg_bias, config.factors))
        return solution[:, :-1].contiguous(), solution[:, -1].contiguous()

    def train_epoch(self) -> dict[str, float]:
        self.user_factors, self.user_bias = self._half(self.by_user, self.item_factors,
                                                       self.item_bias)
        self.item_factors, self.item_bias = self._half(self.by_item, self.user_factors,
                                                       self.user_bias)
        rows = self.by_user
        predicted = (rows.dots(self.user_factors, self.item_factors) + self.mean
                     + self.user_bias[rows.row_of] + self.item_bias[rows.indices])
        return {"loss": float(((predicted - rows.weights) ** 2).mean())}

    def publish(self) -> None:
        self.model._set_factors(self.user_factors, self.item_factors, self.user_bias,
                                self.item_bias, self.mean)

    def state_dict(self) -> dict[str, Any]:
        return {"user_factors": self.user_factors.clone(), "item_factors":
                self.item_factors.clone(), "user_bias": self.user_bias.clone(),
                "item_bias": self.item_bias.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.user_factors, self.item_factors = state["user_factors"], state["item_factors"]
        self.user_bias, self.item_bias = state["user_bias"], state["item_bias"]
