"""One rank's part of the training data in a distributed run.

Each rank reads its own shards (:mod:`latentrec.data.shards`). The ranks then agree on the id
vocabularies (the sorted union of every rank's ids, spelled as one process would: integers
only when every rank's ids are canonical integers), and send every interaction to the rank that
owns its user (user index ``u`` belongs to rank ``u % P``) and, once duplicates are resolved
there, to the rank that owns its item, with all-to-all exchanges. No rank ever holds all
interactions: a rank keeps the rows of its own users and of its own items, so memory per rank
falls as ``1 / P``. Every rank holds the id vocabularies and per-id counts (``O(users +
items)``), which the model needs anyway.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from latentrec.data import IdMap, Interactions
from latentrec.data.interactions import DUPLICATE_POLICIES, DuplicatePolicy, Feedback
from latentrec.errors import DataError, InvalidParameterError
from latentrec.training.distributed import Group

__all__ = ["Partition", "partition", "return_freed_memory"]

@dataclass
class Partition:
    """This rank's share of the interactions, with the vocabularies and statistics of all.

    ``user_rows`` is a CSR matrix of this rank's users (row ``r`` is user ``own_users[r]``)
    over every item; ``item_rows`` likewise for this rank's items over every user. Values are
    ratings (explicit) or weights (implicit; 1 where the data had none).
    """

    group: Group
    users: IdMap
    items: IdMap
    feedback: Feedback
    has_values: bool
    user_rows: sp.csr_matrix
    item_rows: sp.csr_matrix
    user_counts: np.ndarray
    item_counts: np.ndarray
    total: int
    mean: float
    std: float
    rating_range: tuple[float, float] | None
    #: whether a fit gave this partition's rows away (``gather_rows(release=True)``) or
    #: overwrote their values (a single-use partition's trainable may); it cannot train again
    released: bool = False
    #: whether a fit may release the rows once trained (:func:`fit_sharded`'s own partitions,
    #: which nothing else holds)
    single_use: bool = False

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        """Interactions over all ranks."""
        return self.total

    @property
    def own_users(self) -> np.ndarray:
        """Indices of the users this rank owns."""
        return np.arange(self.group.rank, self.n_users, self.group.size)

    @property
    def own_items(self) -> np.ndarray:
        return np.arange(self.group.rank, self.n_items, self.group.size)

    def gather_rows(self, *, release: bool = False, users_per_message: int = 1 << 16
                    ) -> sp.csr_matrix | None:
        """Every user's row (users x items) on rank 0, ``None`` elsewhere: the seen-item
        matrix a saved model keeps. Collective. Rank 0 receives the rows a block of
        ``users_per_message`` users at a time from each rank in turn and places them straight
        into the final arrays, so that it never holds much beside them.

        With ``release`` this rank's rows are freed as they are sent (and the item rows at
        once): the partition cannot train again (:attr:`released`).
        """
        group = self.group
        if release:
            self.item_rows = _no_rows(self.item_rows.shape)
            self.released = True
            return_freed_memory()
        local = self.user_rows
        if group.size == 1:
            if release:
                self.user_rows = _no_rows(local.shape)
                return local
            return local.copy()
        # rank 0 must hold every row at the end: with release, it first hands its own rows to
        # rank 1 (which has freed its item rows) and gets them back with rank 1's, so that its
        # own rows and the whole matrix are never held together
        handed: sp.csr_matrix | None = None
        if release:
            arrays = [torch.from_numpy(local.indptr.astype(np.int64)),
                      torch.from_numpy(local.indices.astype(np.int32, copy=False)),
                      torch.from_numpy(local.data.astype(np.float32, copy=False))]
            received = group.hand_over(arrays, 0, 1)
            del arrays
            if received is not None:
                handed_pointers, handed_columns, handed_values = (
                    part.numpy() for part in received)
                handed = sp.csr_matrix((handed_values, handed_columns, handed_pointers),
                                       shape=(len(handed_pointers) - 1, self.n_items))
                del received, handed_pointers, handed_columns, handed_values
            if group.leader:
                self.user_rows = local = _no_rows(local.shape)
                return_freed_memory()
        indptr = indices = data = None
        if group.leader:
            indptr = np.zeros(self.n_users + 1, dtype=np.int64)
            np.cumsum(self.user_counts.astype(np.int64), out=indptr[1:])
            indices = np.empty(int(indptr[-1]), dtype=np.int32)
            data = np.empty(int(indptr[-1]), dtype=np.float32)
        # local row j is user j * P + rank: a block of users is a block of local rows, the same
        # number of blocks on every rank
        rows_per_message = max(1, users_per_message // group.size)
        blocks = range(0, len(range(0, self.n_users, group.size)), rows_per_message)

        def piece(rows: sp.csr_matrix, first: int) -> list[torch.Tensor]:
            """Local rows ``first...`` of ``rows`` (row offsets from 0, columns, values)."""
            pointers = rows.indptr
            end = min(first + rows_per_message, len(pointers) - 1)
            low, high = int(pointers[min(first, len(pointers) - 1)]), int(pointers[end])
            offsets = (pointers[first:end + 1].astype(np.int64) - low if first < end
                       else np.zeros(1, dtype=np.int64))
            return [torch.from_numpy(offsets),
                    torch.from_numpy(rows.indices[low:high].astype(np.int32, copy=False)),
                    torch.from_numpy(rows.data[low:high].astype(np.float32, copy=False))]

        def place(rank: int, first: int, offsets: np.ndarray, columns: np.ndarray,
                  values: np.ndarray) -> None:
            assert indptr is not None and indices is not None and data is not None
            counts = np.diff(offsets)
            users = (np.arange(len(counts)) + first) * group.size + rank
            positions = np.repeat(indptr[users] - offsets[:-1], counts) + np.arange(len(columns))
            indices[positions] = columns
            data[positions] = values

        nothing = [torch.zeros(1, dtype=torch.int64), torch.zeros(0, dtype=torch.int32),
                   torch.zeros(0, dtype=torch.float32)]
        for first in blocks:
            for rank, (offsets, columns, values) in group.to_leader(piece(local, first)):
                if len(columns):
                    place(rank, first, offsets.numpy(), columns.numpy(), values.numpy())
            if release:  # rank 0's rows, back from rank 1
                for rank, (offsets, columns, values) in group.to_leader(
                        piece(handed, first) if handed is not None else nothing):
                    if rank == 1 and len(columns):
                        place(0, first, offsets.numpy(), columns.numpy(), values.numpy())
        if release:
            self.user_rows = _no_rows(local.shape)
        del local, handed
        if indptr is None or indices is None or data is None:
            return None
        matrix: sp.csr_matrix = sp.csr_matrix((data, indices, indptr),
                                              shape=(self.n_users, self.n_items))
        matrix.has_sorted_indices = True
        return matrix


def return_freed_memory() -> None:
    """Hand freed memory back to the operating system, so that the next phase's peak does not
    stand on the last one's leftovers: pyarrow's pool keeps what reading Parquet used (270 MB
    after reading three 12.5M-row files here), and glibc keeps freed chunks under 32 MB in its
    heap (a row group's arrays are such chunks; elsewhere than glibc nothing is done)."""
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _no_rows(shape: tuple[int, ...]) -> sp.csr_matrix:
    """A matrix of ``shape`` without entries (what a released partition keeps)."""
    rows, columns = shape
    return sp.csr_matrix((np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int32),
                          np.zeros(rows + 1, dtype=np.int32)), shape=(rows, columns))


