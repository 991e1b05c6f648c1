"""Side features of users or items: tables keyed by raw ids, their vocabularies and design
matrices.

A :class:`Features` holds one row per raw id (the ids of the interactions, spelled alike) and
one or more feature columns of four kinds:

``categorical``
    One value per row (``gender``: ``"F"``).
``multi``
    A set of values per row: a Python list, or a delimited string such as MovieLens genres
    ``"Action|Comedy"``. Repeats within a row count once.
``numeric``
    A number per row, standardised by :meth:`Features.fit`, or cut into quantile buckets when
    ``buckets`` asks for it.
``tags``
    Free-text tags: a delimited string or list (a repeated tag counts again), or a dict of
    ``{tag: weight}``. Tags are compared by their folded text: case and runs of spaces do not
    matter (``"Hip  Hop"`` is ``"hip hop"``).

:meth:`Features.fit` builds the vocabulary (each feature value a column) from the rows of the
training ids, and :meth:`Features.matrix` gives the sparse design matrix of any ids in the table.
Everything saves as plain JSON (:meth:`Features.to_json`), never as a pickle.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import logging
import math
import os
import re
import stat
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentrec.data.ids import IdMap, _as_id_array
from latentrec.data.interactions import _id_column, _is_nested
from latentrec.data.readers import (
    _field_count,
    _first_line,
    _is_regex,
    _looks_like_header,
    _parser_message,
    _separator,
    _sniff_separator,
    _split,
)
from latentrec.errors import DataError, DataWarning, InvalidParameterError, NotFittedError

__all__ = ["FEATURE_KINDS", "NORMALIZATIONS", "FeatureKind", "Features", "read_features"]

logger = logging.getLogger(__name__)

FeatureKind = Literal["categorical", "multi", "numeric", "tags"]
FEATURE_KINDS: tuple[str, ...] = ("categorical", "multi", "numeric", "tags")
Normalize = Literal["group", "row", "none"]
#: how :meth:`Features.fit` weighs the entries of a row; see :meth:`Features.fit`
NORMALIZATIONS: tuple[str, ...] = ("group", "row", "none")
#: the most quantile buckets a numeric feature may ask for
MAX_BUCKETS = 1000

Columns = str | int | Sequence[str | int]

_FORMAT = "latentrec-features"
_VERSION = 1
_SET_KINDS = ("categorical", "multi", "tags")
_JSON_SOURCE = "features JSON"


# ---------------------------------------------------------------------- internal containers
@dataclass(frozen=True, eq=False)
class _Column:
    """One feature column of a table.

    Value kinds keep a rows × levels matrix of weights (``levels`` are the distinct values as
    text); numeric columns keep one number per row (NaN: missing).
    """

    name: str
    kind: FeatureKind
    levels: np.ndarray  # object array of str
    table: sp.csr_matrix | None  # rows x levels; None for numeric
    numbers: np.ndarray | None  # float64 per row; numeric only
    buckets: int | None = None  # numeric only: cut into this many quantile buckets at fit


@dataclass(frozen=True, eq=False)
class _Fitted:
    """The vocabulary of one feature: its columns of the design matrix."""

    name: str
    kind: FeatureKind
    values: tuple[str, ...] = ()  # value kinds: one column each, in this order
    mean: float = 0.0  # numeric, standardised
    scale: float = 1.0
    edges: np.ndarray | None = None  # numeric, bucketed: the inner edges, increasing

    @property
    def width(self) -> int:
        if self.kind != "numeric":
            return len(self.values)
        return 1 if self.edges is None else len(self.edges) + 1

    def labels(self) -> list[str | None]:
        if self.kind != "numeric":
            return list(self.values)
        if self.edges is None:
            return [None]
        bounds = [-math.inf, *self.edges.tolist(), math.inf]
        return [f"[{low:g}, {high:g})" for low, high in itertools.pairwise(bounds)]


@dataclass(frozen=True, eq=False)
class _Vocabulary:
    features: tuple[_Fitted, ...]
    identity: IdMap | None
    normalize: Normalize
    #: added to each sum a row's weights are divided by (0: the weights sum to 1)
    shrink: float = 0.0

    @property
    def n_identity(self) -> int:
        return 0 if self.identity is None else len(self.identity)

    @property
    def n_columns(self) -> int:
        return self.n_identity + sum(f.width for f in self.features)


# ---------------------------------------------------------------------- the container
class Features:
    """Side features of users or items, one row per raw id.

    Build one with :func:`read_features` (a file or a DataFrame, one row per id) or
    :meth:`from_pairs` (one row per ``(id, value)``, e.g. tag assignments). A table is
    immutable: :meth:`fit` returns a fitted copy that shares the table and adds the vocabulary,
    and :meth:`update` returns a new table.

    Ids follow the rule of the interactions (:class:`~latentrec.data.IdMap`): integers only when
    every id of the table spells an int64 canonically, else text, so ``01`` and ``1`` are two
    ids, never merged, and the text ``"1"`` finds the integer id ``1``.

    Examples
    --------
    >>> table = pd.DataFrame({"item": ["x", "y", "z"], "genre": ["A|B", "B", "C"],
    ...                       "year": [1990, 2000, None]})
    >>> features = read_features(table, "item")
    >>> features.kinds
    {'genre': 'multi', 'year': 'numeric'}
    >>> fitted = features.fit(["x", "y"])
    >>> fitted.columns().value.tolist()
    ['A', 'B', None]
    >>> fitted.matrix(["x", "y"]).toarray().round(2).tolist()
    [[0.5, 0.5, -1.0], [0.0, 1.0, 1.0]]
    """

    __slots__ = ("_columns", "_ids", "_source", "_vocabulary")

    def __init__(
        self,
        ids: IdMap,
        columns: Sequence[_Column],
        *,
        source: str | None = None,
        vocabulary: _Vocabulary | None = None,
    ) -> None:
        self._ids = ids
        self._columns = tuple(columns)
        self._source = source
        self._vocabulary = vocabulary

    # ------------------------------------------------------------------ description
    @property
    def ids(self) -> IdMap:
        """The raw ids of the table's rows, in table order."""
        return self._ids

    @property
    def source(self) -> str | None:
        """Where the table came from (a file name), for messages."""
        return self._source

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names of the table, in table order."""
        return tuple(column.name for column in self._columns)

    @property
    def kinds(self) -> dict[str, str]:
        """Each feature of the table and its kind."""
        return {column.name: column.kind for column in self._columns}

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_json`) gave this table a vocabulary."""
        return self._vocabulary is not None

    @property
    def has_identity(self) -> bool:
        """Whether :meth:`matrix` starts with identity columns (``fit(identity=True)``)."""
        return self._fitted().identity is not None

    @property
    def n_columns(self) -> int:
        """The number of columns of :meth:`matrix`."""
        return self._fitted().n_columns

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        shown = ", ".join(f"{c.name} ({c.kind})" for c in self._columns)
        fitted = f", fitted: {self.n_columns} columns" if self.is_fitted else ""
        where = f", from {self._source}" if self._source else ""
        return f"Features({len(self)} ids, {len(self._columns)} features: {shown}{fitted}{where})"

    def _where(self) -> str:
        return self._source or "features"

    def _fitted(self) -> _Vocabulary:
        if self._vocabulary is None:
            raise NotFittedError(
                "these features have no vocabulary yet; fit returns a fitted copy: "
                "features = features.fit(train.items)"
            )
        return self._vocabulary

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_pairs(
        cls,
        ids: Iterable[Any],
        values: Iterable[Any],
        weights: Iterable[float] | None = None,
        *,
        feature: str,
        kind: Literal["multi", "tags"] = "tags",
        source: str | None = None,
    ) -> Features:
        """Build a one-feature table from ``(id, value[, weight])`` pairs, one pair per row.

        The long layout of tag assignments (HetRec's ``user_taggedartists.dat``) or of any
        many-to-many relation.

        Parameters
        ----------
        ids, values
            Equally long sequences: the raw id and the value of each pair.
        weights
            The weight of each pair (finite, positive); by default each pair weighs 1.
        feature
            The feature's name.
        kind
            ``"tags"`` (default): repeated pairs add up their weights, so counts become
            weights, and values are folded like tags. ``"multi"``: each value counts once per
            id, with weight 1.
        source
            Named in error messages (default ``"pairs"``); each pair's line is its position,
            from 1.

        Returns
        -------
        Features
            One row per distinct id, in order of first appearance.

        Examples
        --------
        >>> tags = Features.from_pairs([7, 7, 9, 7, 7], ["Rock", "indie", "rock", "rock", "ROCK"],
        ...                            feature="tag")
        >>> tags.ids.to_list(), tags.kinds
        ([7, 9], {'tag': 'tags'})
        >>> tags.fit().matrix([7]).toarray().tolist()  # indie once, rock three times
        [[0.25, 0.75]]
        """
        if not isinstance(feature, str) or not feature:
            raise TypeError(f"feature must be a non-empty string, got {feature!r}")
        if kind not in ("multi", "tags"):
            raise InvalidParameterError(f"kind must be 'multi' or 'tags', got {kind!r}")
        where = source or "pairs"
        id_series = _series("ids", ids)
        value_series = _series("values", values)
        if len(id_series) != len(value_series):
            raise InvalidParameterError(
                f"ids and values must be equally long, got {len(id_series)} and "
                f"{len(value_series)}"
            )
        if len(id_series) == 0:
            raise DataError("no features (there are no pairs)", source=where)
        lines = np.arange(1, len(id_series) + 1)
        raw = _id_column(id_series, where, "id", lines)
        rows, uniques = pd.factorize(raw)
        weight_array: np.ndarray | None = None
        if weights is not None:
            weight_series = _series("weights", weights)
            if len(weight_series) != len(id_series):
                raise InvalidParameterError(
                    f"weights must be as long as ids, got {len(weight_series)} and "
                    f"{len(id_series)}"
                )
            weight_array = _weight_numbers(weight_series, where, "weight", lines)
        missing = value_series.isna().to_numpy(dtype=bool)
        if missing.any():
            line = int(lines[int(missing.argmax())])
            raise DataError("value is missing", source=where, line=line, column="value")
        texts = _spelled(value_series, where, "value", lines)
        texts = _fold(texts) if kind == "tags" else texts
        empty = (texts.str.len() == 0).to_numpy(dtype=bool)
        if empty.any():
            line = int(lines[int(empty.argmax())])
            raise DataError("value is empty", source=where, line=line, column="value")
        column = _set_column(feature, kind, rows.astype(np.int64), texts.to_numpy(dtype=object),
                             weight_array, len(uniques))
        return cls(IdMap(np.asarray(uniques), name="ids"), [column], source=source)

    # ------------------------------------------------------------------ vocabulary
    def fit(
        self,
        ids: IdMap | Iterable[Any] | None = None,
        *,
        identity: bool = False,
        normalize: Normalize = "group",
        shrink: float = 0.0,
    ) -> Features:
        """A fitted copy: the vocabulary built from the rows of ``ids`` (the training ids).

        Parameters
        ----------
        ids
            The ids the model trains on (``train.items``, an :class:`IdMap` or a sequence of
            raw ids); by default every id of the table. Only their rows make the vocabulary, so
            a value that only untrained (cold) ids have gets no column: it could not be learned.
            Numeric features are standardised (mean 0, standard deviation 1) or bucketed on
            these rows too. Ids without a row in the table are allowed (they get no features),
            but at least one must have a row.
        identity
            Add one column per id of ``ids`` (the first ``len(ids)`` columns, in the order of
            ``ids``): each id's own indicator, LightFM's identity features.
        normalize
            How the entries of a row are weighed:

            ``"group"`` (default)
                Within each ``multi`` or ``tags`` feature the weights of a row sum to 1 (a film
                with three genres gets 1/3 each; an artist's tags their share of its tag
                count). ``categorical`` values, buckets and identity columns weigh 1;
                standardised numbers are their z-score. Each feature thus weighs the same
                whatever the others hold.
            ``"row"``
                LightFM's rule: the raw entries of the whole row (identity included) divided by
                their sum (of absolute values, for z-scores).
            ``"none"``
                The raw entries: 1 per value, a tag's count, z-scores.
        shrink
            With ``"group"`` or ``"row"``: divide by the sum plus ``shrink`` instead of the
            sum, so that a row with little weight (an artist few users tagged) gets a shorter
            row, and leans less on features that say little about it; 0 (the default): the
            weights sum to 1.

        Returns
        -------
        Features
            A new object sharing this table; this one is left as it is.

        Examples
        --------
        >>> table = pd.DataFrame({"item": [1, 2, 3], "color": ["red", "blue", "green"]})
        >>> fitted = read_features(table, "item").fit([1, 2], identity=True)
        >>> fitted.columns()[["feature", "value"]].values.tolist()
        [['ids', 1], ['ids', 2], ['color', 'blue'], ['color', 'red']]
        >>> fitted.matrix([2, 1]).toarray().tolist()
        [[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]]
        """
        if not isinstance(identity, bool):
            raise TypeError(f"identity must be True or False, got {type(identity).__name__}")
        if normalize not in NORMALIZATIONS:
            raise InvalidParameterError(
                f"normalize must be one of {list(NORMALIZATIONS)}, got {normalize!r}"
            )
        if isinstance(shrink, bool) or not isinstance(shrink, (int, float)):
            raise TypeError(f"shrink must be a number, got {type(shrink).__name__}")
        if not (math.isfinite(shrink) and shrink >= 0):
            raise InvalidParameterError(f"shrink must be a finite number >= 0, got {shrink!r}")
        if shrink and normalize == "none":
            raise InvalidParameterError('shrink divides the sums of normalize="group" or '
                                        '"row"; with normalize="none" there is none')
        if ids is None:
            rows = np.arange(len(self._ids))
            fitted_ids = self._ids
        else:
            fitted_ids = _id_map(ids)
            positions = self._ids.index_of(fitted_ids.to_numpy(), on_unknown="ignore")
            rows = positions[positions >= 0]
            if len(fitted_ids) and not len(rows):
                given = ", ".join(repr(x) for x in fitted_ids.to_list()[:2])
                held = ", ".join(repr(x) for x in self._ids.to_list()[:2])
                raise DataError(
                    f"none of the {len(fitted_ids)} ids given to fit has a row here (they look "
                    f"like {given}; the table's like {held}); ids must be spelled alike, and "
                    f"01 and 1 are different ids", source=self._where(),
                )
        logger.info("features: %d of %d ids have a row in %s", len(rows), len(fitted_ids),
                    self._where())
        fitted = tuple(_fit_column(column, rows) for column in self._columns)
        vocabulary = _Vocabulary(fitted, fitted_ids if identity else None, normalize,
                                 float(shrink))
        return Features(self._ids, self._columns, source=self._source, vocabulary=vocabulary)

    def columns(self) -> pd.DataFrame:
        """What each column of :meth:`matrix` stands for.

        Returns
        -------
        pandas.DataFrame
            One row per column, in order: ``feature`` (the feature's name, or the name of the
            fitted ids for identity columns), ``kind`` (``"identity"`` or the feature's kind)
            and ``value`` (the raw id, the value, the bucket ``"[1990, 1995)"``, or ``None``
            for a standardised number).

        Examples
        --------
        >>> table = pd.DataFrame({"user": ["a", "b"], "age": [20, 30]})
        >>> read_features(table, buckets=2).fit().columns().value.tolist()
        ['[-inf, 30)', '[30, inf)']
        """
        vocabulary = self._fitted()
        feature: list[str] = []
        kind: list[str] = []
        value: list[Any] = []
        if vocabulary.identity is not None:
            feature += [vocabulary.identity.name] * len(vocabulary.identity)
            kind += ["identity"] * len(vocabulary.identity)
            value += vocabulary.identity.to_list()
        for fitted in vocabulary.features:
            labels = fitted.labels()
            feature += [fitted.name] * len(labels)
            kind += [fitted.kind] * len(labels)
            value += labels
        return pd.DataFrame({"feature": pd.Series(feature, dtype=object),
                             "kind": pd.Series(kind, dtype=object),
                             "value": pd.Series(value, dtype=object)})

    # ------------------------------------------------------------------ the design matrix
    def matrix(
        self, ids: IdMap | Iterable[Any] | None = None, *, dtype: type = np.float32
    ) -> sp.csr_matrix:
        """The design matrix: one row per id, one column per vocabulary entry.

        Parameters
        ----------
        ids
            Raw ids, or an :class:`IdMap`; by default every id of the table, in table order.
            Any id of the table works, trained or not (cold start). An id without a row in the
            table gets an empty row (only its identity column, if it has one).
        dtype
            The matrix's floating-point type.

        Returns
        -------
        scipy.sparse.csr_matrix
            ``len(ids)`` × :attr:`n_columns`, weighed as :meth:`fit`'s ``normalize`` says;
            :meth:`columns` names the columns.

        Warns
        -----
        DataWarning
            Once per call, counting the values that the vocabulary does not hold (values only
            untrained ids have); they are left out.

        Examples
        --------
        >>> table = pd.DataFrame({"item": ["a", "b"], "genre": ["x|y", "y"]})
        >>> fitted = read_features(table).fit()
        >>> fitted.matrix(["b", "new"]).toarray().tolist()
        [[0.0, 1.0], [0.0, 0.0]]
        """
        vocabulary = self._fitted()
        if ids is None:
            raw = self._ids.to_numpy()
            positions = np.arange(len(raw))
        else:
            raw = _id_map_array(ids)
            positions = self._ids.index_of(raw, on_unknown="ignore")
        n = len(raw)
        present = np.flatnonzero(positions >= 0)
        table_rows = positions[present]
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        data: list[np.ndarray] = []
        offset = 0
        if vocabulary.identity is not None:
            own = vocabulary.identity.index_of(raw, on_unknown="ignore")
            keep = np.flatnonzero(own >= 0)
            rows.append(keep)
            cols.append(own[keep])
            data.append(np.ones(len(keep)))
            offset = len(vocabulary.identity)
        by_name = {column.name: column for column in self._columns}
        unknown: list[_Unknown] = []
        for fitted in vocabulary.features:
            column = by_name.get(fitted.name)
            if column is not None:
                r, c, d, missed = _transform(column, fitted, present, table_rows,
                                             vocabulary.normalize, vocabulary.shrink)
                rows.append(r)
                cols.append(c + offset)
                data.append(d)
                if missed is not None:
                    unknown.append(missed)
            offset += fitted.width
        fitted_names = {fitted.name for fitted in vocabulary.features}
        for column in self._columns:
            if column.name not in fitted_names:
                missed = _unfitted(column, present, table_rows)
                if missed is not None:
                    unknown.append(missed)
        all_rows = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if rows else (
            np.empty(0, dtype=np.int64))
        all_cols = np.concatenate([np.asarray(c, dtype=np.int64) for c in cols]) if cols else (
            np.empty(0, dtype=np.int64))
        all_data = np.concatenate(data) if data else np.empty(0)
        if vocabulary.normalize == "row" and len(all_data):
            sums = np.bincount(all_rows, weights=np.abs(all_data), minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                all_data = np.where(sums[all_rows] > 0,
                                    all_data / (sums[all_rows] + vocabulary.shrink), 0.0)
        with np.errstate(over="ignore"):  # a huge z-score becomes inf: models refuse it
            entries: np.ndarray = all_data.astype(dtype)
        result: sp.csr_matrix = sp.csr_matrix((entries, (all_rows, all_cols)),
                                              shape=(n, vocabulary.n_columns), dtype=dtype)
        result.eliminate_zeros()
        result.sort_indices()
        if unknown:
            warnings.warn(_unknown_message(unknown), DataWarning, stacklevel=2)
        return result

    # ------------------------------------------------------------------ new rows
    def update(self, other: Features) -> Features:
        """This table with the rows of ``other`` added, keeping this vocabulary.

        Rows of ids that both tables hold are taken from ``other``. Features are matched by
        name: a feature only one table has is missing (empty) in the other's rows. ``other``'s
        values are read as this table's kind of the feature (a ``categorical`` value is a
        one-value set for a ``multi`` feature, and is folded for a ``tags`` one), so a small
        table whose kinds were inferred differently still fits; a numeric feature must be
        numeric in both.

        Parameters
        ----------
        other
            The new rows, e.g. items added to the catalogue after training.

        Returns
        -------
        Features
            Fitted with this vocabulary if this one is (values it does not hold are counted as
            unknown by :meth:`matrix`).

        Examples
        --------
        >>> old = read_features(pd.DataFrame({"item": ["a"], "genre": ["x"]})).fit()
        >>> both = old.update(read_features(pd.DataFrame({"item": ["b"], "genre": ["x"]})))
        >>> both.ids.to_list(), both.matrix(["b"]).toarray().tolist()
        (['a', 'b'], [[1.0]])
        """
        if not isinstance(other, Features):
            raise TypeError(f"other must be Features, got {type(other).__name__}")
        keep = np.flatnonzero(other.ids.index_of(self._ids.to_numpy(), on_unknown="ignore") < 0)
        ids = _joined_ids(self._ids.to_numpy()[keep], other.ids.to_numpy())
        kinds: dict[str, FeatureKind] = {c.name: c.kind for c in self._columns}
        if self._vocabulary is not None:
            kinds.update({f.name: f.kind for f in self._vocabulary.features})
        mine = {c.name: c for c in self._columns}
        theirs = {c.name: c for c in other._columns}
        names = list(mine) + [name for name in theirs if name not in mine]
        columns: list[_Column] = []
        for name in names:
            kind = kinds.get(name, theirs[name].kind if name in theirs else mine[name].kind)
            columns.append(_stack(name, kind, mine.get(name), keep, len(self._ids),
                                  theirs.get(name), len(other.ids), other._where()))
        return Features(ids, columns, source=self._source, vocabulary=self._vocabulary)

    # ------------------------------------------------------------------ JSON
    def state(self, *, table: bool = True) -> dict[str, Any]:
        """Everything as plain JSON types: the table (unless ``table=False``) and the
        vocabulary (``None`` when not fitted). See :meth:`to_json` for the layout.

        Examples
        --------
        >>> fitted = read_features(pd.DataFrame({"item": [1], "genre": ["x"]})).fit()
        >>> sorted(fitted.state())
        ['format', 'source', 'table', 'version', 'vocabulary']
        """
        vocabulary = self._vocabulary
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "source": self._source,
            "table": _table_state(self._ids, self._columns) if table else None,
            "vocabulary": None if vocabulary is None else _vocabulary_state(vocabulary),
        }

    def to_json(self, *, table: bool = True) -> str:
        """The table and the vocabulary as a JSON document (no pickle, nothing executable).

        Layout (version 1)::

            {"format": "latentrec-features", "version": 1, "source": "u.item",
             "table": {"ids": [1, 2],
                       "features": [
                         {"name": "genre", "kind": "multi", "levels": ["Action", "Drama"],
                          "rows": [0, 0, 1], "codes": [0, 1, 1], "weights": null},
                         {"name": "year", "kind": "numeric", "buckets": 10,
                          "numbers": [1995.0, null]}]},
             "vocabulary": {"normalize": "group",
                            "identity": {"name": "items", "ids": [1, 2]},
                            "features": [
                              {"name": "genre", "kind": "multi", "values": ["Action"]},
                              {"name": "age", "kind": "numeric", "mean": 34.1, "scale": 12.2},
                              {"name": "year", "kind": "numeric", "edges": [1980.0, 1995.0]}]}}

        ``table`` is ``null`` with ``table=False`` (a vocabulary to apply to new tables with
        :meth:`update`), ``vocabulary`` is ``null`` before :meth:`fit` and ``identity`` is
        ``null`` without identity columns. A table entry is a ``(row, level, weight)`` triple
        (``weights`` ``null``: all 1); ``null`` numbers are missing. Columns are the identity
        ids, then each feature's ``values`` or buckets (``len(edges) + 1``) or its one
        standardised number, in order.

        Examples
        --------
        >>> fitted = read_features(pd.DataFrame({"item": [1, 2], "genre": ["x", "y"]})).fit()
        >>> again = Features.from_json(fitted.to_json())
        >>> (again.matrix() != fitted.matrix()).nnz
        0
        """
        return json.dumps(self.state(table=table), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Features:
        """The features :meth:`state` described; a malformed state raises :class:`DataError`.

        Examples
        --------
        >>> fitted = read_features(pd.DataFrame({"item": [1], "genre": ["x"]})).fit()
        >>> Features.from_state(fitted.state()).is_fitted
        True
        """
        if not isinstance(state, Mapping):
            raise _bad(f"expected a JSON object, got {type(state).__name__}")
        if state.get("format") != _FORMAT:
            raise _bad(f"not a latentrec features document (format {state.get('format')!r})")
        version = state.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise _bad(f"version must be a positive integer, got {version!r}")
        if version > _VERSION:
            raise _bad(f"version {version} is newer than this latentrec reads ({_VERSION}); "
                       f"upgrade latentrec")
        source = state.get("source")
        if source is not None and not isinstance(source, str):
            raise _bad("source must be a string or null")
        table = state.get("table")
        ids, columns = IdMap([], name="ids"), list[_Column]()
        if table is not None:
            ids, columns = _table_from_state(table)
        raw_vocabulary = state.get("vocabulary")
        vocabulary = None if raw_vocabulary is None else _vocabulary_from_state(raw_vocabulary)
        if vocabulary is not None:
            kinds = {c.name: c.kind for c in columns}
            for fitted in vocabulary.features:
                if fitted.name in kinds and (kinds[fitted.name] == "numeric") != (
                        fitted.kind == "numeric"):
                    raise _bad(f"feature {fitted.name!r} is {kinds[fitted.name]} in the table "
                               f"but {fitted.kind} in the vocabulary")
        return cls(ids, columns, source=source, vocabulary=vocabulary)

    @classmethod
    def from_json(cls, text: str | bytes) -> Features:
        """The features :meth:`to_json` wrote; malformed JSON raises :class:`DataError`.

        Examples
        --------
        >>> fitted = read_features(pd.DataFrame({"item": [1], "genre": ["x"]})).fit()
        >>> Features.from_json(fitted.to_json(table=False)).columns().value.tolist()
        ['x']
        """
        if not isinstance(text, (str, bytes)):
            raise TypeError(f"text must be str or bytes, got {type(text).__name__}")
        try:
            state = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as error:
            raise _bad(f"not valid JSON ({_first_line(error)})") from None
        return cls.from_state(state)


# ---------------------------------------------------------------------- reading tables
def read_features(
    table: str | os.PathLike[str] | pd.DataFrame,
    id_col: str | int | None = None,
    *,
    categorical: Columns = (),
    multi: Columns = (),
    numeric: Columns = (),
    tags: Columns = (),
    columns: Columns | None = None,
    separator: str | Mapping[str, str] = "|",
    buckets: int | Mapping[str, int] | None = None,
    sep: str | None = None,
    header: bool | None = None,
    names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    source: str | None = None,
) -> Features:
    """Read a feature table: one row per raw id, one column per feature.

    Parameters
    ----------
    table
        A CSV/TSV/any-separator text file (``.gz`` too), a Parquet file (``.parquet``,
        ``.pq``), or a pandas DataFrame.
    id_col
        The column of raw ids: a name or a 0-based position. By default a DataFrame's index
        when it has a name (``load_movielens_items`` returns one), else the first column.
    categorical, multi, numeric, tags
        Columns (names or positions; one name alone is fine) of each kind, see
        :mod:`latentrec.data.features`. Columns not named are inferred: numbers (a numeric
        dtype, or text that all parses as numbers) are ``numeric``; a column holding lists is
        ``multi`` and one holding dicts ``tags``; text where some value contains the column's
        separator is ``multi``; anything else (booleans included) is ``categorical``. ``tags``
        are never inferred. Name a column to override: zip codes are ``categorical``.
    columns
        The feature columns; by default every column but the id column. Columns named in the
        four options above are used either way.
    separator
        What splits a ``multi`` or ``tags`` text value (``"Action|Comedy"``), taken literally;
        or a dict giving it per column (``"|"`` for the others). Spaces around values are
        dropped, and so are empty values.
    buckets
        Cut numeric features into at most this many quantile buckets (one column each, edges
        from the training rows, see :meth:`Features.fit`) instead of standardising them; a dict
        gives it per column. From 2 to 1000.
    sep, header, names, encoding
        For text files: the field separator (sniffed by default, as for
        :func:`~latentrec.read_interactions`; ``"\\t"`` as typed in a shell is a tab), whether
        the first line names the columns (sniffed: it does when it holds the names the other
        options use, or looks like a header), the column names of a file without a header
        (MovieLens ``u.user``: ``names=["user", "age", "gender", "occupation", "zip"]``; then
        ``header`` is False unless given), and the text encoding (MovieLens ``u.item`` is
        ``"latin-1"``).
    source
        The name used in messages (default: the file's path, or ``"data"`` for a DataFrame,
        whose line ``n`` is its ``n``-th row).

    Returns
    -------
    Features
        Not fitted yet: call :meth:`Features.fit` with the training ids.

    Raises
    ------
    DataError
        With one line naming the file, line and column: an empty file, a repeated or missing
        id, a missing id column, a column named in an option that the table lacks, a value
        that is not a number in a numeric column, a list in a categorical column, a line with
        too many fields, text that is not in ``encoding``.
    InvalidParameterError
        A column named in two kinds, a bucket count outside 2..1000, an empty separator.
    FileNotFoundError
        The file does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "u.user"
    >>> _ = path.write_text("1|24|M|technician|85711\\n2|53|F|other|94043\\n")
    >>> users = read_features(path, "user", sep="|", categorical="zip",
    ...                       names=["user", "age", "gender", "occupation", "zip"])
    >>> users.kinds
    {'age': 'numeric', 'gender': 'categorical', 'occupation': 'categorical', 'zip': 'categorical'}
    """
    kind_options: dict[str, list[str | int]] = {
        "categorical": _column_list("categorical", categorical),
        "multi": _column_list("multi", multi),
        "numeric": _column_list("numeric", numeric),
        "tags": _column_list("tags", tags),
    }
    chosen = None if columns is None else _column_list("columns", columns)
    if (id_col is not None and not isinstance(id_col, (str, int))) or isinstance(id_col, bool):
        raise TypeError(f"id_col must be a column name or position, got {id_col!r}")
    separators = _separators(separator)
    bucket_counts = _bucket_counts(buckets)
    if not isinstance(encoding, str) or not encoding:
        raise TypeError(f"encoding must be a non-empty string, got {encoding!r}")
    if source is not None and not isinstance(source, str):
        raise TypeError(f"source must be a string, got {type(source).__name__}")
    if names is not None and (isinstance(names, str) or not all(
            isinstance(n, str) and n for n in names)):
        raise TypeError("names must be a sequence of non-empty column names")
    if isinstance(table, pd.DataFrame):
        for option, value in (("sep", sep), ("header", header), ("names", names)):
            if value is not None:
                raise InvalidParameterError(f"{option}= applies to files, not to a DataFrame")
        where = source or "data"
        frame = table.copy(deep=False)
        frame.columns = [str(c) for c in frame.columns]
        index_name = None if table.index.name is None else str(table.index.name)
        if index_name is not None and (id_col is None or (
                id_col == index_name and id_col not in frame.columns)):
            if index_name in frame.columns:
                raise DataError(f"the index is named {index_name!r} like a column; pass "
                                f"id_col= to say which holds the ids", source=where)
            frame.index = pd.RangeIndex(len(frame))
            frame.insert(0, index_name, table.index.to_numpy())
            id_col = index_name
        if frame.columns.duplicated().any():
            repeated = frame.columns[frame.columns.duplicated()][0]
            raise DataError(f"column {repeated!r} is repeated", source=where)
        if len(frame) == 0:
            raise DataError("no features (the data has no rows)", source=where)
        lines = np.arange(1, len(frame) + 1)
    elif isinstance(table, (str, os.PathLike)):
        path = Path(table)
        where = source or str(path)
        named = [c for listed in kind_options.values() for c in listed]
        wanted = [c for c in [id_col, *named, *(chosen or []), *separators, *bucket_counts]
                  if isinstance(c, str) and c]
        frame, lines = _read_file(path, where, sep=sep, header=header, names=names,
                                  encoding=encoding, wanted=wanted)
    else:
        raise TypeError(
            f"table must be a path or a pandas DataFrame, got {type(table).__name__}"
        )
    return _build(frame, lines, where, id_col, kind_options, chosen, separators,
                  bucket_counts)


def _build(
    frame: pd.DataFrame,
    lines: np.ndarray,
    where: str,
    id_col: str | int | None,
    kind_options: dict[str, list[str | int]],
    chosen: list[str | int] | None,
    separators: dict[str | int, str],
    bucket_counts: dict[str | int, int],
) -> Features:
    names = list(frame.columns)
    id_name = _resolve(names, 0 if id_col is None else id_col, "id_col", where)
    declared: dict[str, str] = {}
    for kind, listed in kind_options.items():
        for column in listed:
            name = _resolve(names, column, kind, where)
            if name == id_name:
                raise InvalidParameterError(f"column {name!r} is the id column; it cannot also "
                                            f"be a {kind} feature")
            if name in declared and declared[name] != kind:
                raise InvalidParameterError(f"column {name!r} is named in both "
                                            f"{declared[name]}= and {kind}=")
            declared[name] = kind
    if chosen is None:
        feature_names = [n for n in names if n != id_name]
    else:
        feature_names = [_resolve(names, column, "columns", where) for column in chosen]
        if id_name in feature_names:
            raise InvalidParameterError(f"columns= names the id column {id_name!r}")
        feature_names += [n for n in declared if n not in feature_names]
        feature_names = [n for n in names if n in set(feature_names)]  # table order
    if not feature_names:
        raise DataError(f"has no feature columns besides the id column {id_name!r}",
                        source=where)
    per_column_sep = {_resolve(names, key, "separator", where): value
                      for key, value in separators.items() if key != ""}
    default_sep = separators.get("", "|")
    per_column_buckets = {_resolve(names, key, "buckets", where): value
                          for key, value in bucket_counts.items() if key != ""}
    ids = _table_ids(frame[id_name], where, id_name, lines)
    built: list[_Column] = []
    for name in feature_names:
        series = frame[name].reset_index(drop=True)
        split_by = per_column_sep.get(name, default_sep)
        kind = declared.get(name) or _infer_kind(series, split_by)
        if name in per_column_sep and kind not in ("multi", "tags"):
            raise InvalidParameterError(f"separator= names {name!r}, a {kind} column; only "
                                        f"multi and tags columns are split")
        if kind == "numeric":
            count = per_column_buckets.get(name, bucket_counts.get(""))
            numbers = _numbers(series, where, name, lines)
            built.append(_Column(name, "numeric", np.empty(0, dtype=object), None, numbers,
                                 count))
            continue
        if name in per_column_buckets:
            raise InvalidParameterError(f"buckets= names {name!r}, a {kind} column; only "
                                        f"numeric columns are bucketed")
        rows, values, weights = _entries(series, cast(FeatureKind, kind), split_by, where,
                                         name, lines)
        built.append(_set_column(name, cast(FeatureKind, kind), rows, values, weights,
                                 len(series)))
    return Features(ids, built, source=where)


# ---------------------------------------------------------------------- option checking
def _column_list(option: str, value: object) -> list[str | int]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        raise TypeError(f"{option} must be a column name or a sequence of them, got "
                        f"{type(value).__name__}")
    listed = list(value)
    for item in listed:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise TypeError(f"{option} must hold column names or positions, got {item!r}")
    return listed


def _check_separator(option: str, value: object) -> str:
    if not isinstance(value, str) or not value or "\n" in value or "\r" in value:
        raise InvalidParameterError(f"{option} must be a non-empty string without line breaks, "
                                    f"got {value!r}")
    return value


def _separators(separator: object) -> dict[str | int, str]:
    """``{"": default, column: separator, ...}``."""
    if isinstance(separator, Mapping):
        found: dict[str | int, str] = {"": "|"}
        for key, value in separator.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool) or key == "":
                raise TypeError(f"separator keys must be column names, got {key!r}")
            found[key] = _check_separator(f"separator[{key!r}]", value)
        return found
    return {"": _check_separator("separator", separator)}


