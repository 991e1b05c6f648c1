"""Distributed stratified SGD (DSGD; Gemulla et al., KDD 2011) for :class:`~latentrec.BiasedMF`'s
compiled per-rating kernel, with the bucket rotation of PyTorch-BigGraph.

The rating matrix is cut into a ``P x P`` grid: user stratum ``u % P`` (the rank that owns the
user) by item stratum ``i % P``. An epoch is ``P`` sub-epochs. In sub-epoch ``t`` rank ``r``
trains the ratings of its own users whose items lie in stratum ``(r + t) % P``, holding that
item block (factors, biases and, with AdaGrad, accumulators); the ``P`` blocks trained at the
same time share no user and no item, so the ranks never write the same row. Between sub-epochs
every rank passes the item block it holds to rank ``r - 1`` (:meth:`Group.shift
<latentrec.training.distributed.Group.shift>`), so after ``P`` sub-epochs every block is home
again. Per sub-epoch a rank sends one block, ``ceil(n_items / P) x (factors + 2)`` floats (blocks
are padded to that size: a shift needs equal shapes everywhere); user rows never move.

Each rank splits its ratings by item stratum once; inside a block the ratings are shuffled every
sub-epoch by the rank's own seeded stream and run through the same serial kernel as one process
(:func:`latentrec.models._kernels.sgd_epoch`), on ratings divided by the global standard
deviation, with the global mean, the same learning-rate decay and the same initial factors
(drawn for the whole tables from the agreed seed, as one process draws them). Rank 0's shuffle
stream is the one a single process uses, so with ``P = 1`` and ratings stored in (user, item)
order the result is exactly single-process training.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch

from latentrec._rng import derive_seed, numpy_rng
from latentrec.models._distributed_als import agreed_seed, assemble
from latentrec.models._sgd_setup import PARALLEL_FROM, normal_rows
from latentrec.training.partition import Partition

__all__ = ["DSGDTrainable", "rank_seed"]


def rank_seed(seed: int, stream: int, rank: int) -> int:
    """The seed of rank ``rank``'s private random stream: rank 0 gets the seed one process
    uses for ``stream`` (``derive_seed(seed, stream)``, so a one-process run draws what a
    single process draws), other ranks independent ones."""
    single = cast(int, derive_seed(seed, stream))
    return single if rank == 0 else cast(int, derive_seed(single, 1_000_003 + rank))


class DSGDTrainable:
    """One rank of :class:`~latentrec.BiasedMF` training with DSGD (see the module)."""

    def __init__(self, model: Any, data: Partition) -> None:
        config = model.config
        group = data.group
        self.model, self.config, self.group = model, config, group
        size, rank = group.size, group.rank
        self.n_users, self.n_items = data.n_users, data.n_items
        self.own_items = len(range(rank, data.n_items, size))
        self.block_rows = -(-data.n_items // size)
        self.scale = data.std
        self.global_mean = data.mean
        self.total = len(data)
        k = config.factors
        seed = agreed_seed(group, config.seed)
        init = numpy_rng(seed)
        # the whole tables, drawn as one process draws them; each rank keeps its own rows
        users = normal_rows(init, data.n_users, k, config.init_std)
        items = normal_rows(init, data.n_items, k, config.init_std)
        self.user_factors = np.ascontiguousarray(users[rank::size])
        del users
        self.item_factors = np.zeros((self.block_rows, k), dtype=np.float32)
        self.item_factors[:self.own_items] = items[rank::size]
        del items
        n_own_users = data.user_rows.shape[0]
        self.user_bias = np.zeros(n_own_users, dtype=np.float32)
        self.item_bias = np.zeros(self.block_rows, dtype=np.float32)
        # AdaGrad accumulators start at 1, as in one process; empty arrays mean plain SGD
        self.adaptive = config.optimizer == "adagrad"
        self.user_squares = np.ones(n_own_users if self.adaptive else 0, dtype=np.float32)
        self.item_squares = np.ones(self.block_rows if self.adaptive else 0, dtype=np.float32)
        self.shuffle = numpy_rng(rank_seed(seed, 1, rank))  # the stream a process shuffles with
        # as one process: ratings shuffled below a million, else run in (user, item) order
        # inside each block, which keeps the user rows in cache (about 2x faster at 20M)
        grid = config.blocks or (1 if self.total < PARALLEL_FROM else 8)
        self.ordered = grid > 1
        # a rank's block is cut into tiles about the size of one process's grid cells, walked
        # tile by tile: a block of 1/P of the users and items does not stay in cache
        self.blocks = self._split(data, max(1, grid // size) if self.ordered else 1)
        self.lr = config.lr
        self.lr_bias = config.lr_bias
        self.epoch = 0

    def _split(self, data: Partition, tiles: int
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """This rank's ratings by item stratum: (local user row, local item row, rating / s),
        in (user, item) order inside each of the ``tiles x tiles`` tiles of a stratum."""
        size = self.group.size
        rows = data.user_rows
        users = np.repeat(np.arange(rows.shape[0], dtype=np.int32), np.diff(rows.indptr))
        items = rows.indices.astype(np.int64)
        ratings = rows.data.astype(np.float32) / np.float32(self.scale)
        stratum = items % size
        order = np.argsort(stratum, kind="stable")
        bounds = np.searchsorted(stratum[order], np.arange(size + 1))
        blocks = []
        for s in range(size):
            chosen = order[bounds[s]:bounds[s + 1]]
            if tiles > 1:
                tile = ((users[chosen].astype(np.int64) * tiles // max(1, rows.shape[0]))
                        * tiles + (items[chosen] // size) * tiles // self.block_rows)
                chosen = chosen[np.argsort(tile, kind="stable")]
            blocks.append((users[chosen], (items[chosen] // size).astype(np.int32),
                           ratings[chosen]))
        return blocks

    def train_epoch(self) -> dict[str, float]:
        from latentrec.models import _kernels

        config = self.config
        size, rank = self.group.size, self.group.rank
        squared_error = 0.0
        for t in range(size):
            users, items, ratings = self.blocks[(rank + t) % size]
            if not self.ordered:
                order = self.shuffle.permutation(len(ratings))
                users, items, ratings = users[order], items[order], ratings[order]
            squared_error += _kernels.sgd_epoch(
                users, items, ratings, self.user_factors,
                self.item_factors, self.user_bias, self.item_bias, self.user_squares,
                self.item_squares, self.global_mean / self.scale, self.lr, config.reg,
                config.reg_bias, self.lr_bias)
            if size > 1:
                self._pass_block()
        total = self.group.all_reduce(torch.tensor([squared_error], dtype=torch.float64))
        self.epoch += 1
        self.lr *= config.lr_decay
        self.lr_bias *= config.lr_decay
        return {"loss": float(total[0]) * self.scale**2 / max(1, self.total)}

    def _pass_block(self) -> None:
        """Send the item block held here to rank ``r - 1``; take rank ``r + 1``'s."""
        k = self.item_factors.shape[1]
        parts = [self.item_factors, self.item_bias[:, None]]
        if self.adaptive:
            parts.append(self.item_squares[:, None])
        received = self.group.shift(torch.from_numpy(np.concatenate(parts, axis=1))).numpy()
        self.item_factors = np.ascontiguousarray(received[:, :k])
        self.item_bias = np.ascontiguousarray(received[:, k])
        if self.adaptive:
            self.item_squares = np.ascontiguousarray(received[:, k + 1])

    # the item block held between epochs is this rank's own (every block is home again)
    def _tables(self) -> list[torch.Tensor | None]:
        own = self.own_items
        pairs = [(self.user_factors, self.n_users), (self.item_factors[:own], self.n_items),
                 (self.user_bias, self.n_users), (self.item_bias[:own], self.n_items)]
        if self.adaptive:
            pairs += [(self.user_squares, self.n_users), (self.item_squares[:own], self.n_items)]
        return [assemble(self.group, torch.from_numpy(np.ascontiguousarray(table)), rows)
                for table, rows in pairs]

    def publish(self) -> None:
        tables = self._tables()
        if tables[0] is None:
            return
        users, items, user_bias, item_bias = (t.numpy() for t in tables[:4] if t is not None)
        root = float(np.sqrt(self.scale))
        self.model._set_factors(
            torch.from_numpy(users * root), torch.from_numpy(items * root),
            torch.from_numpy(user_bias * self.scale), torch.from_numpy(item_bias * self.scale),
            self.global_mean)

    def state_dict(self) -> dict[str, Any]:
        """Whole tables on rank 0 (``{}`` elsewhere), in the single-process layout, with every
        rank's shuffle stream (``shuffle[r]`` is rank ``r``'s). Collective."""
        tables = self._tables()
        streams = self.group.all_gather_object(self.shuffle.bit_generator.state)
        if tables[0] is None:
            return {}
        arrays = [t.numpy() for t in tables if t is not None]
        empty = np.ones(0, dtype=np.float32)
        return {"parameters": dict(zip(("user_factors", "item_factors", "user_bias",
                                        "item_bias"), arrays[:4], strict=True)),
                "squares": arrays[4:] if self.adaptive else [empty, empty.copy()],
                "lr": self.lr, "lr_bias": self.lr_bias, "epoch": self.epoch,
                "shuffle": streams}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Keep this rank's rows of the whole state. A checkpoint of ``P`` ranks restores each
        rank's shuffle stream; one of a single process (a dict) restores rank 0's, and other
        ranks keep theirs (the run continues, but not as the uninterrupted run would)."""
        size, rank, own = self.group.size, self.group.rank, self.own_items
        parameters = state["parameters"]
        self.user_factors = _rows(parameters["user_factors"], rank, size)
        self.user_bias = _rows(parameters["user_bias"], rank, size)
        self.item_factors = np.zeros_like(self.item_factors)
        self.item_factors[:own] = _rows(parameters["item_factors"], rank, size)
        self.item_bias = np.zeros_like(self.item_bias)
        self.item_bias[:own] = _rows(parameters["item_bias"], rank, size)
        if self.adaptive:
            users, items = state["squares"]
            self.user_squares = _rows(users, rank, size)
            self.item_squares = np.ones_like(self.item_squares)
            self.item_squares[:own] = _rows(items, rank, size)
        self.lr, self.lr_bias = float(state["lr"]), float(state["lr_bias"])
        self.epoch = int(state["epoch"])
        streams = state["shuffle"]
        if isinstance(streams, dict):
            streams = [streams]
        if rank < len(streams):
            self.shuffle.bit_generator.state = streams[rank]


def _rows(table: Any, rank: int, size: int) -> np.ndarray:
    whole = table.numpy() if isinstance(table, torch.Tensor) else np.asarray(table)
    return np.ascontiguousarray(whole[rank::size], dtype=np.float32)
