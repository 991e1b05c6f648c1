"""The contract every model follows, and what all models share: raw ids, scoring, top-k,
fallbacks, persistence.

A model subclasses :class:`Recommender` (or :class:`FactorModel` when it learns user and item
factors), names itself with ``kind`` (the name in saved files and on the command line), declares a
frozen ``Config`` dataclass, and implements ``fit`` plus the index-level scoring hooks. Callers
never see indices: every public method takes and returns raw ids.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, Self, overload

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from latentrec.data import IdMap, Interactions
from latentrec.errors import (
    InvalidParameterError,
    ModelFileError,
    NotFittedError,
)
from latentrec.models._solvers import SparseRows
from latentrec.persistence import read_model_dir, write_model_dir
from latentrec.training import Callback, EarlyStopping, Trainable, Trainer

__all__ = ["FactorModel", "ModelConfig", "Recommender", "load", "model_kinds"]

logger = logging.getLogger(__name__)

OnUnknown = Literal["raise", "fallback"]
_REGISTRY: dict[str, type[Recommender]] = {}
#: rows of the score matrix computed at once by recommend/similar (bounds memory)
_SCORE_CHUNK = 2048


def model_kinds() -> dict[str, type[Recommender]]:
    """Registered model kinds: the names used in saved files and by ``latentrec train --model``."""
    return dict(_REGISTRY)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of every model's hyperparameters; subclasses validate in ``__post_init__``."""

    def check_positive(self, *names: str, integer: bool = False) -> None:
        for name in names:
            value = getattr(self, name)
            kind = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(
                    f"{name} must be {'an integer' if integer else 'a number'}, "
                    f"got {type(value).__name__}"
                )
            if not value > 0 or (not integer and not math.isfinite(value)):
                raise InvalidParameterError(f"{name} must be > 0, got {value!r}")

    def check_non_negative(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not (value >= 0 and math.isfinite(value)):
                raise InvalidParameterError(f"{name} must be >= 0, got {value!r}")

    def check_choice(self, name: str, choices: Sequence[str]) -> None:
        if getattr(self, name) not in choices:
            raise InvalidParameterError(
                f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}"
            )

    def check_seed(self) -> None:
        seed = getattr(self, "seed", None)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise InvalidParameterError(
                f"seed must be a non-negative integer or None, got {seed!r}")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bytes, int, np.integer))


