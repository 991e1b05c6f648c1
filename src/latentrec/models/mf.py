"""The seed model: user and item embeddings whose dot product predicts the rating."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError
from latentrec.models._nn import MinibatchFactorTrainable, SGDConfig
from latentrec.models._solvers import SparseRows, ridge_rows
from latentrec.models.base import hyperparameters
from latentrec.models.factor import FactorModel, Prior, refuse_prior
from latentrec.training import Trainable

__all__ = ["MatrixFactorization"]


@dataclasses.dataclass(frozen=True)
class MatrixFactorizationConfig(SGDConfig):
    """Defaults reproduce the seed notebook: 5 factors, full-batch Adam at lr 0.01, 100 epochs,
    MSE without regularisation, ``nn.Embedding``'s N(0, 1) initialisation."""

    factors: int = 5
    epochs: int = 100
    lr: float = 0.01
    reg: float = 0.0
    optimizer: str = "adam"
    batch_size: int | None = None
    init_std: float = 1.0


class MatrixFactorization(FactorModel):
    """Plain matrix factorisation: ``prediction = p_u . q_i``, trained on squared error.

    This is the seed notebook's model, unchanged. It has no biases, so on real ratings it needs
    far more epochs than its defaults; :class:`~latentrec.BiasedMF` is the model to use.
    Parameters are those of :class:`~latentrec.BiasedMF`'s minibatch engine.

    Examples
    --------
    >>> from latentrec import Interactions, MatrixFactorization
    >>> data = Interactions.from_arrays([0, 0, 1, 1], [0, 1, 0, 2], [5.0, 3.0, 4.0, 1.0])
    >>> model = MatrixFactorization(seed=0).fit(data, show_progress=False)
    >>> model.history_[-1]["loss"] < model.history_[0]["loss"]
    True
    """

    kind = "mf"
    Config = MatrixFactorizationConfig
    config: MatrixFactorizationConfig
    feedback = "any"
    quick_params: ClassVar[dict[str, Any]] = {"factors": 4, "epochs": 5, "init_std": 0.1,
                                              "lr": 0.05}

    def __init__(self, *, epochs: int = 100, patience: int | None = None, seed: int | None = 0,
                 factors: int = 5, lr: float = 0.01, reg: float = 0.0, optimizer: str = "adam",
                 batch_size: int | None = None, init_std: float = 1.0, lr_decay: float = 1.0,
                 device: str = "auto") -> None:
        super().__init__(**hyperparameters(locals()))

    def _check_data(self, data: Interactions) -> None:
        if data.values is None:
            raise InvalidParameterError(
                "MatrixFactorization fits ratings or weights; this data has neither")

    def _trainable(self, data: Interactions) -> Trainable:
        return MinibatchFactorTrainable(self, data, biases=False, global_mean=0.0)

    def _fold_in(self, rows: SparseRows, prior: Prior | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        refuse_prior(self, prior)
        items = self.item_factors_.cpu()
        # the training penalty is per rating; a small floor keeps unregularised solves stable
        reg = (max(self.config.reg, 1e-6) * rows.counts().clamp_min(1.0))[:, None]
        return ridge_rows(rows, items, rows.weights, reg.expand(-1, items.shape[1])
                          .contiguous()), None
