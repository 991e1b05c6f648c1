"""The contract every model follows: raw ids in and out, one ``fit`` for every model, the
public index-level API, top-k with seen-item masking, fallbacks and persistence.

A model subclasses :class:`Recommender` (or :class:`~latentrec.models.factor.FactorModel` when
it learns user and item factors), names itself with ``kind`` (the name in saved files and on
the command line), declares a frozen ``Config`` dataclass and a keyword-only ``__init__`` with
the same parameters, and implements:

- ``_trainable(data)`` (a :class:`~latentrec.training.Trainable`, for models that train in
  epochs) **or** ``_fit_closed_form(data)`` (for models solved in one go);
- ``_score_pairs`` and ``_score_users`` (index-level scoring);
- ``_tensors`` and ``_restore`` (what is saved).

``fit`` itself is written once, here. docs/extending.md walks through a complete model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, overload

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from latentrec.data import Features, IdMap, Interactions
from latentrec.data.ids import canonical_int
from latentrec.errors import (
    DataWarning,
    InvalidParameterError,
    LatentrecError,
    ModelFileError,
    NotFittedError,
    UnknownIdError,
)
from latentrec.models._checks import (
    bytes_text,
    physical_memory,
    saved_csr,
    saved_range,
    within_range,
)
from latentrec.models._ranking import (
    SCORE_CHUNK,
    as_list,
    canonical_ids,
    check_k,
    is_scalar,
    mask_scores,
    top_frame,
    top_k,
)
from latentrec.models.config import EpochConfig, ModelConfig
from latentrec.persistence import finite_number, register_kind, write_model_dir
from latentrec.training import Callback, RankingValidator, RatingValidator, Trainable, Trainer
from latentrec.training.distributed import DistributedTrainer
from latentrec.training.partition import Partition

__all__ = ["Recommender", "hyperparameters"]

logger = logging.getLogger(__name__)

OnUnknown = Literal["raise", "fallback"]
Feedback = Literal["explicit", "implicit", "any"]
Side = Literal["users", "items"]
SIDES: tuple[Side, ...] = ("users", "items")


def hyperparameters(local_variables: dict[str, Any]) -> dict[str, Any]:
    """A model ``__init__``'s keyword arguments, from its ``locals()`` (see docs/extending.md)."""
    return {name: value for name, value in local_variables.items()
            if name not in ("self", "__class__")}


