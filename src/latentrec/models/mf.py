"""The seed model: user and item embeddings whose dot product predicts the rating."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Self

import torch

from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError
from latentrec.models._nn import SGDConfig, fit_by_minibatches
from latentrec.models._solvers import SparseRows, ridge_rows
from latentrec.models.base import FactorModel
from latentrec.training import Callback

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

    def fit(self, data: Interactions, *, valid: Interactions | None = None,
            callbacks: Sequence[Callback] = (), show_progress: bool = True) -> Self:
        self._remember_data(data)
        if not data.is_explicit and data.values is None:
            raise InvalidParameterError(
                "MatrixFactorization fits ratings or weights; this data has neither"
            )
        fit_by_minibatches(self, data, valid, callbacks, show_progress, biases=False,
                           global_mean=0.0)
        return self

    def _fold_in(self, rows: SparseRows) -> tuple[torch.Tensor, torch.Tensor | None]:
        items = self.item_factors_.cpu()
        # the training penalty is per rating; a small floor keeps unregularised solves stable
        reg = (max(self.config.reg, 1e-6) * rows.counts().clamp_min(1.0))[:, None]
        return ridge_rows(rows, items, rows.weights, reg.expand(-1, items.shape[1])
                          .contiguous()), None
