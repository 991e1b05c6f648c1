"""MovieLens ratings: from a local copy, the cache, or a verified download.

A data set is looked for, in order:

1. at ``path``, when given: a directory holding the ratings file (``u.data``, ``ratings.dat``
   or ``ratings.csv``), a directory holding the extracted data set folder (``ml-100k/``) or
   the official zip, or the official zip itself;
2. in the cache: ``cache_dir`` if given, else ``$LATENTREC_DATA`` if set, else
   ``~/.cache/latentrec``; it holds extracted folders (``ml-100k/u.data``) and zips
   (``ml-100k.zip``);
3. on the GroupLens server (``https://files.grouplens.org/datasets/movielens/``, or
   ``$LATENTREC_MOVIELENS_URL`` for a mirror): the zip is downloaded into the cache, its sha256
   checked against the official one, and the files needed are extracted beside it.

Besides the ratings (:func:`load_movielens`, :func:`load_movielens_100k_split`), the movies'
titles, years and genres come from :func:`load_movielens_items` (``u.item``, ``movies.dat`` or
``movies.csv``), so results can show names rather than numbers, and MovieLens 100K's user and
movie side features from :func:`load_movielens_100k_features`.

The MovieLens licence forbids redistribution, so latentrec ships no copy: each user downloads
the data from GroupLens (see https://grouplens.org/datasets/movielens/).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from latentrec.data import Features, Interactions, read_features, read_interactions
from latentrec.data.ids import parse_canonical_int64
from latentrec.errors import DataError, InvalidParameterError

__all__ = ["MOVIELENS_100K_FOLDS", "MOVIELENS_VARIANTS", "load_movielens",
           "load_movielens_100k_features", "load_movielens_100k_split", "load_movielens_items"]

logger = logging.getLogger(__name__)

DEFAULT_URL = "https://files.grouplens.org/datasets/movielens/"
URL_ENV = "LATENTREC_MOVIELENS_URL"
DATA_ENV = "LATENTREC_DATA"
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class _Variant:
    name: str  # folder and zip name, e.g. "ml-100k"
    ratings: str  # ratings file inside the folder
    format: str  # read_interactions format
    size: int  # bytes of the official zip
    sha256: str  # of the official zip
    items: str  # the movies file inside the folder: titles, years, genres


# Sizes and sha256 of the official zips, as published by TensorFlow Datasets
# (tensorflow_datasets/url_checksums/movielens.txt) and confirmed by independent projects; the
# GroupLens md5 files agree for 100k, 1m and 20m.
_VARIANTS: dict[str, _Variant] = {
    "100k": _Variant(
        "ml-100k", "u.data", "ml-100k", 4_924_029,
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", "u.item",
    ),
    "1m": _Variant(
        "ml-1m", "ratings.dat", "ml-1m", 5_917_549,
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", "movies.dat",
    ),
    "latest-small": _Variant(
        "ml-latest-small", "ratings.csv", "ml-latest", 978_202,
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", "movies.csv",
    ),
    "20m": _Variant(
        "ml-20m", "ratings.csv", "ml-latest", 198_702_078,
        "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3", "movies.csv",
    ),
}
MOVIELENS_VARIANTS: tuple[str, ...] = tuple(_VARIANTS)
MOVIELENS_100K_FOLDS: tuple[str, ...] = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")

PathArg = str | os.PathLike[str]


def load_movielens(
    variant: str = "100k",
    *,
    path: PathArg | None = None,
    cache_dir: PathArg | None = None,
    download: bool = True,
) -> Interactions:
    """Load a MovieLens ratings file as explicit feedback with timestamps.

    Parameters
    ----------
    variant
        ``"100k"`` (``u.data``, 943 users, 1,682 movies, 100,000 ratings 1-5), ``"1m"``
        (``ratings.dat``, 1,000,209 ratings), ``"latest-small"`` (``ratings.csv``, ratings
        0.5-5 in half stars; GroupLens updates it now and then) or ``"20m"`` (``ratings.csv``,
        20,000,263 ratings). Ids are MovieLens's own integer user and movie ids.
    path
        A local copy: a directory holding the ratings file or the extracted data set folder
        (``ml-100k/``), or the official zip. Nothing else is tried when it is given, and it is
        not checksummed.
    cache_dir
        Where downloads go and are looked for; defaults to ``$LATENTREC_DATA`` if set, else
        ``~/.cache/latentrec``.
    download
        Fetch the official zip into the cache when no copy is found. The server is
        ``$LATENTREC_MOVIELENS_URL`` if set (a mirror holding ``ml-100k.zip`` etc.), else
        GroupLens; the zip must match the official sha256 either way.

    Returns
    -------
    Interactions
        Explicit ratings with timestamps; ``source`` names the file read.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        No copy was found and the download was off or failed (the message says where it looked
        and how to get the data), a download did not match its checksum (it is deleted), or a
        file is malformed.
    InvalidParameterError
        ``variant`` is unknown.

    Examples
    --------
    >>> ratings = load_movielens("100k")  # doctest: +SKIP
    >>> ratings.n_users, ratings.n_items, len(ratings)  # doctest: +SKIP
    (943, 1682, 100000)
    >>> load_movielens("100k", path="~/data/ml-100k.zip", download=False)  # doctest: +SKIP
    Interactions(100000 explicit interactions, 943 users, 1682 items, from ...)
    """
    spec = _variant(variant)
    with _located(spec, (spec.ratings,), path, cache_dir, download) as files:
        return _read(files[spec.ratings], spec)


def load_movielens_100k_split(
    fold: str = "u1",
    *,
    path: PathArg | None = None,
    cache_dir: PathArg | None = None,
    download: bool = True,
) -> tuple[Interactions, Interactions]:
    """Load one of MovieLens 100K's official train/test splits.

    Parameters
    ----------
    fold
        ``"u1"`` ... ``"u5"``: the five disjoint 80%/20% splits of ``u.data`` (``uN.base`` /
        ``uN.test``) for 5-fold cross-validation; ``"ua"`` / ``"ub"``: exactly 10 ratings per
        user held out (``ua.test`` / ``ub.test``).
    path, cache_dir, download
        Where to find the data, as for :func:`load_movielens`.

    Returns
    -------
    tuple of Interactions
        ``(train, test)``, each with its own id maps (raw MovieLens ids).

    Raises
    ------
    InvalidParameterError
        ``fold`` is unknown.
    DataError, FileNotFoundError
        As for :func:`load_movielens`.

    Examples
    --------
    >>> train, test = load_movielens_100k_split("u1")  # doctest: +SKIP
    >>> len(train), len(test)  # doctest: +SKIP
    (80000, 20000)
    """
    if not isinstance(fold, str):
        raise TypeError(f"fold must be a string, got {type(fold).__name__}")
    if fold not in MOVIELENS_100K_FOLDS:
        raise InvalidParameterError(
            f"fold must be one of {list(MOVIELENS_100K_FOLDS)}, got {fold!r}"
        )
    spec = _VARIANTS["100k"]
    base, test = f"{fold}.base", f"{fold}.test"
    with _located(spec, (base, test), path, cache_dir, download) as files:
        return _read(files[base], spec), _read(files[test], spec)


def load_movielens_items(
    variant: str = "100k",
    *,
    path: PathArg | None = None,
    cache_dir: PathArg | None = None,
    download: bool = True,
) -> pd.DataFrame:
    """Load the MovieLens movies: title, year and genres of each movie id.

    Parameters
    ----------
    variant, path, cache_dir, download
        Which data set and where to find it, as for :func:`load_movielens`. The movies come
        from ``u.item`` (100k; Latin-1, ``|``-separated, genres as 19 flags), ``movies.dat``
        (1m; Latin-1, ``::``-separated) or ``movies.csv`` (latest-small, 20m; UTF-8 CSV).

    Returns
    -------
    pandas.DataFrame
        One row per movie, indexed by ``item``: the movie ids, the same values (integers) as
        the item ids of :func:`load_movielens`. Columns: ``title`` (without the year),
        ``year`` (``Int64``; ``<NA>`` when neither the title nor, for 100k, the release date
        gives one) and ``genres`` (``|``-separated names as MovieLens spells them, e.g.
        ``"Animation|Children's|Comedy"``; 100k's flags become such names too).

    Raises
    ------
    DataError
        The file is malformed (the message names its line), or as for :func:`load_movielens`.
    FileNotFoundError, InvalidParameterError
        As for :func:`load_movielens`.

    Examples
    --------
    >>> movies = load_movielens_items("100k")  # doctest: +SKIP
    >>> movies.loc[1].tolist()  # doctest: +SKIP
    ['Toy Story', 1995, "Animation|Children's|Comedy"]
    >>> ratings = load_movielens("100k")  # doctest: +SKIP
    >>> movies.loc[ratings.items.to_list()[:2], "title"].tolist()  # doctest: +SKIP
    ['Toy Story', 'GoldenEye']
    """
    spec = _variant(variant)
    with _located(spec, (spec.items,), path, cache_dir, download) as files:
        return _read_items(files[spec.items], spec)


def load_movielens_100k_features(
    side: Literal["users", "items"] = "items",
    *,
    year_buckets: int | None = 10,
    path: PathArg | None = None,
    cache_dir: PathArg | None = None,
    download: bool = True,
) -> Features:
    """Load MovieLens 100K's side features of the users (``u.user``) or the movies
    (``u.item``), keyed by the same integer ids as :func:`load_movielens`.

    Parameters
    ----------
    side
        ``"items"``: ``genre`` (``multi``: the 19 genre flags of ``u.item``, e.g. Toy Story's
        ``Animation``, ``Children's``, ``Comedy``) and ``year`` (``numeric``: the year of the
        release date; missing for the one movie without a date). ``"users"``: ``age``
        (``categorical``: MovieLens 1M's age bands ``Under 18``, ``18-24``, ``25-34``,
        ``35-44``, ``45-49``, ``50-55``, ``56+``), ``gender`` (``M``/``F``), ``occupation``
        (one of the 21 of ``u.occupation``) and ``zip_prefix`` (``categorical``: the first
        character of the zip code, a US region; a letter for the few foreign codes).
    year_buckets
        Cut the release year into at most this many quantile buckets at
        :meth:`~latentrec.data.Features.fit` (default 10); ``None`` standardises it instead.
    path, cache_dir, download
        Where to find the data, as for :func:`load_movielens`.

    Returns
    -------
    Features
        One row per user (943) or movie (1,682), not fitted yet.

    Raises
    ------
    DataError
        The file is malformed (the message names its line and column), or as for
        :func:`load_movielens`.
    InvalidParameterError
        ``side`` is unknown or ``year_buckets`` is outside 2..1000.

    Examples
    --------
    >>> movies = load_movielens_100k_features("items")  # doctest: +SKIP
    >>> movies.kinds  # doctest: +SKIP
    {'genre': 'multi', 'year': 'numeric'}
    >>> train, test = load_movielens_100k_split("u1")  # doctest: +SKIP
    >>> movies.fit(train.items).matrix(test.items).shape  # doctest: +SKIP
    (1410, 29)
    """
    if side not in ("users", "items"):
        raise InvalidParameterError(f"side must be 'users' or 'items', got {side!r}")
    spec = _VARIANTS["100k"]
    member = "u.item" if side == "items" else "u.user"
    with _located(spec, (member,), path, cache_dir, download) as files:
        if side == "items":
            return _item_features(files[member], year_buckets)
        return _user_features(files[member])


#: MovieLens 1M's age bands (its README), used for 100K's exact ages too
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (18, "Under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"),
    (56, "50-55"), (200, "56+"),
)


def _read_pipe_table(
    path: Path, names: Sequence[str], encoding: str, *, optional: Sequence[str] = ()
) -> pd.DataFrame:
    """A ``|``-separated file without a header, as text, row ``n`` being line ``n + 1``; only
    the ``optional`` columns may be empty."""
    where = str(path)
    try:
        frame = pd.read_csv(path, sep="|", header=None, dtype=str, encoding=encoding,
                            keep_default_na=False, na_values=[""], quoting=csv.QUOTE_NONE,
                            skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise DataError("no rows (the file is empty)", source=where) from None
    except pd.errors.ParserError as error:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if match is None:
            raise DataError(str(error).strip().splitlines()[0], source=where) from None
        raise DataError(f"the line has {match.group(3)} fields separated by '|', expected "
                        f"{len(names)}", source=where, line=int(match.group(2))) from None
    if frame.shape[1] != len(names):
        raise DataError(f"the line has {frame.shape[1]} fields separated by '|', expected "
                        f"{len(names)}", source=where, line=1)
    blank = frame.isna().all(axis=1).to_numpy()
    kept = len(blank)
    while kept and blank[kept - 1]:  # blank lines at the end of the file
        kept -= 1
    frame = frame.iloc[:kept].copy()
    if len(frame) == 0:
        raise DataError("no rows (the file is empty)", source=where)
    frame.columns = list(names)
    required = [name for name in names if name not in optional]
    missing = frame[required].isna().to_numpy()
    if missing.any():
        row, column = np.argwhere(missing)[0]
        raise DataError("value is missing (a short or blank line?)", source=where,
                        line=int(row) + 1, column=required[int(column)])
    return frame


def _item_features(path: Path, year_buckets: int | None) -> Features:
    """``id|title|release date|video release date|IMDb URL|19 genre flags``, in Latin-1."""
    where = str(path)
    dates = ["title", "release date", "video release date", "IMDb URL"]
    table = _read_pipe_table(path, ["item", *dates, *GENRES_100K], "latin-1", optional=dates)
    flags = table[list(GENRES_100K)]
    bad = ~flags.isin(["0", "1"]).to_numpy()
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataError(f"genre flag {flags.iat[int(row), int(column)]!r} is not 0 or 1",
                        source=where, line=int(row) + 1, column=GENRES_100K[int(column)])
    # each movie's genres joined by '|', without a loop over the movies
    labels = pd.Series([f"{genre}|" for genre in GENRES_100K], index=flags.columns)
    genre = (flags == "1").astype(object).dot(labels).astype(str).str.rstrip("|")
    released = table["release date"].astype(object).fillna("").str.strip()
    year = released.str.extract(r"(?:^|[^0-9])([0-9]{4})$")[0]
    features = pd.DataFrame({"item": table["item"], "genre": genre, "year": year})
    return read_features(features, "item", multi="genre", numeric="year",
                         buckets=None if year_buckets is None else {"year": year_buckets},
                         source=where)


def _user_features(path: Path) -> Features:
    """``id|age|gender|occupation|zip code``."""
    where = str(path)
    table = _read_pipe_table(path, ["user", "age", "gender", "occupation", "zip"], "latin-1")
    text = table["age"].str.strip()
    age = pd.to_numeric(text, errors="coerce")
    bad = (age.isna() | (age < 0) | (age > 150)).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(f"age {table['age'].iat[row]!r} is not a number of years from 0 to "
                        f"150", source=where, line=row + 1, column="age")
    limits = [bound for bound, _ in AGE_BANDS]
    band = np.asarray([label for _, label in AGE_BANDS], dtype=object)
    features = pd.DataFrame({
        "user": table["user"],
        "age": band[np.searchsorted(limits, age.to_numpy(dtype=np.float64), side="right")],
        "gender": table["gender"].str.strip(),
        "occupation": table["occupation"].str.strip(),
        "zip_prefix": table["zip"].str.strip().str[:1],
    })
    return read_features(features, "user", categorical=["age", "gender", "occupation",
                                                         "zip_prefix"], source=where)


# ---------------------------------------------------------------------- movies
#: ml-100k's genres, in the order of u.item's flags (as its u.genre lists them)
GENRES_100K: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
# a title ends in its year, "(1995)", or in a series' years, "(2006-2007)" (with an en dash)
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>[0-9]{4})(?:[-\u2013][0-9]{4})?\)\s*$")
_RELEASE_YEAR = re.compile(r"(?:^|[^0-9])([0-9]{4})$")  # u.item's release date: 01-Jan-1995


@dataclass
class _Movies:
    ids: list[str]
    lines: list[int]
    titles: list[str]
    years: list[int | None]
    genres: list[str]

    def add(self, line: int, movie_id: str, title: str, genres: str,
            release_year: int | None = None) -> None:
        title = title.strip()
        match = _TITLE_YEAR.match(title)
        year = release_year
        if match and match.group("title"):
            title, year = match.group("title"), int(match.group("year"))
        self.ids.append(movie_id)
        self.lines.append(line)
        self.titles.append(title)
        self.years.append(year)
        self.genres.append(genres)


def _read_items(path: Path, spec: _Variant) -> pd.DataFrame:
    where = str(path)
    movies = _Movies([], [], [], [], [])
    if spec.items == "u.item":
        _parse_u_item(path, movies)
    elif spec.items == "movies.dat":
        _parse_movies_dat(path, movies)
    else:
        _parse_movies_csv(path, movies)
    if not movies.ids:
        raise DataError("no movies (the file is empty)", source=where)
    raw = pd.Series(movies.ids, dtype=object)
    empty = (raw.str.strip() == "").to_numpy(dtype=bool)
    if empty.any():
        line = movies.lines[int(empty.argmax())]
        raise DataError("id is missing", source=where, line=line, column="movie id")
    # the same rule as for ratings: integers only when every id is spelled as one
    numbers, spelled = parse_canonical_int64(raw)
    index = pd.Index(numbers if spelled.all() else raw.to_numpy(), name="item")
    repeated = index.duplicated()
    if repeated.any():
        row = int(repeated.argmax())
        first = int((index == index[row]).argmax())
        raise DataError(
            f"movie id {index.tolist()[row]!r} is repeated, first seen on line "
            f"{movies.lines[first]}",
            source=where, line=movies.lines[row], column="movie id",
        )
    return pd.DataFrame(
        {
            "title": pd.array(movies.titles, dtype=object),
            "year": pd.array(movies.years, dtype="Int64"),
            "genres": pd.array(movies.genres, dtype=object),
        },
        index=index,
    )


def _text_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines, without their line ends."""
    with open(path, encoding=encoding, errors="replace", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if text.strip():
                yield number, text


def _parse_u_item(path: Path, movies: _Movies) -> None:
    """``id|title|release date|video release date|IMDb URL|19 genre flags``, in Latin-1."""
    expected = 5 + len(GENRES_100K)
    for number, line in _text_lines(path, "latin-1"):
        fields = line.split("|")
        if len(fields) != expected:
            raise DataError(f"the line has {len(fields)} fields separated by '|', expected "
                            f"{expected}", source=str(path), line=number)
        flags = fields[5:]
        for genre, flag in zip(GENRES_100K, flags, strict=True):
            if flag not in ("0", "1"):
                raise DataError(f"genre flag {flag!r} is not 0 or 1", source=str(path),
                                line=number, column=genre)
        released = _RELEASE_YEAR.search(fields[2].strip())
        movies.add(
            number, fields[0], fields[1],
            "|".join(g for g, flag in zip(GENRES_100K, flags, strict=True) if flag == "1"),
            int(released.group(1)) if released else None,
        )


def _parse_movies_dat(path: Path, movies: _Movies) -> None:
    """``id::title::genres``, in Latin-1."""
    for number, line in _text_lines(path, "latin-1"):
        fields = line.split("::")
        if len(fields) != 3:
            raise DataError(f"the line has {len(fields)} fields separated by '::', expected 3",
                            source=str(path), line=number)
        movies.add(number, fields[0], fields[1], fields[2].strip())


def _parse_movies_csv(path: Path, movies: _Movies) -> None:
    """``movieId,title,genres`` with a header, in UTF-8 (titles with commas are quoted)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                return
            names = [name.strip() for name in header]
            if names[:3] != ["movieId", "title", "genres"]:
                raise DataError(f"expected the header movieId,title,genres, found "
                                f"{','.join(names)[:60]!r}", source=str(path), line=1)
            for fields in reader:
                number = reader.line_num
                if not fields or not "".join(fields).strip():
                    continue
                if len(fields) != 3:
                    raise DataError(f"the line has {len(fields)} fields, expected 3",
                                    source=str(path), line=number)
                movies.add(number, fields[0], fields[1], fields[2].strip())
        except csv.Error as error:
            raise DataError(str(error).splitlines()[0], source=str(path),
                            line=reader.line_num) from None


# ---------------------------------------------------------------------- arguments
def _variant(variant: object) -> _Variant:
    if not isinstance(variant, str):
        raise TypeError(f"variant must be a string, got {type(variant).__name__}")
    if variant not in _VARIANTS:
        raise InvalidParameterError(
            f"variant must be one of {list(MOVIELENS_VARIANTS)}, got {variant!r}"
        )
    return _VARIANTS[variant]


def _as_path(name: str, value: object) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return Path(os.fspath(value)).expanduser()


def _cache_root(cache_dir: PathArg | None) -> Path:
    if cache_dir is not None:
        return _as_path("cache_dir", cache_dir)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".cache" / "latentrec"


def _base_url() -> str:
    base = os.environ.get(URL_ENV) or DEFAULT_URL
    return base if base.endswith("/") else base + "/"


# ---------------------------------------------------------------------- finding the files
@contextlib.contextmanager
def _located(
    spec: _Variant,
    members: Sequence[str],
    path: PathArg | None,
    cache_dir: PathArg | None,
    download: bool,
) -> Iterator[dict[str, Path]]:
    """Paths of ``members`` (files of the data set folder), found or fetched."""
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {type(download).__name__}")
    if path is not None:
        with _from_path(spec, members, _as_path("path", path)) as files:
            yield files
        return
    root = _cache_root(cache_dir)
    folder = root / spec.name
    if all((folder / member).is_file() for member in members):
        yield {member: folder / member for member in members}
        return
    archive = root / f"{spec.name}.zip"
    if archive.is_file():
        _verify(archive, spec, source=str(archive), delete=False)
    elif download:
        _download(spec, root, archive)
    else:
        raise DataError(
            f"MovieLens {spec.name} not found: no {spec.name}/{members[0]} or {spec.name}.zip "
            f"in {root}, and download=False; download {_base_url()}{spec.name}.zip and pass "
            f"path= (--data) pointing at it or at its extracted folder"
        )
    yield _extract(archive, spec, members, folder)


@contextlib.contextmanager
def _from_path(spec: _Variant, members: Sequence[str], path: Path) -> Iterator[dict[str, Path]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    mode = path.stat().st_mode
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):  # a pipe or a device would never end
        raise DataError(
            f"not a regular file or a folder; expected the official {spec.name}.zip or a "
            f"folder holding {members[0]}", source=str(path),
        )
    archive = path
    if path.is_dir():
        for folder in (path, path / spec.name):
            if all((folder / member).is_file() for member in members):
                yield {member: folder / member for member in members}
                return
        archive = path / f"{spec.name}.zip"
        if not archive.is_file():
            raise DataError(
                f"no MovieLens {spec.name} data here: expected {members[0]} in it or in "
                f"{spec.name}/, or {spec.name}.zip", source=str(path),
            )
    if not zipfile.is_zipfile(archive):
        raise DataError(
            f"not a zip file; expected the official {spec.name}.zip or a folder holding "
            f"{members[0]}", source=str(archive),
        )
    with tempfile.TemporaryDirectory(prefix="latentrec-") as scratch:
        yield _extract(archive, spec, members, Path(scratch) / spec.name)


def _read(path: Path, spec: _Variant) -> Interactions:
    return read_interactions(path, format=spec.format)


# ---------------------------------------------------------------------- zip handling
def _extract(
    archive: Path, spec: _Variant, members: Sequence[str], folder: Path
) -> dict[str, Path]:
    """Extract ``members`` of the data set folder from ``archive`` into ``folder``."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            names = set(bundle.namelist())
            files: dict[str, Path] = {}
            for member in members:
                inside = f"{spec.name}/{member}"
                if inside not in names:
                    raise DataError(
                        f"has no {inside}; expected the official {spec.name}.zip",
                        source=str(archive),
                    )
                target = folder / member
                files[member] = target
                if target.is_file():
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                # write beside the target and rename, so a crash never leaves half a file
                handle, partial = tempfile.mkstemp(dir=folder, prefix=f".{member}.")
                try:
                    with bundle.open(inside) as source, os.fdopen(handle, "wb") as sink:
                        shutil.copyfileobj(source, sink, _CHUNK)
                    os.replace(partial, target)
                except BaseException:
                    Path(partial).unlink(missing_ok=True)
                    raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise DataError(f"not a readable zip file ({error})", source=str(archive)) from None
    except OSError as error:
        raise DataError(
            f"cannot extract {spec.name} into {folder} ({error.strerror or error}); pass "
            f"cache_dir= pointing at a writable folder", source=str(archive),
        ) from None
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(archive: Path, spec: _Variant, *, source: str, delete: bool) -> None:
    size = archive.stat().st_size
    digest = _sha256(archive) if size == spec.size else None
    if digest == spec.sha256:
        return
    if delete:
        archive.unlink(missing_ok=True)
    found = f"sha256 {digest}" if digest else f"{size} bytes"
    action = "the download was deleted; retry, or" if delete else "delete it, or"
    raise DataError(
        f"checksum mismatch for {spec.name}.zip: expected sha256 {spec.sha256} "
        f"({spec.size} bytes), got {found}; {action} download {spec.name}.zip yourself and "
        f"pass path= (--data)",
        source=source,
    )


def _download(spec: _Variant, root: Path, archive: Path) -> None:
    """Fetch the official zip into ``archive``, verified; never leaves a bad file behind."""
    url = f"{_base_url()}{spec.name}.zip"
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle, partial_name = tempfile.mkstemp(dir=root, prefix=f".{spec.name}.", suffix=".zip")
    except OSError as error:
        raise DataError(
            f"MovieLens {spec.name} not found in {root}, and the cache is not writable "
            f"({error.strerror or error}); pass cache_dir= pointing at a writable folder, or "
            f"path= (--data) pointing at a copy of {spec.name}.zip"
        ) from None
    partial = Path(partial_name)
    try:
        logger.info("downloading %s into %s", url, root)
        request = urllib.request.Request(url, headers={"User-Agent": "latentrec"})
        with os.fdopen(handle, "wb") as sink, urllib.request.urlopen(
            request, timeout=_TIMEOUT_S
        ) as response:
            received = 0
            # read at most one byte past the expected size: enough to tell it is wrong
            while received <= spec.size:
                chunk = response.read(min(_CHUNK, spec.size + 1 - received))
                if not chunk:
                    break
                sink.write(chunk)
                received += len(chunk)
    except (urllib.error.URLError, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        if isinstance(error, urllib.error.HTTPError):
            error.close()
        raise DataError(
            f"MovieLens {spec.name} not found: no {spec.name}/{spec.ratings} or "
            f"{spec.name}.zip in {root}, and downloading {url} failed ({_reason(error)}); "
            f"download it yourself and pass path= (--data) pointing at it or at its "
            f"extracted folder"
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _verify(partial, spec, source=url, delete=True)
    os.replace(partial, archive)
    logger.info("downloaded and verified %s", archive)


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        text = getattr(reason, "strerror", None) or str(reason)
        return str(text)
    return str(getattr(error, "strerror", None) or error) or type(error).__name__
