"""Validation metrics computed after each epoch, for early stopping and learning curves.

A validator is built once per fit from held-out interactions and called after every epoch,
when the model holds the epoch's parameters. It reaches the model only through the public
index-level API (:class:`IndexScorer`), so ``training`` never imports ``models`` or
``evaluation``.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

import numpy as np
import scipy.sparse as sp

from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError
from latentrec.metrics import ndcg_at_k, rmse

__all__ = ["IndexScorer", "RankingValidator", "RatingValidator", "Validator"]


class IndexScorer(Protocol):
    """The index-level view of a model that validators use (see ``Recommender``)."""

    def to_indices(self, data: Interactions) -> tuple[np.ndarray, np.ndarray]: ...

    def score_indices(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray: ...

    def top_k_indices(self, user_index: np.ndarray, k: int, *, exclude_seen: bool = True,
                      allowed: np.ndarray | None = None, approximate: bool = True
                      ) -> tuple[np.ndarray, np.ndarray]: ...

    @property
    def n_items(self) -> int: ...


class Validator(Protocol):
    """Computes ``name`` on held-out data; ``mode`` says whether lower or higher is better."""

    name: str
    mode: Literal["min", "max"]

    def __call__(self) -> float: ...


class RatingValidator:
    """RMSE of the model's predictions on held-out ratings, logged as ``valid_rmse``.

    Pairs whose user or item the model does not know are predicted by the model's fallback,
    as :func:`latentrec.evaluate` does.
    """

    metric: ClassVar[str] = "valid_rmse"
    mode: Literal["min", "max"] = "min"

    def __init__(self, model: IndexScorer, valid: Interactions) -> None:
        if not isinstance(valid, Interactions):
            raise TypeError(f"valid must be Interactions, got {type(valid).__name__}")
        if valid.values is None:
            raise InvalidParameterError("valid must carry ratings to compute valid_rmse")
        self.model = model
        self.name = self.metric
        self.users, self.items = model.to_indices(valid)
        self.ratings = valid.values

    def __call__(self) -> float:
        return rmse(self.ratings, self.model.score_indices(self.users, self.items))


class RankingValidator:
    """NDCG@k of the model's top-k lists against held-out interactions, logged as
    ``valid_ndcg@k``. Users or items of ``valid`` that the model does not know are skipped (an
    unknown user cannot be ranked, an unknown item can never be hit)."""

    metric: ClassVar[str] = "valid_ndcg@10"
    mode: Literal["min", "max"] = "max"

    def __init__(self, model: IndexScorer, valid: Interactions, k: int = 10) -> None:
        if not isinstance(valid, Interactions):
            raise TypeError(f"valid must be Interactions, got {type(valid).__name__}")
        self.model = model
        self.k = k
        self.name = f"valid_ndcg@{k}"
        user_index, item_index = model.to_indices(valid)
        keep = (user_index >= 0) & (item_index >= 0)
        self.users, rows = np.unique(user_index[keep], return_inverse=True)
        self.relevant = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (rows, item_index[keep])),
            shape=(len(self.users), model.n_items))
        if len(self.users) == 0:
            raise InvalidParameterError(
                "valid has no interaction between a user and an item seen in training; "
                "there is nothing to rank")

    def __call__(self) -> float:
        top_items, _ = self.model.top_k_indices(self.users, self.k, approximate=False)
        return float(np.nanmean(ndcg_at_k(top_items, self.relevant, self.k)))
