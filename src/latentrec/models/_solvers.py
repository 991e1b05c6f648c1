"""Batched least-squares solvers for alternating least squares, in PyTorch (CPU or GPU).

Each half-step of ALS solves, for every row ``u`` of a sparse matrix (users when updating
users, items when updating items), a ``k x k`` system

    (G + sum_i w_ui y_i y_i^T + lambda_u I) x_u = sum_i v_ui y_i

where ``G`` is a shared Gram matrix (``Y^T Y`` for implicit ALS, zero for explicit ALS).
``exact_solve`` forms every system (``sum_i w_ui y_i y_i^T`` for a block of rows is one sparse
matrix product with the row-wise outer products ``y_i (x) y_i``) and factorises it with a batched
Cholesky. ``cg_solve`` never forms them: it runs a few conjugate-gradient steps from the current
factors, each costing O(nnz k + rows k^2) (Hu, Koren & Volinsky's ``Y^T Y`` trick).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from latentrec.errors import InvalidParameterError

__all__ = ["SparseRows", "cg_solve", "exact_solve"]

#: rows of the systems formed at once by exact_solve (bounds memory at about 64 MB at k=64)
_MAX_SYSTEM_FLOATS = 16_000_000
#: largest table of partner outer products exact_solve builds at once (2 GB of float32)
_MAX_OUTER_FLOATS = 512_000_000
#: largest set of systems exact_solve holds at once when it slices the partners (4 GB)
_MAX_ALL_SYSTEMS_FLOATS = 1_000_000_000


class SparseRows:
    """A CSR matrix split into the parts the solvers need, on one device."""

    def __init__(self, indptr: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor,
                 targets: torch.Tensor, n_cols: int) -> None:
        self.indptr = indptr
        self.indices = indices
        self.weights = weights  # w_ui: the coefficient of y_i y_i^T
        self.targets = targets  # v_ui: the coefficient of y_i on the right-hand side
        self.n_rows = len(indptr) - 1
        self.n_cols = n_cols
        self._row_of: torch.Tensor | None = None

    @property
    def row_of(self) -> torch.Tensor:
        """The row of every entry (built on first use: 8 bytes per interaction)."""
        if self._row_of is None:
            self._row_of = torch.repeat_interleave(
                torch.arange(self.n_rows, device=self.indptr.device),
                self.indptr[1:] - self.indptr[:-1])
        return self._row_of

    @classmethod
    def from_csr(cls, matrix: sp.csr_matrix, device: torch.device | str = "cpu") -> SparseRows:
        """Rows of ``matrix``; its values become both ``weights`` and ``targets``."""
        matrix = sp.csr_matrix(matrix)
        matrix.sort_indices()
        values = torch.from_numpy(matrix.data.astype(np.float32)).to(device)
        return cls(torch.from_numpy(matrix.indptr.astype(np.int64)).to(device),
                   torch.from_numpy(matrix.indices.astype(np.int64)).to(device),
                   values, values.clone(), matrix.shape[1])

    def counts(self) -> torch.Tensor:
        """Entries per row, as floats."""
        return (self.indptr[1:] - self.indptr[:-1]).to(torch.float32)

    def matrix(self, values: torch.Tensor, start: int = 0, stop: int | None = None
               ) -> torch.Tensor:
        """Rows ``start:stop`` as a sparse CSR tensor holding ``values``."""
        stop = self.n_rows if stop is None else stop
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                self.indptr[start:stop + 1] - lo, self.indices[lo:hi], values[lo:hi],
                size=(stop - start, self.n_cols), check_invariants=False)


def exact_solve(rows: SparseRows, factors: torch.Tensor, gram: torch.Tensor | None,
                reg: torch.Tensor) -> torch.Tensor:
    """Solve every row's system exactly; ``reg`` (rows x k) is the diagonal added per row.

    The data term of a block of rows is one sparse product with the table of partner outer
    products ``y_i (x) y_i``. When that table is too big (1M users at k=64: 16 GB), the systems
    of all rows are accumulated instead, one slice of partners at a time.
    """
    k = factors.shape[1]
    rhs = rows.matrix(rows.targets) @ factors
    if len(factors) * k * k <= _MAX_OUTER_FLOATS:
        outer = (factors[:, :, None] * factors[:, None, :]).reshape(-1, k * k)
        step = max(1, _MAX_SYSTEM_FLOATS // (k * k))
        solution = torch.empty(rows.n_rows, k, dtype=factors.dtype, device=factors.device)
        for start in range(0, rows.n_rows, step):
            stop = min(rows.n_rows, start + step)
            systems = (rows.matrix(rows.weights, start, stop) @ outer).reshape(-1, k, k)
            solution[start:stop] = _factor_and_solve(systems, gram, reg[start:stop],
                                                     rhs[start:stop])
        return solution
    if rows.n_rows * k * k > _MAX_ALL_SYSTEMS_FLOATS:
        raise InvalidParameterError(
            f"exact solves need {rows.n_rows:,} or {len(factors):,} systems of size {k} x {k} "
            "in memory at once (over 4 GB); use fewer factors, or solver='cg' where the model "
            "has it")
    systems = torch.zeros(rows.n_rows, k * k, dtype=factors.dtype, device=factors.device)
    step = max(1, _MAX_OUTER_FLOATS // (k * k))
    for first in range(0, len(factors), step):
        last = min(len(factors), first + step)
        inside = (rows.indices >= first) & (rows.indices < last)
        part = factors[first:last]
        outer = (part[:, :, None] * part[:, None, :]).reshape(-1, k * k)
        counts = torch.bincount(rows.row_of[inside], minlength=rows.n_rows)
        pointers = torch.zeros(rows.n_rows + 1, dtype=rows.indptr.dtype, device=counts.device)
        torch.cumsum(counts, dim=0, out=pointers[1:])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            block = torch.sparse_csr_tensor(pointers, rows.indices[inside] - first,
                                            rows.weights[inside], size=(rows.n_rows, last - first),
                                            check_invariants=False)
        systems.addmm_(block, outer)  # in place: no second copy of all systems
    return _factor_and_solve(systems.reshape(-1, k, k), gram, reg, rhs)


def _factor_and_solve(systems: torch.Tensor, gram: torch.Tensor | None, reg: torch.Tensor,
                      rhs: torch.Tensor) -> torch.Tensor:
    if gram is not None:
        systems += gram
    systems.diagonal(dim1=-2, dim2=-1).add_(reg)
    chol, info = torch.linalg.cholesky_ex(systems)
    if bool((info != 0).any()):
        # a singular system (an empty row without regularisation): least squares instead
        solution: torch.Tensor = torch.linalg.lstsq(systems, rhs[:, :, None]).solution
        return solution[:, :, 0]
    return torch.cholesky_solve(rhs[:, :, None], chol)[:, :, 0]


def _apply(rows: SparseRows, factors: torch.Tensor, gram: torch.Tensor | None,
           reg: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A x`` for every row without forming ``A``."""
    dots = (x[rows.row_of] * factors[rows.indices]).sum(dim=1) * rows.weights
    result = rows.matrix(dots) @ factors
    if gram is not None:
        result += x @ gram
    return result + reg * x


