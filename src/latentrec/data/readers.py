"""Reading interaction files: CSV/TSV (any separator), Parquet and the MovieLens formats."""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latentrec.data.interactions import (
    DUPLICATE_POLICIES,
    DuplicatePolicy,
    Feedback,
    Interactions,
    _check_choice,
)
from latentrec.errors import DataError, DataWarning, InvalidParameterError

__all__ = ["FORMATS", "FileFormat", "detect_format", "read_interactions"]

FORMATS = ("auto", "csv", "tsv", "parquet", "ml-100k", "ml-1m", "ml-latest")

USER_NAMES = ("user", "user_id", "userid", "uid", "users", "customer_id", "visitor_id")
ITEM_NAMES = ("item", "item_id", "itemid", "iid", "movie_id", "movieid", "artist_id", "artistid",
              "product_id", "track_id", "song_id", "items")
VALUE_NAMES = ("rating", "ratings", "score", "weight", "value", "count", "plays", "playcount",
               "play_count", "clicks", "quantity")
TIME_NAMES = ("timestamp", "time", "ts", "date", "datetime", "unix_timestamp")


@dataclass(frozen=True)
class FileFormat:
    """How a text file is laid out: separator, header and which column holds what."""

    name: str
    sep: str | None = None
    header: bool = False
    user_col: str | int = 0
    item_col: str | int = 1
    value_col: str | int | None = 2
    timestamp_col: str | int | None = None


_MOVIELENS = {
    "ml-100k": FileFormat("ml-100k", sep="\t", header=False, timestamp_col=3),
    "ml-1m": FileFormat("ml-1m", sep="::", header=False, timestamp_col=3),
    "ml-latest": FileFormat("ml-latest", sep=",", header=True, user_col="userId",
                            item_col="movieId", value_col="rating", timestamp_col="timestamp"),
}


# utf-8-sig drops a leading byte-order mark, which would otherwise stick to the first column name
_ENCODING = "utf-8-sig"


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=_ENCODING, errors="replace")
    return open(path, encoding=_ENCODING, errors="replace", newline="")


def _first_lines(path: Path, count: int = 20) -> list[str]:
    lines: list[str] = []
    try:
        with _open_text(path) as handle:
            for line in handle:
                if line.strip():
                    lines.append(line.rstrip("\r\n"))
                if len(lines) >= count:
                    break
    except (gzip.BadGzipFile, EOFError) as error:
        if not lines:
            raise _gzip_error(path, error) from None
    return lines


