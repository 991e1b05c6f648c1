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

__all__ = ["Partition", "partition"]

#: bits of the order key that hold a row's position inside its shard
_ROW_BITS = 40


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

    def gather_rows(self) -> sp.csr_matrix | None:
        """Every user's row (users x items) on rank 0, ``None`` elsewhere: the seen-item
        matrix a saved model keeps. Collective."""
        rows = self.user_rows.tocoo()
        users = self.own_users[rows.row].astype(np.int64)
        parts = self.group.gather_to_leader(torch.from_numpy(np.stack(
            [users, rows.col.astype(np.int64)], axis=1)))
        values = self.group.gather_to_leader(torch.from_numpy(rows.data.astype(np.float32)))
        if parts is None or values is None:
            return None
        pairs = torch.cat(parts).numpy()
        data = torch.cat(values).numpy()
        matrix = sp.csr_matrix((data, (pairs[:, 0], pairs[:, 1])),
                               shape=(self.n_users, self.n_items), dtype=np.float32)
        matrix.sort_indices()
        return matrix


def partition(group: Group, parts: Sequence[Interactions], shard_names: Sequence[str], *,
              feedback: Feedback, duplicates: DuplicatePolicy = "error",
              orders: Sequence[int] | None = None) -> Partition:
    """Build this rank's :class:`Partition` from the shards it read. Collective: every rank
    calls it, with the shards it read (possibly none).

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
    user_index, item_index, values, order = _global_rows(parts, orders, users, items)

    # to the owners of the users: they see every interaction of a user, so they resolve
    # duplicates exactly as one process would
    user_index, item_index, values, order = _exchange(
        group, user_index % size, user_index, item_index, values, order)
    error: BaseException | None = None
    try:
        user_index, item_index, values = _resolve(user_index, item_index, values, order,
                                                  duplicates, users, items, shard_names)
    except DataError as caught:
        error = caught
    group.agree(error)
    by_user = _rows(user_index // size, item_index, values,
                    len(range(group.rank, len(users), size)), len(items))
    item_index2, user_index2, values2, _ = _exchange(
        group, item_index % size, item_index, user_index, values, np.zeros(len(values),
                                                                          dtype=np.int64))
    own_items = len(range(group.rank, len(items), size))
    by_item = _rows(item_index2 // size, user_index2, values2, own_items, len(users))

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


def _global_rows(parts: Sequence[Interactions], orders: Sequence[int], users: IdMap,
                 items: IdMap) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    user_index, item_index, values, order = [], [], [], []
    for part, position in zip(parts, orders, strict=True):
        user_index.append(users.index_of(part.users.to_numpy())[part.user_index])
        item_index.append(items.index_of(part.items.to_numpy())[part.item_index])
        values.append(part.weights().astype(np.float32))
        order.append((np.int64(position) << _ROW_BITS) + np.arange(len(part), dtype=np.int64))
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32), empty
    return (np.concatenate(user_index), np.concatenate(item_index), np.concatenate(values),
            np.concatenate(order))


def _exchange(group: Group, owner: np.ndarray, *columns: np.ndarray
              ) -> tuple[np.ndarray, ...]:
    """Send every row to rank ``owner[row]``; columns keep their dtypes."""
    by_owner = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[by_owner], np.arange(group.size + 1))
    received = []
    for column in columns:
        arranged = torch.from_numpy(np.ascontiguousarray(column[by_owner]))
        chunks = [arranged[bounds[r]:bounds[r + 1]] for r in range(group.size)]
        received.append(torch.cat(group.all_to_all(chunks)).numpy())
    return tuple(received)


def _resolve(user_index: np.ndarray, item_index: np.ndarray, values: np.ndarray,
             order: np.ndarray, duplicates: str, users: IdMap, items: IdMap,
             shard_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by (user, item) and apply the duplicate policy to repeated pairs."""
    sort = np.lexsort((order, item_index, user_index))
    user_index, item_index, values, order = (user_index[sort], item_index[sort], values[sort],
                                             order[sort])
    repeated = np.flatnonzero((user_index[1:] == user_index[:-1])
                              & (item_index[1:] == item_index[:-1]))
    if len(repeated) == 0:
        return user_index, item_index, values
    if duplicates == "error":
        at = int(repeated[0])
        where = [f"{shard_names[int(o >> _ROW_BITS)]} row {int(o & ((1 << _ROW_BITS) - 1)) + 1}"
                 for o in (order[at], order[at + 1])]
        raise DataError(
            f"user {users.ids_of([user_index[at]]).tolist()[0]!r} and item "
            f"{items.ids_of([item_index[at]]).tolist()[0]!r} appear more than once ({where[0]} and "
            f"{where[1]}); pass duplicates='last', 'mean' or 'sum' (--duplicates)")
    starts = np.ones(len(user_index), dtype=bool)
    starts[repeated + 1] = False
    first = np.flatnonzero(starts)
    if duplicates == "last":
        last = np.append(first[1:], len(values)) - 1
        kept = values[last]
    else:
        kept = np.add.reduceat(values.astype(np.float64), first)
        if duplicates == "mean":
            kept = kept / np.diff(np.append(first, len(values)))
    return user_index[first], item_index[first], kept.astype(np.float32)


def _rows(row: np.ndarray, column: np.ndarray, values: np.ndarray, n_rows: int,
          n_columns: int) -> sp.csr_matrix:
    matrix = sp.csr_matrix((values.astype(np.float32), (row, column)),
                           shape=(n_rows, n_columns), dtype=np.float32)
    matrix.sort_indices()
    return matrix