def cg_solve(rows: SparseRows, factors: torch.Tensor, gram: torch.Tensor | None,
             reg: torch.Tensor, start: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` conjugate-gradient iterations for every row at once, from ``start``;
    ``reg`` (rows x k) is the diagonal added per row."""
    x = start.clone()
    rhs = rows.matrix(rows.targets) @ factors
    residual = rhs - _apply(rows, factors, gram, reg, x)
    direction = residual.clone()
    rs_old = (residual * residual).sum(dim=1)
    tiny = torch.finfo(factors.dtype).tiny
    for _ in range(steps):
        a_dir = _apply(rows, factors, gram, reg, direction)
        alpha = rs_old / (direction * a_dir).sum(dim=1).clamp_min(tiny)
        x += alpha[:, None] * direction
        residual -= alpha[:, None] * a_dir
        rs_new = (residual * residual).sum(dim=1)
        direction = residual + (rs_new / rs_old.clamp_min(tiny))[:, None] * direction
        rs_old = rs_new
    return x


def ridge_rows(rows: SparseRows, design: torch.Tensor, targets: torch.Tensor,
               reg: torch.Tensor) -> torch.Tensor:
    """Per-row ridge regression ``argmin_x sum_i (t_ui - d_i . x)^2 + x^T diag(reg_u) x``.

    Used to fold new or updated users into explicit models with fixed item factors.
    """
    unit = SparseRows(rows.indptr, rows.indices, torch.ones_like(targets), targets,
                      rows.n_cols)
    return exact_solve(unit, design, None, reg)