def _gzip_error(path: Path, error: Exception) -> DataError:
    return DataError(f"not a readable gzip file ({_first_line(error)})", source=str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_SEPARATORS = ("\t", ",", ";", "|")


def _agreement(widths: list[int]) -> tuple[int, int]:
    """The most common field count (preferring more fields) and how many lines have it."""
    mode = max(set(widths), key=lambda width: (widths.count(width), width))
    return widths.count(mode), mode


def _sniff_separator(lines: list[str], where: str) -> str:
    if all("::" in line for line in lines):
        return "::"
    # the separator that splits most lines into the same number (>= 2) of fields; a malformed
    # line in the sample must not hide the separator (the read then names that line)
    best: tuple[int, int, int] | None = None
    chosen = None
    for rank, sep in enumerate(_SEPARATORS):
        agree, width = _agreement([len(_split(line, sep)) for line in lines])
        score = (agree, width, -rank)
        if width >= 2 and 2 * agree > len(lines) and (best is None or score > best):
            best, chosen = score, sep
    if chosen is not None:
        return chosen
    agree, width = _agreement([len(line.split()) for line in lines])
    if width >= 2 and 2 * agree > len(lines):
        return r"\s+"
    raise DataError(
        "cannot tell the column separator; pass sep (e.g. sep=',' or --sep ',')", source=where
    )


def _split(line: str, sep: str) -> list[str]:
    if sep == r"\s+":
        return line.split()
    if sep == "::":
        return line.split("::")
    return next(csv.reader([line], delimiter=sep))


def _pick(names: list[str], aliases: tuple[str, ...]) -> str | None:
    normalised = {re.sub(r"[^a-z0-9_]", "", n.lower()): n for n in names}
    for alias in aliases:
        if alias in normalised:
            return normalised[alias]
    return None


def detect_format(path: str | os.PathLike[str], *, sep: str | None = None) -> FileFormat:
    """Guess the layout of an interaction file from its name and first lines."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        return FileFormat("parquet", header=True)
    if name == "u.data" or re.fullmatch(r"u[1-5ab]\.(base|test)", name):
        return _MOVIELENS["ml-100k"]
    if name == "ratings.dat" and "::" in "".join(_first_lines(path, 1)):
        return _MOVIELENS["ml-1m"]
    return _text_layout(path, sep)


def _text_layout(path: Path, sep: str | None) -> FileFormat:
    """Separator, header and columns of a delimited text file, from its first lines."""
    lines = _first_lines(path)
    if not lines:
        raise DataError("no interactions (the file is empty)", source=str(path))
    if sep is None:
        sep = _sniff_separator(lines, str(path))
    first = [field.strip() for field in _split(lines[0], sep)]
    later = [_split(line, sep) for line in lines[1:]]
    width = len(first)
    if width < 2:
        raise DataError("needs at least two columns (user, item)", source=str(path), line=1)
    if _looks_like_header(first, later):
        return _layout_from_names("csv", sep, first)
    return FileFormat("csv", sep=sep, header=False, value_col=2 if width > 2 else None,
                      timestamp_col=3 if width > 3 else None)


def _looks_like_header(first: list[str], later: list[list[str]]) -> bool:
    """A first line without numbers that names a known column or sits above numeric columns."""
    if any(_is_number(field) for field in first):
        return False
    if any(_pick(first, names) is not None for names in (USER_NAMES, ITEM_NAMES, VALUE_NAMES,
                                                         TIME_NAMES)):
        return True
    if not later:
        return len(first) > 2  # a lone line of three or more words names columns
    return any(
        sum(len(row) > column and _is_number(row[column]) for row in later) * 2 > len(later)
        for column in range(len(first))
    )


def _layout_from_names(name: str, sep: str | None, names: list[str]) -> FileFormat:
    """Columns found by their names; unnamed roles take the free columns left to right."""
    user = _pick(names, USER_NAMES)
    item = _pick(names, ITEM_NAMES)
    value = _pick(names, VALUE_NAMES)
    stamp = _pick(names, TIME_NAMES)
    free = [n for n in names if n not in (user, item, value, stamp)]
    if user is None and free:
        user = free.pop(0)
    if item is None and free:
        item = free.pop(0)
    if value is None and free and len(names) > 2:
        value = free.pop(0)
    return FileFormat(name, sep=sep, header=True, user_col=user if user is not None else 0,
                      item_col=item if item is not None else 1, value_col=value,
                      timestamp_col=stamp)


def read_interactions(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    sep: str | None = None,
    header: bool | None = None,
    user_col: str | int | None = None,
    item_col: str | int | None = None,
    value_col: str | int | None = None,
    timestamp_col: str | int | None = None,
    feedback: Feedback = "explicit",
    duplicates: DuplicatePolicy = "error",
) -> Interactions:
    """Read interactions from a file.

    Parameters
    ----------
    format
        ``"auto"`` (default) detects it: Parquet by extension; MovieLens ``u.data``/``uN.base``
        (tab), ``ratings.dat`` (``::``) and ``ratings.csv`` (header ``userId,movieId,...``) by
        name and content; otherwise a delimited text file whose separator and header are sniffed.
        Also ``"csv"``, ``"tsv"``, ``"parquet"``, ``"ml-100k"``, ``"ml-1m"``, ``"ml-latest"``.
    sep, header
        Override the sniffed separator and header presence.
    user_col, item_col, value_col, timestamp_col
        Column names (with a header) or 0-based positions; by default the columns are found by
        name (``user``/``userId``/..., ``item``/``movieId``/..., ``rating``/``weight``/...) or
        taken as ``user, item[, value][, timestamp]``.
    feedback
        ``"explicit"`` for ratings, ``"implicit"`` for counts/weights or bare pairs.
    duplicates
        Policy for repeated ``(user, item)`` pairs; see :meth:`Interactions.from_frame`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ratings.csv"
    >>> _ = path.write_text("user,item,rating\\nann,x,5\\nbob,x,3\\n")
    >>> read_interactions(path).n_users
    2
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    where = str(path)
    if format not in FORMATS:
        raise InvalidParameterError(f"format must be one of {list(FORMATS)}, got {format!r}")
    _check_choice("feedback", feedback, ("explicit", "implicit"))
    _check_choice("duplicates", duplicates, DUPLICATE_POLICIES)
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise InvalidParameterError(f"sep must be a non-empty string, got {sep!r}")
    if not path.exists():
        raise FileNotFoundError(f"{where}: no such file")
    if path.is_dir():
        raise DataError("is a directory, expected a file of interactions", source=where)
    if format == "auto":
        layout = detect_format(path, sep=sep)
    elif format in _MOVIELENS:
        layout = _MOVIELENS[format]
    elif format == "parquet":
        layout = FileFormat("parquet", header=True)
    else:
        layout = _text_layout(path, sep or ("\t" if format == "tsv" else ","))
    if layout.name == "parquet":
        frame, lines = _read_parquet(path)
        layout = _layout_from_names("parquet", None, list(frame.columns))
    else:
        if sep is not None:
            layout = replace(layout, sep=sep)
        if header is not None and header != layout.header:
            layout = _with_header(path, layout, header)
    layout = FileFormat(
        layout.name, layout.sep, layout.header,
        user_col=layout.user_col if user_col is None else user_col,
        item_col=layout.item_col if item_col is None else item_col,
        value_col=layout.value_col if value_col is None else value_col,
        timestamp_col=layout.timestamp_col if timestamp_col is None else timestamp_col,
    )
    if layout.name != "parquet":
        frame, lines = _read_text(path, layout)
        resolved = _resolve_columns(list(frame.columns), layout, where)
        if _needs_text_read(frame, resolved):
            # ids such as "1.5" or flags such as "True": re-read as text so they keep their
            # spelling (ids) or are reported as the malformed values they are
            frame, lines = _read_text(path, layout, as_text=True)
    return _frame_to_interactions(path, frame, lines, layout, where, feedback, duplicates)


def _with_header(path: Path, layout: FileFormat, header: bool) -> FileFormat:
    first = _split(_first_lines(path, 1)[0], layout.sep or ",")
    if not header:
        width = len(first)
        return FileFormat(layout.name, layout.sep, False, 0, 1, 2 if width > 2 else None,
                          3 if width > 3 else None)
    return _layout_from_names(layout.name, layout.sep, [name.strip() for name in first])


def _read_parquet(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises many types for a bad file
        raise DataError(f"not a readable Parquet file ({_first_line(error)})",
                        source=str(path)) from None
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise DataError("no interactions (the file has no rows)", source=str(path))
    return frame, np.arange(1, len(frame) + 1)


def _read_text(
    path: Path, layout: FileFormat, *, as_text: bool | list[Any] = False
) -> tuple[pd.DataFrame, np.ndarray]:
    """The file as a frame and each row's line number. Numbers are parsed natively, except in
    the columns ``as_text`` lists (all of them if ``True``), which keep the file's strings."""
    where = str(path)
    sep = layout.sep or ","
    options: dict[str, Any] = {
        "sep": sep,
        "header": 0 if layout.header else None,
        "skip_blank_lines": False,  # keeps row positions equal to line numbers
        "keep_default_na": False,
        "na_values": [""],
        "skipinitialspace": True,
    }
    if as_text is True or (as_text and sep == "::"):
        options["dtype"] = str
    elif as_text:
        options["dtype"] = dict.fromkeys(as_text, str)
    if sep in ("::", r"\s+"):
        options["engine"] = "python" if sep == "::" else "c"
        options.pop("skipinitialspace")
    options.update(encoding=_ENCODING, encoding_errors="replace")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.DtypeWarning)
            frame = _read_double_colon(path, options) if sep == "::" else None
            if frame is None:
                frame = pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise DataError("no interactions (the file is empty)", source=where) from None
    except (gzip.BadGzipFile, EOFError) as error:
        raise _gzip_error(path, error) from None
    except pd.errors.ParserError as error:
        message, line = _parser_message(str(error))
        raise DataError(message, source=where, line=line) from None
    if any(issubclass(w.category, pd.errors.DtypeWarning) for w in caught):
        # chunks disagreed on a column's type: read the columns they mixed up as text
        mixed = [column for column in frame.columns if frame[column].dtype == object]
        return _read_text(path, layout, as_text=mixed or True)
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=3)
    first_line = 2 if layout.header else 1
    lines = np.arange(first_line, first_line + len(frame))
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame, lines = frame.loc[~blank], lines[~blank]
    if layout.header:
        frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        what = "has only a header" if layout.header else "is empty"
        raise DataError(f"no interactions (the file {what})", source=where)
    return frame, lines


