"""The one container for interaction data: ``(user, item[, value][, timestamp])`` rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentrec.data.ids import IdMap, factorize, parse_canonical_int64
from latentrec.errors import DataError, InvalidParameterError

__all__ = ["DUPLICATE_POLICIES", "MAX_ABS_RATING", "MAX_WEIGHT", "Feedback", "Interactions"]

Feedback = Literal["explicit", "implicit"]
DuplicatePolicy = Literal["error", "last", "mean", "sum"]
DUPLICATE_POLICIES: tuple[str, ...] = ("error", "last", "mean", "sum")
#: explicit ratings must lie in ``[-MAX_ABS_RATING, MAX_ABS_RATING]``: larger values are data
#: errors (a stray id or timestamp in the rating column, 1e308), and would overflow training
MAX_ABS_RATING = 1e6
#: implicit weights (counts, durations) must lie in ``[0, MAX_WEIGHT]``
MAX_WEIGHT = 1e9
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class Interactions:
    """Interactions between users and items, with raw ids mapped to contiguous indices.

    ``values`` holds ratings (``feedback="explicit"``) or weights such as play counts
    (``feedback="implicit"``; ``None`` means every interaction weighs 1). Build one with
    :meth:`from_frame`, :meth:`from_arrays`, :meth:`from_sparse` or
    :func:`latentrec.read_interactions`.

    Examples
    --------
    >>> data = Interactions.from_arrays(["ann", "ann", "bob"], ["x", "y", "x"], [5.0, 3.0, 4.0])
    >>> data.n_users, data.n_items, len(data)
    (2, 2, 3)
    >>> data.to_csr().shape
    (2, 2)
    """

    user_index: np.ndarray
    item_index: np.ndarray
    values: np.ndarray | None
    users: IdMap
    items: IdMap
    feedback: Feedback = "explicit"
    timestamps: np.ndarray | None = None
    source: str | None = None
    _csr: list[sp.csr_matrix] = field(default_factory=list, repr=False, compare=False)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        user_col: str = "user",
        item_col: str = "item",
        value_col: str | None = "rating",
        timestamp_col: str | None = None,
        feedback: Feedback = "explicit",
        duplicates: DuplicatePolicy = "error",
        source: str | None = None,
        line_numbers: np.ndarray | None = None,
    ) -> Interactions:
        """Build from a DataFrame with one row per interaction.

        Parameters
        ----------
        user_col, item_col
            Raw ids: integers, or text. Text ids become integers only when every one of them is
            the canonical spelling of an int64 (``"42"``, ``"-7"``; not ``"042"``, ``"+42"``,
            ``"42.0"`` or ``" 42"``); otherwise all keep their exact spelling, so distinct
            spellings are never merged into one id.
        value_col
            Ratings (explicit) or weights (implicit). ``None`` is allowed only for implicit data.
            For explicit data a column named ``rating`` is expected unless another is named.
            Ratings must be finite and within ``±MAX_ABS_RATING`` (1e6), weights within
            ``[0, MAX_WEIGHT]`` (1e9); anything else is refused naming its row.
        duplicates
            What to do with repeated ``(user, item)`` pairs: ``"error"`` (default), keep the
            ``"last"`` row, their ``"mean"``, or their ``"sum"`` (natural for play counts).
        source, line_numbers
            Used in error messages only: the file name and each row's line in it.

        Examples
        --------
        >>> frame = pd.DataFrame({"user": [1, 2], "item": ["a", "b"], "rating": [4, 5]})
        >>> Interactions.from_frame(frame).n_items
        2
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
        _check_choice("feedback", feedback, ("explicit", "implicit"))
        _check_choice("duplicates", duplicates, DUPLICATE_POLICIES)
        where = source or "data"
        if value_col == "rating" and value_col not in frame.columns and feedback == "implicit":
            value_col = None
        needed = [c for c in (user_col, item_col, value_col, timestamp_col) if c is not None]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(
                f"missing column {missing[0]!r}; found columns {list(map(str, frame.columns))}",
                source=where,
            )
        if value_col is None and feedback == "explicit":
            raise InvalidParameterError(
                "explicit feedback needs a rating column; pass value_col or feedback='implicit'"
            )
        if len(frame) == 0:
            raise DataError("no interactions (the data is empty)", source=where)
        lines = line_numbers if line_numbers is not None else np.arange(1, len(frame) + 1)

        user_raw = _id_column(frame[user_col], where, user_col, lines)
        item_raw = _id_column(frame[item_col], where, item_col, lines)
        values = None
        if value_col is not None:
            values = _value_column(frame[value_col], where, value_col, lines, feedback)
        timestamps = None
        if timestamp_col is not None:
            timestamps = _timestamp_column(frame[timestamp_col], where, timestamp_col, lines)

        user_index, users = factorize(user_raw, name="users")
        item_index, items = factorize(item_raw, name="items")
        user_index, item_index, values, timestamps = _resolve_duplicates(
            user_index, item_index, values, timestamps, len(items),
            policy=duplicates, where=where, lines=lines, users=users, items=items,
        )
        return cls(
            user_index=user_index,
            item_index=item_index,
            values=values,
            users=users,
            items=items,
            feedback=feedback,
            timestamps=timestamps,
            source=source,
        )

    @classmethod
    def from_arrays(
        cls,
        users: Sequence[Any] | np.ndarray,
        items: Sequence[Any] | np.ndarray,
        values: Sequence[float] | np.ndarray | None = None,
        *,
        timestamps: Sequence[Any] | np.ndarray | None = None,
        feedback: Feedback | None = None,
        duplicates: DuplicatePolicy = "error",
    ) -> Interactions:
        """Build from parallel arrays of raw user ids, raw item ids and optional values.

        Without ``values`` the data is implicit; with them it is explicit unless
        ``feedback="implicit"`` says the values are weights.
        """
        given = {"users": users, "items": items, "values": values, "timestamps": timestamps}
        arrays: dict[str, np.ndarray] = {}
        for name, array in given.items():
            if array is None:
                continue
            if isinstance(array, (str, bytes)) or np.ndim(array) != 1:
                raise TypeError(
                    f"{name} must be a one-dimensional sequence, got {type(array).__name__}"
                )
            arrays[name] = np.asarray(array)
        lengths = {name: len(array) for name, array in arrays.items()}
        if len(set(lengths.values())) != 1:
            shown = ", ".join(f"{n} {name}" for name, n in lengths.items())
            raise DataError(f"the arrays must have the same length, got {shown}")
        columns = {"user": arrays["users"], "item": arrays["items"]}
        if "values" in arrays:
            columns["rating"] = arrays["values"]
        if "timestamps" in arrays:
            columns["timestamp"] = arrays["timestamps"]
        if feedback is None:
            feedback = "explicit" if values is not None else "implicit"
        return cls.from_frame(
            pd.DataFrame(columns),
            value_col="rating" if values is not None else None,
            timestamp_col="timestamp" if timestamps is not None else None,
            feedback=feedback,
            duplicates=duplicates,
            source="arrays",
        )

    @classmethod
    def from_sparse(
        cls,
        matrix: sp.spmatrix | sp.sparray,
        *,
        users: Sequence[Any] | None = None,
        items: Sequence[Any] | None = None,
        feedback: Feedback = "implicit",
    ) -> Interactions:
        """Build from a users x items sparse matrix; stored entries are the interactions.

        ``users``/``items`` name the rows and columns (default: ``0..n-1``).
        """
        if not sp.issparse(matrix):
            raise TypeError(f"matrix must be a scipy sparse matrix, got {type(matrix).__name__}")
        _check_choice("feedback", feedback, ("explicit", "implicit"))
        coo = sp.coo_matrix(matrix)  # type: ignore[call-overload]
        coo.sum_duplicates()
        n_users, n_items = coo.shape
        user_ids = IdMap(users if users is not None else np.arange(n_users), name="users")
        item_ids = IdMap(items if items is not None else np.arange(n_items), name="items")
        if len(user_ids) != n_users or len(item_ids) != n_items:
            raise DataError(
                f"matrix is {n_users} x {n_items} but got {len(user_ids)} user ids "
                f"and {len(item_ids)} item ids"
            )
        if coo.nnz == 0:
            raise DataError("no interactions (the matrix has no stored entries)", source="matrix")
        stored = np.asarray(coo.data, dtype=np.float64)
        if not np.isfinite(stored).all():
            raise DataError("matrix holds NaN or infinite values", source="matrix")
        if feedback == "implicit" and (stored < 0).any():
            raise DataError("implicit weights must be >= 0; the matrix holds negative values",
                            source="matrix")
        out_of_range = np.abs(stored) > _limit(feedback)
        if out_of_range.any():
            value = float(stored[out_of_range][0])
            raise DataError(f"matrix holds {value:.7g}, out of range; {_range_text(feedback)}",
                            source="matrix")
        values = stored.astype(np.float32)
        return cls(
            user_index=coo.row.astype(np.int64),
            item_index=coo.col.astype(np.int64),
            values=values,
            users=user_ids,
            items=item_ids,
            feedback=feedback,
            source="matrix",
        )

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.user_index)

    def __repr__(self) -> str:
        return (
            f"Interactions({len(self)} {self.feedback} interactions, {self.n_users} users, "
            f"{self.n_items} items{', from ' + self.source if self.source else ''})"
        )

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def is_explicit(self) -> bool:
        return self.feedback == "explicit"

    def weights(self) -> np.ndarray:
        """Values as float32, with ones where the data carries none."""
        if self.values is None:
            return np.ones(len(self), dtype=np.float32)
        return self.values

    def to_csr(self) -> sp.csr_matrix:
        """Users x items sparse matrix of the values (ones when there are none). Cached."""
        if not self._csr:
            matrix = sp.csr_matrix(
                (self.weights(), (self.user_index, self.item_index)),
                shape=(self.n_users, self.n_items),
                dtype=np.float32,
            )
            matrix.sort_indices()
            self._csr.append(matrix)
        return self._csr[0]

    def to_frame(self) -> pd.DataFrame:
        """One row per interaction with raw ids: ``user, item[, rating|weight][, timestamp]``."""
        columns: dict[str, Any] = {
            "user": self.users.ids_of(self.user_index),
            "item": self.items.ids_of(self.item_index),
        }
        if self.values is not None:
            columns["rating" if self.is_explicit else "weight"] = self.values
        if self.timestamps is not None:
            columns["timestamp"] = self.timestamps
        return pd.DataFrame(columns)

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.user_index, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.item_index, minlength=self.n_items)

    def rating_range(self) -> tuple[float, float] | None:
        if self.values is None or not self.is_explicit:
            return None
        return float(self.values.min()), float(self.values.max())

    def take(self, rows: np.ndarray, *, compact: bool = True) -> Interactions:
        """The interactions at ``rows`` (a boolean mask or positions).

        With ``compact=True`` users and items that no longer occur are dropped from the id maps.
        """
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        user_index = self.user_index[rows]
        item_index = self.item_index[rows]
        users, items = self.users, self.items
        if compact:
            kept_users, user_index = np.unique(user_index, return_inverse=True)
            kept_items, item_index = np.unique(item_index, return_inverse=True)
            users, items = self.users.subset(kept_users), self.items.subset(kept_items)
        return Interactions(
            user_index=user_index.astype(np.int64),
            item_index=item_index.astype(np.int64),
            values=None if self.values is None else self.values[rows],
            users=users,
            items=items,
            feedback=self.feedback,
            timestamps=None if self.timestamps is None else self.timestamps[rows],
            source=self.source,
        )

    def as_implicit(self, *, min_value: float | None = None) -> Interactions:
        """The same interactions as implicit feedback, optionally keeping ``value >= min_value``."""
        data = self
        if min_value is not None:
            data = self.take(self.weights() >= min_value)
        return Interactions(
            user_index=data.user_index, item_index=data.item_index, values=data.values,
            users=data.users, items=data.items, feedback="implicit",
            timestamps=data.timestamps, source=data.source,
        )


