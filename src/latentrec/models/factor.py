"""Factor models: predictions of the form ``global_mean + b_u + b_i + p_u . q_i``.

Subclasses (BiasedMF, ALS, ImplicitALS, BPR, ...) only supply their trainable and, for fold-in,
``_fold_in``; predictions, top-k, the ANN hook, similarity, factor tables and persistence are
inherited from here.
"""

from __future__ import annotations

import logging
import math
import reprlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from latentrec.data import Features, Interactions, read_features
from latentrec.errors import DataWarning, InvalidParameterError, LatentrecError, ModelFileError
from latentrec.models._checks import within_range
from latentrec.models._ranking import as_list, check_k
from latentrec.models._solvers import SparseRows, ridge_rows
from latentrec.models.base import SIDES, Recommender, Side
from latentrec.persistence import FLOAT32_MAX, finite_number

__all__ = ["FactorModel", "Prior", "hybrid_table", "refuse_prior"]

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
    #: by side, the embedding (``n_columns x factors``) of every column of the side's
    #: features, and their biases; empty for a model fitted without features
    feature_factors_: dict[Side, torch.Tensor]
    feature_bias_: dict[Side, torch.Tensor]

    def _set_factors(self, user_factors: torch.Tensor, item_factors: torch.Tensor,
                     user_bias: torch.Tensor | None = None, item_bias: torch.Tensor | None = None,
                     global_mean: float = 0.0) -> None:
        self.user_factors_ = user_factors.detach()
        self.item_factors_ = item_factors.detach()
        self.user_bias_ = None if user_bias is None else user_bias.detach().reshape(-1)
        self.item_bias_ = None if item_bias is None else item_bias.detach().reshape(-1)
        self.global_mean_ = float(global_mean)
        # none from an earlier fit: a hybrid's publish sets them again, after this call
        self.feature_factors_, self.feature_bias_ = {}, {}

    def _set_feature_factors(self, side: Side, factors: torch.Tensor,
                             bias: torch.Tensor | None = None) -> None:
        """Keep the learned embeddings of ``side``'s feature columns (and their biases): what
        cold ids and ``add_items``/``add_users`` are scored with. A hybrid model's trainable
        calls it in ``publish``, after ``_set_factors`` with the tables of the training ids
        (their own embeddings plus their features', see :func:`hybrid_table`)."""
        self.feature_factors_[side] = factors.detach()
        if bias is None:
            self.feature_bias_.pop(side, None)
        else:
            self.feature_bias_[side] = bias.detach().reshape(-1)

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
    def _fold_in(self, rows: SparseRows, prior: Prior | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """User vectors (and biases) for rows of interactions, the item side held fixed.

        ``prior`` (models with user features): each row's vector and bias from its features,
        which the solution is drawn towards instead of zero."""
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

    def _fold_in_biased(self, rows: SparseRows, reg: torch.Tensor, prior: Prior | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Least-squares user factors and biases for rows of ratings, item side held fixed
        (``reg``: one penalty per row and coordinate, the bias last), shrunk towards
        ``prior`` (zero without one)."""
        items = self.item_factors_.cpu()
        item_bias = self.item_bias_.cpu() if self.item_bias_ is not None else torch.zeros(
            len(items))
        design = torch.cat([items, torch.ones(len(items), 1)], dim=1)
        targets = rows.weights - self.global_mean_ - item_bias[rows.indices]
        centre = None
        if prior is not None:  # solve for the difference from the prior
            vectors, bias = prior
            centre = torch.cat([vectors.cpu(), (torch.zeros(len(vectors)) if bias is None
                                                else bias.cpu())[:, None]], dim=1)
            targets = targets - (design[rows.indices] * centre[rows.row_of]).sum(dim=1)
        solution = ridge_rows(rows, design, targets, reg)
        if centre is not None:
            solution = solution + centre
        return solution[:, :-1].contiguous(), solution[:, -1].contiguous()

    def recommend_new_user(self, items: Sequence[Any] | np.ndarray = (),
                           values: Sequence[float] | np.ndarray | None = None, *, k: int = 10,
                           exclude_seen: bool = True,
                           features: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Top-``k`` items for a user who was not in training, from their interactions and,
        for a model trained with user features, their features.

        ``items`` are raw item ids the user interacted with and ``values`` their ratings or
        weights (default: the training mean rating for rating models, 1 for implicit
        feedback), checked against the model (finite, within the rating range). The user's
        factors are solved with the item side held fixed
        (closed form for least-squares models, a few gradient steps for BPR); nothing is
        retrained and the model is not changed. ``features`` maps feature names to the user's
        values (``{"occupation": "writer", "age": 31}``, a list for a multi-valued feature),
        read with the training vocabulary: alone, the user's vector is the sum of its features'
        embeddings; with ``items``, the solution is drawn towards that vector instead of zero.
        Returns ``item, rank, score`` rows; the given items are excluded unless
        ``exclude_seen=False``.

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
        prior = None if features is None else self.feature_vectors("users", features)
        if len(item_index) == 0 and prior is None:
            raise InvalidParameterError("recommend_new_user needs at least one item, or the "
                                        "user's features")
        if len(item_index) == 0:
            assert prior is not None
            vectors, bias = prior
        else:
            weights = values_for(values, len(item_index))
            if values is None and self.feedback_ == "explicit":
                weights[:] = self.rating_mean_  # no rating given: the training mean, as over HTTP
            self._check_values(weights, lambda i: f"(item {item_list[i]!r})")
            matrix = self._interaction_rows(item_index, weights,
                                            np.zeros(len(item_index), int), 1)
            rows = SparseRows.from_csr(matrix)
            vectors, bias = (self._fold_in(rows) if prior is None
                             else self._fold_in(rows, prior))
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
        their_rows = SparseRows.from_csr(self.seen_[changed])
        if "users" in self.feature_factors_:  # drawn towards their features, as in training
            prior = self._feature_rows("users", self.features_["users"].matrix(
                self.users_.ids_of(changed)))
            vectors, bias = self._fold_in(their_rows, prior)
        else:
            vectors, bias = self._fold_in(their_rows)
        target = torch.from_numpy(changed).to(self.user_factors_.device)
        self.user_factors_ = self.user_factors_.clone()
        self.user_factors_[target] = vectors.to(self.user_factors_)
        if bias is not None and self.user_bias_ is not None:
            self.user_bias_ = self.user_bias_.clone()
            self.user_bias_[target] = bias.to(self.user_bias_)
        logger.info("updated %d users (%d new interactions)", len(changed), new_pairs)
        return self

    # ------------------------------------------------------------------ side features
    def feature_vectors(self, side: Side, features: Mapping[str, Any] | Features
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The vectors (and biases) that ``side``'s features give: one row per id of
        ``features`` (a :class:`~latentrec.data.Features` table, read with the training
        vocabulary), or one row for a mapping of feature names to one id's values."""
        self.require_fitted()
        fitted = self._fitted_features(side)
        if isinstance(features, Mapping):
            table = self.read_feature_values(side, features)
        elif isinstance(features, Features):
            table = features
        else:
            raise TypeError(f"features must be a mapping of feature names to values or "
                            f"Features, got {type(features).__name__}")
        try:
            matrix = fitted.update(table).matrix(table.ids)
        except LatentrecError as error:
            raise InvalidParameterError(f"features: {error}") from None
        empty = np.flatnonzero(np.diff(matrix.indptr) == 0)
        if len(empty):
            warnings.warn(f"{len(empty)} of {matrix.shape[0]} new {side} have no feature value "
                          f"the model knows; their vector is zero (the training average)",
                          DataWarning, stacklevel=2)
        return self._feature_rows(side, matrix)

    def read_feature_values(self, side: Side, values: Mapping[str, Any]) -> Features:
        """One new id's features, ``{feature: value(s)}``, as a one-row table read with the
        kinds the features had in training, checked: an unknown feature name, a text or a
        list for a numeric feature, several values for a categorical one or weights for
        anything but tags are refused in one line naming the feature
        (``features.age: must be a number (a numeric feature), got str``)."""
        self.require_fitted()
        fitted = self._fitted_features(side)
        if not values:
            raise InvalidParameterError("features: give at least one feature's value")
        noun, kinds = side[:-1], fitted.kinds
        for name, value in values.items():
            if not isinstance(name, str):
                raise InvalidParameterError(f"features: names must be text, got {name!r}")
            kind = kinds.get(name)
            where = f"features.{name}"
            if kind is None:
                raise InvalidParameterError(
                    f"{where}: the model has no {noun} feature {name!r}; its {noun} features: "
                    f"{', '.join(sorted(kinds))}")
            if kind == "numeric" and isinstance(value, (bool, str, list, tuple, set, dict,
                                                        np.ndarray)):
                raise InvalidParameterError(f"{where}: must be a number (a numeric feature), "
                                            f"got {type(value).__name__}")
            if kind == "numeric" and value is not None and not _finite(value):
                raise InvalidParameterError(f"{where}: must be a finite number, got "
                                            f"{reprlib.repr(value)} (leave a feature out when "
                                            f"it is not known)")
            if kind != "tags" and isinstance(value, Mapping):
                raise InvalidParameterError(f"{where}: weights are for tags; {name!r} is a "
                                            f"{kind} feature: give a value or a list of values")
            if kind == "categorical" and isinstance(value, (list, tuple, set, np.ndarray)):
                if len(value) != 1:
                    raise InvalidParameterError(f"{where}: {name!r} is a categorical feature: "
                                                f"give one value, got {len(value)}")
                values = {**values, name: next(iter(value))}  # one value in a list is that value
        key = f"__{noun}__"
        frame = pd.DataFrame({key: ["new"], **{name: [value] for name, value in values.items()}})

        def of(kind: str) -> list[str]:
            return [name for name in values if kinds[name] == kind]

        try:
            return read_features(frame, key, categorical=of("categorical"), multi=of("multi"),
                                 numeric=of("numeric"), tags=of("tags"))
        except LatentrecError as error:
            raise InvalidParameterError(f"features: {error}") from None

    def _fitted_features(self, side: Side) -> Features:
        fitted = self.features_.get(side)
        if fitted is None or side not in self.feature_factors_:
            raise InvalidParameterError(f"this {self.kind} model was trained without "
                                        f"{side[:-1]} features")
        return fitted

    def _feature_rows(self, side: Side, matrix: sp.csr_matrix
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Vectors and biases of rows of ``side``'s design matrix (features only); a row
        whose values give no finite vector (a number far outside the training range) is
        refused in one line."""
        # NaN fails the comparison too; standardised numbers this far out overflow the product
        outside = np.flatnonzero(~(np.abs(matrix.data) <= _MAX_FEATURE_VALUE))
        if len(outside):
            row = int(np.searchsorted(matrix.indptr, outside[0], side="right")) - 1
            raise InvalidParameterError(
                f"{side[:-1]} features: row {row} holds a value of "
                f"{float(abs(matrix.data[outside[0]])):.3g} after standardising, far outside "
                f"what training saw (at most {_MAX_FEATURE_VALUE:g}); check its numbers")
        factors = self.feature_factors_[side]
        vectors = hybrid_table(None, matrix, factors)
        bias = self.feature_bias_.get(side)
        if bias is None:
            has_bias = (self.user_bias_ if side == "users" else self.item_bias_) is not None
            return vectors, (torch.zeros(matrix.shape[0]) if has_bias else None)
        return vectors, hybrid_table(None, matrix, bias[:, None]).reshape(-1)

    def _add_ids(self, side: Side, ids: np.ndarray, matrix: sp.csr_matrix) -> None:
        vectors, bias = self._feature_rows(side, matrix)
        self._extend_ids(side, ids)
        table = self.user_factors_ if side == "users" else self.item_factors_
        vectors = torch.cat([table, vectors.to(table)])
        own_bias = self.user_bias_ if side == "users" else self.item_bias_
        if own_bias is not None:
            assert bias is not None
            own_bias = torch.cat([own_bias, bias.to(own_bias)])
        if side == "users":
            self.user_factors_, self.user_bias_ = vectors, own_bias
        else:
            self.item_factors_, self.item_bias_ = vectors, own_bias
        if side == "items" and getattr(self, "_index", None) is not None:
            self._index = None  # the approximate index does not know the new items
            logger.warning("items were added: answering from exact search; build a new "
                           "index with use_index(ItemIndex(...))")

    def add_items(self, features: Features) -> Self:
        """Add items known only by their features (new to the catalogue) without retraining.

        ``features`` holds the new items' rows, read with the training vocabulary (values it
        does not hold are left out with a counted warning); each item's vector is the sum of
        its features' embeddings. The items are then recommended, predicted and similar like
        the others. An item the model already knows is refused (one line).
        """
        return self._add_known_by_features("items", features)

    def add_users(self, features: Features) -> Self:
        """Add users known only by their features without retraining (see
        :meth:`add_items`); :meth:`update_users` then folds in their interactions."""
        return self._add_known_by_features("users", features)

    def _add_known_by_features(self, side: Side, features: Features) -> Self:
        self.require_fitted()
        if not isinstance(features, Features):
            raise TypeError(f"features must be Features (read_features(...)), got "
                            f"{type(features).__name__}")
        fitted = self._fitted_features(side)
        id_map = self.users_ if side == "users" else self.items_
        ids = features.ids.to_numpy()
        known = id_map.index_of(ids, on_unknown="ignore") >= 0
        if known.any():
            shown = [_python(x) for x in ids[known][:3]]
            raise InvalidParameterError(f"{side} already in the model: {shown}"
                                        + (f" and {int(known.sum()) - 3} more"
                                           if known.sum() > 3 else ""))
        if len(ids) == 0:
            return self
        try:
            joined = fitted.update(features)  # kept: update_users reads the new rows again
            matrix = joined.matrix(features.ids)
        except LatentrecError as error:
            raise InvalidParameterError(f"features: {error}") from None
        self._add_ids(side, ids, matrix)
        self.features_[side] = joined
        logger.info("added %d %s by their features", len(ids), side)
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

    def factors(self, side: Literal["users", "items"] = "items", *,
                features: bool = False) -> pd.DataFrame:
        """Learned factors as a DataFrame indexed by raw id (columns ``f0..``, plus ``bias``).

        For a model trained with ``side``'s features these are each id's whole vector (its
        own embedding plus its features'); ``features=True`` gives the embeddings of the
        feature columns instead, indexed by ``feature`` and ``value`` (as
        :meth:`Features.columns <latentrec.data.Features.columns>` names them)."""
        self.require_fitted()
        if side not in SIDES:
            raise InvalidParameterError(f"side must be 'users' or 'items', got {side!r}")
        if features:
            columns = self._fitted_features(side).columns()
            embeddings = self.feature_factors_[side].cpu().numpy()
            frame = pd.DataFrame(embeddings, index=pd.MultiIndex.from_arrays(
                [columns["feature"], columns["value"]], names=["feature", "value"]),
                columns=[f"f{j}" for j in range(embeddings.shape[1])])
            if side in self.feature_bias_:
                frame["bias"] = self.feature_bias_[side].cpu().numpy()
            return frame
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
        for side, factors in self.feature_factors_.items():
            tensors[f"{side[:-1]}_feature_factors"] = factors
            if side in self.feature_bias_:
                tensors[f"{side[:-1]}_feature_bias"] = self.feature_bias_[side]
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
        for side in SIDES:
            self._restore_feature_factors(side, tensors, user_factors.shape[1])

    def _restore_feature_factors(self, side: Side, tensors: dict[str, torch.Tensor],
                                 width: int) -> None:
        name = side[:-1]
        factors = tensors.get(f"{name}_feature_factors")
        bias = tensors.get(f"{name}_feature_bias")
        fitted = self.features_.get(side)
        if fitted is None:
            if factors is not None or bias is not None:
                raise ModelFileError(f"{name}_feature_factors without the {name} features' "
                                     f"vocabulary")
            return
        if factors is None:
            raise ModelFileError(f"the {name} features' vocabulary without "
                                 f"{name}_feature_factors")
        if not factors.is_floating_point() or tuple(factors.shape) != (fitted.n_columns, width):
            raise ModelFileError(f"{name}_feature_factors do not match the {fitted.n_columns} "
                                 f"feature columns and {width} factors")
        if bias is not None and (not bias.is_floating_point()
                                 or bias.numel() != fitted.n_columns):
            raise ModelFileError(f"{name}_feature_bias does not match the {fitted.n_columns} "
                                 f"feature columns")
        # a new id's vector sums its features' embeddings (weights of at most a few units)
        bound = (_largest(factors.double().norm(dim=1)) + (
            0.0 if bias is None else _largest(bias.double().abs()))) * fitted.n_columns
        if not bound < _MAX_SCORE ** 0.5:
            raise ModelFileError(f"{name}_feature_factors are so large that new ids' scores "
                                 f"would overflow; the file is damaged or forged")
        self._set_feature_factors(side, factors, bias)


#: one feature table's embeddings and biases (a new user's features, in fold-in)
Prior = tuple[torch.Tensor, "torch.Tensor | None"]


def hybrid_table(own: torch.Tensor | None, matrix: sp.csr_matrix | None,
                 feature_factors: torch.Tensor | None) -> torch.Tensor:
    """Each row's whole vector: its own embedding (``own``, or none) plus its features'
    (the design-matrix rows ``matrix`` times ``feature_factors``)."""
    if matrix is None or feature_factors is None:
        if own is None:
            raise ValueError("a row needs its own embedding or features")
        return own
    csr = sp.csr_matrix(matrix)
    with warnings.catch_warnings():  # torch calls its CSR support beta; the product is exact
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        # scipy's CSR is well formed: skip torch's invariant checks
        sparse = torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)), torch.from_numpy(
                csr.indices.astype(np.int64)), torch.from_numpy(csr.data.astype(np.float32)),
            size=csr.shape, check_invariants=False).to(feature_factors.device)
    summed: torch.Tensor = (sparse @ feature_factors.float()).to(feature_factors.dtype)
    return summed if own is None else own + summed


def _finite(value: Any) -> bool:
    """Whether a number is finite in float64 (an integer of 400 digits is not)."""
    try:
        return math.isfinite(float(value))
    except (OverflowError, TypeError, ValueError):
        return False


def saved_seen_power(meta: Mapping[str, Any]) -> float:
    """The count normalisation ``n ** -power`` of the implicit-feedback groups a model file
    was trained with, checked: a number in [0, 1] (0: the sum, 1: the mean)."""
    power = finite_number(meta.get("seen_power"), "seen_power")
    if not 0.0 <= power <= 1.0:
        raise ModelFileError(f"seen_power is {power!r}; expected a number in [0, 1]")
    return power


def refuse_prior(model: FactorModel, prior: Prior | None) -> None:
    """For a ``_fold_in`` that cannot start from features' vectors."""
    if prior is not None:
        raise InvalidParameterError(f"{type(model).__name__} cannot fold in a new user's "
                                    f"interactions together with their features; give one")


#: scores must stay finite in float32 (about 3.4e38), with room for sums over chunks
_MAX_SCORE = 1e37
#: the largest design-matrix entry a new id may have: a standardised number 1,000 standard
#: deviations from the training mean is a typo or a unit error, not a feature value
_MAX_FEATURE_VALUE = 1e3


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
