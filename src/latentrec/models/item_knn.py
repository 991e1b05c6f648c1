"""Item-based nearest neighbours over the interaction matrix."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from latentrec.data import Interactions
from latentrec.errors import PerformanceWarning
from latentrec.models._checks import saved_csr
from latentrec.models._sparse import weights_matrix
from latentrec.models.base import Recommender, hyperparameters
from latentrec.models.config import ModelConfig

__all__ = ["ItemKNN"]

#: dense similarity rows above this size (GB) warn before they are built
_DENSE_WARNING_GB = 1.0

WEIGHTINGS = ("binary", "none", "log", "bm25")


@dataclasses.dataclass(frozen=True)
class ItemKNNConfig(ModelConfig):
    """Hyperparameters of :class:`ItemKNN`."""

    neighbours: int = 200
    weighting: str = "binary"
    shrink: float = 0.0

    def __post_init__(self) -> None:
        self.check_positive("neighbours", integer=True)
        self.check_choice("weighting", WEIGHTINGS)
        self.check_non_negative("shrink")


class ItemKNN(Recommender):
    """Item-based nearest neighbours: cosine similarity between the item columns of the
    (optionally BM25- or log-weighted) interaction matrix, keeping each item's ``neighbours``
    most similar items; a user's score for an item sums its similarities to the user's items.

    Examples
    --------
    >>> from latentrec import ItemKNN
    >>> from latentrec.datasets import synthetic
    >>> model = ItemKNN(neighbours=20).fit(synthetic(200, 100, feedback="implicit"),
    ...                                     show_progress=False)
    >>> model.similar_items(0, k=3).shape
    (3, 4)
    """

    kind = "item-knn"
    similarity = ("items",)
    Config = ItemKNNConfig
    config: ItemKNNConfig
    feedback = "implicit"
    quick_params: ClassVar[dict[str, Any]] = {"neighbours": 10}

    def __init__(self, *, neighbours: int = 200, weighting: str = "binary",
                 shrink: float = 0.0) -> None:
        super().__init__(**hyperparameters(locals()))

    def _fit_closed_form(self, data: Interactions) -> None:
        matrix = weights_matrix(data, self.config.weighting)
        self.user_matrix_ = matrix
        columns = matrix.T.tocsr()
        norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=1)).ravel())
        gram = (columns @ columns.T).tocsr().astype(np.float32)
        gram.setdiag(0.0)
        gram.eliminate_zeros()
        rows = np.repeat(np.arange(gram.shape[0]), np.diff(gram.indptr))
        denominator = norms[rows] * norms[gram.indices] + self.config.shrink
        gram.data = (gram.data / np.maximum(denominator, 1e-12)).astype(np.float32)
        self.similarity_ = _keep_top(gram, self.config.neighbours)

    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        rows = self.user_matrix_[user_index]
        columns = self.similarity_[:, item_index].T.tocsr()
        return np.asarray(rows.multiply(columns).sum(axis=1), dtype=np.float32).ravel()

    def _score_users(self, user_index: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((self.user_matrix_[user_index] @ self.similarity_).toarray())

    def _vectors(self, side: str) -> torch.Tensor:
        # rows of the (already normalised) similarity matrix: cosine of these rows ranks the
        # items by their shared neighbours; the similarity itself is used for scoring
        gigabytes = 4 * self.n_items**2 / 1e9
        if gigabytes > _DENSE_WARNING_GB:
            warnings.warn(
                f"similar_items on ItemKNN builds a dense {self.n_items:,} x {self.n_items:,} "
                f"matrix ({gigabytes:.1f} GB); for large catalogues use the factors of "
                f"ImplicitALS or BPR", PerformanceWarning, stacklevel=4)
        return torch.from_numpy(self.similarity_.toarray())

    def _tensors(self) -> dict[str, torch.Tensor]:
        user, sim = self.user_matrix_, self.similarity_
        return {
            "user_indptr": torch.from_numpy(user.indptr.astype(np.int64)),
            "user_indices": torch.from_numpy(user.indices.astype(np.int64)),
            "user_values": torch.from_numpy(user.data.astype(np.float32)),
            "sim_indptr": torch.from_numpy(sim.indptr.astype(np.int64)),
            "sim_indices": torch.from_numpy(sim.indices.astype(np.int64)),
            "sim_values": torch.from_numpy(sim.data.astype(np.float32)),
        }

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        n_users, n_items = len(self.users_), len(self.items_)
        self.user_matrix_ = saved_csr(tensors, "user", (n_users, n_items), "user matrix")
        self.similarity_ = saved_csr(tensors, "sim", (n_items, n_items), "similarity matrix")


def _keep_top(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of every row (vectorised over rows by one sort)."""
    lengths = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    order = np.lexsort((-matrix.data, rows))
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], lengths)
    keep = order[rank < k]
    kept = sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])),
                         shape=matrix.shape, dtype=np.float32)
    kept.sort_indices()
    return kept