# ---------------------------------------------------------------------- validation helpers
def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InvalidParameterError(f"{name} must be one of {list(choices)}, got {value!r}")


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _id_column(series: pd.Series, where: str, column: str, lines: np.ndarray) -> np.ndarray:
    """Raw ids as int64 or as text: text only becomes integers when every distinct value is the
    canonical spelling of an int64, so distinct spellings ("01", "1") stay distinct ids."""
    missing = series.isna().to_numpy()
    if missing.any():
        row = _first_bad(missing)
        raise DataError("id is missing", source=where, line=int(lines[row]), column=column)
    kind = series.dtype.kind
    if kind == "f":
        values = series.to_numpy(dtype=np.float64)
        fractional = ~np.isfinite(values) | (values != np.floor(values))
        if fractional.any():
            row = _first_bad(fractional)
            raise DataError(
                f"id {float(values[row])!r} is not an integer or a string",
                source=where, line=int(lines[row]), column=column,
            )
        inexact = np.abs(values) > 2.0**53  # floats this large no longer tell integers apart
        if inexact.any():
            row = _first_bad(inexact)
            raise DataError(
                f"id {float(values[row])!r} is too large to be stored exactly as a "
                f"floating-point number; store ids as integers or text",
                source=where, line=int(lines[row]), column=column,
            )
        return values.astype(np.int64)
    if kind in "ib" or (kind == "u" and (len(series) == 0 or series.max() <= _INT64_MAX)):
        return series.to_numpy().astype(np.int64)
    # work on the distinct values only: a column of millions of ids has far fewer of them
    try:
        codes, uniques = pd.factorize(series)
    except TypeError:  # unhashable values: lists (Parquet list columns), dicts, arrays
        raise _not_scalar(series, where, column, lines, "a single id") from None
    distinct = pd.Series(uniques, dtype=object)
    if series.dtype == object and distinct.map(_is_nested).to_numpy(dtype=bool).any():
        raise _not_scalar(series, where, column, lines, "a single id")  # tuples are hashable
    text_codes, texts = pd.factorize(distinct.astype(str))  # 1 and "1" are one id
    codes = text_codes[codes]
    text = pd.Series(texts, dtype=object)
    empty = (text.str.strip() == "").to_numpy(dtype=bool)
    if empty.any():
        row = _first_bad(codes == _first_bad(empty))
        raise DataError("id is empty", source=where, line=int(lines[row]), column=column)
    numbers, spelled = parse_canonical_int64(text)
    if spelled.all():
        return numbers[codes]
    return text.to_numpy(dtype=object)[codes]


