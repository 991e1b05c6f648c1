"""Compiled CPU kernels for implicit ALS: conjugate-gradient row updates and the loss.

Each row ``u`` (a user when updating users, an item when updating items) solves

    (G + sum_t w_t y_t y_t^T + lambda_u I) x_u = sum_t v_t y_t

with ``G = Y^T Y`` shared by all rows, ``w_t = c_t - 1`` and ``v_t = c_t = 1 + w_t`` (preference
1) for Hu, Koren & Volinsky's confidences. ``cg_rows`` runs ``steps`` conjugate-gradient
iterations from the current ``x_u``; each iteration reads the row's partner vectors once, so a
sweep costs O(steps * (nnz k + rows k^2)). When there are many rows, the caller can work in the
eigenbasis of ``G`` (``G = V diag(e) V^T``; pass ``Y V``, ``X V``, ``diag(e)`` and rotate the
result back by ``V^T``): there ``G`` is diagonal, so the ``G x`` product each row needs per step
costs k instead of k^2, and conjugate gradients, being invariant under rotations, take the
same steps. The two rotations are matrix products over all rows, worth it only when the rows
outnumber their partners (measure on your data before changing the rule in ``als.py``). Rows
are split into chunks processed in parallel (``prange``); each chunk allocates its scratch
vectors once. Rows never share output, so there are no races and the result does not depend
on the number of threads. ``fastmath`` lets LLVM vectorise the dot products (about 2x here);
each row's arithmetic is still one fixed serial order, so results are reproducible on a given
machine.

``cg_rows_centred`` is ``cg_rows`` for a ridge drawn towards a centre ``m_u`` instead of zero
(``lambda_u m_u`` joins the right-hand side), and ``implicit_rows_apply`` computes ``A_u x_u``
(optionally less ``b_u``) for every row without the penalty: the hybrid model
(``_hybrid_als.py``) needs both.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["cg_rows", "cg_rows_centred", "implicit_loss_rows", "implicit_rows_apply",
           "sparse_times_dense", "weighted_column_squares"]

_CHUNK = 512
#: how many partners ahead of use their vectors are prefetched
_AHEAD = 8


@intrinsic
def _prefetch(typing_context, array, row, column):  # type: ignore[no-untyped-def]
    """Ask the CPU to start loading ``array[row, column]``'s cache line (``llvm.prefetch``:
    read, keep in all cache levels). Partner vectors are gathered at random from memory
    much larger than the caches; fetching a few partners ahead made the item side of a 20M
    iALS sweep about 30% faster here."""

    def codegen(context, builder, signature, arguments):  # type: ignore[no-untyped-def]
        array_type = signature.args[0]
        data, row_index, column_index = arguments
        view = context.make_array(array_type)(context, builder, data)
        position = [context.cast(builder, value, kind, types.intp) for value, kind in
                    ((row_index, signature.args[1]), (column_index, signature.args[2]))]
        address = cgutils.get_item_pointer(context, builder, array_type, view, position)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = builder.module.declare_intrinsic(
            "llvm.prefetch", fnty=ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]))
        builder.call(prefetch, [builder.bitcast(address, byte_pointer), ir.Constant(i32, 0),
                                ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, row, column), codegen


@njit(cache=True, inline="always")
def _prefetch_ahead(indices: np.ndarray, t: int, end: int, other: np.ndarray) -> None:
    if t + _AHEAD < end:
        partner = indices[t + _AHEAD]
        for column in range(0, other.shape[1], 16):  # one call per 64-byte line of float32
            _prefetch(other, partner, column)  # type: ignore[call-arg]


@njit(cache=True, fastmath=True, inline="always")
def _gram_times(gram: np.ndarray, diagonal: bool, vector: np.ndarray, reg: float,
                out: np.ndarray) -> None:
    k = vector.shape[0]
    if diagonal:
        for a in range(k):
            out[a] = (gram[a, a] + reg) * vector[a]
        return
    for a in range(k):
        total = reg * vector[a]
        for b in range(k):
            total += gram[a, b] * vector[b]
        out[a] = total


@njit(cache=True, fastmath=True, inline="always")
def _cg_row(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, other: np.ndarray,
            gram: np.ndarray, diagonal: bool, lam: float, row: int, factors: np.ndarray,
            steps: int, x: np.ndarray, residual: np.ndarray, direction: np.ndarray,
            product: np.ndarray) -> None:  # pragma: no cover - compiled
    """``steps`` CG iterations for one row, from ``x`` (the row's factors) and ``residual``
    holding the right-hand side's prior term minus ``(G + lambda I) x``; writes the row."""
    k = x.shape[0]
    end = indptr[row + 1]
    for t in range(indptr[row], end):
        _prefetch_ahead(indices, t, end, other)
        item = indices[t]
        dot = np.float32(0.0)
        for a in range(k):
            dot += other[item, a] * x[a]
        scale = np.float32(1.0) + weights[t] * (np.float32(1.0) - dot)
        for a in range(k):
            residual[a] += scale * other[item, a]
    rs_old = np.float32(0.0)
    for a in range(k):
        direction[a] = residual[a]
        rs_old += residual[a] * residual[a]
    for _ in range(steps):
        if rs_old < 1e-20:
            break
        _gram_times(gram, diagonal, direction, lam, product)
        for t in range(indptr[row], end):
            _prefetch_ahead(indices, t, end, other)
            item = indices[t]
            dot = np.float32(0.0)
            for a in range(k):
                dot += other[item, a] * direction[a]
            scale = weights[t] * dot
            for a in range(k):
                product[a] += scale * other[item, a]
        curvature = np.float32(0.0)
        for a in range(k):
            curvature += direction[a] * product[a]
        if curvature <= 0.0:
            break
        alpha = rs_old / curvature
        rs_new = np.float32(0.0)
        for a in range(k):
            x[a] += alpha * direction[a]
            residual[a] -= alpha * product[a]
            rs_new += residual[a] * residual[a]
        beta = rs_new / rs_old
        for a in range(k):
            direction[a] = residual[a] + beta * direction[a]
        rs_old = rs_new
    for a in range(k):
        factors[row, a] = x[a]


@njit(cache=True, fastmath=True, parallel=True)
def cg_rows(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray,
            other: np.ndarray, gram: np.ndarray, diagonal: bool, reg: np.ndarray,
            factors: np.ndarray, steps: int) -> None:  # pragma: no cover - compiled
    """Update every row of ``factors`` in place by ``steps`` CG iterations.

    With ``diagonal=True`` only the diagonal of ``gram`` is read: pass ``other`` and
    ``factors`` rotated into the eigenbasis of ``G`` and ``gram = diag(eigenvalues)``.

    ``indptr`` int[n + 1], ``indices`` int[nnz] (int32 keeps memory traffic down),
    ``weights`` float32[nnz] (``c - 1``),
    ``other`` float32[m, k] (partner vectors), ``gram`` float32[k, k], ``reg`` float32[n],
    ``factors`` float32[n, k].
    """
    n_rows, k = factors.shape
    n_chunks = (n_rows + _CHUNK - 1) // _CHUNK
    for chunk in prange(n_chunks):
        x = np.empty(k, dtype=np.float32)
        residual = np.empty(k, dtype=np.float32)
        direction = np.empty(k, dtype=np.float32)
        product = np.empty(k, dtype=np.float32)
        # rows are dealt out round-robin: popular (heavy) rows are often adjacent, and
        # contiguous chunks would give one thread most of the work
        for row in range(chunk, n_rows, n_chunks):
            lam = reg[row]
            for a in range(k):
                x[a] = factors[row, a]
            # residual = b - A x
            _gram_times(gram, diagonal, x, lam, product)
            for a in range(k):
                residual[a] = -product[a]
            _cg_row(indptr, indices, weights, other, gram, diagonal, lam, row, factors, steps,
                    x, residual, direction, product)


@njit(cache=True, fastmath=True, parallel=True)
def cg_rows_centred(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray,
                    other: np.ndarray, gram: np.ndarray, diagonal: bool, reg: np.ndarray,
                    centre: np.ndarray, factors: np.ndarray,
                    steps: int) -> None:  # pragma: no cover - compiled
    """``cg_rows`` for ``(A_u + lambda_u I) x_u = b_u + lambda_u m_u``: each row's ridge is
    drawn towards its row of ``centre`` (float32[n, k], rotated like ``factors`` when
    ``diagonal``) instead of zero."""
    n_rows, k = factors.shape
    n_chunks = (n_rows + _CHUNK - 1) // _CHUNK
    for chunk in prange(n_chunks):
        x = np.empty(k, dtype=np.float32)
        residual = np.empty(k, dtype=np.float32)
        direction = np.empty(k, dtype=np.float32)
        product = np.empty(k, dtype=np.float32)
        for row in range(chunk, n_rows, n_chunks):  # round-robin, as cg_rows
            lam = reg[row]
            for a in range(k):
                x[a] = factors[row, a]
            _gram_times(gram, diagonal, x, lam, product)
            for a in range(k):
                residual[a] = lam * centre[row, a] - product[a]
            _cg_row(indptr, indices, weights, other, gram, diagonal, lam, row, factors, steps,
                    x, residual, direction, product)


@njit(cache=True, fastmath=False, parallel=True)
def implicit_loss_rows(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray,
                       users: np.ndarray, items: np.ndarray) -> float:  # pragma: no cover
    """``sum over observed (u, i) of c (1 - s)^2 - s^2`` with ``c = 1 + weights``."""
    n_rows, k = users.shape
    n_chunks = (n_rows + _CHUNK - 1) // _CHUNK
    parts = np.zeros(n_chunks, dtype=np.float64)
    for chunk in prange(n_chunks):
        total = 0.0
        for row in range(chunk * _CHUNK, min(n_rows, (chunk + 1) * _CHUNK)):
            for t in range(indptr[row], indptr[row + 1]):
                item = indices[t]
                score = 0.0
                for a in range(k):
                    score += users[row, a] * items[item, a]
                confidence = 1.0 + weights[t]
                total += confidence * (1.0 - score) ** 2 - score * score
        parts[chunk] = total
    return float(parts.sum())


@njit(cache=True, fastmath=True, parallel=True)
def implicit_rows_apply(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray,
                        other: np.ndarray, gram: np.ndarray, diagonal: bool,
                        vectors: np.ndarray, subtract_rhs: bool,
                        out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[u] = G x_u + sum_t w_t (y_t . x_u) y_t`` for every row ``u`` (``x_u`` the row of
    ``vectors``), less ``b_u = sum_t (1 + w_t) y_t`` when ``subtract_rhs``: each row's system
    without its penalty applied to a vector. Arguments as ``cg_rows`` (``diagonal``: only the
    diagonal of ``gram`` is read, in the eigenbasis of ``G``)."""
    n_rows, k = vectors.shape
    n_chunks = (n_rows + _CHUNK - 1) // _CHUNK
    for chunk in prange(n_chunks):
        x = np.empty(k, dtype=np.float32)
        product = np.empty(k, dtype=np.float32)
        for row in range(chunk, n_rows, n_chunks):
            for a in range(k):
                x[a] = vectors[row, a]
            _gram_times(gram, diagonal, x, 0.0, product)
            end = indptr[row + 1]
            for t in range(indptr[row], end):
                _prefetch_ahead(indices, t, end, other)
                item = indices[t]
                dot = np.float32(0.0)
                for a in range(k):
                    dot += other[item, a] * x[a]
                scale = weights[t] * dot
                if subtract_rhs:
                    scale -= np.float32(1.0) + weights[t]
                for a in range(k):
                    product[a] += scale * other[item, a]
            for a in range(k):
                out[row, a] = product[a]


@njit(cache=True, fastmath=True, parallel=True)
def sparse_times_dense(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                       dense: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out = M @ dense`` for a CSR matrix ``M`` (rows in parallel): the hybrid model's
    design-matrix products, 5-10x faster here than scipy's single-threaded loop."""
    n_rows = len(indptr) - 1
    k = dense.shape[1]
    n_chunks = (n_rows + _CHUNK - 1) // _CHUNK
    for chunk in prange(n_chunks):
        total = np.empty(k, dtype=np.float32)
        for row in range(chunk, n_rows, n_chunks):
            for a in range(k):
                total[a] = np.float32(0.0)
            for t in range(indptr[row], indptr[row + 1]):
                column = indices[t]
                value = data[t]
                for a in range(k):
                    total[a] += value * dense[column, a]
            for a in range(k):
                out[row, a] = total[a]


@njit(cache=True, fastmath=True, parallel=True)
def weighted_column_squares(values: np.ndarray, weights: np.ndarray,
                            out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[a] = sum_r weights[r] * values[r, a]^2`` (float64 ``out``), in chunks summed in
    a fixed order: the hybrid model's CG curvatures ``sum_i lambda_i |X_i d|^2`` without
    forming ``X^T Lambda X d``."""
    n_rows, k = values.shape
    n_chunks = (n_rows + _CHUNK - 1) // _CHUNK
    parts = np.zeros((n_chunks, k), dtype=np.float64)
    for chunk in prange(n_chunks):
        for row in range(chunk * _CHUNK, min(n_rows, (chunk + 1) * _CHUNK)):
            weight = weights[row]
            for a in range(k):
                parts[chunk, a] += weight * values[row, a] * values[row, a]
    for a in range(k):
        out[a] = 0.0
    for chunk in range(n_chunks):
        for a in range(k):
            out[a] += parts[chunk, a]
