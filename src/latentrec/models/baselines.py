"""Baselines for honest comparisons: item popularity, item-kNN and EASE."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
import torch

from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError, ModelFileError
from latentrec.models.base import ModelConfig, Recommender
from latentrec.training import Callback

__all__ = ["EASE", "ItemKNN", "Popularity"]


def _weights_matrix(data: Interactions, weighting: str) -> sp.csr_matrix:
    """Users x items matrix of the interaction strengths used by the neighbourhood models."""
    matrix = data.to_csr().astype(np.float32)
    if weighting == "binary":
        matrix.data[:] = 1.0
    elif weighting == "log":
        matrix.data = np.log1p(matrix.data).astype(np.float32)
    elif weighting == "bm25":
        # BM25 on the item columns: frequent users count less, long user rows are normalised
        k1, b = 1.2, 0.75
        n_users = matrix.shape[0]
        per_item = np.bincount(matrix.indices, minlength=matrix.shape[1])
        idf = np.log(n_users / (1.0 + per_item)).astype(np.float32)
        row_length = np.diff(matrix.indptr)
        norm = k1 * (1.0 - b + b * row_length / max(1.0, row_length.mean()))
        rows = np.repeat(np.arange(n_users), row_length)
        values = matrix.data
        matrix.data = (values * (k1 + 1.0) / (values + norm[rows]) * idf[matrix.indices]
                       ).astype(np.float32)
    return matrix


def _user_rows(matrix: sp.csr_matrix, user_index: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(matrix[user_index].toarray())


@dataclasses.dataclass(frozen=True)
class PopularityConfig(ModelConfig):
    """Hyperparameters of :class:`Popularity`."""

    weighting: str = "count"

    def __post_init__(self) -> None:
        self.check_choice("weighting", ("count", "sum"))


class Popularity(Recommender):
    """Recommends the items with the most interactions (``weighting="count"``) or the largest
    sum of weights (``"sum"``) to everyone; ``predict`` returns that popularity.

    Examples
    --------
    >>> from latentrec import Interactions, Popularity
    >>> data = Interactions.from_arrays(["a", "b", "b"], ["x", "x", "y"])
    >>> Popularity().fit(data, show_progress=False).recommend("a", k=1)["item"].tolist()
    ['y']
    """

    kind = "popular"
    Config = PopularityConfig
    config: PopularityConfig

    def fit(self, data: Interactions, *, valid: Interactions | None = None,
            callbacks: Sequence[Callback] = (), show_progress: bool = True) -> Self:
        self._remember_data(data)
        if self.config.weighting == "sum":
            scores = np.bincount(data.item_index, weights=data.weights(),
                                 minlength=data.n_items)
        else:
            scores = data.item_counts()
        self.scores_ = torch.from_numpy(scores.astype(np.float32))
        self._fitted = True
        return self

    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        return np.asarray(self.scores_.numpy()[item_index], dtype=np.float32)

    def _score_users(self, user_index: np.ndarray) -> torch.Tensor:
        return self.scores_.repeat(len(user_index), 1)

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"scores": self.scores_}

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        scores = tensors["scores"]
        if scores.shape != (len(self.items_),):
            raise ModelFileError("popularity scores do not match the number of items")
        self.scores_ = scores


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

    def fit(self, data: Interactions, *, valid: Interactions | None = None,
            callbacks: Sequence[Callback] = (), show_progress: bool = True) -> Self:
        self._remember_data(data)
        matrix = _weights_matrix(data, self.config.weighting)
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
        self._fitted = True
        return self

    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        rows = self.user_matrix_[user_index]
        columns = self.similarity_[:, item_index].T.tocsr()
        return np.asarray(rows.multiply(columns).sum(axis=1), dtype=np.float32).ravel()

    def _score_users(self, user_index: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((self.user_matrix_[user_index] @ self.similarity_).toarray())

    def _vectors(self, side: str) -> torch.Tensor:
        # rows of the (already normalised) similarity matrix: cosine of these rows ranks the
        # items by their shared neighbours; the similarity itself is used for scoring
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
        self.user_matrix_ = _csr(tensors, "user", (n_users, n_items))
        self.similarity_ = _csr(tensors, "sim", (n_items, n_items))


def _csr(tensors: dict[str, torch.Tensor], prefix: str, shape: tuple[int, int]) -> sp.csr_matrix:
    indptr = tensors[f"{prefix}_indptr"].numpy()
    indices = tensors[f"{prefix}_indices"].numpy()
    if len(indptr) != shape[0] + 1 or (len(indices) and indices.max() >= shape[1]):
        raise ModelFileError(f"the {prefix} matrix does not match the id maps")
    return sp.csr_matrix((tensors[f"{prefix}_values"].numpy(), indices, indptr), shape=shape)


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

    def fit(self, data: Interactions, *, valid: Interactions | None = None,
            callbacks: Sequence[Callback] = (), show_progress: bool = True) -> Self:
        self._remember_data(data)
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
        self._fitted = True
        return self

    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        rows = _user_rows(self.user_matrix_, user_index)
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
        if tensors["weights"].shape != (n_items, n_items):
            raise ModelFileError("EASE weights do not match the number of items")
        self.weights_ = tensors["weights"]
        self.user_matrix_ = _csr(tensors, "user", (len(self.users_), n_items))