def _is_nested(value: object) -> bool:
    return isinstance(value, (list, tuple, dict, set, frozenset, np.ndarray, pd.Series))


def _not_scalar(
    series: pd.Series, where: str, column: str, lines: np.ndarray, expected: str
) -> DataError:
    """The error for a column holding lists or other containers, naming the first such row."""
    for row, value in enumerate(series.array):
        if _is_nested(value):
            shown = value.tolist() if isinstance(value, (np.ndarray, pd.Series)) else value
            text = repr(shown).replace("\n", " ")
            text = text if len(text) <= 40 else text[:37] + "..."
            kind = "a list" if isinstance(shown, (list, tuple)) else f"a {type(value).__name__}"
            return DataError(
                f"holds {kind} ({text}) where {expected} was expected; a column of lists "
                f"must be exploded to one row per value first",
                source=where, line=int(lines[row]), column=column,
            )
    return DataError(f"holds values that are not {expected} each", source=where, column=column)


def _number_column(series: pd.Series, where: str, column: str, lines: np.ndarray) -> np.ndarray:
    """Finite numbers as float64; a missing, infinite or non-numeric value names its row."""
    if series.dtype.kind in "iufb":
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            parsed = pd.to_numeric(series, errors="coerce")
        except (TypeError, ValueError):  # lists and other containers
            raise _not_scalar(series, where, column, lines, "a number") from None
        numbers = np.asarray(parsed, dtype=np.float64)
        not_numeric = np.isnan(numbers) & series.notna().to_numpy()
        if not_numeric.any():
            row = _first_bad(not_numeric)
            value = series.iloc[row]
            if _is_nested(value):
                raise _not_scalar(series, where, column, lines, "a number")
            raise DataError(
                f"{value!r} is not a number",
                source=where, line=int(lines[row]), column=column,
            )
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = _first_bad(bad)
        number = float(numbers[row])
        shown = "missing" if np.isnan(number) else f"{number}, not a finite number"
        raise DataError(f"value is {shown}", source=where, line=int(lines[row]), column=column)
    return numbers


