"""Factor models: predictions of the form ``global_mean + b_u + b_i + p_u . q_i``.

Subclasses (BiasedMF, ALS, ImplicitALS, BPR, ...) only supply their trainable and, for fold-in,
``_fold_in``; predictions, top-k, the ANN hook, similarity, factor tables and persistence are
inherited from here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from latentrec.data import Interactions
from latentrec.errors import InvalidParameterError, ModelFileError
from latentrec.models._checks import within_range
from latentrec.models._ranking import as_list, check_k
from latentrec.models._solvers import SparseRows, ridge_rows
from latentrec.models.base import Recommender
from latentrec.persistence import FLOAT32_MAX, finite_number

__all__ = ["FactorModel"]

logger = logging.getLogger(__name__)



class FactorModel(Recommender):
    """A model that scores ``global_mean + user_bias + item_bias + user_factors . item_factors``.

    Biases and the global mean are optional (zero when absent). Any model whose predictions have
    this form - SGD MF, ALS, BPR, ensembles of them - inherits predictions, top-k, similarity,
    factor tables and persistence from here and only supplies its trainable.
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
        self.require_fitted()
        self._index = index
        return self

    def top_k_indices(self, user_index: np.ndarray, k: int, *, exclude_seen: bool = True,
                      allowed: np.ndarray | None = None, approximate: bool = True
                      ) -> tuple[np.ndarray, np.ndarray]:
        user_index = np.asarray(user_index, dtype=np.int64)
        index = getattr(self, "_index", None)
        if (index is None or not approximate or allowed is not None or len(user_index) == 0
                or (user_index < 0).any()):
            return super().top_k_indices(user_index, k, exclude_seen=exclude_seen,
                                         allowed=allowed)
        top_items, top_scores = index.search(user_index, k, exclude_seen=exclude_seen)
        # the index skips a bounded number of seen items: users it could not fill (many seen
        # items) are answered exactly
        seen = np.diff(self.seen_.indptr)[user_index] if exclude_seen else 0
        wanted = np.minimum(k, self.n_items - seen)
        short = np.flatnonzero((top_items >= 0).sum(axis=1) < wanted)
        if len(short):
            exact_items, exact_scores = super().top_k_indices(
                user_index[short], k, exclude_seen=exclude_seen)
            top_items[short], top_scores[short] = exact_items, exact_scores
        return top_items, top_scores

    def _as_predictions(self, scores: np.ndarray) -> np.ndarray:
        if self._clip_range is None:
            return scores
        return np.asarray(np.clip(scores, *self._clip_range), dtype=np.float32)

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
                          rows: np.ndarray, n_rows: int, *, users: bool = False
                          ) -> sp.csr_matrix:
        """Rows of interactions as a CSR matrix; an item given twice in one row is refused
        (its values would add up: an item rated 5 and 1 would count as rated 6). ``users``:
        the rows are this model's users (named in the message)."""
        keys = rows.astype(np.int64) * self.n_items + item_index
        unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
        if len(unique) != len(keys):
            repeated = int(first[np.flatnonzero(counts > 1)[0]])
            item = _python(self.items_.ids_of([item_index[repeated]])[0])
            times = int(counts[counts > 1][0])
            if not users:
                raise InvalidParameterError(f"items: {item!r} is given {times} times; give each "
                                            f"item once, with one value")
            user = _python(self.users_.ids_of([rows[repeated]])[0])
            raise InvalidParameterError(f"data: user {user!r} and item {item!r} are given "
                                        f"{times} times; give each pair once, with one value")
        matrix = sp.csr_matrix((values.astype(np.float32), (rows, item_index)),
                               shape=(n_rows, self.n_items))
        matrix.sort_indices()
        return matrix

    def _check_values(self, values: np.ndarray, entry: Callable[[int], str],
                      name: str = "values") -> None:
        """Refuse fold-in values this model cannot have been trained on: NaN and infinities,
        ratings outside the training rating range (explicit feedback), negative or huge
        weights (implicit). ``entry(i)`` describes the ``i``-th value in the message."""
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise InvalidParameterError(
                f"{name}[{bad[0]}] {entry(bad[0])} is {float(values[bad[0]])}; {name} must be "
                f"finite numbers")
        if self.feedback_ == "explicit" and self.rating_range_ is not None:
            low, high = self.rating_range_
            slack = 1e-5 * max(1.0, abs(low), abs(high))
            bad = np.flatnonzero((values < low - slack) | (values > high + slack))
            if len(bad):
                raise InvalidParameterError(
                    f"{name}[{bad[0]}] {entry(bad[0])} is {float(values[bad[0]]):g}, outside "
                    f"the rating range {low:g} to {high:g} this model was trained on")
            return
        bad = np.flatnonzero((values < 0) | (values > FLOAT32_MAX))
        if len(bad):
            raise InvalidParameterError(
                f"{name}[{bad[0]}] {entry(bad[0])} is {float(values[bad[0]]):g}; implicit "
                f"weights must be >= 0 and fit in float32")

    def _fold_in_biased(self, rows: SparseRows, reg: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Least-squares user factors and biases for rows of ratings, item side held fixed
        (``reg``: one penalty per row and coordinate, the bias last)."""
        items = self.item_factors_.cpu()
        item_bias = self.item_bias_.cpu() if self.item_bias_ is not None else torch.zeros(
            len(items))
        design = torch.cat([items, torch.ones(len(items), 1)], dim=1)
        targets = rows.weights - self.global_mean_ - item_bias[rows.indices]
        solution = ridge_rows(rows, design, targets, reg)
        return solution[:, :-1].contiguous(), solution[:, -1].contiguous()

    def recommend_new_user(self, items: Sequence[Any] | np.ndarray,
                           values: Sequence[float] | np.ndarray | None = None, *, k: int = 10,
                           exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items for a user who was not in training, from their interactions.

        ``items`` are raw item ids the user interacted with and ``values`` their ratings or
        weights (default: the training mean rating for rating models, 1 for implicit
        feedback), checked against the model (finite, within the rating range). The user's
        factors are solved with the item side held fixed
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
        self.require_fitted()
        k = check_k(k)
        item_list = as_list(items)
        item_index = self.items_.index_of(item_list, on_unknown="raise")
        if len(item_index) == 0:
            raise InvalidParameterError("recommend_new_user needs at least one item")
        weights = values_for(values, len(item_index))
        if values is None and self.feedback_ == "explicit":
            weights[:] = self.rating_mean_  # no rating given: the training mean, as over HTTP
        self._check_values(weights, lambda i: f"(item {item_list[i]!r})")
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
            "score": self._as_predictions(top_scores.cpu().numpy()[keep]).astype(np.float64),
        })

    def update_users(self, data: Interactions) -> Self:
        """Refit the factors of the users in ``data`` after new interactions.

        ``data`` holds new interactions of known users with known items (anything else raises
        :class:`~latentrec.errors.UnknownIdError`). They are merged into what each user has
        seen (a new value replaces an old one for the same item), then those users' factors
        are solved again from all their interactions with the item side held fixed, as
        :meth:`recommend_new_user` does. Other users and all items are unchanged.
        """
        self.require_fitted()
        if not isinstance(data, Interactions):
            raise TypeError(f"data must be Interactions, got {type(data).__name__}")
        users = self.users_.index_of(data.users.ids_of(data.user_index), on_unknown="raise")
        items = self.items_.index_of(data.items.ids_of(data.item_index), on_unknown="raise")
        n_items = self.n_items
        if self.feedback_ == "explicit" and data.values is None:
            raise InvalidParameterError(f"{type(self).__name__} was trained on ratings; data "
                                        f"has no values")

        def entry(row: int) -> str:
            return (f"(user {_python(data.users.ids_of([data.user_index[row]])[0])!r}, item "
                    f"{_python(data.items.ids_of([data.item_index[row]])[0])!r})")

        self._check_values(data.weights().astype(np.float64), entry, name="data.values")
        self._interaction_rows(items, np.zeros(len(items)), users, self.n_users,
                               users=True)  # refuses repeated pairs
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
        self.require_fitted()
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
        if not (user_factors.is_floating_point() and item_factors.is_floating_point()):
            raise ModelFileError("factor tensors are not floating point")
        if user_factors.ndim != 2 or item_factors.ndim != 2 or (
                user_factors.shape[1] != item_factors.shape[1]):
            raise ModelFileError("factor tensors have inconsistent shapes")
        if user_factors.shape[0] != len(self.users_) or item_factors.shape[0] != len(self.items_):
            raise ModelFileError("factor tensors do not match the number of users and items")
        user_bias, item_bias = tensors.get("user_bias"), tensors.get("item_bias")
        for name, bias, count in (("user_bias", user_bias, len(self.users_)),
                                  ("item_bias", item_bias, len(self.items_))):
            if bias is not None and (not bias.is_floating_point() or bias.numel() != count):
                raise ModelFileError(f"{name} does not match the number of {name[:4]}s")
        global_mean = finite_number(meta.get("global_mean", 0.0), "global_mean")
        # the training mean (or 0 for models without one)
        if global_mean != 0.0 and self.rating_range_ is not None and not within_range(
                global_mean, self.rating_range_):
            raise ModelFileError(f"global_mean {global_mean!r} is outside rating_range "
                                 f"{list(self.rating_range_)}")
        # finite factors can still multiply to an infinite score: bound every score by the
        # largest row norms (Cauchy-Schwarz) plus the largest biases
        bound = (_largest(user_factors.double().norm(dim=1))
                 * _largest(item_factors.double().norm(dim=1)) + abs(global_mean)
                 + sum(_largest(b.double().abs()) for b in (user_bias, item_bias)
                       if b is not None))
        if not bound < _MAX_SCORE:
            raise ModelFileError(f"the factors are so large that scores can reach {bound:.3g}, "
                                 f"beyond float32; the file is damaged or forged")
        self._set_factors(user_factors, item_factors, user_bias, item_bias, global_mean)


#: scores must stay finite in float32 (about 3.4e38), with room for sums over chunks
_MAX_SCORE = 1e37


def values_for(values: Any, count: int) -> np.ndarray:
    """Interaction values of a fold-in request (default 1) as float64, one per item; the
    model checks them (``FactorModel._check_values``)."""
    if values is None:
        return np.ones(count, dtype=np.float64)
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidParameterError("values must be numbers") from None
    if len(array) != count:
        raise InvalidParameterError(f"values must have one entry per item: {count} items, "
                                    f"{len(array)} values")
    return array


def _largest(values: torch.Tensor) -> float:
    return float(values.max()) if values.numel() else 0.0


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