class Recommender(ABC):
    """Base class of all latentrec models.

    Subclasses set ``kind`` and ``Config`` and implement :meth:`fit`, :meth:`_score_pairs`,
    :meth:`_score_users`, :meth:`_tensors` and :meth:`_restore`.
    """

    kind: ClassVar[str]
    Config: ClassVar[type[ModelConfig]]
    #: the sides for which similar_items / similar_users are defined
    similarity: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            _REGISTRY[cls.kind] = cls

    def __init__(self, **params: Any) -> None:
        try:
            self.config = self.Config(**params)
        except TypeError as error:
            if "unexpected keyword" in str(error):
                known = [f.name for f in dataclasses.fields(self.Config)]
                bad = str(error).split("'")[-2] if "'" in str(error) else "?"
                raise InvalidParameterError(
                    f"{type(self).__name__} has no parameter {bad!r}; parameters: {known}"
                ) from None
            raise
        self._fitted = False

    # ------------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as a dict (scikit-learn style)."""
        return dataclasses.asdict(self.config)

    def set_params(self, **params: Any) -> Self:
        """Replace hyperparameters; invalid values fail here, not later in ``fit``."""
        merged = {**self.get_params(), **params}
        self.config = type(self)(**merged).config
        return self

    def clone(self) -> Self:
        """An unfitted copy with the same hyperparameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------ fitting
    @abstractmethod
    def fit(
        self,
        data: Interactions,
        *,
        valid: Interactions | None = None,
        callbacks: Sequence[Any] = (),
        show_progress: bool = True,
    ) -> Self:
        """Learn from ``data``; ``valid`` enables validation metrics and early stopping."""

    def _remember_data(self, data: Interactions) -> None:
        """Keep what every fitted model needs: id maps, seen items, popularity, rating stats."""
        if not isinstance(data, Interactions):
            raise TypeError(f"data must be Interactions, got {type(data).__name__}")
        self.users_: IdMap = data.users
        self.items_: IdMap = data.items
        self.feedback_: str = data.feedback
        self.seen_: sp.csr_matrix = data.to_csr()
        self.item_popularity_: np.ndarray = data.item_counts().astype(np.float32)
        self.rating_range_: tuple[float, float] | None = data.rating_range()
        self.rating_mean_: float = float(np.mean(data.weights()))
        spread = float(np.std(data.weights(), dtype=np.float64))
        self.rating_std_: float = spread if spread > 1e-6 else 1.0
        self.history_: list[dict[str, float]] = []

    def _align(self, data: Interactions) -> tuple[np.ndarray, np.ndarray]:
        """``data``'s rows as this model's user and item indices (``-1`` where unknown)."""
        user_map = self.users_.index_of(data.users.to_numpy(), on_unknown="ignore")
        item_map = self.items_.index_of(data.items.to_numpy(), on_unknown="ignore")
        return user_map[data.user_index], item_map[data.item_index]

    def _require_fitted(self) -> None:
        if not getattr(self, "_fitted", False):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(data) or load(path) first"
            )

    @property
    def n_users(self) -> int:
        self._require_fitted()
        return len(self.users_)

    @property
    def n_items(self) -> int:
        self._require_fitted()
        return len(self.items_)

    # ------------------------------------------------------------------ scoring hooks
    @abstractmethod
    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Predictions for known (user, item) index pairs."""

    @abstractmethod
    def _score_users(self, user_index: np.ndarray) -> torch.Tensor:
        """A ``len(user_index) x n_items`` float tensor of scores for known users."""

    def _fallback_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Predictions when the user or the item (index ``-1``) is unknown: the training mean."""
        return np.full(len(user_index), self.rating_mean_, dtype=np.float32)

    def _fallback_scores(self) -> torch.Tensor:
        """Item scores for an unknown user: popularity (interaction counts)."""
        return torch.from_numpy(self.item_popularity_)

    # ------------------------------------------------------------------ public API
    @overload
    def predict(self, users: int | str, items: int | str, *,
                on_unknown: OnUnknown = "raise") -> float: ...

    @overload
    def predict(self, users: Sequence[Any] | np.ndarray, items: Sequence[Any] | np.ndarray, *,
                on_unknown: OnUnknown = "raise") -> np.ndarray: ...

    def predict(self, users: Any, items: Any, *, on_unknown: OnUnknown = "raise") -> Any:
        """Predicted rating (explicit) or score (implicit) for each ``(user, item)`` pair.

        Two raw ids give a float; two equal-length sequences give an array. Unknown ids raise
        :class:`~latentrec.errors.UnknownIdError` unless ``on_unknown="fallback"``, which
        predicts what does not need the unknown id: the global mean plus the known side's bias
        for biased models, the training mean otherwise.

        Examples
        --------
        >>> from latentrec import BiasedMF, Interactions
        >>> data = Interactions.from_arrays(["a", "a", "b"], ["x", "y", "x"], [5, 3, 4])
        >>> model = BiasedMF(epochs=2).fit(data, show_progress=False)
        >>> 1.0 <= model.predict("b", "y") <= 5.0
        True
        """
        self._require_fitted()
        _check_on_unknown(on_unknown)
        scalar = _is_scalar(users) and _is_scalar(items)
        user_index = self.users_.index_of(users, on_unknown=_lookup(on_unknown))
        item_index = self.items_.index_of(items, on_unknown=_lookup(on_unknown))
        if len(user_index) != len(item_index):
            raise InvalidParameterError(
                f"users and items must have the same length, got {len(user_index)} and "
                f"{len(item_index)}"
            )
        result = self._predict_aligned(user_index, item_index)
        return float(result[0]) if scalar else result

    def _predict_aligned(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Predictions for index pairs; pairs with an unknown side (``-1``) use the fallback."""
        known = (user_index >= 0) & (item_index >= 0)
        result = np.empty(len(user_index), dtype=np.float32)
        if known.any():
            result[known] = self._score_pairs(user_index[known], item_index[known])
        if not known.all():
            unknown = ~known
            result[unknown] = self._fallback_pairs(user_index[unknown], item_index[unknown])
        return result

    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Sequence[Any] | np.ndarray | None = None,
        exclude: Sequence[Any] | np.ndarray | None = None,
        on_unknown: OnUnknown = "raise",
    ) -> pd.DataFrame:
        """Top-``k`` items for one user or many, best first.

        Returns a DataFrame with columns ``user, item, rank, score`` (raw ids, ``rank`` from 1),
        users in the order given. ``exclude_seen`` drops items the user interacted with in
        training; ``items`` restricts the candidates to an allow-list and ``exclude`` removes a
        deny-list (unknown ids in either raise). A user with fewer than
        ``k`` candidates gets fewer rows. With ``on_unknown="fallback"`` unknown users get the
        most popular items and a ``fallback`` column marks those rows.

        Examples
        --------
        >>> from latentrec import BiasedMF, Interactions
        >>> data = Interactions.from_arrays(["a", "a", "b"], ["x", "y", "x"], [5, 3, 4])
        >>> model = BiasedMF(epochs=2).fit(data, show_progress=False)
        >>> model.recommend("b", k=5)["item"].tolist()
        ['y']
        """
        self._require_fitted()
        _check_on_unknown(on_unknown)
        k = _check_k(k)
        user_list = _as_list(users)
        user_index = self.users_.index_of(user_list, on_unknown=_lookup(on_unknown))
        allowed = self._candidates(items, exclude)
        top_items, top_scores = self._top_k(user_index, k, exclude_seen=exclude_seen,
                                            allowed=allowed)
        return self._top_frame(user_list, user_index, top_items, top_scores,
                               fallback=on_unknown == "fallback")

    def recommend_lists(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Sequence[Any] | np.ndarray | None = None,
        exclude: Sequence[Any] | np.ndarray | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`recommend` as plain records, ``[{"user": U, "items": [{"item": I, "score": S},
        ...]}, ...]`` with Python ids and floats: the shape of the CLI's and the server's JSON.

        It skips the DataFrame, which makes it the fast path for serving one request.
        """
        self._require_fitted()
        k = _check_k(k)
        user_list = _as_list(users)
        user_index = self.users_.index_of(user_list, on_unknown="raise")
        top_items, top_scores = self._top_k(user_index, k, exclude_seen=exclude_seen,
                                            allowed=self._candidates(items, exclude))
        canonical = self.users_.ids_of(user_index).tolist()
        item_ids = self.items_.to_numpy()
        records = []
        for row, user in enumerate(canonical):
            keep = top_items[row] >= 0
            ids = item_ids[top_items[row][keep]].tolist()
            scores = top_scores[row][keep].astype(np.float64).tolist()
            records.append({"user": user, "items": [
                {"item": item, "score": score} for item, score in zip(ids, scores, strict=True)]})
        return records

    def recommend_all(self, k: int = 10, *, exclude_seen: bool = True,
                      items: Sequence[Any] | np.ndarray | None = None,
                      exclude: Sequence[Any] | np.ndarray | None = None) -> pd.DataFrame:
        """:meth:`recommend` for every training user: ``user, item, rank, score`` rows, ready for
        ``to_csv`` or ``to_parquet``."""
        self._require_fitted()
        return self.recommend(self.users_.to_list(), k, exclude_seen=exclude_seen, items=items,
                              exclude=exclude)

    def _candidates(self, items: Any, exclude: Any) -> np.ndarray | None:
        """Item indices allowed by an allow-list and a deny-list (``None``: every item)."""
        if items is None and exclude is None:
            return None
        allowed = np.arange(self.n_items) if items is None else np.unique(
            self.items_.index_of(_as_list(items), on_unknown="raise"))
        if exclude is not None:
            denied = self.items_.index_of(_as_list(exclude), on_unknown="raise")
            allowed = np.setdiff1d(allowed, denied)
        return allowed

    def _top_k(self, user_index: np.ndarray, k: int, *, exclude_seen: bool = True,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Item indices (``-1`` where a user has fewer candidates) and scores of each user's
        top ``k``; unknown users (index ``-1``) get the fallback ranking."""
        allowed_tensor = None if allowed is None else torch.from_numpy(allowed)
        k_eff = min(k, self.n_items if allowed is None else len(allowed))
        if k_eff == 0:
            return (np.full((len(user_index), k), -1, dtype=np.int64),
                    np.full((len(user_index), k), -np.inf, dtype=np.float32))
        top_items = np.full((len(user_index), k), -1, dtype=np.int64)
        top_scores = np.full((len(user_index), k), -np.inf, dtype=np.float32)
        for start in range(0, len(user_index), _SCORE_CHUNK):
            chunk = user_index[start:start + _SCORE_CHUNK]
            scores = self._chunk_scores(chunk, exclude_seen=exclude_seen, allowed=allowed_tensor)
            values, indices = torch.topk(scores, k_eff, dim=1)
            values_np, indices_np = values.cpu().numpy(), indices.cpu().numpy()
            valid = np.isfinite(values_np)
            top_items[start:start + len(chunk), :k_eff] = np.where(valid, indices_np, -1)
            top_scores[start:start + len(chunk), :k_eff] = values_np
        return top_items, top_scores

    def _chunk_scores(self, user_index: np.ndarray, *, exclude_seen: bool,
                      allowed: torch.Tensor | None) -> torch.Tensor:
        known = user_index >= 0
        if known.all():
            scores = self._score_users(user_index).float()
        else:
            scores = self._fallback_scores().to(torch.float32).repeat(len(user_index), 1)
            if known.any():
                scores[torch.from_numpy(known)] = self._score_users(user_index[known]).float().to(
                    scores.device)
        if allowed is not None:
            mask = torch.ones(scores.shape[1], dtype=torch.bool, device=scores.device)
            mask[allowed.to(scores.device)] = False
            scores[:, mask] = -math.inf
        if exclude_seen and known.any():
            rows, cols = _seen_pairs(self.seen_, user_index)
            scores[torch.from_numpy(rows).to(scores.device),
                   torch.from_numpy(cols).to(scores.device)] = -math.inf
        return scores

    def _top_frame(self, user_list: list[Any], user_index: np.ndarray, top_items: np.ndarray,
                   top_scores: np.ndarray, *, fallback: bool) -> pd.DataFrame:
        n_users, k = top_items.shape
        keep = (top_items >= 0).reshape(-1)
        user_pos = np.repeat(np.arange(n_users), k)[keep]
        frame = pd.DataFrame({
            "user": _canonical_ids(self.users_, user_list, user_index)[user_pos],
            "item": self.items_.ids_of(top_items.reshape(-1)[keep]),
            "rank": np.tile(np.arange(1, k + 1), n_users)[keep].astype(np.int64),
            "score": top_scores.reshape(-1)[keep].astype(np.float64),
        })
        if fallback:
            frame["fallback"] = (user_index < 0)[user_pos]
        return frame

    def _similar(self, side: str, ids: Any, k: int) -> pd.DataFrame:
        self._require_fitted()
        if side not in self.similarity:
            raise InvalidParameterError(
                f"{type(self).__name__} does not define similar {side}"
                + (f"; it supports similar {' and '.join(self.similarity)}"
                   if self.similarity else ""))
        k = _check_k(k)
        vectors = self._vectors(side)
        id_map = self.users_ if side == "users" else self.items_
        id_list = _as_list(ids)
        index = id_map.index_of(id_list, on_unknown="raise")
        normed = torch.nn.functional.normalize(vectors.float(), dim=1)
        k_eff = min(k, len(id_map) - 1)
        noun = side[:-1]
        if k_eff < 1:
            return pd.DataFrame(columns=[noun, f"similar_{noun}", "rank", "score"])
        frames = []
        for start in range(0, len(index), _SCORE_CHUNK):
            chunk = torch.from_numpy(index[start:start + _SCORE_CHUNK]).to(normed.device)
            scores = normed[chunk] @ normed.T
            scores[torch.arange(len(chunk)), chunk] = -math.inf
            top_scores, top_index = torch.topk(scores, k_eff, dim=1)
            frames.append((top_scores.cpu().numpy(), top_index.cpu().numpy()))
        top_scores_all = np.concatenate([f[0] for f in frames]).reshape(-1)
        top_index_all = np.concatenate([f[1] for f in frames]).reshape(-1)
        return pd.DataFrame({
            noun: _canonical_ids(id_map, id_list, index)[np.repeat(np.arange(len(id_list)),
                                                                   k_eff)],
            f"similar_{noun}": id_map.ids_of(top_index_all),
            "rank": np.tile(np.arange(1, k_eff + 1), len(id_list)),
            "score": top_scores_all.astype(np.float64),
        })

    def _vectors(self, side: str) -> torch.Tensor:
        """Rows whose cosine similarity defines similar users/items (see ``similarity``)."""
        raise NotImplementedError

    def similar_items(self, items: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` items most similar to each given item (cosine of their factors).

        Returns columns ``item, similar_item, rank, score``; an item is never its own neighbour.
        """
        return self._similar("items", items, k)

    def similar_users(self, users: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` users most similar to each given user (cosine of their factors).

        Returns columns ``user, similar_user, rank, score``.
        """
        return self._similar("users", users, k)

    # ------------------------------------------------------------------ persistence
    @abstractmethod
    def _tensors(self) -> dict[str, torch.Tensor]:
        """The learned tensors to save."""

    @abstractmethod
    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Set the learned state from saved tensors (shapes already checked against id maps)."""

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to the directory ``path``: ``model.json`` plus ``weights.safetensors``.

        Examples
        --------
        >>> import tempfile
        >>> from latentrec import BiasedMF, Interactions, load
        >>> data = Interactions.from_arrays(["a", "a", "b"], ["x", "y", "x"], [5, 3, 4])
        >>> model = BiasedMF(epochs=2).fit(data, show_progress=False)
        >>> again = load(model.save(tempfile.mkdtemp()))
        >>> again.predict("a", "x") == model.predict("a", "x")
        True
        """
        self._require_fitted()
        seen = self.seen_
        tensors = {
            **{name: t.detach().cpu() for name, t in self._tensors().items()},
            "seen_indptr": torch.from_numpy(seen.indptr.astype(np.int64)),
            "seen_indices": torch.from_numpy(seen.indices.astype(np.int64)),
            "seen_values": torch.from_numpy(seen.data.astype(np.float32)),
            "item_popularity": torch.from_numpy(self.item_popularity_),
        }
        meta = {
            "kind": self.kind,
            "config": self.get_params(),
            "feedback": self.feedback_,
            "users": self.users_.to_list(),
            "items": self.items_.to_list(),
            "rating_range": list(self.rating_range_) if self.rating_range_ else None,
            "rating_mean": self.rating_mean_,
            "rating_std": self.rating_std_,
            "history": self.history_,
            **self._extra_meta(),
        }
        return write_model_dir(path, meta, tensors)


def load(path: str | os.PathLike[str]) -> Recommender:
    """Load a model saved with :meth:`Recommender.save`. Never executes code from the files.

    Raises :class:`~latentrec.errors.ModelFileError` for a truncated, tampered or
    newer-format directory and ``FileNotFoundError`` when it does not exist.
    """
    meta, tensors = read_model_dir(path)
    where = Path(path) / "model.json"
    kind = meta.get("kind")
    if kind not in _REGISTRY:
        raise ModelFileError(f"{where}: unknown model kind {kind!r}; known: {sorted(_REGISTRY)}")
    cls = _REGISTRY[kind]
    try:
        config = meta["config"]
        model = cls(**config)
        users = IdMap.from_list(meta["users"], name="users")
        items = IdMap.from_list(meta["items"], name="items")
        n_users, n_items = len(users), len(items)
        indptr = tensors.pop("seen_indptr").numpy()
        indices = tensors.pop("seen_indices").numpy()
        values = tensors.pop("seen_values").numpy()
        popularity = tensors.pop("item_popularity").numpy()
        if len(indptr) != n_users + 1 or (len(indices) and indices.max() >= n_items) or (
                len(popularity) != n_items):
            raise ModelFileError(f"{where}: seen-item matrix does not match the id maps")
        model.users_, model.items_ = users, items
        model.seen_ = sp.csr_matrix((values, indices, indptr), shape=(n_users, n_items))
        model.item_popularity_ = popularity
        model.feedback_ = str(meta["feedback"])
        rating_range = meta.get("rating_range")
        model.rating_range_ = tuple(rating_range) if rating_range else None  # type: ignore[assignment]
        model.rating_mean_ = float(meta["rating_mean"])
        model.rating_std_ = float(meta.get("rating_std", 1.0))
        model.history_ = list(meta.get("history") or [])
        model._restore(tensors, meta)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ModelFileError(f"{where}: inconsistent model description ({error})") from None
    model._fitted = True
    return model


class FactorModel(Recommender):
    """A model that scores ``global_mean + user_bias + item_bias + user_factors . item_factors``.

    Biases and the global mean are optional (zero when absent). Any model whose predictions have
    this form - SGD MF, ALS, BPR, ensembles of them - inherits predictions, top-k, similarity,
    factor tables and persistence from here and only implements ``fit``.
    """

    similarity = ("users", "items")
    user_factors_: torch.Tensor
    item_factors_: torch.Tensor
    user_bias_: torch.Tensor | None
    item_bias_: torch.Tensor | None
    global_mean_: float

    def _set_factors(self, user_factors: torch.Tensor, item_factors: torch.Tensor,
                     user_bias: torch.Tensor | None = None, item_bias: torch.Tensor | None = None,
                     global_mean: float = 0.0) -> None:
        self.user_factors_ = user_factors.detach()
        self.item_factors_ = item_factors.detach()
        self.user_bias_ = None if user_bias is None else user_bias.detach().reshape(-1)
        self.item_bias_ = None if item_bias is None else item_bias.detach().reshape(-1)
        self.global_mean_ = float(global_mean)
        self._fitted = True

    @property
    def _clip_range(self) -> tuple[float, float] | None:
        if getattr(self.config, "clip", False) and self.rating_range_ is not None:
            return self.rating_range_
        return None

    def _score_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        device = self.user_factors_.device
        users = torch.from_numpy(user_index).to(device)
        items = torch.from_numpy(item_index).to(device)
        scores = (self.user_factors_[users] * self.item_factors_[items]).sum(dim=1)
        scores = scores + self.global_mean_
        if self.user_bias_ is not None:
            scores = scores + self.user_bias_[users]
        if self.item_bias_ is not None:
            scores = scores + self.item_bias_[items]
        if self._clip_range is not None:
            scores = scores.clamp(*self._clip_range)
        return np.asarray(scores.cpu().numpy(), dtype=np.float32)

    def _score_users(self, user_index: np.ndarray) -> torch.Tensor:
        users = torch.from_numpy(user_index).to(self.user_factors_.device)
        bias = None if self.user_bias_ is None else self.user_bias_[users]
        return self._score_vectors(self.user_factors_[users], bias)

    def use_index(self, index: Any | None) -> Self:
        """Answer ``recommend`` from an approximate :class:`~latentrec.models.ann.ItemIndex`
        (``None`` goes back to exact search). Requests with an allow- or deny-list, and users
        with more seen items than the index can skip, are still answered exactly."""
        self._require_fitted()
        self._index = index
        return self

    def _top_k(self, user_index: np.ndarray, k: int, *, exclude_seen: bool = True,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        index = getattr(self, "_index", None)
        if index is None or allowed is not None or len(user_index) == 0 or (
                user_index < 0).any():
            return super()._top_k(user_index, k, exclude_seen=exclude_seen, allowed=allowed)
        return index.search(user_index, k, exclude_seen=exclude_seen)  # type: ignore[no-any-return]

    def _score_vectors(self, vectors: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Scores of every item for user vectors (and user biases) that need not be stored."""
        device = self.item_factors_.device
        scores = vectors.to(device) @ self.item_factors_.T
        if self.item_bias_ is not None:
            scores += self.item_bias_
        offset = torch.full((len(vectors), 1), self.global_mean_, device=device)
        if bias is not None:
            offset += bias.to(device)[:, None]
        return scores + offset

    # ------------------------------------------------------------------ fold-in
    def _fold_in(self, rows: SparseRows) -> tuple[torch.Tensor, torch.Tensor | None]:
        """User vectors (and biases) for rows of interactions, the item side held fixed."""
        raise InvalidParameterError(f"{type(self).__name__} does not support fold-in")

    def _interaction_rows(self, item_index: np.ndarray, values: np.ndarray,
                          rows: np.ndarray, n_rows: int) -> sp.csr_matrix:
        matrix = sp.csr_matrix((values.astype(np.float32), (rows, item_index)),
                               shape=(n_rows, self.n_items))
        matrix.sum_duplicates()
        return matrix

    def recommend_new_user(self, items: Sequence[Any] | np.ndarray,
                           values: Sequence[float] | np.ndarray | None = None, *, k: int = 10,
                           exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items for a user who was not in training, from their interactions.

        ``items`` are raw item ids the user interacted with and ``values`` their ratings or
        weights (default 1). The user's factors are solved with the item side held fixed
        (closed form for least-squares models, a few gradient steps for BPR); nothing is
        retrained and the model is not changed. Returns ``item, rank, score`` rows; the given
        items are excluded unless ``exclude_seen=False``.

        Examples
        --------
        >>> from latentrec import ImplicitALS
        >>> from latentrec.datasets import synthetic
        >>> model = ImplicitALS(factors=8, epochs=3).fit(synthetic(200, 100, feedback="implicit"),
        ...                                               show_progress=False)
        >>> model.recommend_new_user([1, 2, 3], k=2)["rank"].tolist()
        [1, 2]
        """
        self._require_fitted()
        k = _check_k(k)
        item_index = self.items_.index_of(_as_list(items), on_unknown="raise")
        if len(item_index) == 0:
            raise InvalidParameterError("recommend_new_user needs at least one item")
        weights = _values_for(values, len(item_index))
        matrix = self._interaction_rows(item_index, weights, np.zeros(len(item_index), int), 1)
        vectors, bias = self._fold_in(SparseRows.from_csr(matrix))
        scores = self._score_vectors(vectors, bias).float()
        if exclude_seen:
            scores[0, torch.from_numpy(item_index).to(scores.device)] = -math.inf
        k_eff = min(k, self.n_items)
        top_scores, top_items = torch.topk(scores[0], k_eff)
        keep = torch.isfinite(top_scores).cpu().numpy()
        return pd.DataFrame({
            "item": self.items_.ids_of(top_items.cpu().numpy()[keep]),
            "rank": np.arange(1, k_eff + 1)[keep],
            "score": top_scores.cpu().numpy()[keep].astype(np.float64),
        })

    def update_users(self, data: Interactions) -> Self:
        """Refit the factors of the users in ``data`` after new interactions.

        ``data`` holds new interactions of known users with known items (anything else raises
        :class:`~latentrec.errors.UnknownIdError`). They are merged into what each user has
        seen (a new value replaces an old one for the same item), then those users' factors
        are solved again from all their interactions with the item side held fixed, as
        :meth:`recommend_new_user` does. Other users and all items are unchanged.
        """
        self._require_fitted()
        if not isinstance(data, Interactions):
            raise TypeError(f"data must be Interactions, got {type(data).__name__}")
        users = self.users_.index_of(data.users.ids_of(data.user_index), on_unknown="raise")
        items = self.items_.index_of(data.items.ids_of(data.item_index), on_unknown="raise")
        n_items = self.n_items
        seen = self.seen_.tocoo()
        old_keys = seen.row.astype(np.int64) * n_items + seen.col
        new_keys = users * n_items + items
        keep = ~np.isin(old_keys, new_keys)
        new_pairs = int((~np.isin(new_keys, old_keys)).sum())
        rows = np.concatenate([seen.row[keep], users])
        cols = np.concatenate([seen.col[keep], items])
        values = np.concatenate([seen.data[keep], data.weights()])
        self.seen_ = sp.csr_matrix((values.astype(np.float32), (rows, cols)),
                                   shape=self.seen_.shape)
        self.seen_.sort_indices()
        np.add.at(self.item_popularity_, items[~np.isin(new_keys, old_keys)], 1.0)
        changed = np.unique(users)
        vectors, bias = self._fold_in(SparseRows.from_csr(self.seen_[changed]))
        target = torch.from_numpy(changed).to(self.user_factors_.device)
        self.user_factors_ = self.user_factors_.clone()
        self.user_factors_[target] = vectors.to(self.user_factors_)
        if bias is not None and self.user_bias_ is not None:
            self.user_bias_ = self.user_bias_.clone()
            self.user_bias_[target] = bias.to(self.user_bias_)
        logger.info("updated %d users (%d new interactions)", len(changed), new_pairs)
        return self

    def _fallback_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        if self.user_bias_ is None and self.item_bias_ is None:
            return super()._fallback_pairs(user_index, item_index)
        result = np.full(len(user_index), self.global_mean_, dtype=np.float32)
        known_users, known_items = user_index >= 0, item_index >= 0
        if self.user_bias_ is not None and known_users.any():
            result[known_users] += self.user_bias_.cpu().numpy()[user_index[known_users]]
        if self.item_bias_ is not None and known_items.any():
            result[known_items] += self.item_bias_.cpu().numpy()[item_index[known_items]]
        if self._clip_range is not None:
            result = np.clip(result, *self._clip_range)
        return result

    def _vectors(self, side: str) -> torch.Tensor:
        return self.user_factors_ if side == "users" else self.item_factors_

    def factors(self, side: Literal["users", "items"] = "items") -> pd.DataFrame:
        """Learned factors as a DataFrame indexed by raw id (columns ``f0..``, plus ``bias``)."""
        self._require_fitted()
        if side not in ("users", "items"):
            raise InvalidParameterError(f"side must be 'users' or 'items', got {side!r}")
        vectors = self._vectors(side).cpu().numpy()
        id_map = self.users_ if side == "users" else self.items_
        frame = pd.DataFrame(vectors, index=pd.Index(id_map.to_numpy(), name=side[:-1]),
                             columns=[f"f{j}" for j in range(vectors.shape[1])])
        bias = self.user_bias_ if side == "users" else self.item_bias_
        if bias is not None:
            frame["bias"] = bias.cpu().numpy()
        return frame

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"user_factors": self.user_factors_, "item_factors": self.item_factors_}
        if self.user_bias_ is not None:
            tensors["user_bias"] = self.user_bias_
        if self.item_bias_ is not None:
            tensors["item_bias"] = self.item_bias_
        return tensors

    def _extra_meta(self) -> dict[str, Any]:
        return {"global_mean": self.global_mean_}

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        user_factors, item_factors = tensors["user_factors"], tensors["item_factors"]
        if user_factors.ndim != 2 or item_factors.ndim != 2 or (
                user_factors.shape[1] != item_factors.shape[1]):
            raise ModelFileError("factor tensors have inconsistent shapes")
        if user_factors.shape[0] != len(self.users_) or item_factors.shape[0] != len(self.items_):
            raise ModelFileError("factor tensors do not match the number of users and items")
        user_bias, item_bias = tensors.get("user_bias"), tensors.get("item_bias")
        if user_bias is not None and user_bias.shape[0] != len(self.users_):
            raise ModelFileError("user_bias does not match the number of users")
        if item_bias is not None and item_bias.shape[0] != len(self.items_):
            raise ModelFileError("item_bias does not match the number of items")
        self._set_factors(user_factors, item_factors, user_bias, item_bias,
                          float(meta.get("global_mean", 0.0)))


# ---------------------------------------------------------------------- helpers
def _check_on_unknown(on_unknown: str) -> None:
    if on_unknown not in ("raise", "fallback"):
        raise InvalidParameterError(
            f"on_unknown must be 'raise' or 'fallback', got {on_unknown!r}")


def _lookup(on_unknown: str) -> Literal["raise", "ignore"]:
    return "raise" if on_unknown == "raise" else "ignore"


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    if k < 1:
        raise InvalidParameterError(f"k must be >= 1, got {k}")
    return int(k)


def _values_for(values: Any, count: int) -> np.ndarray:
    if values is None:
        return np.ones(count, dtype=np.float32)
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(array) != count:
        raise InvalidParameterError(f"values must have one entry per item: {count} items, "
                                    f"{len(array)} values")
    if not np.isfinite(array).all():
        raise InvalidParameterError("values must be finite numbers")
    return array.astype(np.float32)


def _as_list(ids: Any) -> list[Any]:
    if _is_scalar(ids):
        return [ids]
    if isinstance(ids, (pd.Series, pd.Index, np.ndarray)):
        return list(ids.tolist())
    return list(ids)


def _seen_pairs(seen: sp.csr_matrix, user_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row in chunk, item index) of every training interaction of the chunk's known users."""
    safe = np.where(user_index >= 0, user_index, 0)
    starts, ends = seen.indptr[safe], seen.indptr[safe + 1]
    lengths = np.where(user_index >= 0, ends - starts, 0)
    rows = np.repeat(np.arange(len(user_index)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    cols = seen.indices[np.repeat(starts, lengths) + offsets]
    return rows.astype(np.int64), cols.astype(np.int64)


def _canonical_ids(id_map: IdMap, given: list[Any], index: np.ndarray) -> np.ndarray:
    """The model's own spelling of each id (``"7"`` becomes ``7`` for integer ids)."""
    result = np.empty(len(given), dtype=object)
    result[:] = given
    known = index >= 0
    if known.any():
        result[known] = id_map.ids_of(index[known])
    return result


class RankingValidator:
    """NDCG@k of a model on held-out interactions, for ``valid_ndcg@k`` during training.

    Built once per fit; users or items of ``valid`` that the model does not know are skipped
    (an unknown user cannot be ranked, an unknown item can never be hit).
    """

    def __init__(self, model: Recommender, valid: Interactions, k: int = 10) -> None:
        if not isinstance(valid, Interactions):
            raise TypeError(f"valid must be Interactions, got {type(valid).__name__}")
        user_index, item_index = model._align(valid)
        keep = (user_index >= 0) & (item_index >= 0)
        users, rows = np.unique(user_index[keep], return_inverse=True)
        self.users = users
        self.relevant = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (rows, item_index[keep])),
            shape=(len(users), model.n_items))
        self.k = k
        self.name = f"valid_ndcg@{k}"

    def __call__(self, model: Recommender) -> float:
        from latentrec.metrics import ndcg_at_k

        if len(self.users) == 0:
            return float("nan")
        top_items, _ = model._top_k(self.users, self.k)
        return float(np.nanmean(ndcg_at_k(top_items, self.relevant, self.k)))


class PublishingTrainable(Trainable, Protocol):
    """A trainable that writes its trained parameters into the model it was built for."""

    def publish(self) -> None:
        """Copy the learned parameters into the model."""
        ...


def train(model: Recommender, trainable: PublishingTrainable, *, epochs: int, monitor: str | None,
          mode: Literal["min", "max"], patience: int | None, callbacks: Sequence[Callback],
          show_progress: bool) -> None:
    """Run the shared training loop for ``model``: ``epochs`` passes of ``trainable``, early
    stopping on the logged metric ``monitor`` when ``patience`` is set; keeps the history in
    ``model.history_`` and publishes the trained factors to the model."""
    rule = (None if monitor is None or patience is None
            else EarlyStopping(monitor, mode, patience))
    model.history_ = Trainer(epochs, rule, callbacks, show_progress,
                             type(model).__name__).fit(trainable)
    trainable.publish()
