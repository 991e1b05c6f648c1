"""Distributed alternating least squares: :class:`~latentrec.ALS` and
:class:`~latentrec.ImplicitALS` over the ranks of a
:class:`~latentrec.training.partition.Partition`.

Rank ``r`` owns users ``u % P == r`` and items ``i % P == r``. A half-sweep solves the rank's
own rows (users, then items) with the same per-row solvers as one process, from the factors of
the partners those rows touch. The partners come one of two ways, chosen once per side by the
bytes each would send (and logged):

- **all-gather**: every rank sends its whole table to every other rank. Cheapest to set up,
  and the better choice when most ranks touch most partners (small catalogues, dense data).
- **in/out blocks** (Spark ALS's idea): each rank sends a row only to the ranks whose rows
  touch it, with one all-to-all. The ranks agree once, before training, who needs what.

The Gram matrix ``Y^T Y`` of implicit ALS is a sum over ranks (an all-reduce). With the same
initial factors (drawn for the whole table from the same seed, as one process draws them) each
row is solved from the same numbers as in one process, so the factors agree with
single-process training up to the order of the floating-point sums in the Gram matrix.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from latentrec._rng import torch_generator
from latentrec.errors import InvalidParameterError
from latentrec.models._solvers import (
    SparseRows,
    bias_penalties,
    cg_solve,
    exact_solve,
    ridge_rows,
)
from latentrec.training.distributed import Group
from latentrec.training.minibatch import resolve_device
from latentrec.training.partition import Partition

__all__ = ["DistributedALSTrainable", "DistributedImplicitALSTrainable", "Partners",
           "agreed_seed", "assemble", "exchange_buffer", "own_rows"]

logger = logging.getLogger(__name__)

#: all-gather is chosen unless in/out blocks would send less than this share of its bytes
_GATHER_UNLESS = 0.8


def agreed_seed(group: Group, seed: int | None) -> int:
    """The seed every rank uses: the configured one, or rank 0's random draw for ``None``."""
    return int(group.broadcast_object(seed if seed is not None else secrets.randbits(63)))


def own_rows(group: Group, table: torch.Tensor) -> torch.Tensor:
    """This rank's rows (``i % P == rank``) of a whole table."""
    return table[group.rank::group.size].clone()


def assemble(group: Group, own: torch.Tensor, rows: int) -> torch.Tensor | None:
    """The whole table on rank 0 from every rank's own rows (``None`` elsewhere). Collective."""
    own = own.cpu()
    table = torch.empty((rows, *own.shape[1:]), dtype=own.dtype) if group.leader else None
    # one rank's rows at a time: rank 0 never holds all the parts beside the table
    for rank, (part,) in group.to_leader([own.reshape(-1)]):
        assert table is not None
        table[rank::group.size] = part.reshape(-1, *own.shape[1:])
    return table


def _renumber(indices: np.ndarray, size: int, block: int, *, forward: bool,
              chunk: int = 1 << 20) -> None:
    """Renumber partner ``i`` as ``(i % size) * block + i // size`` (its row in the
    all-gathered table), or back, in place, a chunk at a time (no full-length temporaries)."""
    for start in range(0, len(indices), chunk):
        part = indices[start:start + chunk]
        if forward:  # i -> (i % size) * block + i // size
            quotient, remainder = np.divmod(part, size)
            np.multiply(remainder, block, out=part)
        else:  # c -> (c % block) * size + c // block
            quotient, remainder = np.divmod(part, block)
            np.multiply(remainder, size, out=part)
        part += quotient


def exchange_buffer(sides: list[Partners], width: int) -> torch.Tensor | None:
    """One flat buffer that the all-gathered partner tables of both sides are written into,
    each sweep (``None`` when no side all-gathers): a fresh table per half-sweep costs its
    page faults every time."""
    sizes = [side.group.size * side.block * width for side in sides
             if side.mode == "all-gather" and side.group.size > 1]
    return torch.empty(max(sizes)) if sizes else None


def _with_values(rows: sp.csr_matrix, values: np.ndarray) -> sp.csr_matrix:
    """``rows``' structure with other values. :class:`Partners` gives it new index arrays,
    and only those are ever sorted in place."""
    return sp.csr_matrix((values, rows.indices, rows.indptr), shape=rows.shape, copy=False)