def _read_double_colon(path: Path, options: dict[str, Any]) -> pd.DataFrame | None:
    """A '::' file through pandas' fast C parser, split on ':' keeping every other column;
    ``None`` when a field holds a ':' of its own (the slow python parser then reads it)."""
    fast = {**options, "sep": ":", "engine": "c", "quoting": csv.QUOTE_NONE}
    try:
        frame = pd.read_csv(path, **fast)
    except pd.errors.ParserError:
        return None
    gaps = frame.iloc[:, 1::2]
    if frame.shape[1] % 2 == 0 or gaps.notna().to_numpy().any():
        return None
    frame = pd.DataFrame(frame.iloc[:, 0::2])
    if options["header"] is None:
        frame.columns = pd.RangeIndex(frame.shape[1])
    return frame


def _needs_text_read(frame: pd.DataFrame, resolved: dict[str, str | None]) -> bool:
    for role, column in resolved.items():
        if column is None:
            continue
        kind = frame[column].dtype.kind
        if kind == "b":
            return True
        if role in ("user", "item") and kind == "f":
            values = frame[column].to_numpy()
            if not (np.isfinite(values) & (values == np.floor(values))).all():
                return True
    return False


def _parser_message(message: str) -> tuple[str, int | None]:
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if match:
        expected, line, saw = match.groups()
        return f"the line has {saw} fields, expected {expected}", int(line)
    match = re.search(r"EOF inside string starting at row (\d+)", message)
    if match:  # the row counts lines from 0
        return "a quoted field is never closed", int(match.group(1)) + 1
    return _first_line(message), None


