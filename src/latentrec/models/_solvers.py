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

__all__ = ["SparseRows", "bias_penalties", "cg_solve", "exact_solve", "ridge_rows"]

#: systems formed at once by exact_solve when every partner's outer product fits in one
#: table (64 MB of float32); with sliced partners, blocks are larger (1 GB) so each slice's
#: table is rebuilt fewer times
_MAX_SYSTEM_FLOATS = 16_000_000
_MAX_SLICED_SYSTEM_FLOATS = 256_000_000
#: largest table of partner outer products exact_solve builds at once (512 MB of float32)
_MAX_OUTER_FLOATS = 128_000_000


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

    def dots(self, row_vectors: torch.Tensor, column_vectors: torch.Tensor) -> torch.Tensor:
        """``row_vectors[u] . column_vectors[i]`` for every entry ``(u, i)``, a million entries
        at a time (gathering both sides for 20M entries at once took 15 GB)."""
        out = torch.empty(len(self.indices), dtype=row_vectors.dtype, device=row_vectors.device)
        for lo in range(0, len(self.indices), 1 << 20):
            hi = min(len(self.indices), lo + (1 << 20))
            out[lo:hi] = (row_vectors[self.row_of[lo:hi]]
                          * column_vectors[self.indices[lo:hi]]).sum(dim=1)
        return out

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
                reg: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
    """Solve every row's system exactly; ``reg`` (rows x k) is the diagonal added per row and
    ``extra`` (rows x k, optional) is added to the right-hand sides (a ridge drawn towards
    ``m`` instead of zero has ``extra = reg * m``).

    The data term of a block of rows is a sparse product with the table of partner outer
    products ``y_i (x) y_i``. When that table would be too big (1M users at k=64: 16 GB), the
    partners are taken in slices whose tables are built for each block of rows in turn, so
    memory stays bounded whatever the sizes.
    """
    k = factors.shape[1]
    rhs = rows.matrix(rows.targets) @ factors
    if extra is not None:
        rhs += extra
    per_slice = max(1, _MAX_OUTER_FLOATS // (k * k))
    slices = [(first, min(len(factors), first + per_slice))
              for first in range(0, len(factors), per_slice)]
    whole = None if len(slices) > 1 else _outer_products(factors)
    step = max(1, (_MAX_SYSTEM_FLOATS if whole is not None else _MAX_SLICED_SYSTEM_FLOATS)
               // (k * k))
    solution = torch.empty(rows.n_rows, k, dtype=factors.dtype, device=factors.device)
    for start in range(0, rows.n_rows, step):
        stop = min(rows.n_rows, start + step)
        if whole is not None:
            systems = rows.matrix(rows.weights, start, stop) @ whole
        else:
            systems = torch.zeros(stop - start, k * k, dtype=factors.dtype,
                                  device=factors.device)
            for first, last in slices:
                block = _partner_slice(rows, start, stop, first, last)
                systems.addmm_(block, _outer_products(factors[first:last]))
        solution[start:stop] = _factor_and_solve(systems.reshape(-1, k, k), gram,
                                                 reg[start:stop], rhs[start:stop])
    return solution


def _outer_products(factors: torch.Tensor) -> torch.Tensor:
    """Row ``i`` holds ``y_i (x) y_i`` flattened."""
    k = factors.shape[1]
    return (factors[:, :, None] * factors[:, None, :]).reshape(-1, k * k)


def _partner_slice(rows: SparseRows, start: int, stop: int, first: int, last: int
                   ) -> torch.Tensor:
    """Rows ``start:stop`` restricted to the partners ``first:last``, as sparse CSR."""
    lo, hi = int(rows.indptr[start]), int(rows.indptr[stop])
    indices = rows.indices[lo:hi]
    inside = (indices >= first) & (indices < last)
    counts = torch.bincount(rows.row_of[lo:hi][inside] - start, minlength=stop - start)
    pointers = torch.zeros(stop - start + 1, dtype=rows.indptr.dtype, device=counts.device)
    torch.cumsum(counts, dim=0, out=pointers[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(pointers, indices[inside] - first,
                                       rows.weights[lo:hi][inside],
                                       size=(stop - start, last - first),
                                       check_invariants=False)


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
    dots = rows.dots(x, factors) * rows.weights
    result = rows.matrix(dots) @ factors
    if gram is not None:
        result += x @ gram
    return result + reg * x


def cg_solve(rows: SparseRows, factors: torch.Tensor, gram: torch.Tensor | None,
             reg: torch.Tensor, start: torch.Tensor, steps: int,
             extra: torch.Tensor | None = None) -> torch.Tensor:
    """``steps`` conjugate-gradient iterations for every row at once, from ``start``;
    ``reg`` (rows x k) is the diagonal added per row, ``extra`` (optional) is added to the
    right-hand sides (see :func:`exact_solve`)."""
    x = start.clone()
    rhs = rows.matrix(rows.targets) @ factors
    if extra is not None:
        rhs += extra
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


def bias_penalties(rows: SparseRows, reg: float, reg_bias: float, factors: int) -> torch.Tensor:
    """ALS-WR penalties: ``reg * n`` on each factor and ``reg_bias * n`` on the bias."""
    counts = rows.counts().clamp_min(1.0)[:, None]
    return torch.cat([reg * counts.expand(-1, factors), reg_bias * counts], dim=1)
