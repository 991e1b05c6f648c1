"""Compiled CPU kernels for biased matrix factorisation (SGD and Gibbs-sampled Bayesian MF).

Model: ``r_hat(u, i) = global_mean + b_u + b_i + p_u . q_i`` (Funk / Koren "SVD").

Every kernel is a numba ``@njit(cache=True)`` function over typed
NumPy arrays only (no Python objects), so the first call compiles once, the machine
code is cached on disk next to this file (``__pycache__``), and later processes load
it instead of compiling.  Pass arguments with stable types (int32 indices, float32
ratings/state, int64 orders, Python ``float`` scalars): another dtype means another
compiled specialisation.  Editing this file invalidates the on-disk cache.

State is float32 and updated in place.  Arithmetic inside a rating update is done in
float32 as well; the SGD kernels are compiled with ``fastmath`` so the compiler vectorises
the dot product (results are deterministic on one machine, and may differ in the last bits
between CPUs with different vector units); the returned sum of squared errors is float64.

Update for one rating ``(u, i, r)`` (plain SGD, errors taken *before* the update)::

    e     = r - (mu + b_u + b_i + p_u . q_i)
    b_u  += lr_bias * (e - reg_bias * b_u)
    b_i  += lr_bias * (e - reg_bias * b_i)
    p_u  += lr * (e * q_i - reg * p_u)        # both with the *old* p_u, q_i
    q_i  += lr * (e * p_u - reg * q_i)

``use_bias=False`` gives the unbiased ("seed-style") model: biases are neither read
nor written (they can be passed as length-0 arrays) and ``global_mean`` is still
added, so pass ``0.0`` for a pure ``p_u . q_i`` model.

Kernels
-------
``sgd_epoch``           one serial epoch in stored order (deterministic).
``block_layout``        order ratings into an ``n_blocks x n_blocks`` grid of
                        (user-stratum, item-stratum) blocks (LIBMF / DSGD layout),
                        sorted by user inside each block.
``sgd_epoch_blocked``   one epoch over that grid, ``n_blocks`` sub-epochs, each a
                        set of ``n_blocks`` blocks that share no user and no item,
                        processed in parallel with ``prange``.  There are no write
                        races, so the result is deterministic and independent of
                        the thread count.
``csr_gram``            per-row Gram matrices ``sum_j f_j f_j^T`` and vectors
                        ``sum_j t_j f_j`` over a CSR pattern (the data term of the
                        conditional posteriors in Gibbs-sampled Bayesian MF / ALS).
``gaussian_rows``       one Gibbs step of Bayesian MF for a whole side: every row
                        ``x_a ~ N(S_a (sum c t f + Lam mu), S_a)`` with
                        ``S_a^-1 = Lam + sum c f f^T``, ``c`` the noise precision of
                        each rating (``alpha`` times a row and a partner weight)
                        (Gram + Cholesky + two triangular solves per row, in
                        ``prange``), standard-normal draws supplied by the caller so
                        all randomness stays outside.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "block_layout",
    "csr_gram",
    "draw_gaussian",
    "gaussian_rows",
    "sgd_epoch",
    "sgd_epoch_blocked",
]


@njit(cache=True, fastmath=True)
def _update(
    u: int,
    i: int,
    r: float,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    user_squares: np.ndarray,
    item_squares: np.ndarray,
    mu: np.float32,
    lr: np.float32,
    reg: np.float32,
    reg_bias: np.float32,
    lr_bias: np.float32,
    use_bias: bool,
) -> float:
    k = user_factors.shape[1]
    pu = user_factors[u]
    qi = item_factors[i]
    dot = np.float32(0.0)
    for f in range(k):
        dot += pu[f] * qi[f]
    pred = mu + dot
    bu = np.float32(0.0)
    bi = np.float32(0.0)
    if use_bias:
        bu = user_bias[u]
        bi = item_bias[i]
        pred += bu + bi
    err = np.float32(r) - pred
    if use_bias:
        user_bias[u] = bu + lr_bias * (err - reg_bias * bu)
        item_bias[i] = bi + lr_bias * (err - reg_bias * bi)
    user_lr = lr
    item_lr = lr
    if user_squares.shape[0] > 0:
        # per-row AdaGrad (LIBMF's schedule): each row's step shrinks with the mean squared
        # gradient it has accumulated, so rare rows keep moving while frequent ones settle
        user_sum = np.float32(0.0)
        item_sum = np.float32(0.0)
        for f in range(k):
            gu = err * qi[f] - reg * pu[f]
            gi = err * pu[f] - reg * qi[f]
            user_sum += gu * gu
            item_sum += gi * gi
        user_squares[u] += user_sum / k
        item_squares[i] += item_sum / k
        user_lr = lr / np.sqrt(user_squares[u])
        item_lr = lr / np.sqrt(item_squares[i])
    for f in range(k):
        p = pu[f]
        q = qi[f]
        pu[f] = p + user_lr * (err * q - reg * p)
        qi[f] = q + item_lr * (err * p - reg * q)
    return float(err) * float(err)


@njit(cache=True, fastmath=True)
def _sgd_range(
    user_index: np.ndarray,
    item_index: np.ndarray,
    ratings: np.ndarray,
    start: int,
    stop: int,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    user_squares: np.ndarray,
    item_squares: np.ndarray,
    mu: np.float32,
    lr: np.float32,
    reg: np.float32,
    reg_bias: np.float32,
    lr_bias: np.float32,
    use_bias: bool,
) -> float:
    """Serial SGD over ``ratings[start:stop]`` in stored order; returns the sum of squared
    errors."""
    sse = 0.0
    for t in range(start, stop):
        sse += _update(
            user_index[t],
            item_index[t],
            ratings[t],
            user_factors,
            item_factors,
            user_bias,
            item_bias,
            user_squares,
            item_squares,
            mu,
            lr,
            reg,
            reg_bias,
            lr_bias,
            use_bias,
        )
    return sse


@njit(cache=True, fastmath=True)
def sgd_epoch(
    user_index: np.ndarray,
    item_index: np.ndarray,
    ratings: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    user_squares: np.ndarray,
    item_squares: np.ndarray,
    global_mean: float,
    lr: float,
    reg: float,
    reg_bias: float,
    lr_bias: float,
    use_bias: bool = True,
) -> float:
    """One serial SGD epoch over the ratings in stored order (the caller shuffles them);
    returns the epoch's sum of squared errors.

    ``user_index``/``item_index``: int32[n]; ``ratings``: float32[n]; factors:
    float32[n_users, k] and float32[n_items, k] (C-contiguous); biases: float32[n_users],
    float32[n_items].  Errors are measured before each update.  Deterministic.
    """
    return _sgd_range(
        user_index,
        item_index,
        ratings,
        0,
        ratings.shape[0],
        user_factors,
        item_factors,
        user_bias,
        item_bias,
        user_squares,
        item_squares,
        np.float32(global_mean),
        np.float32(lr),
        np.float32(reg),
        np.float32(reg_bias),
        np.float32(lr_bias),
        use_bias,
    )


@njit(cache=True)
def block_layout(
    user_index: np.ndarray,
    item_index: np.ndarray,
    user_stratum: np.ndarray,
    item_stratum: np.ndarray,
    n_users: int,
    n_blocks: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Lay ratings out block by block in an ``n_blocks x n_blocks`` grid, sorted by user
    inside each block.

    ``user_stratum[u]`` / ``item_stratum[i]`` in ``[0, n_blocks)`` say which stratum a
    user / item belongs to (a random balanced assignment).  Returns ``(order, block_ptr)``:
    block ``(a, b)`` holds the ratings ``order[block_ptr[a * n_blocks + b]:block_ptr[a *
    n_blocks + b + 1]]``, in increasing user index.  Walking a block in that order reads
    user rows at increasing addresses (the hardware prefetcher follows) while the block's
    item rows stay in cache (LIBMF's "partial random" order).  Two counting sorts (by user,
    then stably by block) with int32 positions: 8 bytes of scratch per rating.
    """
    n = user_index.shape[0]
    per_user = np.zeros(n_users + 1, dtype=np.int64)
    for t in range(n):
        per_user[user_index[t] + 1] += 1
    for user in range(n_users):
        per_user[user + 1] += per_user[user]
    by_user = np.empty(n, dtype=np.int32)
    for t in range(n):
        by_user[per_user[user_index[t]]] = t
        per_user[user_index[t]] += 1
    block_ptr = np.zeros(n_blocks * n_blocks + 1, dtype=np.int64)
    for t in range(n):
        block_ptr[user_stratum[user_index[t]] * n_blocks + item_stratum[item_index[t]] + 1] += 1
    for b in range(n_blocks * n_blocks):
        block_ptr[b + 1] += block_ptr[b]
    fill = block_ptr[:-1].copy()
    order = np.empty(n, dtype=np.int32)
    for t in range(n):
        j = by_user[t]
        b = user_stratum[user_index[j]] * n_blocks + item_stratum[item_index[j]]
        order[fill[b]] = j
        fill[b] += 1
    return order, block_ptr