class Partners:
    """How one side's rows get the factors of the partners they touch (see the module)."""

    def __init__(self, group: Group, rows: sp.csr_matrix, n_partners: int, width: int,
                 name: str) -> None:
        size, rank = group.size, group.rank
        self.group = group
        self.n_partners = n_partners
        needed = np.unique(rows.indices).astype(np.int64)
        owner = needed % size
        wanted = [needed[owner == r] for r in range(size)]
        asked = group.all_to_all([torch.from_numpy(w) for w in wanted])
        #: local positions (in this rank's own table) of the rows each rank needs from here
        self.send = [torch.from_numpy(a.numpy() // size) for a in asked]
        own_partners = len(range(rank, n_partners, size))
        traffic = group.all_reduce(torch.tensor(
            [sum(len(a) for r, a in enumerate(asked) if r != rank),
             own_partners * (size - 1)], dtype=torch.float64))
        in_out, gathered = (float(x) * width * 4 for x in traffic)
        forced = os.environ.get("LATENTREC_EXCHANGE", "auto")
        if forced not in ("auto", "all-gather", "in/out"):
            raise InvalidParameterError(f"LATENTREC_EXCHANGE must be auto, all-gather or "
                                        f"in/out, got {forced!r}")
        if forced == "auto":
            forced = "all-gather" if in_out >= _GATHER_UNLESS * gathered else "in/out"
        self.mode = "all-gather" if size == 1 or forced == "all-gather" else "in/out blocks"
        if group.leader and size > 1:
            logger.info("%s half-sweep: %s (sends %.3g MB per sweep; the other way %.3g MB)",
                        name, self.mode, (gathered if self.mode == "all-gather" else in_out) / 1e6,
                        (in_out if self.mode == "all-gather" else gathered) / 1e6)
        #: rows per rank in the all-gathered table (rank r's rows start at r * block)
        self.block = -(-n_partners // size)
        self.borrowed: np.ndarray | None = None
        if self.mode == "all-gather":
            # the table comes rank by rank: partner i sits at (i % P) * block + i // P. The
            # partition's own index array is renumbered in place (a copy would be 4 bytes per
            # interaction) and given back by restore()
            if size > 1:
                _renumber(rows.indices, size, self.block, forward=True)
                self.borrowed = rows.indices
            self.rows = sp.csr_matrix((rows.data, rows.indices, rows.indptr),
                                      shape=(rows.shape[0], size * self.block), copy=False)
            self.rows.has_sorted_indices = size == 1
            return
        order = np.concatenate(wanted)  # the received table's rows, in this order
        # the k-th smallest needed partner sits at argsort(order)[k] in the received table
        compact = np.argsort(order, kind="stable")[np.searchsorted(needed, rows.indices)]
        self.rows = sp.csr_matrix((rows.data.copy(), compact.astype(np.int32),
                                   rows.indptr.copy()), shape=(rows.shape[0], len(order)))

    def restore(self) -> None:
        """Give the partition its index array back as it was (after training)."""
        if self.borrowed is not None:
            _renumber(self.borrowed, self.group.size, self.block, forward=False)
            self.borrowed = None

    def fetch(self, own: torch.Tensor, buffer: torch.Tensor | None = None) -> torch.Tensor:
        """The partner table that ``self.rows``' column indices point into; in all-gather
        mode on the CPU, written into the front of ``buffer`` (a flat tensor the trainable
        reuses for both sides) when it is given."""
        group = self.group
        if self.mode == "all-gather":
            width = own.shape[1]
            rows = group.size * self.block
            out = (buffer[:rows * width].view(rows, width)
                   if buffer is not None and own.device.type == "cpu" and group.size > 1
                   else None)
            return group.all_gather_blocks(own.cpu(), self.block, out).to(own.device)
        chunks = [own.cpu()[positions] for positions in self.send]
        received: torch.Tensor = torch.cat(group.all_to_all(chunks))
        return received.to(own.device)


class DistributedImplicitALSTrainable:
    """One rank of :class:`~latentrec.ImplicitALS` training (CG kernel on the CPU, the torch
    solvers elsewhere)."""

    def __init__(self, model: Any, data: Partition) -> None:
        config = model.config
        self.model, self.config, self.group = model, config, data.group
        self.n_users, self.n_items = data.n_users, data.n_items
        self.device = resolve_device(config.device)
        k = config.factors
        # new values (the confidences) on the partition's own index arrays, not copies of them
        user_rows = _with_values(data.user_rows, model.confidence_weights(data.user_rows.data))
        if data.single_use:
            # nothing reads the item rows' values after this fit (the seen matrix comes from
            # the user rows): the confidences take their place
            data.released = True
            data.item_rows.data[:] = model.confidence_weights(data.item_rows.data)
            item_rows = data.item_rows
        else:
            item_rows = _with_values(data.item_rows,
                                     model.confidence_weights(data.item_rows.data))
        self.users = Partners(self.group, user_rows, data.n_items, k, "user")
        self.items = Partners(self.group, item_rows, data.n_users, k, "item")
        #: made on the first sweep and dropped by publish (rank 0 assembles the tables then)
        self.buffer: torch.Tensor | None = None
        self.compiled = self.device.type == "cpu" and config.solver == "cg"
        self.user_reg = self._reg(user_rows)
        self.item_reg = self._reg(item_rows)
        generator = torch_generator(agreed_seed(self.group, config.seed))
        self.user_factors = torch.zeros(len(user_rows.indptr) - 1, k, device=self.device)
        self.item_factors = own_rows(self.group, torch.randn(data.n_items, k,
                                                             generator=generator)
                                     * config.init_std).to(self.device)
        self.total = len(data)

    def _reg(self, rows: sp.csr_matrix) -> torch.Tensor:
        counts = torch.from_numpy(np.diff(rows.indptr).astype(np.float32)).clamp_min(1.0)
        penalty: torch.Tensor = float(self.config.reg) * counts.pow(self.config.reg_exponent)
        return penalty.to(self.device)

    def _half(self, partners: Partners, current: torch.Tensor, other_own: torch.Tensor,
              reg: torch.Tensor, rotate: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Solve this rank's rows of one side; returns them and the partner table used."""
        gram = self.group.all_reduce(other_own.T @ other_own)
        other = partners.fetch(other_own, self.buffer)
        rows = partners.rows
        if self.compiled:
            from latentrec.models._als_kernels import cg_rows

            steps = self.config.cg_steps
            indices = rows.indices.astype(np.int32, copy=False)
            if not rotate:
                updated = current.contiguous()
                cg_rows(rows.indptr, indices, rows.data, other.contiguous().numpy(),
                        gram.numpy(), False, reg.numpy(), updated.numpy(), steps)
                return updated, other
            eigenvalues, basis = torch.linalg.eigh(gram.double())
            basis = basis.to(other.dtype)
            rotated = current @ basis
            cg_rows(rows.indptr, indices, rows.data, (other @ basis).numpy(),
                    torch.diag(eigenvalues.to(other.dtype)).numpy(), True, reg.numpy(),
                    rotated.numpy(), steps)
            return torch.mm(rotated, basis.T, out=current.contiguous()), other
        solver_rows = SparseRows.from_csr(rows, self.device)
        solver_rows.targets = solver_rows.weights + 1.0
        diagonal = reg[:, None].expand(-1, other.shape[1])
        if self.config.solver == "cholesky":
            return exact_solve(solver_rows, other, gram, diagonal), other
        return cg_solve(solver_rows, other, gram, diagonal, current, self.config.cg_steps), other

    def train_epoch(self) -> dict[str, float]:
        if self.buffer is None:
            self.buffer = exchange_buffer([self.users, self.items],
                                          self.user_factors.shape[1])
        # one process rotates a side when its rows are at least as many as their partners
        self.user_factors, _ = self._half(self.users, self.user_factors, self.item_factors,
                                          self.user_reg, self.n_users >= self.n_items)
        self.item_factors, user_table = self._half(self.items, self.item_factors,
                                                   self.user_factors, self.item_reg,
                                                   self.n_items >= self.n_users)
        logs: dict[str, float] = {}
        if self.config.report_loss:
            logs["loss"] = self._loss(user_table)
        return logs

    def _loss(self, user_table: torch.Tensor) -> float:
        """As one process computes it, from this rank's items and the user table it holds."""
        from latentrec.models._als_kernels import implicit_loss_rows

        users, items = self.user_factors, self.item_factors
        rows = self.items.rows
        observed = implicit_loss_rows(rows.indptr, rows.indices, rows.data,
                                      items.cpu().contiguous().numpy(),
                                      user_table.cpu().contiguous().numpy())
        parts = torch.cat([(users.T @ users).flatten(), (items.T @ items).flatten()]).double()
        penalty = float((self.user_reg[:, None] * users**2).sum()
                        + (self.item_reg[:, None] * items**2).sum())
        sums = self.group.all_reduce(torch.cat([parts.cpu(), torch.tensor(
            [observed, penalty], dtype=torch.float64)]))
        k2 = users.shape[1] ** 2
        everything = float((sums[:k2] * sums[k2:2 * k2]).sum())
        return (everything + float(sums[-2]) + float(sums[-1])) / max(1, self.total)

    def close(self) -> None:
        """Give the partition its rows back as they were."""
        self.users.restore()
        self.items.restore()

    def publish(self) -> None:
        self.buffer = None
        users = assemble(self.group, self.user_factors, self.n_users)
        items = assemble(self.group, self.item_factors, self.n_items)
        if users is not None and items is not None:
            self.model._set_factors(users, items)

    def state_dict(self) -> dict[str, Any]:
        users = assemble(self.group, self.user_factors, self.n_users)
        items = assemble(self.group, self.item_factors, self.n_items)
        return {} if users is None else {"user_factors": users, "item_factors": items}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.user_factors = own_rows(self.group, state["user_factors"]).to(self.device)
        self.item_factors = own_rows(self.group, state["item_factors"]).to(self.device)


class DistributedALSTrainable:
    """One rank of :class:`~latentrec.ALS` (ALS-WR with biases) training."""

    def __init__(self, model: Any, data: Partition) -> None:
        config = model.config
        self.model, self.group = model, data.group
        self.n_users, self.n_items = data.n_users, data.n_items
        self.device = resolve_device(config.device)
        self.mean = data.mean
        k = config.factors
        self.users = Partners(self.group, _with_values(data.user_rows, data.user_rows.data.copy()),
                              data.n_items, k + 1, "user")
        self.items = Partners(self.group, _with_values(data.item_rows, data.item_rows.data.copy()),
                              data.n_users, k + 1, "item")
        self.buffer: torch.Tensor | None = None  # as in DistributedImplicitALSTrainable
        self.by_user = SparseRows.from_csr(self.users.rows, self.device)
        self.by_item = SparseRows.from_csr(self.items.rows, self.device)
        self.user_reg = bias_penalties(self.by_user, config.reg, config.reg_bias, k)
        self.item_reg = bias_penalties(self.by_item, config.reg, config.reg_bias, k)
        generator = torch_generator(agreed_seed(self.group, config.seed))
        users = torch.randn(data.n_users, k, generator=generator) * config.init_std
        items = torch.randn(data.n_items, k, generator=generator) * config.init_std
        self.user_factors = own_rows(self.group, users).to(self.device)
        self.item_factors = own_rows(self.group, items).to(self.device)
        self.user_bias = torch.zeros(len(self.user_factors), device=self.device)
        self.item_bias = torch.zeros(len(self.item_factors), device=self.device)
        self.total = len(data)

    def _half(self, partners: Partners, rows: SparseRows, reg: torch.Tensor,
              other: torch.Tensor, other_bias: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        table = partners.fetch(torch.cat([other, other_bias[:, None]], dim=1), self.buffer)
        design = torch.cat([table[:, :-1], torch.ones(len(table), 1, device=self.device)], dim=1)
        targets = rows.weights - self.mean - table[:, -1][rows.indices]
        solution = ridge_rows(rows, design, targets, reg)
        return solution[:, :-1].contiguous(), solution[:, -1].contiguous(), table

    def train_epoch(self) -> dict[str, float]:
        if self.buffer is None:
            self.buffer = exchange_buffer([self.users, self.items],
                                          self.user_factors.shape[1] + 1)
        self.user_factors, self.user_bias, _ = self._half(
            self.users, self.by_user, self.user_reg, self.item_factors, self.item_bias)
        self.item_factors, self.item_bias, table = self._half(
            self.items, self.by_item, self.item_reg, self.user_factors, self.user_bias)
        rows = self.by_item  # this rank's items against the user table it just used
        predicted = (rows.dots(self.item_factors, table[:, :-1]) + self.mean
                     + self.item_bias[rows.row_of] + table[:, -1][rows.indices])
        error = self.group.all_reduce(torch.tensor(
            [float(((predicted - rows.weights) ** 2).double().sum())], dtype=torch.float64))
        return {"loss": float(error[0]) / max(1, self.total)}

    _TABLES = ("user_factors", "item_factors", "user_bias", "item_bias")

    def close(self) -> None:
        """Give the partition its rows back as they were."""
        self.users.restore()
        self.items.restore()

    def _assembled(self) -> dict[str, torch.Tensor] | None:
        """The whole tables on rank 0 (``None`` elsewhere). Collective."""
        tables = {name: assemble(self.group, getattr(self, name),
                                 self.n_users if name.startswith("user") else self.n_items)
                  for name in self._TABLES}
        return None if not self.group.leader else {k: v for k, v in tables.items()
                                                   if v is not None}

    def publish(self) -> None:
        self.buffer = None
        tables = self._assembled()
        if tables is not None:
            self.model._set_factors(*tables.values(), self.mean)

    def state_dict(self) -> dict[str, Any]:
        return self._assembled() or {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._TABLES:
            setattr(self, name, own_rows(self.group, state[name]).to(self.device))