def partition(group: Group, parts: list[Interactions], shard_names: Sequence[str], *,
              feedback: Feedback, duplicates: DuplicatePolicy = "error",
              orders: Sequence[int] | None = None) -> Partition:
    """Build this rank's :class:`Partition` from the shards it read. Collective: every rank
    calls it, with the shards it read (possibly none); ``parts`` is emptied on the way, so
    that no shard is held twice.

    ``shard_names[j]`` names shard ``j`` of the whole input for messages, and ``orders[i]``
    is the position of ``parts[i]`` in it (which decides ``duplicates="last"`` across shards).
    A data error on any rank is raised on every rank.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise InvalidParameterError(f"duplicates must be one of {list(DUPLICATE_POLICIES)}, got "
                                    f"{duplicates!r}")
    orders = list(range(len(parts))) if orders is None else list(orders)
    size = group.size
    flags = group.all_gather_object((
        [p.users.is_integer for p in parts if len(p.users)],
        [p.items.is_integer for p in parts if len(p.items)],
        [(p.source or shard_names[o], p.values is not None) for p, o in zip(parts, orders,
                                                                           strict=True)]))
    shards_values = [entry for _, _, given in flags for entry in given]
    if not shards_values:
        raise DataError("no interactions: the input has no rows")
    if len({has for _, has in shards_values}) > 1:
        without = next(name for name, has in shards_values if not has)
        raise DataError("has no value column while other shards do; give every shard the "
                        "same columns", source=without)
    has_values = shards_values[0][1]
    users = _vocabulary(group, [p.users for p in parts], all(f for u, _, _ in flags for f in u),
                        "users")
    items = _vocabulary(group, [p.items for p in parts], all(f for _, i, _ in flags for f in i),
                        "items")
    user_index, item_index, values, shard = _global_rows(parts, orders, users, items)
    n_users, n_items = len(users), len(items)

    # to the owners of the users: they see every interaction of a user, so they resolve
    # pairs repeated across shards exactly as one process would
    if size > 1:
        owner = user_index % size
        columns = [user_index, item_index, values, shard]
        del user_index, item_index, values, shard  # _exchange frees each once it is sent
        user_index, item_index, values, shard = _exchange(group, owner, columns)
        del owner
        user_index //= size
    error: BaseException | None = None
    by_user = None
    try:
        by_user = _resolve(user_index, item_index, values, shard, len(range(
            group.rank, n_users, size)), n_items, duplicates, group, users, items, shard_names)
    except DataError as caught:
        error = caught
    del user_index, item_index, values, shard
    group.agree(error)
    assert by_user is not None
    if size == 1:
        by_item = by_user.T.tocsr()
        by_item.sort_indices()
    else:
        rows = by_user.tocoo()
        columns = [rows.col, (rows.row.astype(np.int64) * size + group.rank).astype(np.int32),
                   rows.data]
        owner = rows.col % size
        del rows
        item_index, user_index, values = _exchange(group, owner, columns)
        del owner
        by_item = _sorted_rows(item_index // size, user_index, values,
                               len(range(group.rank, n_items, size)), n_users)
        del item_index, user_index, values

    user_counts = torch.zeros(len(users), dtype=torch.float64)
    user_counts[torch.from_numpy(np.arange(group.rank, len(users), size))] = torch.from_numpy(
        np.diff(by_user.indptr).astype(np.float64))
    item_counts = torch.zeros(len(items), dtype=torch.float64)
    item_counts[torch.from_numpy(np.arange(group.rank, len(items), size))] = torch.from_numpy(
        np.diff(by_item.indptr).astype(np.float64))
    group.all_reduce(user_counts)
    group.all_reduce(item_counts)
    local = by_user.data.astype(np.float64)
    sums = group.all_reduce(torch.tensor([len(local), local.sum(), (local**2).sum()],
                                         dtype=torch.float64))
    extremes = group.all_reduce(torch.tensor(
        [-local.min() if len(local) else -np.inf, local.max() if len(local) else -np.inf],
        dtype=torch.float64), op="max")
    total = int(sums[0])
    mean = float(sums[1] / total)
    variance = max(0.0, float(sums[2] / total) - mean**2)
    spread = float(np.sqrt(variance))
    low, high = -float(extremes[0]), float(extremes[1])
    return Partition(
        group=group, users=users, items=items, feedback=feedback, has_values=has_values,
        user_rows=by_user, item_rows=by_item, user_counts=user_counts.numpy(),
        item_counts=item_counts.numpy(), total=total, mean=mean,
        std=spread if spread > 1e-6 else 1.0,
        rating_range=(low, high) if feedback == "explicit" and has_values else None)


def _vocabulary(group: Group, maps: Sequence[IdMap], integer: bool, name: str) -> IdMap:
    """The sorted union of every rank's ids, integers only when all ranks' ids are."""
    local = [m.to_numpy() for m in maps if len(m)]
    if integer:
        mine = (np.unique(np.concatenate(local)).astype(np.int64) if local
                else np.empty(0, dtype=np.int64))
    else:
        mine = (np.unique(np.concatenate([x.astype(str) for x in local]).astype(object))
                if local else np.empty(0, dtype=object))
    every = group.all_gather_object(mine)
    joined = np.concatenate([np.asarray(x, dtype=np.int64 if integer else object)
                             for x in every])
    return IdMap(np.asarray(pd.unique(np.sort(joined) if integer
                                      else np.sort(joined.astype(object)))), name=name)


def _global_rows(parts: list[Interactions], orders: Sequence[int], users: IdMap,
                 items: IdMap) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every row as global user and item indices (int32), its value and its shard's ordinal;
    ``parts`` is emptied as it is copied, so each shard's own arrays go at once."""
    total = sum(len(part) for part in parts)
    user_index = np.empty(total, dtype=np.int32)
    item_index = np.empty(total, dtype=np.int32)
    values = np.empty(total, dtype=np.float32)
    shard = np.empty(total, dtype=np.int32)
    at = 0
    for position in orders:
        part = parts.pop(0)
        end = at + len(part)
        user_index[at:end] = users.index_of(part.users.to_numpy())[part.user_index]
        item_index[at:end] = items.index_of(part.items.to_numpy())[part.item_index]
        values[at:end] = part.weights()
        shard[at:end] = position
        at = end
        del part
    return user_index, item_index, values, shard