def _bucket_count(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{option} must be an integer from 2 to {MAX_BUCKETS}, got "
                                    f"{value!r}")
    if not 2 <= int(value) <= MAX_BUCKETS:
        raise InvalidParameterError(f"{option} must be from 2 to {MAX_BUCKETS}, got {value}")
    return int(value)


def _bucket_counts(buckets: object) -> dict[str | int, int]:
    """``{"": default (if any), column: count, ...}``."""
    if buckets is None:
        return {}
    if isinstance(buckets, Mapping):
        found: dict[str | int, int] = {}
        for key, value in buckets.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool) or key == "":
                raise TypeError(f"buckets keys must be column names, got {key!r}")
            found[key] = _bucket_count(f"buckets[{key!r}]", value)
        return found
    return {"": _bucket_count("buckets", buckets)}


def _resolve(names: list[str], column: str | int, option: str, where: str) -> str:
    """The frame column an option names, by name or 0-based position."""
    if isinstance(column, int):
        if not 0 <= column < len(names):
            raise DataError(f"has {len(names)} columns, so there is no column {column} "
                            f"(named in {option}=)", source=where)
        return names[column]
    if column not in names:
        raise DataError(f"is named in {option}= but the table has no such column; found "
                        f"columns {names[:12]}", source=where, column=column)
    return column