class Recommender(ABC):
    """Base class of all latentrec models.

    Class attributes a model sets: ``kind`` (registered name), ``Config`` (its frozen
    hyperparameter dataclass), ``feedback`` (``"explicit"``: made for ratings, ``"implicit"``:
    for clicks, plays and other implicit feedback, ``"any"``), ``validator`` (the validation
    metric of models that train in epochs: :class:`~latentrec.training.RatingValidator` or
    :class:`~latentrec.training.RankingValidator`), ``similarity`` (the sides for which
    ``similar_items``/``similar_users`` are defined) and ``quick_params`` (small settings that
    fit in a blink, for smoke tests and the contract suite).
    """

    kind: ClassVar[str]
    Config: ClassVar[type[ModelConfig]]
    feedback: ClassVar[Feedback] = "any"
    validator: ClassVar[type[RatingValidator] | type[RankingValidator]] = RatingValidator
    similarity: ClassVar[tuple[str, ...]] = ()
    #: the sides whose side features ``fit`` takes (``user_features``, ``item_features``); a
    #: model that sets it learns feature embeddings (see docs/features.md)
    feature_sides: ClassVar[tuple[Side, ...]] = ()
    quick_params: ClassVar[dict[str, Any]] = {}
    #: whether ``fit`` runs epochs (``_trainable``) or solves in one go (``_fit_closed_form``)
    trains_in_epochs: ClassVar[bool] = False
    #: whether ``fit`` accepts one rank's :class:`~latentrec.training.partition.Partition`
    #: (the model implements ``_distributed_trainable``)
    trains_distributed: ClassVar[bool] = False

    config: Any
    users_: IdMap
    items_: IdMap
    feedback_: str
    seen_: sp.csr_matrix
    item_popularity_: np.ndarray
    rating_range_: tuple[float, float] | None
    rating_mean_: float
    rating_std_: float
    history_: list[dict[str, float]]
    #: the fitted side features the model learned from, by side ("users", "items")
    features_: dict[Side, Features]
    _design: dict[Side, sp.csr_matrix]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.trains_in_epochs = cls._trainable is not Recommender._trainable
        cls.trains_distributed = (cls._distributed_trainable
                                  is not Recommender._distributed_trainable)
        if "kind" in cls.__dict__:
            epochs_config = issubclass(cls.Config, EpochConfig)
            if cls.trains_in_epochs != epochs_config:
                raise TypeError(
                    f"{cls.__qualname__}: a model that implements _trainable needs a Config "
                    f"derived from EpochConfig (epochs, patience, seed), and only such a model")
            register_kind(cls.kind, cls)

    def __init__(self, **params: Any) -> None:
        try:
            self.config = self.Config(**params)
        except TypeError as error:
            if "unexpected keyword" in str(error):
                bad = str(error).split("'")[-2] if "'" in str(error) else "?"
                raise InvalidParameterError(
                    f"{type(self).__name__} has no parameter {bad!r}; parameters: "
                    f"{self.parameter_names()}") from None
            raise
        self._fitted = False

    # ------------------------------------------------------------------ parameters
    @classmethod
    def parameter_names(cls) -> list[str]:
        """The hyperparameters this model takes, in order."""
        return [field.name for field in dataclasses.fields(cls.Config)]

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as a dict (scikit-learn style)."""
        return dataclasses.asdict(self.config)

    def set_params(self, **params: Any) -> Self:
        """Replace hyperparameters; invalid values fail here, not later in ``fit``."""
        unknown = sorted(set(params) - set(self.parameter_names()))
        if unknown:
            raise InvalidParameterError(f"{type(self).__name__} has no parameter "
                                        f"{unknown[0]!r}; parameters: {self.parameter_names()}")
        self.config = dataclasses.replace(self.config, **params)
        return self

    def clone(self) -> Self:
        """An unfitted copy with the same hyperparameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    @property
    def monitor(self) -> tuple[str, Literal["min", "max"]] | None:
        """The validation metric that early stopping watches and whether lower (``"min"``) or
        higher (``"max"``) is better; ``None`` for models that do not train in epochs."""
        if not self.trains_in_epochs:
            return None
        return self.validator.metric, self.validator.mode

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        data: Interactions,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        valid: Interactions | None = None,
        callbacks: Sequence[Callback] = (),
        show_progress: bool = True,
        trainer: Trainer | None = None,
    ) -> Self:
        """Learn from ``data``.

        ``user_features`` and ``item_features`` (:class:`~latentrec.data.Features`, from
        :func:`~latentrec.read_features`) are side features, for the models whose
        ``feature_sides`` name that side: each id's vector then adds up the embeddings of its
        features (see docs/features.md). An unfitted table is fitted on the training ids; ids
        of the table that have no interactions join the model as cold ids, scored by their
        features alone. Other models refuse features in one line.

        For models that train in epochs, ``valid`` adds the validation metric (see
        :attr:`monitor`) to every epoch of ``history_`` and, with ``patience`` set, stops
        early and restores the best epoch; ``callbacks`` are called after every epoch. Pass a
        :class:`~latentrec.training.Trainer` to control the loop further (checkpoints,
        resume, callbacks). Models solved in closed form ignore ``valid`` and the loop options.
        """
        if isinstance(data, Partition):
            if user_features is not None or item_features is not None:
                raise InvalidParameterError("distributed training does not take side features "
                                            "yet; train on one process")
            return self._fit_partition(data, valid=valid, callbacks=callbacks, trainer=trainer)
        if not isinstance(data, Interactions):
            raise TypeError(f"data must be Interactions, got {type(data).__name__}")
        if valid is not None and not isinstance(valid, Interactions):
            raise TypeError(f"valid must be Interactions, got {type(valid).__name__}")
        if trainer is not None and callbacks:
            raise InvalidParameterError("give callbacks to the Trainer (Trainer(callbacks=...)) "
                                        "when you pass one")
        self._check_data(data)
        self._check_size(data)
        self._fitted = False
        self._remember_data(data)
        self._remember_features(data, {"users": user_features, "items": item_features})
        try:
            if not self.trains_in_epochs:
                self._fit_closed_form(data)
            else:
                validator = None if valid is None else self.validator(self, valid)
                trainable = self._trainable(data)
                runner = trainer if trainer is not None else Trainer(callbacks=callbacks,
                                                                     show_progress=show_progress)
                self.history_ = runner.run(trainable, epochs=self.config.epochs,
                                           validator=validator, patience=self.config.patience,
                                           description=type(self).__name__,
                                           identity=self._run_identity(data))
        finally:
            self._design = {}
        for side, features in self.features_.items():
            id_map = self.users_ if side == "users" else self.items_
            cold = features.ids.to_numpy()[id_map.index_of(features.ids.to_numpy(),
                                                           on_unknown="ignore") < 0]
            if len(cold):
                self._add_ids(side, cold, features.matrix(cold))
                logger.info("%d %s with features and no interactions joined the model",
                            len(cold), side)
        self._fitted = True
        return self

    def _remember_features(self, data: Interactions,
                           given: dict[Side, Features | None]) -> None:
        """Fit the side features on the training ids and keep their design matrices (rows in
        the order of the training ids) for the trainable: :meth:`_feature_matrix`."""
        self.features_ = {}
        self._design = {}
        name = type(self).__name__
        for side, features in given.items():
            if features is None:
                continue
            argument = f"{side[:-1]}_features"
            if side not in self.feature_sides:
                from latentrec.persistence import model_kinds

                able = sorted(kind for kind, cls in model_kinds().items()
                              if side in cls.feature_sides)
                raise InvalidParameterError(
                    f"{argument}: {name} does not learn from {side[:-1]} features; models "
                    f"that do: {', '.join(able) or 'none'}")
            if not isinstance(features, Features):
                raise TypeError(f"{argument} must be Features (read_features(...)), got "
                                f"{type(features).__name__}")
            ids = data.users if side == "users" else data.items
            fitted = features if features.is_fitted else features.fit(ids)
            if fitted.has_identity:
                raise InvalidParameterError(
                    f"{argument} were fitted with identity columns; fit them without, the "
                    f"model's identity parameter gives each id its own embedding")
            if fitted.n_columns == 0:
                raise InvalidParameterError(f"{argument} have no columns for the training "
                                            f"{side}; nothing could be learned from them")
            matrix = fitted.matrix(ids)
            if not np.isfinite(matrix.data).all():
                raise InvalidParameterError(f"{argument}: a value gives a non-finite entry "
                                            f"after standardising; check its numbers")
            self.features_[side] = fitted
            self._design[side] = matrix
        if not getattr(self.config, "identity", True) and not self.features_:
            raise InvalidParameterError(
                f"{name}(identity=False) represents ids by their features alone; give "
                f"user_features or item_features, or set identity=True")

    def _feature_matrix(self, side: Side) -> sp.csr_matrix | None:
        """During ``fit``: the design matrix of ``side``'s features, one row per training id
        (in index order), or ``None`` when no features were given for that side."""
        return getattr(self, "_design", {}).get(side)

    def _add_ids(self, side: Side, ids: np.ndarray, matrix: sp.csr_matrix) -> None:
        """Append ids known only by their features (design matrix ``matrix``) to the model;
        models with ``feature_sides`` implement it (``FactorModel`` does)."""
        raise NotImplementedError(f"{type(self).__name__} cannot add {side}")

    def _extend_ids(self, side: Side, ids: np.ndarray) -> None:
        """Append new ids to the id map of ``side`` and make room for them in ``seen_`` (no
        interactions) and ``item_popularity_`` (zero)."""
        id_map = self.users_ if side == "users" else self.items_
        old = id_map.to_numpy()
        ids = np.asarray(ids)
        if id_map.is_integer and ids.dtype.kind not in "iu":
            # the model's ids stay integers: a new id must spell one canonically
            spelled = IdMap(ids, name=id_map.name)
            if not spelled.is_integer:
                odd = next(x for x in ids.tolist() if canonical_int(str(x)) is None)
                raise InvalidParameterError(
                    f"this model's {side} ids are integers, got {odd!r}; give new {side} "
                    f"integer ids (or train on text ids)")
            ids = spelled.to_numpy()
        if old.dtype.kind in "iu" and ids.dtype.kind in "iu":
            joined = np.concatenate([old, ids]).astype(np.int64)
        else:
            joined = np.concatenate([old.astype(str).astype(object),
                                     ids.astype(str).astype(object)])
        extended = IdMap(joined, name=id_map.name)
        n_new = len(ids)
        n_users, n_items = self.seen_.shape
        if side == "users":
            self.users_ = extended
            self.seen_ = sp.vstack([self.seen_, sp.csr_matrix((n_new, n_items),
                                                              dtype=self.seen_.dtype)],
                                   format="csr")
        else:
            self.items_ = extended
            self.seen_ = sp.csr_matrix(
                (self.seen_.data, self.seen_.indices, self.seen_.indptr),
                shape=(n_users, n_items + n_new))
            self.item_popularity_ = np.concatenate(
                [self.item_popularity_, np.zeros(n_new, dtype=np.float32)])

    def _run_identity(self, data: Interactions | Partition) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: model, configuration and data shape."""
        identity = {"kind": self.kind, "users": data.n_users, "items": data.n_items,
                    "interactions": len(data),
                    "config": {k: v for k, v in self.get_params().items()
                               if k not in ("epochs", "patience")}}
        if getattr(self, "_design", {}):  # a run with other side features is another run
            identity["features"] = {side: _digest(matrix)
                                    for side, matrix in sorted(self._design.items())}
        return identity

    def _fit_partition(self, data: Partition, *, valid: Interactions | None,
                       callbacks: Sequence[Callback], trainer: Trainer | None) -> Self:
        """One rank's share of distributed training (every rank calls it). The fitted model
        is on rank 0; on the other ranks it stays unfitted."""
        name = type(self).__name__
        if not self.trains_distributed:
            from latentrec.persistence import model_kinds

            able = sorted(kind for kind, cls in model_kinds().items() if cls.trains_distributed)
            raise InvalidParameterError(f"{name} does not train distributed; models that do: "
                                        f"{', '.join(able)}")
        if data.released:
            raise InvalidParameterError("this partition's rows were released by the fit that "
                                        "trained on it; build a new one with partition()")
        if valid is not None:
            raise InvalidParameterError("validation during distributed training is not "
                                        "supported; evaluate the saved model instead")
        if trainer is not None and not isinstance(trainer, DistributedTrainer):
            raise InvalidParameterError("distributed training takes a DistributedTrainer")
        if trainer is not None and callbacks:
            raise InvalidParameterError("give callbacks to the Trainer (Trainer(callbacks=...)) "
                                        "when you pass one")
        error: LatentrecError | None = None
        try:  # every rank finds the same fault: one of them reports it
            self._check_feedback(data.feedback, data.has_values)
            self._check_size(data)
        except LatentrecError as caught:
            error = caught
        data.group.agree(error)
        self._fitted = False
        self.users_, self.items_, self.feedback_ = data.users, data.items, data.feedback
        self.item_popularity_ = data.item_counts.astype(np.float32)
        self.rating_range_ = data.rating_range
        self.rating_mean_, self.rating_std_ = data.mean, data.std
        self.history_ = []
        self.features_ = {}
        trainable = self._distributed_trainable(data)
        try:
            runner = trainer or DistributedTrainer(callbacks=callbacks, group=data.group)
            self.history_ = runner.run(trainable, epochs=self.config.epochs,
                                       description=f"{name} (rank {data.group.rank})",
                                       identity=self._run_identity(data))
        finally:
            if hasattr(trainable, "close"):  # it may have borrowed the partition's arrays
                trainable.close()
        del trainable  # its copies of the rows, before rank 0 gathers every user's row
        seen = data.gather_rows(release=data.single_use)
        if seen is not None:
            self.seen_ = seen
            self._fitted = True
        return self

    def _distributed_trainable(self, data: Partition) -> Trainable:
        """The trainable of one rank of a distributed run (models that train distributed
        implement this; see docs/distributed.md)."""
        raise NotImplementedError

    def _trainable(self, data: Interactions) -> Trainable:
        """The trainable that fits this model (models that train in epochs implement this)."""
        raise NotImplementedError

    def _fit_closed_form(self, data: Interactions) -> None:
        """Set the learned state from ``data`` in one go (models without epochs implement
        this)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _trainable nor "
                                  f"_fit_closed_form")

    def _check_data(self, data: Interactions) -> None:
        """Refuse data the model cannot learn from; warn when it is not made for it."""
        self._check_feedback(data.feedback, data.values is not None)

    def _check_feedback(self, feedback: str, has_values: bool) -> None:
        name = type(self).__name__
        if self.feedback == "explicit":
            if not has_values:
                raise InvalidParameterError(
                    f"{name} fits ratings; this data has no values (use an implicit-feedback "
                    f"model such as ImplicitALS or BPR)")
            if feedback == "implicit":
                warnings.warn(
                    f"{name} predicts ratings, but this data is implicit feedback (weights or "
                    f"counts): its predictions would be counts and its rankings poor; use "
                    f"ImplicitALS or BPR for implicit feedback", DataWarning, stacklevel=4)
        elif self.feedback == "implicit" and feedback == "explicit":
            warnings.warn(
                f"{name} learns from implicit feedback, but this data holds ratings: every "
                f"rating, low ones too, counts as a positive signal; pass "
                f"data.as_implicit(min_value=...) to keep the liked items (--implicit on the "
                f"command line), or use a rating model",
                DataWarning, stacklevel=4)

    def _check_size(self, data: Interactions | Partition) -> None:
        """Refuse factor tables that cannot fit in this machine's memory, before any is built."""
        factors = getattr(self.config, "factors", None)
        if isinstance(factors, bool) or not isinstance(factors, int):
            return
        needed = (data.n_users + data.n_items) * factors * 4
        memory = physical_memory()
        if memory is not None and needed > memory:
            raise InvalidParameterError(
                f"factors={factors:,} needs {bytes_text(needed)} for the factor tables "
                f"(({data.n_users:,} users + {data.n_items:,} items) x {factors:,} factors x 4 "
                f"bytes), more than this machine's {bytes_text(memory)} of memory; lower factors")

    def _remember_data(self, data: Interactions) -> None:
        """Keep what every fitted model needs: id maps, seen items, popularity, rating stats."""
        self.users_ = data.users
        self.items_ = data.items
        self.feedback_ = data.feedback
        self.seen_ = data.to_csr()
        self.item_popularity_ = data.item_counts().astype(np.float32)
        self.rating_range_ = data.rating_range()
        weights = data.weights()
        self.rating_mean_ = float(np.mean(weights)) if len(weights) else 0.0
        spread = float(np.std(weights, dtype=np.float64)) if len(weights) else 0.0
        self.rating_std_ = spread if spread > 1e-6 else 1.0
        self.history_ = []

    def require_fitted(self) -> None:
        if not getattr(self, "_fitted", False):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(data) or load(path) first"
            )

    @property
    def n_users(self) -> int:
        if not hasattr(self, "users_"):
            self.require_fitted()
        return len(self.users_)

    @property
    def n_items(self) -> int:
        if not hasattr(self, "items_"):
            self.require_fitted()
        return len(self.items_)

    # ------------------------------------------------------------------ index-level API
    def to_indices(self, data: Interactions) -> tuple[np.ndarray, np.ndarray]:
        """``data``'s rows as this model's user and item indices (``-1`` where unknown).

        The index-level methods (:meth:`score_indices`, :meth:`top_k_indices`) take these;
        they are what evaluation, benchmarks and serving use to score many rows at once.
        ``model.users_.index_of(ids)`` gives the indices of raw ids.
        """
        if not isinstance(data, Interactions):
            raise TypeError(f"data must be Interactions, got {type(data).__name__}")
        user_map = self.users_.index_of(data.users.to_numpy(), on_unknown="ignore")
        item_map = self.items_.index_of(data.items.to_numpy(), on_unknown="ignore")
        return user_map[data.user_index], item_map[data.item_index]

    def score_indices(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Predictions for pairs of indices (float32); a pair with an unknown side (``-1``)
        gets the fallback that ``predict(..., on_unknown="fallback")`` gives."""
        user_index = np.asarray(user_index, dtype=np.int64)
        item_index = np.asarray(item_index, dtype=np.int64)
        known = (user_index >= 0) & (item_index >= 0)
        result = np.empty(len(user_index), dtype=np.float32)
        if known.any():
            result[known] = self._score_pairs(user_index[known], item_index[known])
        if not known.all():
            unknown = ~known
            result[unknown] = self._fallback_pairs(user_index[unknown], item_index[unknown])
        return result

    def top_k_indices(self, user_index: np.ndarray, k: int, *, exclude_seen: bool = True,
                      allowed: np.ndarray | None = None, approximate: bool = True
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Each user's top ``k`` item indices (``-1`` pads users with fewer candidates) and
        their raw scores, best first.

        Users with index ``-1`` get the fallback ranking (popularity). ``allowed`` restricts
        the candidates to these item indices. ``approximate=False`` bypasses an approximate
        index set with ``use_index``.
        """
        user_index = np.asarray(user_index, dtype=np.int64)
        n_candidates = self.n_items if allowed is None else len(allowed)
        seen = self.seen_ if exclude_seen else None
        return top_k(lambda chunk: mask_scores(self._chunk_scores(chunk), chunk, seen, allowed),
                     user_index, k, n_candidates)

    def _chunk_scores(self, user_index: np.ndarray) -> torch.Tensor:
        known = user_index >= 0
        if known.all():
            return self._score_users(user_index).float()
        scores = self._fallback_scores().to(torch.float32).repeat(len(user_index), 1)
        if known.any():
            scores[torch.from_numpy(known)] = self._score_users(user_index[known]).float().to(
                scores.device)
        return scores

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

    def _as_predictions(self, scores: np.ndarray) -> np.ndarray:
        """Raw ranking scores as ``predict`` reports them (clipped to the rating range by
        models that clip); lists are ranked by the raw scores, reported like this."""
        return scores

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
        self.require_fitted()
        _check_on_unknown(on_unknown)
        scalar = is_scalar(users) and is_scalar(items)
        try:
            user_index = self.users_.index_of(users, on_unknown=_lookup(on_unknown))
            item_index = self.items_.index_of(items, on_unknown=_lookup(on_unknown))
        except UnknownIdError as error:
            raise error.offer_fallback() from None
        if len(user_index) != len(item_index):
            raise InvalidParameterError(
                f"users and items must have the same length, got {len(user_index)} and "
                f"{len(item_index)}"
            )
        result = self.score_indices(user_index, item_index)
        return float(result[0]) if scalar else result

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
        users in the order given. ``score`` is what :meth:`predict` gives for the pair (for
        models that clip predictions to the rating range, items are still ranked by the
        unclipped score). ``exclude_seen`` drops items the user interacted with in training;
        ``items`` restricts the candidates to an allow-list and ``exclude`` removes a
        deny-list (unknown ids in either raise). A user with fewer than ``k`` candidates gets
        fewer rows. With ``on_unknown="fallback"`` unknown users get the most popular items
        and a ``fallback`` column marks those rows.

        Examples
        --------
        >>> from latentrec import BiasedMF, Interactions
        >>> data = Interactions.from_arrays(["a", "a", "b"], ["x", "y", "x"], [5, 3, 4])
        >>> model = BiasedMF(epochs=2).fit(data, show_progress=False)
        >>> model.recommend("b", k=5)["item"].tolist()
        ['y']
        """
        user_list, user_index, top_items, shown = self._top_lists(
            users, k, exclude_seen, items, exclude, on_unknown)
        return top_frame(canonical_ids(self.users_, user_list, user_index), self.items_,
                         top_items, shown,
                         fallback=(user_index < 0) if on_unknown == "fallback" else None)

    def _top_lists(self, users: Any, k: int, exclude_seen: bool,
                   items: Sequence[Any] | np.ndarray | None,
                   exclude: Sequence[Any] | np.ndarray | None, on_unknown: OnUnknown
                   ) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray]:
        """What :meth:`recommend` and :meth:`recommend_lists` report: the users as given, their
        indices (-1: unknown, with the fallback), the top items' indices and their scores as
        ``predict`` reports them."""
        self.require_fitted()
        _check_on_unknown(on_unknown)
        k = check_k(k)
        user_list = as_list(users)
        try:
            user_index = self.users_.index_of(user_list, on_unknown=_lookup(on_unknown))
        except UnknownIdError as error:
            raise error.offer_fallback() from None
        top_items, top_scores = self.top_k_indices(user_index, k, exclude_seen=exclude_seen,
                                                   allowed=self._candidates(items, exclude))
        return user_list, user_index, top_items, self._reported(top_items, top_scores,
                                                                user_index)

    def _reported(self, top_items: np.ndarray, top_scores: np.ndarray,
                  user_index: np.ndarray) -> np.ndarray:
        """Scores as ``predict`` reports them; fallback rows keep their popularity scores."""
        shown = np.where(top_items >= 0, self._as_predictions(top_scores), top_scores)
        fallback = user_index < 0
        if fallback.any():
            shown[fallback] = top_scores[fallback]
        return shown.astype(np.float32)

    def recommend_lists(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Sequence[Any] | np.ndarray | None = None,
        exclude: Sequence[Any] | np.ndarray | None = None,
        on_unknown: OnUnknown = "raise",
    ) -> list[dict[str, Any]]:
        """:meth:`recommend` as plain records, ``[{"user": U, "items": [{"item": I, "score": S},
        ...]}, ...]`` with Python ids and floats: the shape of the CLI's and the server's JSON.
        With ``on_unknown="fallback"`` unknown users get the most popular items and every
        record says ``"fallback": true/false``.

        It skips the DataFrame, which makes it the fast path for serving one request.
        """
        user_list, user_index, top_items, shown = self._top_lists(
            users, k, exclude_seen, items, exclude, on_unknown)
        canonical = self.users_.canonical(user_list)
        item_ids = self.items_.to_numpy()
        records = []
        for row, user in enumerate(canonical):
            keep = top_items[row] >= 0
            ids = item_ids[top_items[row][keep]].tolist()
            scores = shown[row][keep].astype(np.float64).tolist()
            record = {"user": user, "items": [
                {"item": item, "score": score} for item, score in zip(ids, scores, strict=True)]}
            if on_unknown == "fallback":
                record["fallback"] = bool(user_index[row] < 0)
            records.append(record)
        return records

    def recommend_all(self, k: int = 10, *, exclude_seen: bool = True,
                      items: Sequence[Any] | np.ndarray | None = None,
                      exclude: Sequence[Any] | np.ndarray | None = None) -> pd.DataFrame:
        """:meth:`recommend` for every training user: ``user, item, rank, score`` rows, ready for
        ``to_csv`` or ``to_parquet``."""
        self.require_fitted()
        return self.recommend(self.users_.to_list(), k, exclude_seen=exclude_seen, items=items,
                              exclude=exclude)

    def _candidates(self, items: Any, exclude: Any) -> np.ndarray | None:
        """Item indices allowed by an allow-list and a deny-list (``None``: every item)."""
        if items is None and exclude is None:
            return None
        allowed = np.arange(self.n_items) if items is None else np.unique(
            self.items_.index_of(as_list(items), on_unknown="raise"))
        if exclude is not None:
            denied = self.items_.index_of(as_list(exclude), on_unknown="raise")
            allowed = np.setdiff1d(allowed, denied)
        return allowed

    def _similar(self, side: str, ids: Any, k: int) -> pd.DataFrame:
        self.require_fitted()
        if side not in self.similarity:
            raise InvalidParameterError(
                f"{type(self).__name__} does not define similar {side}"
                + (f"; it supports similar {' and '.join(self.similarity)}"
                   if self.similarity else ""))
        k = check_k(k)
        vectors = self._vectors(side)
        id_map = self.users_ if side == "users" else self.items_
        id_list = as_list(ids)
        index = id_map.index_of(id_list, on_unknown="raise")
        normed = torch.nn.functional.normalize(vectors.float(), dim=1)
        k_eff = min(k, len(id_map) - 1)
        noun = side[:-1]
        if k_eff < 1:
            return pd.DataFrame(columns=[noun, f"similar_{noun}", "rank", "score"])
        frames = []
        for start in range(0, len(index), SCORE_CHUNK):
            chunk = torch.from_numpy(index[start:start + SCORE_CHUNK]).to(normed.device)
            scores = normed[chunk] @ normed.T
            scores[torch.arange(len(chunk)), chunk] = -float("inf")
            top_scores, top_index = torch.topk(scores, k_eff, dim=1)
            frames.append((top_scores.cpu().numpy(), top_index.cpu().numpy()))
        top_scores_all = np.concatenate([f[0] for f in frames]).reshape(-1)
        top_index_all = np.concatenate([f[1] for f in frames]).reshape(-1)
        return pd.DataFrame({
            noun: canonical_ids(id_map, id_list, index)[np.repeat(np.arange(len(id_list)),
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
        """Set the learned state from saved tensors; check their shapes against the id maps and
        raise :class:`~latentrec.errors.ModelFileError` (one line) when they do not fit."""

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to the directory ``path``: ``model.json``, ``weights.safetensors`` and
        ``manifest.json`` (the checksums of both, and its own).

        ``path`` may be new, an empty directory or a model directory, which is replaced as a
        whole: the new directory is written next to it and renamed into place, so a crash at
        any moment leaves the old model or the new one. A location that cannot be written (a
        file, a path under a file, a read-only directory, a directory holding other files) and
        any I/O error, a full disk included, raise :class:`~latentrec.errors.ModelFileError`
        in one line naming ``path``, with the old model unchanged.
        :func:`latentrec.persistence.check_writable` makes the same checks up front.

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
        self.require_fitted()
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
        features = getattr(self, "features_", {})
        if features:  # the tables and vocabularies, to read new ids' features as in training
            meta["features"] = {side: f.state() for side, f in features.items()}
        return write_model_dir(path, meta, tensors)

    @classmethod
    def upgrade_model_file(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """An older file's description in today's form; models that renamed parameters (or
        moved to another kind) override this so that old files still load."""
        return meta

    @classmethod
    def from_model_files(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor],
                         where: Path) -> Recommender:
        """A fitted model from a verified model directory (used by :func:`load`).

        Everything is checked against everything else before it is used: the id maps (lists of
        unique ids), the seen-item matrix, the rating statistics (finite numbers, the range
        ordered, the mean inside it), then the model's own tensors (``_restore``).
        """
        try:
            config = meta["config"]
            if not isinstance(config, dict):
                raise ModelFileError("config is not an object")
            model = cls(**config)
            for side in ("users", "items"):
                if not isinstance(meta[side], list):
                    raise ModelFileError(f"{side} is not a list of ids")
            users = IdMap.from_list(meta["users"], name="users")
            items = IdMap.from_list(meta["items"], name="items")
            n_users, n_items = len(users), len(items)
            model.users_, model.items_ = users, items
            model.seen_ = saved_csr(tensors, "seen", (n_users, n_items), "seen-item matrix")
            popularity = tensors.pop("item_popularity")
            if popularity.dtype != torch.float32 or tuple(popularity.shape) != (n_items,):
                raise ModelFileError("item_popularity does not match the id maps")
            if bool((popularity < 0).any()):
                raise ModelFileError("item_popularity holds negative counts")
            model.item_popularity_ = popularity.numpy()
            feedback = meta["feedback"]
            if feedback not in ("explicit", "implicit"):
                raise ModelFileError(f"feedback is {feedback!r}; expected 'explicit' or "
                                     f"'implicit'")
            model.feedback_ = feedback
            model.rating_range_ = saved_range(meta.get("rating_range"))
            model.rating_mean_ = finite_number(meta["rating_mean"], "rating_mean")
            if model.rating_range_ is not None and not within_range(model.rating_mean_,
                                                               model.rating_range_):
                raise ModelFileError(f"rating_mean {model.rating_mean_!r} is outside "
                                     f"rating_range {list(model.rating_range_)}")
            model.rating_std_ = finite_number(meta.get("rating_std", 1.0), "rating_std")
            if model.rating_std_ <= 0:
                raise ModelFileError(f"rating_std is {model.rating_std_!r}; expected > 0")
            history = meta.get("history") or []
            if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
                raise ModelFileError("history is not a list of objects")
            model.history_ = list(history)
            model.features_ = _saved_features(meta.get("features"), cls)
            model._restore(tensors, meta)
        except ModelFileError as error:
            message = str(error)
            raise ModelFileError(message if message.startswith(str(where))
                                 else f"{where}: {message}") from None
        except (KeyError, TypeError, ValueError, IndexError, OverflowError,
                InvalidParameterError) as error:
            raise ModelFileError(f"{where}: inconsistent model description ({error})") from None
        model._fitted = True
        return model


# ---------------------------------------------------------------------- helpers
def _digest(matrix: sp.csr_matrix) -> str:
    """The SHA-256 of a design matrix: its shape, structure and values."""
    digest = hashlib.sha256(repr(matrix.shape).encode())
    for part in (matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64),
                 matrix.data.astype(np.float32)):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


def _saved_features(saved: Any, cls: type[Recommender]) -> dict[Side, Features]:
    """The vocabularies of a model file's side features, checked."""
    if saved is None:
        return {}
    if not isinstance(saved, dict):
        raise ModelFileError("features is not an object")
    features: dict[Side, Features] = {}
    for side, state in saved.items():
        if side not in cls.feature_sides:
            raise ModelFileError(f"features names {side!r}, but {cls.__name__} takes features "
                                 f"of {list(cls.feature_sides) or 'no side'}")
        try:
            fitted = Features.from_state(state)
        except LatentrecError as error:
            raise ModelFileError(f"features of {side}: {error}") from None
        if not fitted.is_fitted or fitted.has_identity:
            raise ModelFileError(f"features of {side} have no vocabulary, or identity columns")
        features[side] = fitted
    return features


def _check_on_unknown(on_unknown: str) -> None:
    if on_unknown not in ("raise", "fallback"):
        raise InvalidParameterError(
            f"on_unknown must be 'raise' or 'fallback', got {on_unknown!r}")


def _lookup(on_unknown: str) -> Literal["raise", "ignore"]:
    return "raise" if on_unknown == "raise" else "ignore"
