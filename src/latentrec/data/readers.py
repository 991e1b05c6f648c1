"""Reading interaction files: CSV/TSV (any separator), Parquet and the MovieLens formats."""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import stat
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


#: the longest line sniffing reads; a longer one means this is not a file of interactions
_MAX_LINE = 1 << 20


def _first_lines(path: Path, count: int = 20) -> list[str]:
    """The first ``count`` non-blank lines, reading no line past ``_MAX_LINE`` characters."""
    lines: list[str] = []
    try:
        with _open_text(path) as handle:
            number = 0
            while len(lines) < count:
                line = handle.readline(_MAX_LINE + 1)
                if not line:
                    break
                number += 1
                if len(line) > _MAX_LINE:
                    raise DataError(
                        f"the line is longer than {_MAX_LINE:,} characters; not a text file of "
                        f"interactions", source=str(path), line=number,
                    )
                if "\x00" in line:
                    raise DataError(
                        "holds NUL bytes; not a text file of interactions (binary, or text "
                        "in UTF-16? save it as UTF-8)", source=str(path), line=number,
                    )
                if line.strip():
                    lines.append(line.rstrip("\r\n"))
    except (gzip.BadGzipFile, EOFError) as error:
        if not lines:
            raise _gzip_error(path, error) from None
    return lines


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _check_file(path: Path) -> None:
    """Refuse, before reading a byte, what is not a regular file: a directory, a named pipe
    (reading it would wait for a writer forever), a device (``/dev/zero`` never ends)."""
    where = str(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file") from None
    if stat.S_ISDIR(mode):
        raise DataError("is a directory, expected a file of interactions", source=where)
    if not stat.S_ISREG(mode):
        kind = ("named pipe (FIFO)" if stat.S_ISFIFO(mode) else
                "character device" if stat.S_ISCHR(mode) else
                "block device" if stat.S_ISBLK(mode) else
                "socket" if stat.S_ISSOCK(mode) else "special file")
        raise DataError(f"is a {kind}, not a regular file; save the interactions to a file "
                        f"and read that", source=where)


def _separator(sep: object) -> str | None:
    """``sep`` checked, with ``\\t`` (backslash, t: what a shell passes for '\\t') read as a tab.

    One character is taken literally; ``"::"`` and ``"\\s+"`` are known layouts; anything
    longer is a regular expression, as for pandas.
    """
    if sep is None:
        return None
    if not isinstance(sep, str) or not sep:
        raise InvalidParameterError(f"sep must be a non-empty string, got {sep!r}")
    given = sep
    if len(sep) == 2 and sep[0] == "\\" and (sep[1] == "t" or not sep[1].isalnum()):
        sep = "\t" if sep[1] == "t" else sep[1]  # "\\t" is a tab, "\\|" a literal '|'
    if sep in ("\n", "\r", '"'):
        raise InvalidParameterError(f"sep cannot be a line break or a quote, got {given!r}")
    if len(sep) > 1 and sep not in ("::", r"\s+"):
        try:
            pattern = re.compile(sep)
        except re.error as error:
            raise InvalidParameterError(
                f"sep {given!r} is not a valid regular expression ({_first_line(error)}); a "
                f"separator longer than one character is a regular expression"
            ) from None
        if pattern.groups:
            raise InvalidParameterError(
                f"sep {given!r} has a capturing group; write (?:...) instead of (...)"
            )
        if pattern.match(""):
            raise InvalidParameterError(f"sep {given!r} matches an empty string")
    return sep


def _is_regex(sep: str) -> bool:
    return len(sep) > 1 and sep not in ("::", r"\s+")


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
    if _is_regex(sep):
        return re.split(sep, line)
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
    sep = _separator(sep)
    _check_file(path)
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
        Override the sniffed separator and header presence. One character is taken as it is;
        ``"\\t"`` (backslash and t, as a shell passes it) means a tab and ``"\\|"`` a literal
        ``|``; ``"::"`` and ``"\\s+"`` are the MovieLens 1M and whitespace layouts; anything
        longer is a regular expression (without capturing groups).
    user_col, item_col, value_col, timestamp_col
        Column names (with a header) or 0-based positions; by default the columns are found by
        name (``user``/``userId``/..., ``item``/``movieId``/..., ``rating``/``weight``/...) or
        taken as ``user, item[, value][, timestamp]``.
    feedback
        ``"explicit"`` for ratings, ``"implicit"`` for counts/weights or bare pairs.
    duplicates
        Policy for repeated ``(user, item)`` pairs; see :meth:`Interactions.from_frame`.

    Notes
    -----
    Ids keep their spelling: they are integers only when every id in the column is the
    canonical spelling of an int64 (``42``, ``-7``), else all are text, so ``01``, ``1`` and
    ``001`` are three users, and ``0042``, ``42`` and ``42.0`` three items. Ratings must be
    finite and within ±1e6 (weights within 0..1e9): a value outside is refused naming its line.
    Only regular files are read: a named pipe, a device or a directory is refused at once.
    Errors are :class:`~latentrec.errors.DataError` with one line naming the file, the line
    and the column.

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
    sep = _separator(sep)
    _check_file(path)
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
        if _needs_text_read(path, layout, frame, resolved):
            # ids such as "1.5", "42.0" or "007", or flags such as "True": re-read as text so
            # ids keep their spelling and bad values are reported as the file has them
            frame, lines = _read_text(path, layout, as_text=True)
    return _frame_to_interactions(path, frame, lines, layout, where, feedback, duplicates)


def _with_header(path: Path, layout: FileFormat, header: bool) -> FileFormat:
    lines = _first_lines(path, 1)
    if not lines:
        raise DataError("no interactions (the file is empty)", source=str(path))
    first = _split(lines[0], layout.sep or ",")
    if not header:
        width = len(first)
        return FileFormat(layout.name, layout.sep, False, 0, 1, 2 if width > 2 else None,
                          3 if width > 3 else None)
    return _layout_from_names(layout.name, layout.sep, [name.strip() for name in first])


def _read_parquet(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' and pyarrow's own, not for our users
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
    elif _is_regex(sep):
        options["engine"] = "python"  # said, so pandas does not warn that it falls back to it
    options.update(encoding=_ENCODING, encoding_errors="replace")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # pandas' warnings are handled here, not shown
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


def _needs_text_read(
    path: Path, layout: FileFormat, frame: pd.DataFrame, resolved: dict[str, str | None]
) -> bool:
    """Whether the file must be read again as text: for flags read as booleans, and for ids
    pandas read as numbers when their spelling may matter (it reads "42.0" and "42", or "01"
    and "1", as the same number)."""
    plain: bool | None = None
    for role, column in resolved.items():
        if column is None:
            continue
        kind = frame[column].dtype.kind
        if kind == "b":
            return True
        if role in ("user", "item"):
            if kind == "f":
                return True
            if kind in "iu":
                if plain is None:
                    plain = _integers_spelled_plainly(path, layout.sep or ",")
                if not plain:
                    return True
    return False


_SCAN_BLOCK = 1 << 20


def _integers_spelled_plainly(path: Path, sep: str) -> bool:
    """Whether no field of the file can be an integer that pandas reads as one but that is not
    spelled canonically: with a '+', a leading zero ("01"), as "-0", or with a space inside the
    field ("1 ,", '" 1"').

    A vectorised byte scan, several times faster than reading the ids as text; it may answer
    False for a file that is fine (a '+' in a date), which only costs reading the ids as text.
    """
    if _is_regex(sep):
        return False
    # the byte that ends a separator; bytes <= ',' cover line ends, quotes and whitespace
    sep_byte = sep.encode()[-1] if sep != r"\s+" else ord(" ")
    spaces = [] if sep == r"\s+" else [c for c in (ord(" "), ord("\t")) if c != sep_byte]
    tail = b"\n"  # the file starts at a field boundary
    with _open_binary(path) as handle:
        while True:
            block = handle.read(_SCAN_BLOCK)
            chunk = tail + (block or b"\n\n")
            if b"+" in chunk:
                return False
            data = np.frombuffer(chunk, dtype=np.uint8)
            digit = (data - np.uint8(ord("0"))) < 10
            a, b, c = data[:-2], data[1:-1], data[2:]
            starts = (a <= ord(",")) | (a == sep_byte)
            suspicious = starts & (b == ord("0")) & digit[2:]  # 01
            suspicious |= starts & (b == ord("-")) & (c == ord("0"))  # -0
            if suspicious.any():
                return False
            for space in spaces:  # "1 ," and '" 1"'
                if ((b == space) & (digit[:-2] | (a == ord('"')))).any():
                    return False
                if sep == "::" and ((a == space) & digit[1:-1]).any():  # no space is skipped
                    return False
            if not block:
                return True
            tail = chunk[-2:]


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