# ---------------------------------------------------------------------- reading files
_MAX_LINE = 1 << 20


def _read_file(
    path: Path,
    where: str,
    *,
    sep: str | None,
    header: bool | None,
    names: Sequence[str] | None,
    encoding: str,
    wanted: list[str],
) -> tuple[pd.DataFrame, np.ndarray]:
    """The file as a frame of text (Parquet: of its own types) and each row's line number."""
    sep = _separator(sep)
    _check_file(path, where)
    if path.name.lower().endswith((".parquet", ".pq")):
        if sep is not None or header is not None or names is not None:
            raise InvalidParameterError("sep=, header= and names= apply to text files, not to "
                                        "Parquet")
        return _read_parquet(path, where)
    lines_seen = _first_lines(path, where, encoding)
    if not lines_seen:
        raise DataError("no features (the file is empty)", source=where)
    if sep is None:
        sep = _sniff_separator(lines_seen, where)
    first = [field.strip() for field in _split(lines_seen[0], sep)]
    if header is None:
        if names is not None:
            header = False
        elif wanted and all(name in first for name in wanted):
            header = True
        else:
            header = _looks_like_header(first, [_split(line, sep) for line in lines_seen[1:]])
    if header and names is None and len(set(first)) != len(first):
        repeated = next(name for number, name in enumerate(first) if name in first[:number])
        raise DataError(f"column {repeated!r} is repeated", source=where, line=1)
    options: dict[str, Any] = {
        "sep": sep,
        "header": 0 if header else None,
        "dtype": str,
        "skip_blank_lines": False,
        "keep_default_na": False,
        "na_values": [""],
        "encoding": "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        else encoding,
    }
    if _is_regex(sep) or sep == "::":
        options["engine"] = "python"
    elif sep != r"\s+":
        options["skipinitialspace"] = True  # "a, b": as read_interactions reads it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' own warnings, not for our users
            frame = pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise DataError("no features (the file is empty)", source=where) from None
    except UnicodeDecodeError as error:
        raise _decode_error(path, where, encoding, error) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataError(f"not a readable gzip file ({_first_line(error)})",
                        source=where) from None
    except LookupError:
        raise InvalidParameterError(f"encoding {encoding!r} is not a known text encoding") from (
            None)
    except pd.errors.ParserError as error:
        message, line = _parser_message(str(error))
        raise DataError(message, source=where, line=line) from None
    first_line = 2 if header else 1
    lines = np.arange(first_line, first_line + len(frame))
    if names is not None:
        if len(names) != frame.shape[1]:
            raise DataError(f"has {frame.shape[1]} columns but names= gives {len(names)}",
                            source=where)
        frame.columns = list(names)
    else:
        frame.columns = [str(c).strip() for c in frame.columns]
    if frame.columns.duplicated().any():
        repeated = frame.columns[frame.columns.duplicated()][0]
        raise DataError(f"column {repeated!r} is repeated", source=where,
                        line=1 if header else None)
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame, lines = frame.loc[~blank].reset_index(drop=True), lines[~blank]
    if len(frame) == 0:
        what = "has only a header" if header else "is empty"
        raise DataError(f"no features (the file {what})", source=where)
    last = frame.columns[-1]
    short = frame[last].isna().to_numpy()
    if frame.shape[1] > 1 and short.any():
        line = int(lines[int(short.argmax())])
        found = _field_count(path, line, sep)
        if found < frame.shape[1]:
            raise DataError(f"the line has {found} fields, expected {frame.shape[1]}",
                            source=where, line=line, column=str(last))
    return frame, lines


