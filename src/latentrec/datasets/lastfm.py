"""HetRec 2011 Last.fm 2K from a local copy: the tags users gave the artists, as item features.

The data set (https://grouplens.org/datasets/hetrec-2011/, ``hetrec2011-lastfm-2k.zip``) is
made available for non-commercial use only, so latentrec ships and downloads no copy: extract
the zip yourself and pass its folder. Its listening counts (``user_artists.dat``) read with
:func:`latentrec.read_interactions` (``feedback="implicit"``); the artist ids of both agree.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from latentrec.data import Features
from latentrec.data.ids import parse_canonical_int64
from latentrec.datasets.movielens import _cache_root
from latentrec.errors import DataError

__all__ = ["load_lastfm_tags"]

PathArg = str | os.PathLike[str]

#: the folder names a copy of the data set is looked for under
LASTFM_FOLDERS: tuple[str, ...] = ("lastfm-hetrec", "hetrec2011-lastfm-2k")
_TAGGED = ("user_taggedartists.dat", "user_taggedartists.dat.gz")
_TAGS = "tags.dat"
_URL = "https://grouplens.org/datasets/hetrec-2011/"


def load_lastfm_tags(path: PathArg | None = None) -> Features:
    """Load the artists' tags of HetRec Last.fm 2K: how many users gave each artist each tag.

    Parameters
    ----------
    path
        The folder holding ``user_taggedartists.dat`` (or ``.dat.gz``) and ``tags.dat``, or a
        folder holding it as ``lastfm-hetrec/`` or ``hetrec2011-lastfm-2k/``. By default
        ``$LATENTREC_DATA`` if set, else ``~/.cache/latentrec``, looked into the same way.

    Returns
    -------
    Features
        One row per tagged artist (12,523, keyed by the integer artist ids of
        ``user_artists.dat``; 390 of them nobody listened to there: cold artists) with one
        ``tags`` feature, ``tag``: the tag names of ``tags.dat`` (folded: lower case, single
        spaces), each weighted by the number of users who gave it to the artist (186,479
        assignments in all). Not fitted yet.

    Raises
    ------
    DataError
        No copy was found (the message says where it looked and how to get one), or a file is
        malformed (the message names its line and column).
    FileNotFoundError
        ``path`` does not exist.

    Examples
    --------
    >>> tags = load_lastfm_tags("~/data/hetrec2011-lastfm-2k")  # doctest: +SKIP
    >>> len(tags), tags.kinds  # doctest: +SKIP
    (12523, {'tag': 'tags'})
    """
    tagged, names = _locate(path)
    tag_ids, tag_names = _read_tags(names)
    artists, tag_of_row = _read_tagged(tagged)
    where = str(tagged)
    position = pd.Index(tag_ids).get_indexer(tag_of_row)
    unknown = position < 0
    if unknown.any():
        row = int(unknown.argmax())
        raise DataError(f"tag id {int(tag_of_row[row])} is not in {names.name}", source=where,
                        line=row + 2, column="tagID")
    return Features.from_pairs(artists, tag_names[position], feature="tag", kind="tags",
                               source=where)


def _locate(path: PathArg | None) -> tuple[Path, Path]:
    """The tag assignments and the tag names, found under ``path`` or the data folder."""
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a path (str or os.PathLike), got "
                            f"{type(path).__name__}")
        root = Path(os.fspath(path)).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such file or directory")
        if not root.is_dir():
            raise DataError("not a folder; pass the folder of the extracted "
                            "hetrec2011-lastfm-2k.zip", source=str(root))
    else:
        root = _cache_root(None)
    for folder in (root, *(root / name for name in LASTFM_FOLDERS)):
        names = folder / _TAGS
        for tagged_name in _TAGGED:
            tagged = folder / tagged_name
            if tagged.is_file() and names.is_file():
                return tagged, names
    raise DataError(
        f"HetRec Last.fm not found: no {_TAGGED[0]} and {_TAGS} in {root} or in its "
        f"{' or '.join(name + '/' for name in LASTFM_FOLDERS)}; download "
        f"hetrec2011-lastfm-2k.zip from {_URL}, extract it and pass path= pointing at its folder"
    )


def _read_tab(path: Path, columns: list[str], encoding: str) -> pd.DataFrame:
    """A tab-separated file with a header naming ``columns`` (at least), as text."""
    where = str(path)
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, encoding=encoding, quoting=csv.QUOTE_NONE,
                            keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataError("no rows (the file is empty)", source=where) from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as error:
        text = str(error).strip().splitlines()
        raise DataError(f"not a readable tab-separated file ({text[0] if text else error})",
                        source=where) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DataError(f"has no column {absent[0]!r} in its header; found "
                        f"{list(frame.columns)[:8]}", source=where, line=1)
    if len(frame) == 0:
        raise DataError("no rows (the file has only a header)", source=where)
    missing = frame[columns].isna().to_numpy()
    if missing.any():
        row, column = np.argwhere(missing)[0]
        raise DataError("value is missing", source=where, line=int(row) + 2,
                        column=columns[int(column)])
    return frame


#: integers short enough to fit int64 whatever their digits, spelled canonically
_SHORT_INT = r"-?[1-9][0-9]{0,17}|0"


def _integers(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """The column's canonical integers; text that is not one names its line."""
    text = frame[column].str.strip()
    if bool(text.str.fullmatch(_SHORT_INT).all()):  # the fast path: vectorised text matching
        return text.astype(np.int64).to_numpy(dtype=np.int64)
    numbers, valid = parse_canonical_int64(text.astype(object))
    if not valid.all():
        row = int((~valid).argmax())
        raise DataError(f"{frame[column].iat[row]!r} is not an integer id", source=where,
                        line=row + 2, column=column)
    return numbers


def _read_tags(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``tagID \\t tagValue``, Latin-1: the ids and the names."""
    where = str(path)
    frame = _read_tab(path, ["tagID", "tagValue"], "latin-1")
    ids = _integers(frame, "tagID", where)
    repeated = pd.Index(ids).duplicated()
    if repeated.any():
        row = int(repeated.argmax())
        raise DataError(f"tag id {int(ids[row])} is repeated", source=where, line=row + 2,
                        column="tagID")
    names = frame["tagValue"].astype(object)
    empty = (names.str.strip() == "").to_numpy(dtype=bool)
    if empty.any():
        row = int(empty.argmax())
        raise DataError("tag name is empty", source=where, line=row + 2, column="tagValue")
    return ids, names.to_numpy(dtype=object)


def _read_tagged(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``userID \\t artistID \\t tagID \\t day \\t month \\t year``: the artist and the tag of
    each assignment."""
    where = str(path)
    frame = _read_tab(path, ["artistID", "tagID"], "utf-8")
    return _integers(frame, "artistID", where), _integers(frame, "tagID", where)