def _limit(feedback: str) -> float:
    return MAX_ABS_RATING if feedback == "explicit" else MAX_WEIGHT


def _range_text(feedback: str) -> str:
    if feedback == "explicit":
        return f"explicit ratings must lie within ±{MAX_ABS_RATING:,.0f}"
    return f"implicit weights must lie within 0..{MAX_WEIGHT:,.0f}"


def _value_column(
    series: pd.Series, where: str, column: str, lines: np.ndarray, feedback: str
) -> np.ndarray:
    """Ratings or weights as float32, each finite and within the range its kind allows."""
    numbers = _number_column(series, where, column, lines)
    if feedback == "implicit" and (numbers < 0).any():
        bad = _first_bad(numbers < 0)
        raise DataError(
            f"weight {float(numbers[bad])!r} is negative; implicit weights must be >= 0",
            source=where, line=int(lines[bad]), column=column,
        )
    out_of_range = np.abs(numbers) > _limit(feedback)
    if out_of_range.any():
        bad = _first_bad(out_of_range)
        raise DataError(
            f"value {float(numbers[bad]):.7g} is out of range; {_range_text(feedback)}",
            source=where, line=int(lines[bad]), column=column,
        )
    return numbers.astype(np.float32)


def _timestamp_column(series: pd.Series, where: str, column: str, lines: np.ndarray) -> np.ndarray:
    """Seconds since the epoch from numbers, datetimes or ISO 8601 text."""
    if series.dtype.kind in "iu":
        return _whole_timestamps(series, where, column, lines)
    if series.dtype.kind not in "fM":
        try:
            parsed = pd.to_numeric(series, errors="coerce")
        except (TypeError, ValueError):  # lists and other containers
            raise _not_scalar(series, where, column, lines, "a timestamp") from None
        given = series.notna().to_numpy()
        if parsed.notna().any() or not given.any():
            # numbers, so every given value must be one
            bad = parsed.isna().to_numpy() & given
            if bad.any():
                row = _first_bad(bad)
                if _is_nested(series.iloc[row]):
                    raise _not_scalar(series, where, column, lines, "a timestamp")
                raise DataError(
                    f"{series.iloc[row]!r} is not a timestamp (seconds or an ISO date)",
                    source=where, line=int(lines[row]), column=column,
                )
            series = parsed
        else:
            try:
                dates = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
            except (TypeError, ValueError):
                raise _not_scalar(series, where, column, lines, "a timestamp") from None
            bad = dates.isna().to_numpy() & given
            if bad.any():
                row = _first_bad(bad)
                if _is_nested(series.iloc[row]):
                    raise _not_scalar(series, where, column, lines, "a timestamp")
                raise DataError(
                    f"{series.iloc[row]!r} is not a timestamp (seconds or an ISO date)",
                    source=where, line=int(lines[row]), column=column,
                )
            series = dates
    if series.dtype.kind == "M":
        missing = series.isna().to_numpy()
        if missing.any():
            raise DataError("value is missing", source=where,
                            line=int(lines[_first_bad(missing)]), column=column)
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.to_numpy().astype("datetime64[s]").astype(np.int64)
    if series.dtype.kind in "iu":  # text that spelled whole numbers: exact, whatever the size
        return _whole_timestamps(series, where, column, lines)
    numbers = _number_column(series, where, column, lines)  # raises on missing or infinite
    out_of_range = np.abs(numbers) >= 2.0**63
    if out_of_range.any():
        row = _first_bad(out_of_range)
        raise DataError(f"value {float(numbers[row]):.7g} is out of range for a timestamp",
                        source=where, line=int(lines[row]), column=column)
    return numbers.astype(np.int64)