def _check_file(path: Path, where: str) -> None:
    """Refuse what is not a regular file before reading a byte (a pipe would never end)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file") from None
    if stat.S_ISDIR(mode):
        raise DataError("is a directory, expected a file of features", source=where)
    if not stat.S_ISREG(mode):
        raise DataError("is not a regular file (a pipe or a device?); save the features to a "
                        "file and read that", source=where)


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _first_lines(path: Path, where: str, encoding: str, count: int = 20) -> list[str]:
    """The first ``count`` non-blank lines, for sniffing; binary files are refused here."""
    lines: list[str] = []
    try:
        with _open_binary(path) as handle:
            number = 0
            while len(lines) < count:
                raw = handle.readline(_MAX_LINE + 1)
                if not raw:
                    break
                number += 1
                if len(raw) > _MAX_LINE:
                    raise DataError(f"the line is longer than {_MAX_LINE:,} characters; not a "
                                    f"text file of features", source=where, line=number)
                if b"\x00" in raw:
                    raise DataError("holds NUL bytes; not a text file of features (Parquet "
                                    "files must end in .parquet)", source=where, line=number)
                text = raw.decode("utf-8" if encoding == "utf-8" else encoding,
                                  errors="replace").lstrip("\ufeff").rstrip("\r\n")
                if text.strip():
                    lines.append(text)
    except (gzip.BadGzipFile, EOFError) as error:
        raise DataError(f"not a readable gzip file ({_first_line(error)})",
                        source=where) from None
    except LookupError:
        raise InvalidParameterError(f"encoding {encoding!r} is not a known text encoding") from (
            None)
    return lines


def _decode_error(path: Path, where: str, encoding: str, error: UnicodeDecodeError
                  ) -> DataError:
    """Name the first line that is not text in ``encoding`` (a scan only on this error path)."""
    codec = "utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(codec)
            except UnicodeDecodeError as bad:
                byte = raw[bad.start:bad.start + 1].hex()
                return DataError(f"byte 0x{byte} is not {encoding} text; pass the file's "
                                 f"encoding (e.g. encoding='latin-1')", source=where,
                                 line=number)
    return DataError(f"is not {encoding} text ({_first_line(error)}); pass the file's encoding "
                     f"(e.g. encoding='latin-1')", source=where)


def _read_parquet(path: Path, where: str) -> tuple[pd.DataFrame, np.ndarray]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises many types for a bad file
        raise DataError(f"not a readable Parquet file ({_first_line(error)})",
                        source=where) from None
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise DataError("no features (the file has no rows)", source=where)
    return frame.reset_index(drop=True), np.arange(1, len(frame) + 1)


# ---------------------------------------------------------------------- columns
#: text that spells an integer canonically and short enough to fit int64 whatever its digits
_SHORT_INT = r"-?[1-9][0-9]{0,17}|0"


def _table_ids(series: pd.Series, where: str, column: str, lines: np.ndarray) -> IdMap:
    series = series.reset_index(drop=True)
    if _is_text(series) and bool(series.str.fullmatch(_SHORT_INT).fillna(False).all()):
        raw = series.astype(np.int64).to_numpy()  # the common case, vectorised
    else:
        raw = _id_column(series, where, column, lines)
    index = pd.Index(raw)
    repeated = index.duplicated()
    if repeated.any():
        row = int(repeated.argmax())
        first = int((index == index[row]).argmax())
        raise DataError(
            f"id {raw[row].item() if hasattr(raw[row], 'item') else raw[row]!r} is repeated, "
            f"first seen on line {int(lines[first])}; a feature table has one row per id",
            source=where, line=int(lines[row]), column=column,
        )
    return IdMap(raw, name="ids")


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")


def _infer_kind(series: pd.Series, separator: str) -> str:
    """The documented rule: numbers → numeric, lists → multi, dicts → tags, text holding the
    separator → multi, anything else → categorical."""
    kind = series.dtype.kind
    if kind == "b":
        return "categorical"
    if kind in "iuf":
        return "numeric"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    if inferred in ("string", "empty"):
        text = pd.Series(series.dropna().unique(), dtype=object)  # the distinct texts only
        if len(text) == 0:
            return "categorical"
        stripped = text.str.strip()
        parsed = pd.to_numeric(stripped, errors="coerce")
        if bool(parsed.notna().all()) and bool((stripped != "").all()):
            return "numeric"
        if bool(text.str.contains(separator, regex=False).any()):
            return "multi"
        return "categorical"
    if inferred == "mixed":
        values = series.dropna().array
        if any(isinstance(v, dict) for v in values):
            return "tags"
        if any(_is_nested(v) for v in values):
            return "multi"
    return "categorical"


def _numbers(series: pd.Series, where: str, column: str, lines: np.ndarray) -> np.ndarray:
    """Finite numbers as float64, NaN where missing; anything else names its line."""
    if series.dtype.kind in "iufb":
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif _is_text(series):  # a file's column: vectorised text functions
        text = series.str.strip()
        text = text.where(text != "")
        numbers = np.asarray(pd.to_numeric(text, errors="coerce"), dtype=np.float64)
        bad = np.isnan(numbers) & text.notna().to_numpy(dtype=bool)
        if bad.any():
            row = int(bad.argmax())
            raise DataError(f"{series.iloc[row]!r} is not a number", source=where,
                            line=int(lines[row]), column=column)
    else:
        values = series.astype(object)
        nested = values.map(_is_nested).to_numpy(dtype=bool)
        if nested.any():
            row = int(nested.argmax())
            raise DataError(f"holds a {type(values.iloc[row]).__name__} where a number was "
                            f"expected", source=where, line=int(lines[row]), column=column)
        text = values.where(values.isna(), values.astype(str).str.strip())
        text = text.where(text != "", None)
        numbers = np.asarray(pd.to_numeric(text, errors="coerce"), dtype=np.float64)
        bad = np.isnan(numbers) & text.notna().to_numpy(dtype=bool)
        if bad.any():
            row = int(bad.argmax())
            shown = series.iloc[row]
            raise DataError(f"{shown!r} is not a number", source=where, line=int(lines[row]),
                            column=column)
    infinite = np.isinf(numbers)
    if infinite.any():
        row = int(infinite.argmax())
        raise DataError(f"value is {numbers[row]}, not a finite number", source=where,
                        line=int(lines[row]), column=column)
    return numbers


def _weight_numbers(series: pd.Series, where: str, column: str, lines: np.ndarray
                    ) -> np.ndarray:
    numbers = _numbers(series, where, column, lines)
    bad = ~(numbers > 0)
    if bad.any():
        row = int(bad.argmax())
        shown = "missing" if np.isnan(numbers[row]) else f"{numbers[row]:g}"
        raise DataError(f"weight is {shown}; weights must be positive numbers", source=where,
                        line=int(lines[row]), column=column)
    return numbers


def _spell(value: object) -> str:
    """A scalar value as text: integers and integral floats as ``str(n)``, so 3, 3.0 and "3"
    are one value (a column of integers with gaps is read as floats)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isfinite(number) and number == int(number) and abs(number) < 2.0**53:
            return str(int(number))
        return repr(number)
    return str(value)


