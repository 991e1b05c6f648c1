"""EASE (Steck 2019): a closed-form item-item model."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError, ModelFileError
from latentrec.models._checks import saved_csr
from latentrec.models._sparse import user_rows
from latentrec.models.base import Recommender, hyperparameters
from latentrec.models.config import ModelConfig

__all__ = ["EASE"]


@dataclasses.dataclass(frozen=True)
class EASEConfig(ModelConfig):
    """Hyperparameters of :class:`EASE`."""

    reg: float = 250.0
    max_items: int = 30_000

    def __post_init__(self) -> None:
        self.check_positive("reg")
        self.check_positive("max_items", integer=True)


def _regularised_gram_inverse(matrix: sp.csr_matrix, reg: float) -> torch.Tensor:
    """``(X^T X + reg I)^-1`` for a users x items matrix ``X``, as float32.

    With fewer users than items, the Woodbury identity ``(X^T X + reg I)^-1 = (I - X^T (X X^T
    + reg I)^-1 X) / reg`` replaces the items x items factorisation by a users x users one and
    a sparse-times-dense product (Last.fm, 1.9k users x 15k items: 52 s -> 5.8 s here).
    """
    n_users, n_items = matrix.shape
    if n_users >= n_items:
        gram = torch.from_numpy((matrix.T @ matrix).toarray().astype(np.float64))
        gram.diagonal().add_(reg)
        return torch.cholesky_inverse(torch.linalg.cholesky(gram)).to(torch.float32)
    kernel = torch.from_numpy((matrix @ matrix.T).toarray().astype(np.float64))
    kernel.diagonal().add_(reg)
    dense = torch.from_numpy(matrix.toarray().astype(np.float64))
    solved = torch.cholesky_solve(dense, torch.linalg.cholesky(kernel)).to(torch.float32)
    inverse = torch.from_numpy(np.asarray(matrix.T @ solved.numpy()))
    inverse.neg_()
    inverse.diagonal().add_(1.0)
    return inverse.div_(reg)


class EASE(Recommender):
    """EASE (Steck 2019): a dense item-item weight matrix ``B`` with a zero diagonal, from one
    regularised least-squares solve, ``B = I - P / diag(P)`` with ``P = (X^T X + reg I)^-1``.

    Memory and time grow with the square and cube of the number of items; catalogues above
    ``max_items`` are refused with a message rather than exhausting memory.

    Examples
    --------
    >>> from latentrec import EASE
    >>> from latentrec.datasets import synthetic
    >>> model = EASE(reg=10.0).fit(synthetic(200, 100, feedback="implicit"),
    ...                            show_progress=False)
    >>> len(model.recommend(0, k=5))
    5
    """

    kind = "ease"
    similarity = ("items",)
    Config = EASEConfig
    config: EASEConfig
    feedback = "implicit"
    quick_params: ClassVar[dict[str, Any]] = {"reg": 10.0}

    def __init__(self, *, reg: float = 250.0, max_items: int = 30_000) -> None:
        super().__init__(**hyperparameters(locals()))

    def _fit_closed_form(self, data: Interactions) -> None:
        if data.n_items > self.config.max_items:
            gigabytes = 3 * 4 * data.n_items**2 / 1e9
            raise InvalidParameterError(
                f"EASE needs about {gigabytes:.0f} GB for {data.n_items:,} items (more than "
                f"max_items={self.config.max_items:,}); raise max_items if you have the memory"
            )
        matrix = data.to_csr().astype(np.float32)
        matrix.data[:] = 1.0
        self.user_matrix_ = matrix
        inverse = _regularised_gram_inverse(matrix, self.config.reg)
        weights = -inverse / inverse.diagonal()[None, :]
        weights.diagonal().zero_()
        self.weights_ = weights.to(torch.float32).contiguous()

    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        rows = user_rows(self.user_matrix_, user_index)
        columns = self.weights_[:, torch.from_numpy(item_index)].T
        return np.asarray((rows * columns).sum(dim=1).numpy(), dtype=np.float32)

    def _score_users(self, user_index: np.ndarray) -> torch.Tensor:
        # sparse rows times the dense weights: cost nnz x items, not users x items^2
        rows = self.user_matrix_[user_index]
        return torch.from_numpy(np.asarray(rows @ self.weights_.numpy(), dtype=np.float32))

    def _vectors(self, side: str) -> torch.Tensor:
        return self.weights_.T

    def _tensors(self) -> dict[str, torch.Tensor]:
        user = self.user_matrix_
        return {
            "weights": self.weights_,
            "user_indptr": torch.from_numpy(user.indptr.astype(np.int64)),
            "user_indices": torch.from_numpy(user.indices.astype(np.int64)),
            "user_values": torch.from_numpy(user.data.astype(np.float32)),
        }

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        n_items = len(self.items_)
        weights = tensors["weights"]
        if weights.dtype != torch.float32 or weights.shape != (n_items, n_items):
            raise ModelFileError("EASE weights do not match the number of items")
        self.weights_ = weights
        self.user_matrix_ = saved_csr(tensors, "user", (len(self.users_), n_items),
                                      "user matrix")