@njit(cache=True, fastmath=True, parallel=True)
def sgd_epoch_blocked(
    user_index: np.ndarray,
    item_index: np.ndarray,
    ratings: np.ndarray,
    block_ptr: np.ndarray,
    n_blocks: int,
    diagonals: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    user_squares: np.ndarray,
    item_squares: np.ndarray,
    global_mean: float,
    lr: float,
    reg: float,
    reg_bias: float,
    lr_bias: float,
    use_bias: bool = True,
) -> float:
    """One parallel SGD epoch over ratings stored in :func:`block_layout` order.

    The epoch is ``n_blocks`` sub-epochs; sub-epoch ``s`` processes, in parallel, the blocks
    ``(a, (a + diagonals[s]) % n_blocks)`` for every user stratum ``a`` (``diagonals``: a
    permutation of ``range(n_blocks)``, so every block runs once; vary it per epoch).  These
    blocks share no user and no item, so there are no races: the result does not depend on
    the number of threads and is deterministic.  Returns the epoch's sum of squared errors.
    """
    mu = np.float32(global_mean)
    lr32 = np.float32(lr)
    reg32 = np.float32(reg)
    rb32 = np.float32(reg_bias)
    lb32 = np.float32(lr_bias)
    sse_parts = np.zeros(n_blocks, dtype=np.float64)
    for s in range(n_blocks):
        for a in prange(n_blocks):
            blk = a * n_blocks + (a + diagonals[s]) % n_blocks
            sse_parts[a] += _sgd_range(
                user_index,
                item_index,
                ratings,
                block_ptr[blk],
                block_ptr[blk + 1],
                user_factors,
                item_factors,
                user_bias,
                item_bias,
                user_squares,
                item_squares,
                mu,
                lr32,
                reg32,
                rb32,
                lb32,
                use_bias,
            )
    return float(sse_parts.sum())