def _spelled(series: pd.Series, where: str, column: str, lines: np.ndarray) -> pd.Series:
    """Each value of a column of scalars as stripped text (through its distinct values)."""
    try:
        codes, uniques = pd.factorize(series.reset_index(drop=True))
    except TypeError:  # unhashable: lists, dicts
        raise _nested_error(series, where, column, lines) from None
    distinct = list(uniques)
    if any(_is_nested(value) for value in distinct):
        raise _nested_error(series, where, column, lines)
    texts = np.asarray([_spell(value).strip() for value in distinct] + [""], dtype=object)
    return pd.Series(texts[codes], dtype=object)  # code -1 (missing) takes the last: ""


def _nested_error(series: pd.Series, where: str, column: str, lines: np.ndarray) -> DataError:
    for row, value in enumerate(series.array):
        if _is_nested(value):
            kind = "list" if isinstance(value, (list, tuple, np.ndarray, pd.Series)) else (
                type(value).__name__)
            return DataError(f"holds a {kind} where one value was expected; name the column "
                             f"in multi= (or tags=) for several values", source=where,
                             line=int(lines[row]), column=column)
    return DataError("holds values that are not one value each", source=where, column=column)


_SPACES = re.compile(r"\s+")


def _fold(texts: pd.Series) -> pd.Series:
    """Tags compared by their folded text: case and runs of spaces do not matter."""
    codes, uniques = pd.factorize(texts)
    folded = pd.Series(uniques, dtype=object).str.replace(_SPACES, " ", regex=True)
    folded = folded.str.strip().str.casefold()
    return pd.Series(folded.to_numpy(dtype=object)[codes], dtype=object)