def _first_line(error: object) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _resolve_columns(names: list[str], layout: FileFormat, where: str) -> dict[str, str | None]:
    """The frame column holding each role, from a column name or a 0-based position."""
    roles = {
        "user": layout.user_col, "item": layout.item_col,
        "value": layout.value_col, "timestamp": layout.timestamp_col,
    }
    resolved: dict[str, str | None] = {}
    for role, column in roles.items():
        if column is None:
            resolved[role] = None
        elif isinstance(column, int):
            if not 0 <= column < len(names):
                raise DataError(
                    f"has {len(names)} columns, so there is no column {column} for the {role}",
                    source=where,
                )
            resolved[role] = names[column]
        elif column in names:
            resolved[role] = column
        else:
            raise DataError(f"missing column {column!r}; found columns {names}", source=where)
    return resolved


def _field_count(path: Path, line: int, sep: str) -> int:
    """How many fields the given 1-based line of the file has (only used to explain an error)."""
    with _open_text(path) as handle:
        for number, text in enumerate(handle, start=1):
            if number == line:
                return len(_split(text.rstrip("\r\n"), sep))
    return 0


def _check_short_rows(
    path: Path, frame: pd.DataFrame, lines: np.ndarray, used: list[str], layout: FileFormat
) -> None:
    """Name the first line that lacks fields (pandas fills them with NaN without a word)."""
    holes = frame[used].isna().any(axis=1).to_numpy()
    if not holes.any():
        return
    row = int(np.flatnonzero(holes)[0])
    expected = frame.shape[1]
    found = _field_count(path, int(lines[row]), layout.sep or ",")
    if found < expected:
        missing = next(column for column in used if pd.isna(frame[column].iloc[row]))
        raise DataError(
            f"the line has {found} fields, expected {expected}",
            source=str(path), line=int(lines[row]), column=str(missing),
        )


