"""Item popularity: the baseline every recommender must beat."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from latentrec.data import Interactions
from latentrec.errors import ModelFileError
from latentrec.models.base import Recommender, hyperparameters
from latentrec.models.config import ModelConfig

__all__ = ["Popularity"]


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

    def __init__(self, *, weighting: str = "count") -> None:
        super().__init__(**hyperparameters(locals()))

    def _fit_closed_form(self, data: Interactions) -> None:
        if self.config.weighting == "sum":
            scores = np.bincount(data.item_index, weights=data.weights(),
                                 minlength=data.n_items)
        else:
            scores = data.item_counts()
        self.scores_ = torch.from_numpy(scores.astype(np.float32))

    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        return np.asarray(self.scores_.numpy()[item_index], dtype=np.float32)

    def _score_users(self, user_index: np.ndarray) -> torch.Tensor:
        return self.scores_.repeat(len(user_index), 1)

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"scores": self.scores_}

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        scores = tensors["scores"]
        if scores.dtype != torch.float32 or scores.shape != (len(self.items_),):
            raise ModelFileError("popularity scores do not match the number of items")
        self.scores_ = scores