def _entries(
    series: pd.Series,
    kind: FeatureKind,
    separator: str,
    where: str,
    column: str,
    lines: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The ``(row, value, weight)`` entries of a value column (weights ``None``: all 1)."""
    if kind == "categorical":
        texts = _spelled(series, where, column, lines)
        keep = (texts != "").to_numpy(dtype=bool)
        return np.flatnonzero(keep), texts.to_numpy(dtype=object)[keep], None
    if _is_text(series):
        return _text_entries(series, kind, separator)
    values = series.astype(object).array
    # Python objects (a DataFrame's lists, dicts, mixed text): a pass over the rows' objects
    is_text = np.fromiter((isinstance(v, str) for v in values), bool, len(values))
    is_dict = np.fromiter((isinstance(v, dict) for v in values), bool, len(values))
    if is_dict.any() and kind != "tags":
        row = int(is_dict.argmax())
        raise DataError("holds a dict where a list of values was expected; name the column in "
                        "tags= for weighted values", source=where, line=int(lines[row]),
                        column=column)
    text_part = series[is_text].astype(object).str.split(separator, regex=False).explode()
    other_part = series[~is_text & ~is_dict].astype(object).explode()
    dict_rows, dict_keys, dict_weights = _dict_entries(series, is_dict, where, column, lines)
    rows = np.concatenate([text_part.index.to_numpy(dtype=np.int64),
                           other_part.index.to_numpy(dtype=np.int64), dict_rows])
    elements = pd.Series(np.concatenate([text_part.to_numpy(dtype=object),
                                         other_part.to_numpy(dtype=object), dict_keys]),
                         dtype=object)
    weights = np.concatenate([np.ones(len(text_part) + len(other_part)), dict_weights])
    element_lines = lines[rows] if len(rows) else lines[:0]
    nested = elements.map(_is_nested).to_numpy(dtype=bool)
    if nested.any():
        bad = int(nested.argmax())
        raise DataError("holds a list inside a list; give each row a flat list of values",
                        source=where, line=int(element_lines[bad]), column=column)
    texts = _spelled(elements, where, column, element_lines)
    if kind == "tags":
        texts = _fold(texts)
    keep = (texts != "").to_numpy(dtype=bool)
    return rows[keep], texts.to_numpy(dtype=object)[keep], weights[keep]


def _text_entries(
    series: pd.Series, kind: FeatureKind, separator: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries of a text column, split through its distinct texts (a long column of genres
    has few): rows x texts times texts x values counts each value in each row."""
    codes, uniques = pd.factorize(series)
    pieces = pd.Series(uniques, dtype=object).str.split(separator, regex=False).explode()
    texts = pd.Series(pieces.to_numpy(dtype=object), dtype=object).str.strip()
    if kind == "tags":
        texts = _fold(texts)
    keep = (texts != "").to_numpy(dtype=bool)
    value_codes, values = pd.factorize(texts[keep])
    owners = pieces.index.to_numpy(dtype=np.int64)[keep]
    by_text = sp.csr_matrix((np.ones(len(owners)), (owners, value_codes)),
                            shape=(len(uniques), len(values)))
    rows = np.flatnonzero(codes >= 0)
    by_row = sp.csr_matrix((np.ones(len(rows)), (rows, codes[rows])),
                           shape=(len(series), len(uniques)))
    counts = (by_row @ by_text).tocoo()
    return (counts.row.astype(np.int64), np.asarray(values, dtype=object)[counts.col],
            counts.data.astype(np.float64))


def _dict_entries(
    series: pd.Series, is_dict: np.ndarray, where: str, column: str, lines: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``{tag: weight}`` rows as entries (a loop over the rows that hold dicts)."""
    rows: list[int] = []
    keys: list[object] = []
    weights: list[object] = []
    for row in np.flatnonzero(is_dict).tolist():
        for key, weight in series.iloc[row].items():
            rows.append(row)
            keys.append(key)
            weights.append(weight)
    row_array = np.asarray(rows, dtype=np.int64)
    checked = _weight_numbers(pd.Series(weights, dtype=object), where, column,
                              lines[row_array] if len(rows) else lines[:0])
    return row_array, np.asarray(keys, dtype=object), checked


def _set_column(
    name: str,
    kind: FeatureKind,
    rows: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray | None,
    n_rows: int,
) -> _Column:
    codes, levels = pd.factorize(pd.Series(values, dtype=object), sort=True)
    data = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)
    table = sp.csr_matrix((data, (rows, codes)), shape=(n_rows, len(levels)), dtype=np.float64)
    table.sum_duplicates()
    if kind != "tags":
        table.data[:] = 1.0  # a repeated value counts once
    return _Column(name, kind, np.asarray(levels, dtype=object), table, None)


# ---------------------------------------------------------------------- fit and transform
def _fit_column(column: _Column, rows: np.ndarray) -> _Fitted:
    if column.kind != "numeric":
        assert column.table is not None
        used = np.unique(column.table[rows].indices)
        return _Fitted(column.name, column.kind, tuple(column.levels[used].tolist()))
    assert column.numbers is not None
    numbers = column.numbers[rows]
    numbers = numbers[~np.isnan(numbers)]
    if column.buckets is not None:
        distinct = np.unique(numbers)
        if len(distinct) < 2:
            return _Fitted(column.name, "numeric", edges=np.empty(0))
        # each edge a fitted value (the quantile or the next one up); an edge at the smallest
        # value moves up to the next, so that no bucket is empty on the fitted rows
        cuts = np.quantile(numbers, np.arange(1, column.buckets) / column.buckets,
                           method="higher")
        cuts = np.where(cuts <= distinct[0], distinct[1], cuts)
        return _Fitted(column.name, "numeric", edges=np.unique(cuts))
    if not len(numbers):
        return _Fitted(column.name, "numeric")
    mean = float(numbers.mean())
    scale = float(numbers.std())
    return _Fitted(column.name, "numeric", mean=mean,
                   scale=scale if scale > 0 and math.isfinite(scale) else 1.0)


@dataclass(frozen=True)
class _Unknown:
    feature: str
    values: int
    rows: np.ndarray
    first: object


def _transform(
    column: _Column,
    fitted: _Fitted,
    present: np.ndarray,
    table_rows: np.ndarray,
    normalize: Normalize,
    shrink: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Unknown | None]:
    """The entries of one feature for the requested rows: (output row, column, weight)."""
    if column.kind == "numeric":
        assert column.numbers is not None
        numbers = column.numbers[table_rows]
        known = ~np.isnan(numbers)
        rows = present[known]
        if fitted.edges is None:
            return rows, np.zeros(len(rows), dtype=np.int64), (
                (numbers[known] - fitted.mean) / fitted.scale), None
        buckets = np.searchsorted(fitted.edges, numbers[known], side="right")
        return rows, buckets.astype(np.int64), np.ones(len(rows)), None
    assert column.table is not None
    block = column.table[table_rows]
    positions = pd.Index(list(fitted.values), dtype=object).get_indexer(
        pd.Index(column.levels, dtype=object)) if len(column.levels) else np.empty(0, np.int64)
    entry_rows = np.repeat(present, np.diff(block.indptr))
    mapped = positions[block.indices] if len(block.indices) else np.empty(0, dtype=np.int64)
    known = mapped >= 0
    unknown = None
    if not known.all():
        missed = block.indices[~known]
        unknown = _Unknown(column.name, len(np.unique(missed)), np.unique(entry_rows[~known]),
                           column.levels[missed[0]])
    rows, cols, data = entry_rows[known], mapped[known], block.data[known].astype(np.float64)
    if normalize == "group" and column.kind != "categorical" and len(data):
        sums = np.bincount(rows, minlength=int(rows.max()) + 1, weights=data)
        data = data / (sums[rows] + shrink)
    return rows, cols.astype(np.int64), data, unknown


def _unfitted(column: _Column, present: np.ndarray, table_rows: np.ndarray) -> _Unknown | None:
    """The values of a feature the vocabulary does not have at all, as unknown."""
    if column.kind == "numeric":
        assert column.numbers is not None
        numbers = column.numbers[table_rows]
        held = np.flatnonzero(~np.isnan(numbers))
        if not len(held):
            return None
        return _Unknown(column.name, len(np.unique(numbers[held])), present[held],
                        float(numbers[held[0]]))
    assert column.table is not None
    block = column.table[table_rows]
    if not block.nnz:
        return None
    entry_rows = np.repeat(present, np.diff(block.indptr))
    return _Unknown(column.name, len(np.unique(block.indices)), np.unique(entry_rows),
                    column.levels[block.indices[0]])


def _unknown_message(unknown: list[_Unknown]) -> str:
    rows = len(np.unique(np.concatenate([u.rows for u in unknown])))
    total = sum(u.values for u in unknown)
    plural = "s" if total != 1 else ""
    in_rows = f"in {rows} row{'s' if rows != 1 else ''}"
    if len(unknown) == 1:
        u = unknown[0]
        what = f"{total} unknown value{plural} of {u.feature!r} ignored {in_rows} " \
               f"(first: {u.first!r})"
    else:
        parts = ", ".join(f"{u.values} of {u.feature!r} (first: {u.first!r})" for u in unknown)
        what = f"{total} unknown values ignored {in_rows}: {parts}"
    return (f"{what}; fit saw no trained id with them, so they have no column (expected for "
            f"new ids; refit with them in the training data to learn them)")


# ---------------------------------------------------------------------- update
def _joined_ids(kept: np.ndarray, added: np.ndarray) -> IdMap:
    if kept.dtype.kind in "iu" and added.dtype.kind in "iu":
        return IdMap(np.concatenate([kept, added]).astype(np.int64), name="ids")
    if not len(kept):
        return IdMap(added, name="ids")
    if not len(added):
        return IdMap(kept, name="ids")
    both = np.concatenate([kept.astype(str).astype(object), added.astype(str).astype(object)])
    return IdMap(both, name="ids")


def _stack(
    name: str,
    kind: FeatureKind,
    mine: _Column | None,
    keep: np.ndarray,
    n_mine: int,
    theirs: _Column | None,
    n_theirs: int,
    where: str,
) -> _Column:
    """One feature over the kept rows of this table followed by the rows of the other."""
    if theirs is not None and theirs.kind == "numeric" and kind != "numeric":
        # numbers of a categorical feature (zip codes, year as a category) are its levels
        assert theirs.numbers is not None
        present = np.flatnonzero(~np.isnan(theirs.numbers))
        theirs = _set_column(name, kind, present, np.asarray(
            [_spell(number) for number in theirs.numbers[present]], dtype=object), None,
            n_theirs)
    for column in (mine, theirs):
        if column is not None and (column.kind == "numeric") != (kind == "numeric"):
            raise DataError(f"feature {name!r} is {column.kind} here but {kind} in the table "
                            f"it updates", source=where, column=name)
    if kind == "numeric":
        top = mine.numbers[keep] if mine is not None and mine.numbers is not None else (
            np.full(len(keep), np.nan))
        bottom = theirs.numbers if theirs is not None and theirs.numbers is not None else (
            np.full(n_theirs, np.nan))
        buckets = mine.buckets if mine is not None else (
            theirs.buckets if theirs is not None else None)
        return _Column(name, "numeric", np.empty(0, dtype=object), None,
                       np.concatenate([top, bottom]), buckets)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for column, selected, offset in ((mine, keep, 0), (theirs, None, len(keep))):
        if column is None or column.table is None:
            continue
        block = column.table if selected is None else column.table[selected]
        coo = block.tocoo()
        levels = column.levels
        if kind == "tags" and column.kind != "tags":
            levels = _fold(pd.Series(levels, dtype=object)).to_numpy(dtype=object)
        parts.append((coo.row.astype(np.int64) + offset, levels[coo.col], coo.data))
    rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, dtype=np.int64)
    values = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, dtype=object)
    weights = np.concatenate([p[2] for p in parts]) if parts else np.empty(0)
    return _set_column(name, kind, rows, values, weights, len(keep) + n_theirs)


# ---------------------------------------------------------------------- JSON helpers
def _bad(message: str) -> DataError:
    return DataError(message, source=_JSON_SOURCE)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _table_state(ids: IdMap, columns: Sequence[_Column]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for column in columns:
        if column.kind == "numeric":
            assert column.numbers is not None
            numbers = column.numbers
            entries.append({
                "name": column.name, "kind": "numeric", "buckets": column.buckets,
                "numbers": [None if math.isnan(x) else x for x in numbers.tolist()],
            })
            continue
        assert column.table is not None
        coo = column.table.tocoo()
        ones = bool((coo.data == 1.0).all())
        entries.append({
            "name": column.name, "kind": column.kind, "levels": column.levels.tolist(),
            "rows": coo.row.tolist(), "codes": coo.col.tolist(),
            "weights": None if ones else coo.data.tolist(),
        })
    return {"ids": ids.to_list(), "features": entries}


def _vocabulary_state(vocabulary: _Vocabulary) -> dict[str, Any]:
    features: list[dict[str, Any]] = []
    for fitted in vocabulary.features:
        entry: dict[str, Any] = {"name": fitted.name, "kind": fitted.kind}
        if fitted.kind != "numeric":
            entry["values"] = list(fitted.values)
        elif fitted.edges is not None:
            entry["edges"] = fitted.edges.tolist()
        else:
            entry["mean"], entry["scale"] = fitted.mean, fitted.scale
        features.append(entry)
    identity = None if vocabulary.identity is None else {
        "name": vocabulary.identity.name, "ids": vocabulary.identity.to_list()}
    state: dict[str, Any] = {"normalize": vocabulary.normalize, "identity": identity,
                             "features": features}
    if vocabulary.shrink:  # files of tables without it stay as they were
        state["shrink"] = vocabulary.shrink
    return state


def _field(entry: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        raise _bad(f"{where} has no {key!r}")
    return entry[key]


def _int_array(values: object, where: str, low: int, high: int) -> np.ndarray:
    if not isinstance(values, list):
        raise _bad(f"{where} must be a list of integers")
    array = np.asarray(values) if values else np.empty(0, dtype=np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise _bad(f"{where} must be a list of integers")
    if len(array) and (array.min() < low or array.max() >= high):
        raise _bad(f"{where} holds a value outside 0..{high - 1}")
    return array.astype(np.int64)


def _float_array(values: object, where: str, *, nulls: bool = False) -> np.ndarray:
    if not isinstance(values, list):
        raise _bad(f"{where} must be a list of numbers")
    if nulls:
        values = [math.nan if v is None else v for v in values]
    array = np.asarray(values) if values else np.empty(0)
    if array.ndim != 1 or array.dtype.kind not in "iuf":
        raise _bad(f"{where} must be a list of numbers")
    array = array.astype(np.float64)
    if np.isinf(array).any() or (not nulls and np.isnan(array).any()):
        raise _bad(f"{where} must hold finite numbers")
    return array


def _text_list(values: object, where: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _bad(f"{where} must be a list of strings")
    if len(set(values)) != len(values):
        raise _bad(f"{where} holds a value twice")
    return values


def _ids_from_state(values: object, where: str, name: str) -> IdMap:
    if not isinstance(values, list):
        raise _bad(f"{where} must be a list of ids")
    try:
        return IdMap.from_list(values, name=name)
    except DataError as error:
        raise _bad(f"{where}: {error}") from None


def _name_and_kind(entry: object, where: str) -> tuple[str, FeatureKind]:
    if not isinstance(entry, Mapping):
        raise _bad(f"{where} must be an object")
    name = _field(entry, "name", where)
    kind = _field(entry, "kind", where)
    if not isinstance(name, str) or not name:
        raise _bad(f"{where}: name must be a non-empty string")
    if kind not in FEATURE_KINDS:
        raise _bad(f"{where}: kind must be one of {list(FEATURE_KINDS)}, got {kind!r}")
    return name, cast(FeatureKind, kind)


def _table_from_state(table: object) -> tuple[IdMap, list[_Column]]:
    if not isinstance(table, Mapping):
        raise _bad("table must be an object or null")
    ids = _ids_from_state(_field(table, "ids", "table"), "table.ids", "ids")
    raw_features = _field(table, "features", "table")
    if not isinstance(raw_features, list):
        raise _bad("table.features must be a list")
    columns: list[_Column] = []
    for number, entry in enumerate(raw_features):
        where = f"table.features[{number}]"
        name, kind = _name_and_kind(entry, where)
        if name in {c.name for c in columns}:
            raise _bad(f"{where}: feature {name!r} appears twice")
        if kind == "numeric":
            numbers = _float_array(_field(entry, "numbers", where), f"{where}.numbers",
                                   nulls=True)
            if len(numbers) != len(ids):
                raise _bad(f"{where}.numbers must hold one number per id")
            buckets = entry.get("buckets")
            if buckets is not None:
                try:
                    buckets = _bucket_count("buckets", buckets)
                except InvalidParameterError as error:
                    raise _bad(f"{where}.{error}") from None
            columns.append(_Column(name, "numeric", np.empty(0, dtype=object), None, numbers,
                                   buckets))
            continue
        levels = _text_list(_field(entry, "levels", where), f"{where}.levels")
        rows = _int_array(_field(entry, "rows", where), f"{where}.rows", 0, len(ids))
        codes = _int_array(_field(entry, "codes", where), f"{where}.codes", 0, len(levels))
        raw_weights = entry.get("weights")
        weights = None
        if raw_weights is not None:
            weights = _float_array(raw_weights, f"{where}.weights")
            if not (weights > 0).all():
                raise _bad(f"{where}.weights must be positive")
        if len(codes) != len(rows) or (weights is not None and len(weights) != len(rows)):
            raise _bad(f"{where}: rows, codes and weights must be equally long")
        data = np.ones(len(rows)) if weights is None else weights
        matrix = sp.csr_matrix((data, (rows, codes)), shape=(len(ids), len(levels)),
                               dtype=np.float64)
        matrix.sum_duplicates()
        columns.append(_Column(name, kind, np.asarray(levels, dtype=object), matrix, None))
    return ids, columns


def _vocabulary_from_state(raw: object) -> _Vocabulary:
    if not isinstance(raw, Mapping):
        raise _bad("vocabulary must be an object or null")
    normalize = _field(raw, "normalize", "vocabulary")
    if normalize not in NORMALIZATIONS:
        raise _bad(f"vocabulary.normalize must be one of {list(NORMALIZATIONS)}, got "
                   f"{normalize!r}")
    shrink = raw.get("shrink", 0.0)
    if isinstance(shrink, bool) or not isinstance(shrink, (int, float)) or not (
            math.isfinite(shrink) and shrink >= 0):
        raise _bad(f"vocabulary.shrink must be a finite number >= 0, got {shrink!r}")
    raw_identity = _field(raw, "identity", "vocabulary")
    identity = None
    if raw_identity is not None:
        if not isinstance(raw_identity, Mapping) or not isinstance(raw_identity.get("name"),
                                                                   str):
            raise _bad("vocabulary.identity must be an object with a name and ids, or null")
        identity = _ids_from_state(_field(raw_identity, "ids", "vocabulary.identity"),
                                   "vocabulary.identity.ids", raw_identity["name"])
    raw_features = _field(raw, "features", "vocabulary")
    if not isinstance(raw_features, list):
        raise _bad("vocabulary.features must be a list")
    features: list[_Fitted] = []
    for number, entry in enumerate(raw_features):
        where = f"vocabulary.features[{number}]"
        name, kind = _name_and_kind(entry, where)
        if name in {f.name for f in features}:
            raise _bad(f"{where}: feature {name!r} appears twice")
        if kind != "numeric":
            values = _text_list(_field(entry, "values", where), f"{where}.values")
            features.append(_Fitted(name, kind, tuple(values)))
        elif "edges" in entry:
            edges = _float_array(entry["edges"], f"{where}.edges")
            if (np.diff(edges) <= 0).any():
                raise _bad(f"{where}.edges must increase")
            features.append(_Fitted(name, kind, edges=edges))
        else:
            mean, scale = _field(entry, "mean", where), _field(entry, "scale", where)
            checked = _float_array([mean, scale], f"{where}.mean and scale")
            if not checked[1] > 0:
                raise _bad(f"{where}.scale must be positive")
            features.append(_Fitted(name, kind, mean=float(checked[0]),
                                    scale=float(checked[1])))
    return _Vocabulary(tuple(features), identity, normalize, float(shrink))


# ---------------------------------------------------------------------- small helpers
def _series(option: str, values: object) -> pd.Series:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{option} must be a sequence, got {type(values).__name__}")
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    if isinstance(values, (np.ndarray, pd.Index, pd.api.extensions.ExtensionArray)):
        return pd.Series(values)
    return pd.Series(list(values), dtype=object)


def _id_map(ids: IdMap | Iterable[Any]) -> IdMap:
    if isinstance(ids, IdMap):
        return ids
    return IdMap(_id_map_array(ids), name="ids")


def _id_map_array(ids: IdMap | Iterable[Any]) -> np.ndarray:
    if isinstance(ids, IdMap):
        return ids.to_numpy()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be a sequence of ids or an IdMap, got {type(ids).__name__}")
    if isinstance(ids, (np.ndarray, pd.Index, pd.Series)):
        return _as_id_array(ids)
    return _as_id_array(list(ids))