@njit(cache=True, fastmath=False, parallel=True)
def csr_gram(
    indptr: np.ndarray,
    indices: np.ndarray,
    targets: np.ndarray,
    features: np.ndarray,
    gram: np.ndarray,
    rhs: np.ndarray,
) -> None:
    """For each CSR row ``a``: ``gram[a] = sum_t f f^T`` and ``rhs[a] = sum_t targets[t] f``,
    with ``f = features[indices[t]]`` over ``t in [indptr[a], indptr[a + 1])``.

    ``indptr``: int64[n + 1]; ``indices``: int32/int64[nnz]; ``targets``: float64[nnz];
    ``features``: float64[m, d]; outputs (overwritten): ``gram`` float64[n, d, d] (full,
    symmetric) and ``rhs`` float64[n, d].  Rows are independent (``prange``), and each
    row is summed serially in CSR order, so the result is deterministic.
    """
    n = indptr.shape[0] - 1
    d = features.shape[1]
    for a in prange(n):
        g = gram[a]
        b = rhs[a]
        for x in range(d):
            b[x] = 0.0
            for y in range(d):
                g[x, y] = 0.0
        for t in range(indptr[a], indptr[a + 1]):
            f = features[indices[t]]
            tv = targets[t]
            for x in range(d):
                fx = f[x]
                b[x] += tv * fx
                for y in range(x + 1):
                    g[x, y] += fx * f[y]
        for x in range(d):
            for y in range(x):
                g[y, x] = g[x, y]