#: column names that say "how much or how often", not "how much liked"
_COUNT_WORDS = ("count", "plays", "play_count", "playcount", "clicks", "views", "weight",
                "listens", "visits", "checkins", "purchases", "quantity")
#: explicit ratings above this many distinct levels with a large maximum look like counts
_COUNT_LEVELS = 20


def _warn_if_counts(column: pd.Series, name: str, where: str) -> None:
    """Warn when a column read as ratings looks like weights or counts (by name, or by being
    whole numbers with many levels and a heavy tail)."""
    named = name.strip().lower() in _COUNT_WORDS
    values = pd.to_numeric(column, errors="coerce").dropna()
    counting = False
    if len(values):
        whole = bool((values == values.round()).all())
        counting = (whole and values.min() >= 0 and values.nunique() > _COUNT_LEVELS
                    and values.max() > 100)
    if named or counting:
        why = "is named like a count" if named else (
            f"holds whole numbers up to {values.max():,.0f} with {values.nunique():,} levels")
        warnings.warn(f"{where}: column {name!r} {why} but is read as ratings; pass "
                      f"feedback='implicit' (--implicit) if it holds weights or counts",
                      DataWarning, stacklevel=4)


def _frame_to_interactions(
    path: Path,
    frame: pd.DataFrame,
    lines: np.ndarray,
    layout: FileFormat,
    where: str,
    feedback: Feedback,
    duplicates: DuplicatePolicy,
) -> Interactions:
    names = list(frame.columns)
    resolved = _resolve_columns(names, layout, where)
    if not layout.header:
        used = {resolved[r] for r in ("user", "item", "value", "timestamp")}
        width_needed = max(int(c) for c in used if c is not None) + 1
        if len(names) > width_needed and len(names) > 4:
            raise DataError(f"expected at most 4 columns, found {len(names)}; pass user_col, "
                            f"item_col, value_col and timestamp_col", source=where)
        # headerless columns get the names their roles give them, for readable error messages
        plain = {"user": "user", "item": "item", "value": "rating" if feedback == "explicit"
                 else "weight", "timestamp": "timestamp"}
        frame = frame.rename(columns={resolved[r]: plain[r] for r in resolved if resolved[r]
                                      is not None})
        resolved = {r: (plain[r] if resolved[r] is not None else None) for r in resolved}
    if resolved["value"] is None and feedback == "explicit":
        raise DataError(
            "has no rating column; pass feedback='implicit' (--implicit) for bare (user, item) "
            "pairs", source=where,
        )
    if layout.name != "parquet":
        _check_short_rows(path, frame, lines, [c for c in resolved.values() if c is not None],
                          layout)
    if feedback == "explicit" and resolved["value"] is not None:
        _warn_if_counts(frame[resolved["value"]], str(resolved["value"]), where)
    return Interactions.from_frame(
        frame,
        user_col=str(resolved["user"]),
        item_col=str(resolved["item"]),
        value_col=resolved["value"],
        timestamp_col=resolved["timestamp"],
        feedback=feedback,
        duplicates=duplicates,
        source=where,
        line_numbers=lines,
    )