def _whole_timestamps(
    series: pd.Series, where: str, column: str, lines: np.ndarray
) -> np.ndarray:
    values = series.to_numpy()
    if values.dtype.kind == "u":
        too_large = values > _INT64_MAX
        if too_large.any():
            row = _first_bad(too_large)
            raise DataError(f"value {int(values[row])} is out of range for a timestamp",
                            source=where, line=int(lines[row]), column=column)
    return values.astype(np.int64)


def _resolve_duplicates(
    user_index: np.ndarray,
    item_index: np.ndarray,
    values: np.ndarray | None,
    timestamps: np.ndarray | None,
    n_items: int,
    *,
    policy: str,
    where: str,
    lines: np.ndarray,
    users: IdMap,
    items: IdMap,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    keys = user_index * n_items + item_index
    sorted_keys = np.sort(keys)  # far faster than the stable argsort needed only for repeats
    if not (sorted_keys[1:] == sorted_keys[:-1]).any():
        return user_index, item_index, values, timestamps
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeated = sorted_keys[1:] == sorted_keys[:-1]
    if policy == "error":
        first_repeat = int(np.flatnonzero(repeated)[0]) + 1
        row = int(order[first_repeat])
        earlier = int(order[first_repeat - 1])
        user = users.ids_of([user_index[row]]).tolist()[0]  # plain Python ids read well
        item = items.ids_of([item_index[row]]).tolist()[0]
        raise DataError(
            f"duplicate (user, item) pair ({user!r}, {item!r}), first seen on line "
            f"{int(lines[earlier])}; pass duplicates='last', 'mean' or 'sum' (--duplicates) "
            f"to combine repeats",
            source=where, line=int(lines[row]),
        )
    # group boundaries in key order; rows keep their original order inside a group
    starts = np.flatnonzero(np.concatenate(([True], ~repeated)))
    ends = np.append(starts[1:], len(order))
    last_rows = order[ends - 1]
    first_rows = order[starts]
    keep_rows = np.sort(last_rows if policy == "last" else first_rows)
    if values is not None and policy in ("mean", "sum"):
        sums = np.add.reduceat(values[order].astype(np.float64), starts)
        combined = sums / (ends - starts) if policy == "mean" else sums
        by_row = np.empty(len(keys), dtype=np.float64)
        by_row[first_rows] = combined
        new_values: np.ndarray | None = by_row[keep_rows].astype(np.float32)
    else:
        new_values = None if values is None else values[keep_rows]
    if timestamps is not None and policy == "last":
        timestamps = timestamps[keep_rows]  # the kept row keeps its own time
    elif timestamps is not None:
        # a combined row happened when its latest part did
        latest = np.maximum.reduceat(timestamps[order], starts)
        by_row_ts = np.empty(len(keys), dtype=np.int64)
        by_row_ts[first_rows] = latest
        timestamps = by_row_ts[keep_rows]
    if values is None and policy == "sum":
        counts = (ends - starts).astype(np.float32)
        by_row_count = np.empty(len(keys), dtype=np.float32)
        by_row_count[first_rows] = counts
        new_values = by_row_count[keep_rows]
    return user_index[keep_rows], item_index[keep_rows], new_values, timestamps
