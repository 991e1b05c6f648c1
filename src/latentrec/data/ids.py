"""Raw ids (any str or int) to contiguous indices and back."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from latentrec.errors import DataError, InvalidParameterError, UnknownIdError

__all__ = ["CANONICAL_INT", "IdMap", "RawId", "canonical_int", "parse_canonical_int64"]

RawId = int | str
OnUnknown = Literal["raise", "ignore"]


def _as_id_array(ids: Any) -> np.ndarray:
    if isinstance(ids, (str, bytes, int, np.integer)):
        ids = [ids]
    array = np.asarray(ids if not isinstance(ids, pd.Series) else ids.to_numpy())
    if array.dtype.kind == "U" and isinstance(ids, (list, tuple)) and not all(
        isinstance(x, str) for x in ids
    ):
        array = np.asarray(ids, dtype=object)  # numpy would spell 7.0 as "7.0", True as "True"
    if array.ndim != 1:
        array = array.reshape(-1)
    return array


class IdMap:
    """An ordered vocabulary of raw ids; position ``i`` holds the raw id of index ``i``.

    Integer ids stay integers and everything else is compared by its text. Text finds an integer
    id only when it is that id's own spelling: ``"42"`` finds ``42`` (ids typed on a command line
    or in a URL are text), but ``"042"``, ``"+42"``, ``"42.0"`` and ``" 42"`` do not, since a
    data set of text ids may hold them as ids of their own.

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
        elif values.dtype.kind == "u" and values.max() > _INT64_MAX:
            index = pd.Index(values.astype(str).astype(object))  # would wrap around in int64
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
        if ids.dtype.kind == "u":
            valid = ids <= _INT64_MAX
            return np.where(valid, ids, 0).astype(np.int64), valid
        if ids.dtype.kind == "i":
            return ids.astype(np.int64), np.ones(len(ids), dtype=bool)
        if ids.dtype.kind == "f":
            return _integral_floats(ids)
        # text finds the integer id it spells canonically ("42", not "042"); anything else
        # cannot match
        if ids.dtype.kind == "O":
            text = pd.Series([_spelling(x) for x in ids.tolist()], dtype=object)
        else:
            text = pd.Series(ids.astype(str), dtype=object)
        return parse_canonical_int64(text)

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


_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_MAX_TEXT = str(_INT64_MAX)
_INT64_MIN_DIGITS = str(_INT64_MAX + 1)  # the digits of -2**63, which still fits
#: the one spelling of an integer: no sign but a minus before a non-zero number, no leading
#: zeros, no decimal point, no spaces
CANONICAL_INT = r"(-(?=[1-9])|)([1-9][0-9]{0,18}|0)"
_CANONICAL_INT_RE = re.compile(f"^{CANONICAL_INT}$")


def parse_canonical_int64(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The integers that strings spell canonically, and which strings do so within int64.

    A string spells an integer canonically when it is exactly ``str(n)`` for an int64 ``n``:
    ``"42"`` and ``"-7"`` do, ``"042"``, ``"+42"``, ``"42.0"``, ``"-0"`` and ``" 42"`` do not.
    """
    parts = text.astype(object).str.extract(f"^{CANONICAL_INT}$")
    signs, digits = parts[0], parts[1]
    fits = (digits.str.len() < 19) | (digits <= _INT64_MAX_TEXT) | (
        (signs == "-") & (digits == _INT64_MIN_DIGITS))
    valid = (digits.notna() & fits).to_numpy(dtype=bool, na_value=False)
    keys = np.zeros(len(text), dtype=np.int64)
    if valid.any():
        keys[valid] = (signs[valid] + digits[valid]).astype(np.int64).to_numpy()
    return keys, valid


def canonical_int(text: str) -> int | None:
    """The int64 that ``text`` spells canonically (``"42"``), or ``None`` (``"042"``, ``"x"``)."""
    if not isinstance(text, str) or not _CANONICAL_INT_RE.match(text):
        return None
    value = int(text)
    return value if -_INT64_MAX - 1 <= value <= _INT64_MAX else None


def _spelling(value: object) -> str:
    """How a lookup value spells an integer id: text as it is, integers and integral floats as
    ``str(n)``; anything else (booleans, NaN, None) spells nothing."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return ""


def _integral_floats(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(ids) & (ids == np.floor(ids)) & (np.abs(ids) < 2.0**63)
    return np.where(valid, ids, 0).astype(np.int64), valid


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