def _exchange(group: Group, owner: np.ndarray, columns: list[np.ndarray]
              ) -> list[np.ndarray]:
    """Send every row to rank ``owner[row]``; columns keep their dtypes. ``columns`` is
    emptied as each is sent, so that a column and what arrives for it are never both held
    beside all the others (call with the only references)."""
    masks = [owner == rank for rank in range(group.size)]
    counts = [int(mask.sum()) for mask in masks]
    received = []
    while columns:
        column = columns.pop(0)
        send = np.concatenate([column[mask] for mask in masks])
        del column
        received.append(group.all_to_all_flat(torch.from_numpy(send), counts).numpy())
        del send
    return received


def _resolve(row: np.ndarray, column: np.ndarray, values: np.ndarray, shard: np.ndarray,
             n_rows: int, n_columns: int, duplicates: str, group: Group, users: IdMap,
             items: IdMap, shard_names: Sequence[str]) -> sp.csr_matrix:
    """The CSR matrix of these rows, with pairs repeated across shards resolved by the policy
    (each shard's own repeats were resolved when it was read)."""
    # scipy's counting sort sums repeated pairs: the usual case (none) ends here
    matrix = _sorted_rows(row, column, values, n_rows, n_columns)
    if matrix.nnz == len(values):
        return matrix
    del matrix
    key = row.astype(np.int64) * n_columns + column
    order = np.argsort(key, kind="stable")
    key = key[order]
    repeated = np.flatnonzero(key[1:] == key[:-1])
    column, values = column[order], values[order]
    if len(repeated):
        shard = shard[order]
        if duplicates == "error":
            at = int(repeated[0])
            user = int(key[at] // n_columns) * group.size + group.rank
            raise DataError(
                f"user {users.ids_of([user]).tolist()[0]!r} and item "
                f"{items.ids_of([int(column[at])]).tolist()[0]!r} appear in more than one "
                f"shard ({shard_names[int(shard[at])]} and {shard_names[int(shard[at + 1])]}); "
                f"pass duplicates='last', 'mean' or 'sum' (--duplicates)")
        starts = np.ones(len(key), dtype=bool)
        starts[repeated + 1] = False
        first = np.flatnonzero(starts)
        if duplicates == "last":
            # the row of the latest shard wins; rows of one shard arrive in their own order
            by_shard = np.lexsort((np.arange(len(key)), shard, key))
            last = np.append(first[1:], len(key)) - 1
            kept = values[by_shard[last]]
        else:
            kept = np.add.reduceat(values.astype(np.float64), first)
            if duplicates == "mean":
                kept = kept / np.diff(np.append(first, len(key)))
        key, column, values = key[first], column[first], kept.astype(np.float32)
    counts = np.bincount(key // n_columns, minlength=n_rows) if len(key) else np.zeros(
        n_rows, dtype=np.int64)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    matrix = sp.csr_matrix((values, column, indptr), shape=(n_rows, n_columns))
    matrix.has_sorted_indices = True
    return matrix


def _sorted_rows(row: np.ndarray, column: np.ndarray, values: np.ndarray, n_rows: int,
                 n_columns: int) -> sp.csr_matrix:
    """The CSR matrix of these entries (repeated pairs summed), indices sorted in each row."""
    matrix = sp.csr_matrix((values, (row, column)), shape=(n_rows, n_columns),
                           dtype=np.float32)
    matrix.sort_indices()
    return matrix
