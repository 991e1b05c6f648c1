"""Reading interaction files: CSV/TSV (any separator), Parquet and the MovieLens formats."""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from latentrec.data.interactions import DuplicatePolicy, Feedback, Interactions
from latentrec.errors import DataError, InvalidParameterError

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


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115


def _first_lines(path: Path, count: int = 20) -> list[str]:
    with _open_text(path) as handle:
        lines = []
        for line in handle:
            if line.strip():
                lines.append(line.rstrip("\r\n"))
            if len(lines) >= count:
                break
    return lines


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sniff_separator(lines: list[str], where: str) -> str:
    if all("::" in line for line in lines):
        return "::"
    for sep in ("\t", ",", ";", "|"):
        counts = {line.count(sep) for line in lines}
        if len(counts) == 1 and counts != {0}:
            return sep
    if all(len(line.split()) >= 2 for line in lines):
        widths = {len(line.split()) for line in lines}
        if len(widths) == 1:
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
    lines = _first_lines(path)
    if not lines:
        raise DataError("no interactions (the file is empty)", source=str(path))
    if name == "ratings.dat" and "::" in lines[0]:
        return _MOVIELENS["ml-1m"]
    if sep is None:
        sep = _sniff_separator(lines, str(path))
    first = _split(lines[0], sep)
    later = [_split(line, sep) for line in lines[1:]]
    has_header = (
        _pick(first, USER_NAMES) is not None
        or any(not _is_number(field) for field in first[2:3])
        and all(len(row) > 2 and _is_number(row[2]) for row in later)
    )
    if has_header:
        user = _pick(first, USER_NAMES) or first[0]
        item = _pick(first, ITEM_NAMES) or (first[1] if len(first) > 1 else None)
        if item is None:
            raise DataError("needs at least two columns (user, item)", source=str(path))
        value = _pick(first, VALUE_NAMES)
        stamp = _pick(first, TIME_NAMES)
        if value is None and len(first) > 2 and first[2] not in (stamp,):
            value = first[2]
        return FileFormat("csv", sep=sep, header=True, user_col=user, item_col=item,
                          value_col=value, timestamp_col=stamp)
    width = len(first)
    if width < 2:
        raise DataError("needs at least two columns (user, item)", source=str(path), line=1)
    return FileFormat("csv", sep=sep, header=False, value_col=2 if width > 2 else None,
                      timestamp_col=3 if width > 3 else None)


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
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise FileNotFoundError(f"{where}: no such file")
    if path.is_dir():
        raise DataError("is a directory, expected a file of interactions", source=where)
    if format not in FORMATS:
        raise InvalidParameterError(f"format must be one of {list(FORMATS)}, got {format!r}")
    if format == "auto":
        layout = detect_format(path, sep=sep)
    elif format in _MOVIELENS:
        layout = _MOVIELENS[format]
    elif format == "parquet":
        layout = FileFormat("parquet", header=True)
    else:
        lines = _first_lines(path)
        if not lines:
            raise DataError("no interactions (the file is empty)", source=where)
        layout = detect_format(path, sep=sep or ("\t" if format == "tsv" else ","))
    if sep is not None and layout.name != "parquet":
        layout = FileFormat(layout.name, sep, layout.header, layout.user_col, layout.item_col,
                            layout.value_col, layout.timestamp_col)
    if header is not None and header != layout.header and layout.name != "parquet":
        layout = _with_header(path, layout, header)
    overrides = {
        "user_col": user_col, "item_col": item_col,
        "value_col": value_col, "timestamp_col": timestamp_col,
    }
    layout = FileFormat(
        layout.name, layout.sep, layout.header,
        **{k: (v if v is not None else getattr(layout, k)) for k, v in overrides.items()},
    )
    frame, lines = _read_frame(path, layout)
    return _frame_to_interactions(frame, lines, layout, where, feedback, duplicates)


def _with_header(path: Path, layout: FileFormat, header: bool) -> FileFormat:
    if not header:
        width = len(_split(_first_lines(path, 1)[0], layout.sep or ","))
        return FileFormat(layout.name, layout.sep, False, 0, 1, 2 if width > 2 else None,
                          3 if width > 3 else None)
    first = _split(_first_lines(path, 1)[0], layout.sep or ",")
    return FileFormat(layout.name, layout.sep, True, _pick(first, USER_NAMES) or first[0],
                      _pick(first, ITEM_NAMES) or first[1],
                      _pick(first, VALUE_NAMES) or (first[2] if len(first) > 2 else None),
                      _pick(first, TIME_NAMES))


def _read_frame(path: Path, layout: FileFormat) -> tuple[pd.DataFrame, np.ndarray]:
    where = str(path)
    if layout.name == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises many types for a bad file
            raise DataError(f"not a readable Parquet file ({_first_line(error)})",
                            source=where) from None
        return frame, np.arange(1, len(frame) + 1)
    sep = layout.sep or ","
    options: dict[str, Any] = {
        "sep": sep,
        "header": 0 if layout.header else None,
        "skip_blank_lines": False,
        "dtype": str,
        "keep_default_na": False,
        "na_values": [""],
        "skipinitialspace": True,
    }
    if sep in ("::", r"\s+"):
        options["engine"] = "python" if sep == "::" else "c"
        options.pop("skipinitialspace")
    try:
        frame = pd.read_csv(path, encoding="utf-8", encoding_errors="replace", **options)
    except pd.errors.EmptyDataError:
        raise DataError("no interactions (the file is empty)", source=where) from None
    except pd.errors.ParserError as error:
        raise DataError(_parser_message(str(error), layout.header), source=where) from None
    first_line = 2 if layout.header else 1
    lines = np.arange(first_line, first_line + len(frame))
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame, lines = frame.loc[~blank], lines[~blank]
    if layout.header:
        frame.columns = [str(c).strip() for c in frame.columns]
    return frame, lines


def _parser_message(message: str, header: bool) -> str:
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if match:
        expected, line, saw = match.groups()
        return f"line {line}: expected {expected} fields, found {saw}"
    return _first_line(message)


def _first_line(error: object) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _frame_to_interactions(
    frame: pd.DataFrame,
    lines: np.ndarray,
    layout: FileFormat,
    where: str,
    feedback: Feedback,
    duplicates: DuplicatePolicy,
) -> Interactions:
    roles = {
        "user": layout.user_col, "item": layout.item_col,
        "value": layout.value_col, "timestamp": layout.timestamp_col,
    }
    names = list(frame.columns)
    resolved: dict[str, str | None] = {}
    for role, column in roles.items():
        if column is None:
            resolved[role] = None
        elif isinstance(column, int) and not (layout.header and column in names):
            if column >= len(names):
                raise DataError(
                    f"has {len(names)} columns, so there is no column {column} for the {role}",
                    source=where,
                )
            resolved[role] = names[column]
        elif column in names:
            resolved[role] = column
        else:
            raise DataError(f"missing column {column!r}; found columns {names}", source=where)
    if not layout.header:
        used = {resolved[r] for r in ("user", "item", "value", "timestamp")}
        width_needed = max(int(c) for c in used if c is not None) + 1
        if len(names) > width_needed and len(names) > 4:
            raise DataError(f"expected at most 4 columns, found {len(names)}", source=where)
    if not layout.header:
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
