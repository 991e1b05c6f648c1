"""Input split into shards for distributed training: the files of a directory (CSV/TSV/Parquet,
a partitioned Parquet data set) and the row groups of Parquet files.

A rank reads only the shards :func:`assign_shards` gives it; nothing here talks to other
processes (the ranks agree on id vocabularies in :mod:`latentrec.training.distributed`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from latentrec.data.interactions import DuplicatePolicy, Feedback, Interactions
from latentrec.data.readers import (
    _check_file,
    _first_line,
    _first_lines,
    _frame_to_interactions,
    _layout_from_names,
    read_interactions,
)
from latentrec.errors import DataError

__all__ = ["Shard", "assign_shards", "list_shards", "read_shard"]

#: files a directory of interactions may hold; anything else (``_SUCCESS``, ``.crc`` files that
#: Spark writes, README files) is passed over
DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".txt", ".data", ".base", ".dat",
                 ".csv.gz", ".tsv.gz")


@dataclass(frozen=True)
class Shard:
    """One unit of input: a whole file, or one row group of a Parquet file.

    ``size`` is the number of rows (estimated for text files), used only to balance ranks.
    """

    path: str
    row_group: int | None = None
    size: int = 0
    #: the line of the shard's first row, for error messages (Parquet row groups)
    first_row: int = 1

    def __str__(self) -> str:
        return self.path if self.row_group is None else f"{self.path}[row group {self.row_group}]"


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def list_shards(path: str | os.PathLike[str]) -> list[Shard]:
    """The shards of ``path``: a file, or every data file under a directory (recursively, in
    name order), with Parquet files split into their row groups.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.csv").write_text("user,item\\n1,2\\n")
    >>> _ = (folder / "_SUCCESS").write_text("")
    >>> [pathlib.Path(s.path).name for s in list_shards(folder)]
    ['a.csv']
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or directory")
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root)
                       and p.name.lower().endswith(DATA_SUFFIXES))
        if not files:
            raise DataError(f"holds no data files (expected {', '.join(DATA_SUFFIXES[:3])}, ...)",
                            source=str(root))
    else:
        files = [root]
    shards: list[Shard] = []
    for file in files:
        _check_file(file)
        if _is_parquet(file):
            shards.extend(_row_groups(file))
        else:
            shards.append(Shard(str(file), None, _estimated_rows(file)))
    return shards


def _hidden(path: Path, root: Path) -> bool:
    """Hidden files and the ``_``-prefixed files and folders of Spark and Hadoop jobs."""
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def _estimated_rows(file: Path) -> int:
    """Rows of a text file, estimated from its size and its first lines (to balance ranks)."""
    size = file.stat().st_size
    try:
        lines = _first_lines(file, 50)
    except (OSError, DataError):
        return size // 16 + 1
    mean = sum(len(line) + 1 for line in lines) / len(lines) if lines else 16.0
    if file.name.lower().endswith(".gz"):
        mean /= 4  # compressed text: about a quarter of its plain size here
    return int(size / max(mean, 1.0)) + 1


def _row_groups(file: Path) -> list[Shard]:
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(file).metadata
    except Exception as error:  # pyarrow raises many types for a bad file
        raise DataError(f"not a readable Parquet file ({_first_line(error)})",
                        source=str(file)) from None
    shards, first = [], 1
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        if rows:
            shards.append(Shard(str(file), group, rows, first))
        first += rows
    return shards


def assign_shards(shards: list[Shard], rank: int, size: int) -> list[Shard]:
    """The shards rank ``rank`` of ``size`` reads: the largest first, each to the rank with the
    least so far (the same answer on every rank). A rank may get none."""
    loads = np.zeros(size, dtype=np.int64)
    mine: list[tuple[int, Shard]] = []
    order = sorted(range(len(shards)), key=lambda i: (-shards[i].size, i))
    for position in order:
        owner = int(np.argmin(loads))
        loads[owner] += max(1, shards[position].size)
        if owner == rank:
            mine.append((position, shards[position]))
    return [shard for _, shard in sorted(mine)]


def read_shard(shard: Shard, *, feedback: Feedback = "explicit",
               duplicates: DuplicatePolicy = "error", **options: object) -> Interactions:
    """Read one shard as :class:`Interactions` with its own (local) id vocabularies.

    ``options`` are :func:`~latentrec.read_interactions`'s (``sep``, ``user_col``, ...). Error
    messages name the file, and for a Parquet row group its rows as numbered in the file.
    """
    if shard.row_group is None:
        return read_interactions(shard.path, feedback=feedback, duplicates=duplicates,
                                 **options)  # type: ignore[arg-type]
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(shard.path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pq.ParquetFile(path).read_row_group(shard.row_group).to_pandas()
    except Exception as error:
        raise DataError(f"row group {shard.row_group} is not readable "
                        f"({_first_line(error)})", source=str(path)) from None
    pa.default_memory_pool().release_unused()  # Arrow keeps freed buffers otherwise
    frame.columns = [str(c) for c in frame.columns]
    layout = _layout_from_names("parquet", None, list(frame.columns))
    columns = {name: options[name] for name in ("user_col", "item_col", "value_col",
                                               "timestamp_col") if options.get(name) is not None}
    if columns:
        layout = replace(layout, **columns)  # type: ignore[arg-type]
    lines = np.arange(shard.first_row, shard.first_row + len(frame))
    return _frame_to_interactions(path, frame, lines, layout, str(path), feedback, duplicates)