@njit(cache=True, inline="always")
def draw_gaussian(prec: np.ndarray, lin: np.ndarray, normals: np.ndarray, out: np.ndarray) -> None:
    """``out ~ N(prec^-1 lin, prec^-1)``: in-place Cholesky of ``prec`` (lower triangle
    used, overwritten), forward solve, then a backward solve with the normals added."""
    d = prec.shape[0]
    for j in range(d):
        sjj = prec[j, j]
        for m in range(j):
            sjj -= prec[j, m] * prec[j, m]
        ljj = np.sqrt(sjj)
        prec[j, j] = ljj
        for x in range(j + 1, d):
            sxj = prec[x, j]
            for m in range(j):
                sxj -= prec[x, m] * prec[j, m]
            prec[x, j] = sxj / ljj
    for x in range(d):
        v = lin[x]
        for m in range(x):
            v -= prec[x, m] * lin[m]
        lin[x] = v / prec[x, x]
    for x in range(d - 1, -1, -1):
        v = lin[x] + normals[x]
        for m in range(x + 1, d):
            v -= prec[m, x] * out[m]
        out[x] = v / prec[x, x]


@njit(cache=True, fastmath=False, parallel=True)
def gaussian_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    targets: np.ndarray,
    features: np.ndarray,
    partner_weights: np.ndarray,
    row_weights: np.ndarray,
    prior_mean: np.ndarray,
    prior_precision: np.ndarray,
    alpha: float,
    normals: np.ndarray,
    out: np.ndarray,
) -> None:
    """Draw every row of one side of a Bayesian (biased) MF from its Gaussian conditional.

    For CSR row ``a`` with entries ``t`` (partner ``j = indices[t]``, ``f = features[j]``,
    target ``targets[t]``), each rating's noise precision is
    ``c_t = alpha * row_weights[a] * partner_weights[j]`` and::

        prec_a = prior_precision + sum_t c_t f f^T                (= L L^T, Cholesky)
        mean_a = prec_a^-1 (sum_t c_t targets[t] f + prior_precision @ prior_mean)
        out[a] = mean_a + L^-T normals[a]                         (so cov = prec_a^-1)

    ``indptr`` int64[n + 1]; ``indices`` int32/int64[nnz]; ``targets`` float64[nnz];
    ``features`` float64[m, d]; ``partner_weights`` float64[m] and ``row_weights``
    float64[n] (all ones for one shared noise level; per-user noise precisions put the
    user's weight on the user side's rows and on the item side's partners);
    ``prior_mean`` float64[d]; ``prior_precision`` float64[d, d] (SPD); ``normals``
    float64[n, d] standard normal draws (the caller's RNG); ``out`` float64[n, d] is
    overwritten.  Rows run in ``prange`` with per-row serial sums: deterministic for given
    ``normals``.  Rows with no entries are drawn from the prior.
    """
    n = indptr.shape[0] - 1
    d = features.shape[1]
    lam_mu = prior_precision @ prior_mean
    for a in prange(n):
        L = np.empty((d, d))
        b = np.empty(d)
        for x in range(d):
            b[x] = 0.0
            for y in range(x + 1):
                L[x, y] = 0.0
        for t in range(indptr[a], indptr[a + 1]):
            partner = indices[t]
            f = features[partner]
            w = partner_weights[partner]
            tv = targets[t] * w
            for x in range(d):
                fx = f[x]
                b[x] += tv * fx
                wfx = w * fx
                for y in range(x + 1):
                    L[x, y] += wfx * f[y]
        scale = alpha * row_weights[a]
        for x in range(d):
            b[x] = scale * b[x] + lam_mu[x]
            for y in range(x + 1):
                L[x, y] = scale * L[x, y] + prior_precision[x, y]
        draw_gaussian(L, b, normals[a], out[a])
