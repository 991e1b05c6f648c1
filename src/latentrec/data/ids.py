"""Raw ids (any str or int) to contiguous indices and back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from latentrec.errors import DataError, InvalidParameterError, UnknownIdError

__all__ = ["IdMap", "RawId"]

RawId = int | str
OnUnknown = Literal["raise", "ignore"]


def _as_id_array(ids: Any) -> np.ndarray:
    if isinstance(ids, (str, bytes, int, np.integer)):
        ids = [ids]
    array = np.asarray(ids if not isinstance(ids, pd.Series) else ids.to_numpy())
    if array.ndim != 1:
        array = array.reshape(-1)
    return array


class IdMap:
    """An ordered vocabulary of raw ids; position ``i`` holds the raw id of index ``i``.

    Integer ids stay integers and everything else is compared by its text, so ``"42"`` finds the
    integer id ``42`` (ids typed on a command line or in a URL are text).

    Examples
    --------
    >>> ids = IdMap(["alice", "bob"])
    >>> ids.index_of(["bob"]).tolist()
    [1]
    >>> ids.ids_of([0]).tolist()
    ['alice']
    """

    __slots__ = ("_index", "name")

    def __init__(self, ids: Iterable[Any], *, name: str = "ids") -> None:
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"{name} must be a sequence of ids, got {type(ids).__name__}")
        values = _as_id_array(list(ids) if not isinstance(ids, (np.ndarray, pd.Index)) else ids)
        index: pd.Index
        if values.size == 0:
            index = pd.Index([], dtype=object)
        elif values.dtype.kind in "iu":
            index = pd.Index(values.astype(np.int64))
        elif values.dtype.kind == "f":
            raise DataError(f"{name} must be integers or strings, got floating-point ids")
        else:
            index = pd.Index(values.astype(str).astype(object))
        if not index.is_unique:
            duplicated = index[index.duplicated()].unique()[:3].tolist()
            raise DataError(f"{name} must be unique; repeated: {duplicated}")
        self._index = index
        self.name = name

    @property
    def is_integer(self) -> bool:
        return self._index.dtype.kind in "iu"

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, raw_id: object) -> bool:
        return bool(self.index_of([raw_id], on_unknown="ignore")[0] >= 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    def __hash__(self) -> int:
        return hash((len(self), self.name))

    def __repr__(self) -> str:
        return f"IdMap({len(self)} {self.name})"

    def _normalise(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lookup keys for raw ids, and which of them can match an id of this map at all."""
        if not self.is_integer:
            return ids.astype(str).astype(object), np.ones(len(ids), dtype=bool)
        if ids.dtype.kind in "iu":
            return ids.astype(np.int64), np.ones(len(ids), dtype=bool)
        if ids.dtype.kind == "f":
            valid = np.isfinite(ids) & (ids == np.floor(ids)) & (np.abs(ids) < 2.0**63)
            return np.where(valid, ids, 0).astype(np.int64), valid
        # text that spells an integer finds the integer id; anything else cannot match
        text = pd.Series(ids, dtype=object).astype(str).str.strip()
        return parse_int64(text, r"([+-]?)0*(\d{1,19})(?:\.0*)?")

    def index_of(self, ids: Any, *, on_unknown: OnUnknown = "raise") -> np.ndarray:
        """Indices of raw ids; unknown ids raise :class:`UnknownIdError` or map to ``-1``."""
        if on_unknown not in ("raise", "ignore"):
            raise InvalidParameterError(
                f"on_unknown must be 'raise' or 'ignore', got {on_unknown!r}"
            )
        raw = _as_id_array(ids)
        if raw.size == 0:
            return np.empty(0, dtype=np.int64)
        keys, valid = self._normalise(raw)
        positions = np.full(len(raw), -1, dtype=np.int64)
        positions[valid] = self._index.get_indexer(pd.Index(keys[valid]))
        if on_unknown == "raise" and (positions < 0).any():
            missing = raw[positions < 0]
            raise UnknownIdError(self.name, [_python(x) for x in missing[:5]], total=len(missing))
        return positions

    def ids_of(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Raw ids at the given indices."""
        positions = np.asarray(indices, dtype=np.int64)
        outside = (positions < 0) | (positions >= len(self))
        if outside.any():
            raise IndexError(
                f"index {int(positions[outside][0])} is out of range for {len(self)} {self.name}"
            )
        return self._index.to_numpy()[positions]

    def canonical(self, ids: Sequence[Any]) -> list[Any]:
        """Each id in this map's own spelling (``"7"`` becomes ``7`` in a map of integer ids),
        as a plain Python value; ids the map does not hold are returned as given."""
        given = list(ids)
        index = self.index_of(given, on_unknown="ignore")
        spelled = self._index.to_numpy()
        return [_python(spelled[i]) if i >= 0 else raw
                for i, raw in zip(index.tolist(), given, strict=True)]

    def to_numpy(self) -> np.ndarray:
        return self._index.to_numpy()

    def to_list(self) -> list[RawId]:
        """Plain Python ids, ready for JSON."""
        return [_python(x) for x in self._index.tolist()]

    def subset(self, indices: np.ndarray) -> IdMap:
        return IdMap(self._index[np.asarray(indices)], name=self.name)

    @classmethod
    def from_list(cls, ids: list[Any], *, name: str) -> IdMap:
        if ids and all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
            return cls(np.asarray(ids, dtype=np.int64), name=name)
        if not all(isinstance(x, (int, str)) and not isinstance(x, bool) for x in ids):
            raise DataError(f"{name} must be a list of integers or strings")
        return cls(np.asarray([str(x) for x in ids], dtype=object), name=name)


_INT64_MAX = str(np.iinfo(np.int64).max)


def parse_int64(text: pd.Series, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """The integers that strings spell, and which strings spell one that fits in int64.

    ``pattern`` must match a whole string and capture its sign and its digits (without
    leading zeros).
    """
    parts = text.str.extract(f"^{pattern}$")
    digits = parts[1]
    valid = (digits.notna() & ((digits.str.len() < 19) | (digits <= _INT64_MAX))).to_numpy(bool)
    keys = np.zeros(len(text), dtype=np.int64)
    if valid.any():
        keys[valid] = (parts[0][valid] + digits[valid]).astype(np.int64).to_numpy()
    return keys, valid


def _python(value: Any) -> RawId:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.str_):
        return str(value)
    return value  # type: ignore[no-any-return]


def factorize(raw: np.ndarray, *, name: str) -> tuple[np.ndarray, IdMap]:
    """Indices and the sorted vocabulary of a column of raw ids."""
    codes, uniques = pd.factorize(raw, sort=True)  # a plain array: no conversion to arrow text
    return codes.astype(np.int64), IdMap(np.asarray(uniques), name=name)
